"""Hashed query logs (`BERTSEARCH_QUERY_LOG=hashed`): the query text is replaced by a keyed digest, HMAC-SHA256
under a secret kept apart from the log, so repeated queries still group together but the log alone does not let
anyone test guesses. The secret is a file in the index folder (owner-only), or a document of a hidden index on
the cluster, one per bertsearch index; never beside the events themselves."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from bertsearch.errors import BackendError

QUERY_HASH_KEY_FILE = "query-hash.key"
QUERY_HASH_KEY_INDEX = "bertsearch-query-keys"
HASH_KEY_BYTES = 32


def hash_query(text: str, key: bytes) -> str:
    """A digest of the query (case and spacing ignored) under the log's secret `key`: it groups repeats without
    keeping the words, and without the key nobody can check a guessed query against it."""
    normalised = " ".join(text.lower().split())
    return "hmac-sha256:" + hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def new_hash_key() -> bytes:
    return secrets.token_bytes(HASH_KEY_BYTES)


def file_hash_key(path: Path) -> bytes:
    """The key file's bytes; made on first use, readable by its owner only (mode 0600), and linked into place
    in one step, so processes starting together agree on one key."""
    try:
        if not path.exists():
            draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(descriptor, new_hash_key())
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                draft.unlink()
        key = path.read_bytes()
    except OSError as exc:
        raise BackendError(f"cannot read or make the query hash key {path}: {exc.strerror}") from None
    if len(key) != HASH_KEY_BYTES:
        raise BackendError(f"the query hash key {path} is damaged (not {HASH_KEY_BYTES} bytes)")
    return key
