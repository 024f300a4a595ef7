"""The library's errors in the CLI's words: each one line, the message followed by the flag or command that fixes it.

Library messages say what is wrong; the typed fields they carry (`settings`, `differs`, `index_dir`...) say what
can put it right, and only here does that become a flag.
"""

from __future__ import annotations

from bertsearch.errors import BertsearchError, DamagedIndexError, IndexMismatchError, IndexNotFoundError, \
    NoRerankerError
from bertsearch.rerank import RerankerRejectedError

# Library parameter -> the option that sets it.
FLAGS = {
    "es_url": "--es-url or BERTSEARCH_ES_URL",
    "es_ca_certs": "--es-ca-certs",
    "es_verify_certs": "--es-no-verify",
    "rebuild": "--rebuild",
    "index_dir": "--index-dir",
    "backend": "--backend elasticsearch",
    "index_options": "--es-vector-index, --es-shards, --es-replicas",
    "es_vector_index": "use --es-vector-index",
    "max_tokens": "--chunk-tokens",
    "overlap_tokens": "--chunk-overlap",
    "username": "--kibana-username",
    "password": "--kibana-password",
    "api_key": "--kibana-api-key",
}

_MISMATCH_ADVICE = {
    "model": ": use that model or a new --index-dir",
    "chunking": ": use the same settings or a new --index-dir",
    "layout": ": add --rebuild to build a new one beside it",
    "format": ": rebuild it (bertsearch index PATH --rebuild)",
}


def error_line(exc: BertsearchError) -> str:
    """`exc` as the one line the CLI prints on stderr."""
    return f"error: {exc}{advice(exc)}"


def advice(exc: BertsearchError) -> str:
    """What to type to fix `exc`, where the CLI has it, worded to follow its message."""
    if isinstance(exc, DamagedIndexError):
        return (f"; rebuild it from the indexed files with `bertsearch index PATH... --index-dir {exc.index_dir} "
                "--repair` (the damaged file is kept)")
    if isinstance(exc, RerankerRejectedError):
        return "; use --force to use it anyway"
    if isinstance(exc, NoRerankerError):
        return ": run `bertsearch reranker use PATH` or pass --reranker"
    if isinstance(exc, IndexNotFoundError) and exc.index_dir is not None:
        return f" (run `bertsearch index PATH --index-dir {exc.index_dir}` first)"
    if isinstance(exc, IndexMismatchError):
        return _MISMATCH_ADVICE.get(exc.differs, "")
    flags = [FLAGS[name] for name in exc.settings if name in FLAGS]
    return f" ({', '.join(flags)})" if flags else ""
