"""Binance-family error answers translated into the guard's exception tree.

Error body: ``{"code": <negative int>, "msg": "<text>"}`` (exchanges.md §1.1, generic-v2-protocol.md
"Errors"), but proxies and load balancers answer with HTML or nothing, so the HTTP status alone
must always be enough to classify. The exchange's ``msg`` is redacted before it reaches a message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from app.errors import (
    ErrorKind,
    ExchangeAuthError,
    ExchangeClockSkew,
    ExchangeError,
    ExchangeProtocolError,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
)
from app.exchanges.redaction import redact

#: Waits when no ``Retry-After`` came: USD-M does not document the header (exchanges.md §1.4),
#: and bans start at 2 minutes.
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
DEFAULT_BAN_WAIT_S = 120.0
#: Added to a "banned until <ms>" time: that instant is on the exchange's clock, which we know
#: only to within half a round trip of the last clock sync. Calling a few ms too early would
#: earn a new, longer ban (they grow from 2 minutes to 3 days), so wait a little past it.
BANNED_UNTIL_MARGIN_S = 1.0

AUTH_CODES = frozenset({-1022, -2014, -2015})
#: Advice on a rejected credential when the exchange module words none of its own
#: (``MbxClient.auth_hint``): causes every HMAC-key exchange shares.
AUTH_CAUSES = (
    "likely causes: wrong API key or secret; this host's IP is not allowed for the key; "
    "the key lacks permission to read the account"
)
# Codes that mean "the exchange failed, try later" even when sent with a 4xx (exchanges.md §1.5).
_TRANSIENT_CODES: Mapping[int, ErrorKind] = {
    -1000: ErrorKind.SERVER_ERROR,  # UNKNOWN
    -1001: ErrorKind.SERVER_ERROR,  # DISCONNECTED
    -1007: ErrorKind.TIMEOUT,  # backend timeout
    -1008: ErrorKind.SERVER_ERROR,  # system-level throttle
}
_BANNED_UNTIL_RE = re.compile(r"banned until (\d{10,})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What a failed response said, read defensively."""

    status: int
    code: int | None
    msg: str
    retry_after_s: float | None


def read_error_answer(
    status: int,
    headers: httpx.Headers,
    content: bytes,
    *,
    secrets: Sequence[str],
    now_ms: int,
) -> ErrorAnswer:
    """Read status, ``code``, redacted ``msg`` and ``Retry-After`` from a failed response
    (``content``: its body, already read within the size cap)."""
    code: int | None = None
    msg = ""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        if isinstance(body.get("msg"), str):
            msg = redact(body["msg"], secrets)
    return ErrorAnswer(
        status=status,
        code=code,
        msg=msg,
        retry_after_s=parse_retry_after(headers.get("Retry-After"), now_ms=now_ms),
    )


def parse_retry_after(value: str | None, *, now_ms: int) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_ms / 1000
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _describe(text: str, answer: ErrorAnswer, hint: str | None = None) -> str:
    if answer.msg:
        text = f"{text}: {answer.msg}"
    return f"{text}; {hint}" if hint else text


#: Longest wait a Retry-After may impose by default (``poll.max_retry_after_s``): a header of
#: 999999999999 once blocked a budget for 31,700 years.
DEFAULT_MAX_RETRY_AFTER_S = 600.0


def _rate_limited(
    answer: ErrorAnswer, *, endpoint: str, server_now_ms: int, max_wait_s: float
) -> ExchangeError:
    banned = answer.status == 418 or "banned" in answer.msg.lower()
    hints: list[float] = []
    if answer.retry_after_s is not None:
        hints.append(answer.retry_after_s)
    # -1003 "Way too many requests; IP banned until 1513693008350": epoch ms of server time.
    match = _BANNED_UNTIL_RE.search(answer.msg)
    if match:
        until_s = (int(match.group(1)) - server_now_ms) / 1000
        hints.append(max(0.0, until_s) + BANNED_UNTIL_MARGIN_S)
    default = DEFAULT_BAN_WAIT_S if banned else DEFAULT_RATE_LIMIT_WAIT_S
    asked = max(hints) if hints else default
    wait = min(asked, max_wait_s)
    what = "IP banned by the exchange" if banned else "rate limit exceeded"
    text = f"{what} (HTTP {answer.status}); retry after {wait:.0f} s"
    if asked > max_wait_s:
        text += f" (the exchange asked for {asked:.0f} s; capped by poll.max_retry_after_s)"
    return ExchangeRateLimited(
        _describe(text, answer),
        retry_after_s=wait,
        banned=banned,
        endpoint=endpoint,
        code=answer.code,
        requested_s=asked,
    )


def map_error(
    answer: ErrorAnswer,
    *,
    endpoint: str,
    server_now_ms: int,
    hints: Mapping[int, str] | None = None,
    auth_hint: str = AUTH_CAUSES,
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
) -> ExchangeError:
    """Classify a failed answer; ``hints`` adds exchange-specific advice per error code and
    ``auth_hint`` the exchange's own likely causes of a rejected credential."""
    status, code = answer.status, answer.code
    hint = (hints or {}).get(code) if code is not None else None
    if status in (418, 429) or code == -1003:
        return _rate_limited(
            answer, endpoint=endpoint, server_now_ms=server_now_ms, max_wait_s=max_retry_after_s
        )
    if status >= 500:
        # Includes 503 "Unknown error" (outcome unknown, exchanges.md §1.4): every call made
        # here is a read, so an unknown outcome is simply a failed refresh worth retrying.
        text = _describe(f"exchange failed (HTTP {status})", answer, hint)
        return ExchangeUnavailable(text, endpoint=endpoint, code=code)
    transient = ErrorKind.TIMEOUT if status == 408 else _TRANSIENT_CODES.get(code or 0)
    if transient is not None:
        text = _describe(f"exchange temporarily failed (HTTP {status})", answer, hint)
        return ExchangeUnavailable(text, endpoint=endpoint, code=code, kind=transient)
    if code == -1021:
        text = _describe("request timestamp outside recvWindow", answer, hint)
        return ExchangeClockSkew(text, endpoint=endpoint, code=code)
    if code == -2017:
        text = _describe("API keys locked on this account", answer, hint)
        return ExchangeAuthError(text, endpoint=endpoint, code=code)
    if code in AUTH_CODES or status == 401:
        text = _describe(f"authentication failed (HTTP {status})", answer, hint or auth_hint)
        return ExchangeAuthError(text, endpoint=endpoint, code=code)
    if 400 <= status < 500:
        text = _describe(f"request rejected (HTTP {status})", answer, hint)
        return ExchangeRejected(text, endpoint=endpoint, code=code)
    # 1xx/3xx: httpx follows no redirects, so this is a wrong base URL or a proxy in the way.
    text = _describe(f"unexpected HTTP status {status}", answer, hint)
    return ExchangeProtocolError(text, endpoint=endpoint, code=code)
