"""How to reach an Elasticsearch cluster: its URL (one node, a load balancer, or several nodes), credentials and
TLS, checked before any request; and the client made from them."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from bertsearch.errors import BackendError


@dataclass(frozen=True)
class ElasticsearchConnection:
    """How to reach a cluster: `url` names one node or load balancer, or several nodes comma-separated, between
    which the client fails over. Credentials may come inside a URL (http://user:password@host:9200) instead.

    Neither `password` nor `api_key` appears in the repr or in any error message.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        nodes = [node.strip() for node in self.url.split(",")]
        for node in nodes:
            parts = urllib.parse.urlsplit(node)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BackendError(
                    f"Elasticsearch URL must look like http(s)://host:port, got {_without_credentials(node)!r}"
                )
            if parts.username is not None and self.username is None and self.api_key is None:
                object.__setattr__(self, "username", urllib.parse.unquote(parts.username))
                object.__setattr__(self, "password", urllib.parse.unquote(parts.password or ""))
        # Keep the URL itself credential-free, so printing it is always safe.
        object.__setattr__(self, "url", ",".join(_without_credentials(node) for node in nodes))
        schemes = {urllib.parse.urlsplit(node).scheme for node in nodes}
        if len(schemes) > 1:
            raise BackendError(f"Elasticsearch URLs mix http and https: {self.url!r}")
        if self.ca_certs:
            if schemes != {"https"}:
                raise BackendError(f"a CA certificate only applies to https:// URLs, not {self.url!r}")
            if not os.path.isfile(self.ca_certs):
                raise BackendError(f"CA certificate file {self.ca_certs!r} does not exist")

    @property
    def nodes(self) -> list[str]:
        return self.url.split(",")

    def client(self) -> Elasticsearch:
        """A client that does not retry by itself, except on another node after a connection error: callers
        retry with backoff (`RetryingClient`)."""
        options: dict[str, Any] = {
            "request_timeout": self.request_timeout,
            "max_retries": len(self.nodes) - 1,
            "retry_on_status": (),
            "retry_on_timeout": False,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        elif self.username is not None:
            options["basic_auth"] = (self.username, self.password or "")
        if self.url.startswith("https://"):
            options["verify_certs"] = self.verify_certs
            # The user turned verification off on purpose: no warning on every request.
            options["ssl_show_warn"] = self.verify_certs
            if self.ca_certs:
                options["ca_certs"] = self.ca_certs
        return Elasticsearch(self.nodes, **options)


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))
