"""Import the dashboards through Kibana's saved objects API (`POST /api/saved_objects/_import`)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bertsearch.dashboards import DASHBOARDS_FILE
from bertsearch.errors import BackendError, BertsearchError

TIMEOUT = 60.0


@dataclass(frozen=True)
class KibanaConnection:
    """How to reach Kibana; neither the password nor the API key appears in the repr or in any message."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    space: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BertsearchError(f"Kibana URL must look like http(s)://host:port, got {self.url!r}")
        if parts.username or parts.password:
            raise BertsearchError("Kibana credentials belong in the username and password or the API key, "
                                  "not in the URL", settings=("username", "password", "api_key"))


@dataclass(frozen=True)
class ImportResult:
    """What Kibana reported: how many objects it imported, of how many sent."""

    imported: int
    sent: int
    url: str


def import_request(kibana: KibanaConnection, ndjson: bytes, overwrite: bool = True) -> urllib.request.Request:
    """The multipart request Kibana's import API expects: the file in a `file` field, and the `kbn-xsrf` header
    Kibana demands of every API write."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{DASHBOARDS_FILE.name}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode() + ndjson + f"\r\n--{boundary}--\r\n".encode()
    space = f"/s/{urllib.parse.quote(kibana.space, safe='')}" if kibana.space else ""
    query = "?overwrite=true" if overwrite else ""
    request = urllib.request.Request(
        kibana.url.rstrip("/") + f"{space}/api/saved_objects/_import{query}", data=body, method="POST"
    )
    request.add_header("kbn-xsrf", "bertsearch")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    if kibana.api_key:
        request.add_header("Authorization", f"ApiKey {kibana.api_key}")
    elif kibana.username is not None:
        token = base64.b64encode(f"{kibana.username}:{kibana.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def install_dashboards(
    kibana: KibanaConnection, overwrite: bool = True, ndjson_file: Path = DASHBOARDS_FILE
) -> ImportResult:
    """Import the dashboards; a BackendError naming the cause (one line) if Kibana refuses any object."""
    ndjson = ndjson_file.read_bytes()
    sent = sum(1 for line in ndjson.splitlines() if line.strip())
    request = import_request(kibana, ndjson, overwrite)
    context = None
    if kibana.url.startswith("https://"):
        context = ssl.create_default_context(cafile=kibana.ca_certs)
        if not kibana.verify_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise BackendError(_http_failure(kibana, exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendError(f"cannot reach Kibana at {kibana.url}: {reason}") from None
    except ValueError:
        raise BackendError(f"Kibana at {kibana.url} answered the import with something that is not JSON") from None
    if not answer.get("success"):
        errors = answer.get("errors") or []
        first = errors[0] if errors else {}
        cause = first.get("error", {})
        detail = (f"; first: {first.get('type')} {first.get('id')}: "
                  f"{cause.get('type', '')} {cause.get('message', '')}").rstrip()
        raise BackendError(
            f"Kibana at {kibana.url} imported {answer.get('successCount', 0)} of {sent} objects"
            + (detail if errors else "")
        )
    return ImportResult(imported=int(answer.get("successCount", sent)), sent=sent, url=kibana.url)


def _http_failure(kibana: KibanaConnection, exc: urllib.error.HTTPError) -> str:
    if exc.code == 401:
        return f"Kibana at {kibana.url} rejected the credentials (401): check the username and password or API key"
    if exc.code == 403:
        return f"Kibana at {kibana.url} denied the import (403): the user needs saved-object write privileges"
    if exc.code == 404:
        return (f"no saved objects API at {kibana.url} (404): is it Kibana's URL"
                + (f", and does the space {kibana.space!r} exist?" if kibana.space else "?"))
    try:
        message = json.loads(exc.read() or b"{}").get("message", "")
    except ValueError:
        message = ""
    return f"Kibana at {kibana.url} failed the import ({exc.code})" + (f": {message}" if message else "")
