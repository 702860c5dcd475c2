"""One exception tree for the guard.

::

    GuardError
     ├── ConfigError                    invalid configuration; the process refuses to start
     ├── DataError                      the guard's own database is missing, damaged or behind
     │                                  its marker (switches may be lost); refuses to start
     ├── SharedStateUnavailable         fleet mode: Redis did not answer a write (admin: 503)
     └── ExchangeError                  a refresh failed; carries ``kind`` (a bounded metric label)
          ├── ExchangeUnavailable       network error, timeout, 5xx: retry with backoff
          ├── ExchangeRateLimited       429 / 418 / -1003: stop calling until ``retry_after_s``
          ├── ExchangeClockSkew         -1021: re-sync the clock offset, retry once
          ├── ExchangeAuthError         -1022 / -2014 / -2015 / -2017: credentials; back off long
          ├── ExchangeRejected          any other 4xx (-1102, -5000 retired endpoint ...): a bug
          └── ExchangeProtocolError     malformed JSON, missing or unparseable fields

Exchange modules raise these (``raise ... from exc``) and nothing else. Messages are safe to log
and to show: they never contain API keys, secrets, signatures or signed URLs.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Bounded classification of refresh failures (metric label, log field, API field)."""

    TIMEOUT = "timeout"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    CLOCK_SKEW = "clock_skew"
    AUTH = "auth"
    REJECTED = "rejected"
    MALFORMED = "malformed"
    INTERNAL = "internal"


class GuardError(Exception):
    """Base of every error the guard raises on purpose."""


class ConfigError(GuardError):
    """The configuration is invalid; the message names the field."""


class DataError(GuardError):
    """The kill-switch database cannot be trusted; the message names the file and the way out."""


class SharedStateUnavailable(GuardError):
    """Fleet mode: the shared store (Redis) did not take a write, so nothing changed anywhere
    (never a change that only some replicas know). The message is safe to show."""


class ExchangeError(GuardError):
    """A call to an exchange failed. ``code`` is the exchange's error code when it sent one."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, endpoint: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.code = code

    def __str__(self) -> str:
        where = f" [{self.endpoint}]" if self.endpoint else ""
        code = f" (code {self.code})" if self.code is not None else ""
        return f"{self.message}{code}{where}"


class ExchangeUnavailable(ExchangeError):
    kind = ErrorKind.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        code: int | None = None,
        kind: ErrorKind = ErrorKind.SERVER_ERROR,
    ) -> None:
        super().__init__(message, endpoint=endpoint, code=code)
        self.kind = kind


class ExchangeRateLimited(ExchangeError):
    """Stop calling this exchange host until ``retry_after_s`` has passed."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        banned: bool = False,
        endpoint: str = "",
        code: int | None = None,
        requested_s: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, code=code)
        self.retry_after_s = retry_after_s
        #: What the exchange asked for, before the guard's cap (``retry_after_s`` after it).
        self.requested_s = retry_after_s if requested_s is None else requested_s
        self.banned = banned
        self.kind = ErrorKind.BANNED if banned else ErrorKind.RATE_LIMITED


class ExchangeClockSkew(ExchangeError):
    kind = ErrorKind.CLOCK_SKEW


class ExchangeAuthError(ExchangeError):
    kind = ErrorKind.AUTH


class ExchangeRejected(ExchangeError):
    kind = ErrorKind.REJECTED


class ExchangeProtocolError(ExchangeError):
    kind = ErrorKind.MALFORMED
