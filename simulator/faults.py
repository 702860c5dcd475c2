"""Injected faults: the ways a real exchange misbehaves, switched on by tests.

A fault matches requests by API key (default: every key) and path prefix (default: every
exchange path). It lives until it has affected ``count`` requests or ``duration_s`` has passed,
whichever comes first, or until it is deleted. Faults only touch the exchange faces, never
``/_sim``.

Four families, applied by the gateway in this order:

* **delay** (``latency``): the request waits, then is served normally;
* **replace** (``http_5xx``, ``rate_limit_429``, ``ban_418``, ``drop_connection``,
  ``invalid_timestamp``): the exchange's answer is replaced before weights or signatures are
  looked at, so an injected 429 costs no weight and does not start a real ban;
* **modify** (``malformed_json``, ``missing_fields``, ``unknown_status``, ``duplicate_rows``): a
  successful (200) JSON answer is altered; a fault only counts a request it could alter;
* **deliver** (``drip``, ``endless``, ``huge_body``, ``gzip_bomb``): whatever answer came out
  of the steps above (an error answer too) is sent in a hostile way: one byte at a time, with
  a body that never ends, behind gigabytes of JSON whitespace, or gzip-compressed from a
  gigabyte. The simulator streams these: it never holds the big body in memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt


class FaultKind(StrEnum):
    LATENCY = "latency"
    HTTP_5XX = "http_5xx"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELDS = "missing_fields"
    UNKNOWN_STATUS = "unknown_status"
    RATE_LIMIT_429 = "rate_limit_429"
    BAN_418 = "ban_418"
    DROP_CONNECTION = "drop_connection"
    INVALID_TIMESTAMP = "invalid_timestamp"
    DUPLICATE_ROWS = "duplicate_rows"
    DRIP = "drip"
    ENDLESS = "endless"
    HUGE_BODY = "huge_body"
    GZIP_BOMB = "gzip_bomb"


DELAY_KINDS = frozenset({FaultKind.LATENCY})
MODIFY_KINDS = frozenset(
    {
        FaultKind.MALFORMED_JSON,
        FaultKind.MISSING_FIELDS,
        FaultKind.UNKNOWN_STATUS,
        FaultKind.DUPLICATE_ROWS,
    }
)
DELIVER_KINDS = frozenset(
    {FaultKind.DRIP, FaultKind.ENDLESS, FaultKind.HUGE_BODY, FaultKind.GZIP_BOMB}
)
REPLACE_KINDS = frozenset(FaultKind) - DELAY_KINDS - MODIFY_KINDS - DELIVER_KINDS
#: Largest padding a huge_body or gzip_bomb fault may add (4 GiB).
MAX_PADDING_BYTES = 4 * 1024**3


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyParams(_Params):
    latency_ms: float = Field(ge=0, le=600_000)


class Http5xxParams(_Params):
    status: int = Field(default=503, ge=500, le=599)
    #: A string (sent as text), another JSON value (sent as JSON) or null (empty body). When
    #: absent (not in ``model_fields_set``): an exchange-style ``{"code": -1001, ...}`` body.
    body: Any = None


class NoParams(_Params):
    pass


class MissingFieldsParams(_Params):
    fields: list[str] = Field(min_length=1)


class UnknownStatusParams(_Params):
    value: str = "SUSPENDED_BY_SIMULATOR"


class RetryAfterParams(_Params):
    #: ``Retry-After`` header value; null or absent sends no header.
    retry_after_s: NonNegativeInt | None = None


class DuplicateRowsParams(_Params):
    #: The array field of the answer whose first row is repeated.
    field: str = "positions"
    #: Fields of the copy that differ from the first row (e.g. a larger quantity).
    changes: dict[str, Any] = Field(default_factory=dict)


class DripParams(_Params):
    #: The body is sent one byte per interval.
    interval_ms: float = Field(default=500, gt=0, le=60_000)


class EndlessParams(_Params):
    #: A chunk of JSON whitespace every interval, until the client goes away (or ``max_s``).
    interval_ms: float = Field(default=50, gt=0, le=60_000)
    chunk_bytes: int = Field(default=1024, ge=1, le=1024**2)
    max_s: float = Field(default=600, gt=0, le=3600)


class PaddingParams(_Params):
    #: Bytes of JSON whitespace sent before the answer (decompressed size for gzip_bomb).
    size_bytes: int = Field(ge=1, le=MAX_PADDING_BYTES)
    #: Send without Content-Length (chunked); huge_body only.
    chunked: bool = False


PARAMS_BY_KIND: dict[FaultKind, type[_Params]] = {
    FaultKind.LATENCY: LatencyParams,
    FaultKind.HTTP_5XX: Http5xxParams,
    FaultKind.MALFORMED_JSON: NoParams,
    FaultKind.MISSING_FIELDS: MissingFieldsParams,
    FaultKind.UNKNOWN_STATUS: UnknownStatusParams,
    FaultKind.RATE_LIMIT_429: RetryAfterParams,
    FaultKind.BAN_418: RetryAfterParams,
    FaultKind.DROP_CONNECTION: NoParams,
    FaultKind.INVALID_TIMESTAMP: NoParams,
    FaultKind.DUPLICATE_ROWS: DuplicateRowsParams,
    FaultKind.DRIP: DripParams,
    FaultKind.ENDLESS: EndlessParams,
    FaultKind.HUGE_BODY: PaddingParams,
    FaultKind.GZIP_BOMB: PaddingParams,
}


class FaultRequest(BaseModel):
    """The body of ``POST /_sim/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    api_key: str | None = None
    path: str | None = Field(default=None, pattern=r"^/")
    count: PositiveInt | None = None
    duration_s: PositiveFloat | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def typed_params(self) -> _Params:
        """``params`` validated for ``kind``; raises ``pydantic.ValidationError``."""
        return PARAMS_BY_KIND[self.kind].model_validate(self.params)


@dataclass(slots=True)
class Fault:
    id: str
    kind: FaultKind
    api_key: str | None
    path: str | None
    params: _Params
    remaining: int | None
    duration_s: float | None
    expires_at: float | None
    hits: int = 0
    #: Deleted while a request that matched it was still waiting (e.g. on latency).
    removed: bool = False

    def matches(self, api_key: str | None, path: str) -> bool:
        if self.api_key is not None and api_key != self.api_key:
            return False
        return self.path is None or path.startswith(self.path)

    def live(self, now: float) -> bool:
        if self.removed or (self.remaining is not None and self.remaining <= 0):
            return False
        return self.expires_at is None or now < self.expires_at

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "api_key": self.api_key,
            "path": self.path,
            "count": self.remaining,
            "duration_s": self.duration_s,
            "expires_in_s": None
            if self.expires_at is None
            else round(max(0.0, self.expires_at - now), 3),
            "hits": self.hits,
            "params": self.params.model_dump(),
        }


class FaultBook:
    """The active faults, oldest first."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, request: FaultRequest) -> Fault:
        """Install a fault; raises ``pydantic.ValidationError`` when its params are wrong."""
        params = request.typed_params()
        now = self._now()
        fault = Fault(
            id=f"f{next(self._ids)}",
            kind=request.kind,
            api_key=request.api_key,
            path=request.path,
            params=params,
            remaining=request.count,
            duration_s=request.duration_s,
            expires_at=None if request.duration_s is None else now + request.duration_s,
        )
        self._faults.append(fault)
        return fault

    def matching(self, api_key: str | None, path: str) -> list[Fault]:
        self._prune()
        return [fault for fault in self._faults if fault.matches(api_key, path)]

    def consume(self, fault: Fault) -> bool:
        """Count one affected request; False when the fault ran out meanwhile."""
        if not fault.live(self._now()):
            return False
        fault.hits += 1
        if fault.remaining is not None:
            fault.remaining -= 1
        return True

    def view(self, fault: Fault) -> dict[str, Any]:
        return fault.describe(self._now())

    def describe(self) -> list[dict[str, Any]]:
        self._prune()
        now = self._now()
        return [fault.describe(now) for fault in self._faults]

    def remove(self, fault_id: str) -> bool:
        for fault in self._faults:
            if fault.id == fault_id:
                fault.removed = True
                self._faults.remove(fault)
                return True
        return False

    def clear(self) -> int:
        self._prune()
        for fault in self._faults:
            fault.removed = True
        removed = len(self._faults)
        self._faults.clear()
        return removed

    def _prune(self) -> None:
        now = self._now()
        self._faults = [fault for fault in self._faults if fault.live(now)]
