"""Signed-request verification, as Binance does it (``exchanges.md`` §1.2-1.3).

The checks run in this order, and the first failure answers:

1. ``X-MBX-APIKEY`` missing or not a plausible key: 401 -2014;
2. key unknown: 401 -2015;
3. parameters: ``signature`` missing or not last, ``timestamp`` missing or not an integer,
   ``recvWindow`` not an integer in 1..60000, a parameter repeated: 400 -1102;
4. ``signature`` != lowercase-hex HMAC-SHA256(secret, exact query string before it): 401 -1022
   (compared case-insensitively, as Binance does);
5. ``timestamp >= serverTime + 1000`` or ``serverTime - timestamp > recvWindow``: 400 -1021.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from simulator import errors
from simulator.accounts import AccountBook, AccountState
from simulator.scenario import API_KEY_PATTERN

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
#: How far ahead of the server a client timestamp may be (strictly less than this).
MAX_AHEAD_MS = 1000

_SIGNATURE = "signature"
_INTEGER = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    account: AccountState
    params: dict[str, str]


def parse_params(query: str) -> dict[str, str]:
    """Query parameters as a dict; a repeated or malformed parameter answers -1102."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise errors.malformed_param("Malformed query string.") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise errors.malformed_param(f"Duplicate values for parameter '{name}'.")
        params[name] = value
    return params


def sign(payload: str, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the query string as it travelled (decoded as latin-1)."""
    return hmac.new(secret.encode(), payload.encode("latin-1"), hashlib.sha256).hexdigest()


def _integer(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw):
        raise errors.mandatory_param(name)
    return int(raw)


def merge_params(query: str, body: str) -> dict[str, str]:
    """Query and form-body parameters; a name in both takes the query's value (as Binance)."""
    return {**parse_params(body), **parse_params(query)}


def verify(
    query: str,
    api_key: str | None,
    book: AccountBook,
    server_time_ms: int,
    body: str = "",
) -> SignedRequest:
    """Authenticate one signed request or raise the ``ApiError`` the exchange would answer.

    ``signature`` is the last parameter of the form body when there is one, else of the query
    string; it signs the query string followed directly by the body (``totalParams``).
    """
    if not api_key or not API_KEY_PATTERN.fullmatch(api_key):
        raise errors.bad_api_key_format()
    account = book.by_key(api_key)
    if account is None:
        raise errors.rejected_api_key()

    carrier = body if body else query
    parts = carrier.split("&") if carrier else []
    names = [part.partition("=")[0] for part in parts]
    other = query if body else ""
    other_names = [part.partition("=")[0] for part in other.split("&")] if other else []
    if _SIGNATURE not in names:
        if _SIGNATURE in other_names:
            raise errors.malformed_param("Parameter 'signature' must be the last parameter.")
        raise errors.mandatory_param(_SIGNATURE)
    if names[-1] != _SIGNATURE or names.count(_SIGNATURE) > 1 or _SIGNATURE in other_names:
        raise errors.malformed_param("Parameter 'signature' must be the last parameter.")
    signed_part = "&".join(parts[:-1])
    signature = parts[-1].partition("=")[2]
    payload = other + signed_part
    params = merge_params(query, signed_part) if body else parse_params(signed_part)
    timestamp = _integer(params, "timestamp")
    if timestamp is None:
        raise errors.mandatory_param("timestamp")
    recv_window = _integer(params, "recvWindow")
    if recv_window is None:
        recv_window = DEFAULT_RECV_WINDOW_MS
    elif not 0 < recv_window <= MAX_RECV_WINDOW_MS:
        raise errors.malformed_param(
            f"Param 'recvWindow' must be between 1 and {MAX_RECV_WINDOW_MS}."
        )
    if not signature:
        raise errors.mandatory_param(_SIGNATURE)

    expected = sign(payload, account.api_secret).encode()
    if not hmac.compare_digest(signature.lower().encode("latin-1"), expected):
        raise errors.invalid_signature()
    if timestamp >= server_time_ms + MAX_AHEAD_MS:
        raise errors.timestamp_ahead()
    if server_time_ms - timestamp > recv_window:
        raise errors.timestamp_outside_window()
    return SignedRequest(account, params)
