"""HMAC-SHA256 request signing shared by the Binance-family protocols.

Binance documents the scheme (exchanges.md §1.2, generic-v2-protocol.md "Transport"):
``signature = lowercase hex(HMAC_SHA256(key=secret, msg=query))`` over the *exact* query string
that precedes it, and ``signature`` must be the last parameter. We therefore build the query
string ourselves, once, and send it byte-for-byte as signed; nothing may re-encode or reorder it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlencode


def hmac_sha256_hex(secret: str, payload: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode_query(params: Sequence[tuple[str, str]]) -> str:
    """Encode ``params`` in the given order as an ``application/x-www-form-urlencoded`` string."""
    return urlencode(list(params))


def signed_query(
    params: Sequence[tuple[str, str]],
    *,
    secret: str,
    recv_window_ms: int,
    timestamp_ms: int,
) -> str:
    """Build ``<params>&recvWindow=..&timestamp=..&signature=<hex>`` with the signature last.

    The returned string is a credential for ``recv_window_ms``: never log it or put it in an
    error message.
    """
    payload = encode_query(
        [*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))]
    )
    return f"{payload}&signature={hmac_sha256_hex(secret, payload)}"
