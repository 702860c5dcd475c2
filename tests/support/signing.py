"""Signed exchange requests for tests: the plain Binance-style HMAC-SHA256 scheme.

Written independently of ``app`` and ``simulator`` so that a test proves the two sides agree
on the wire, not that they share a bug.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import urlencode

import httpx

API_KEY_HEADER = "X-MBX-APIKEY"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signature(payload: str, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(
    secret: str,
    params: Mapping[str, str | int] | None = None,
    *,
    timestamp_ms: int | None = None,
    recv_window: int | None = None,
) -> str:
    """``params`` + ``recvWindow`` + ``timestamp`` (now by default), then ``signature`` last."""
    items: dict[str, str | int] = dict(params or {})
    if recv_window is not None:
        items["recvWindow"] = recv_window
    items["timestamp"] = now_ms() if timestamp_ms is None else timestamp_ms
    payload = urlencode(items)
    return f"{payload}&signature={signature(payload, secret)}"


def signed_get(
    client: httpx.Client,
    path: str,
    api_key: str,
    secret: str,
    params: Mapping[str, str | int] | None = None,
    *,
    timestamp_ms: int | None = None,
    recv_window: int | None = None,
) -> httpx.Response:
    """GET a signed endpoint the way a well-behaved client does."""
    query = signed_query(secret, params, timestamp_ms=timestamp_ms, recv_window=recv_window)
    return client.get(f"{path}?{query}", headers={API_KEY_HEADER: api_key})


def signed_send(
    client: httpx.Client,
    method: str,
    path: str,
    api_key: str,
    secret: str,
    params: Mapping[str, str | int] | None = None,
    *,
    in_body: bool = True,
) -> httpx.Response:
    """A signed POST/DELETE/...: parameters and signature in a form body (as ccxt and
    python-binance send them) or, with ``in_body=False``, in the query string (as
    binance-futures-connector does)."""
    signed = signed_query(secret, params)
    headers = {API_KEY_HEADER: api_key}
    if in_body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return client.request(method, path, content=signed.encode(), headers=headers)
    return client.request(method, f"{path}?{signed}", headers=headers)
