"""Keeping credentials, signatures and signed URLs out of messages and log lines.

A signed query string is a credential for ``recvWindow`` milliseconds, and an exchange may echo
a request back in its error ``msg``. Everything we copy from the outside world into a message
passes through :func:`redact`. httpx itself logs every request URL at INFO (``HTTP Request: GET
https://...?...&signature=...``), so :func:`install_httpx_log_redaction` filters its logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

# A hex HMAC-SHA256 signature; also catches 64-char hex API keys.
_HEX_TOKEN_RE = re.compile(r"\b[0-9a-fA-F]{64}\b")
_QUERY_RE = re.compile(r"\?\S*")
_SIGNATURE_PARAM_RE = re.compile(r"signature=[^&\s\"']*")
MAX_MESSAGE_CHARS = 200


def redact(text: str, secrets: Sequence[str] = (), *, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Remove ``secrets``, URL query strings and signatures from ``text``; cut it to ``limit``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _QUERY_RE.sub("?<redacted>", text)
    text = _SIGNATURE_PARAM_RE.sub("signature=<redacted>", text)
    text = _HEX_TOKEN_RE.sub("<redacted>", text)
    return text[:limit]


class SignedUrlFilter(logging.Filter):
    """Rewrites log records so that no query string (hence no signature) survives."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SIGNATURE_PARAM_RE.sub(
            "signature=<redacted>", _QUERY_RE.sub("?<redacted>", message)
        )
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = SignedUrlFilter()


def install_httpx_log_redaction() -> None:
    """Attach the filter to the ``httpx`` logger (idempotent)."""
    httpx_logger = logging.getLogger("httpx")
    if _FILTER not in httpx_logger.filters:
        httpx_logger.addFilter(_FILTER)
