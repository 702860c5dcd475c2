"""JSON for what crosses Redis: account state (status, snapshot, last error), market rules
and mark prices per exchange host, and switches.

Decoding is strict and typed from the domain dataclasses' annotations: a field of the wrong
type raises ``ValueError``, so a corrupt or foreign payload is refused whole (never applied
half). Decimals travel as strings, never as floats.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import orjson

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    KillSwitch,
    KillSwitchMode,
    KillSwitchScope,
    RefreshError,
)
from app.markets.model import MarketRules, MarkPrices

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Part(typing.Generic[T]):
    """A refreshed value and the wall time (epoch ms) it was received from the exchange."""

    value: T
    received_wall_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class PublishedState:
    """One account's state as a refresher published it."""

    account: str
    status: Part[AccountStatus] | None
    snapshot: Part[AccountSnapshot] | None
    last_error: str | None
    last_error_kind: str | None
    consecutive_failures: int
    #: Wall time (ms) of publication, for the publish-to-apply lag.
    published_wall_ms: int
    #: Each kind of refresh's failures since its last success.
    status_error: RefreshError | None = None
    snapshot_error: RefreshError | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PublishedMarket:
    """One exchange host's market rules and mark prices as a refresher published them."""

    host: str
    rules: Part[MarketRules] | None
    marks: Part[MarkPrices] | None
    #: Why the last symbol-rules refresh failed (None after a success).
    rules_error: str | None
    #: Wall time (ms) of publication, for the publish-to-apply lag.
    published_wall_ms: int
    #: Why the last mark-price refresh failed (None after a success).
    marks_error: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed(tp: Any, raw: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _typed(inner, raw, where)
    if tp is Decimal:
        if not isinstance(raw, str):
            raise ValueError(f"{where}: expected a decimal string")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"{where}: not a decimal") from None
        if not value.is_finite():
            raise ValueError(f"{where}: not a finite decimal")
        return value
    if tp is bool:
        if type(raw) is not bool:
            raise ValueError(f"{where}: expected a boolean")
        return raw
    if tp is int:
        if type(raw) is not int:
            raise ValueError(f"{where}: expected an integer")
        return raw
    if tp is float:
        if type(raw) not in (int, float) or not math.isfinite(raw):
            raise ValueError(f"{where}: expected a finite number")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise ValueError(f"{where}: expected a string")
        return raw
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(raw)
        except ValueError:
            raise ValueError(f"{where}: not a {tp.__name__}") from None
    if origin is tuple:
        if not isinstance(raw, list):
            raise ValueError(f"{where}: expected a list")
        (inner, _) = typing.get_args(tp)
        return tuple(_typed(inner, v, f"{where}[{i}]") for i, v in enumerate(raw))
    if origin is frozenset:
        if not isinstance(raw, list):
            raise ValueError(f"{where}: expected a list")
        (inner,) = typing.get_args(tp)
        return frozenset(_typed(inner, v, f"{where}[{i}]") for i, v in enumerate(raw))
    if origin is Mapping or origin is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object")
        _, inner = typing.get_args(tp)
        return {str(k): _typed(inner, v, f"{where}.{k}") for k, v in raw.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, raw, where)
    raise ValueError(f"{where}: unsupported type {tp!r}")


def _dataclass(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    hints = _hints(cls)  # type: ignore[arg-type]
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in raw:
            kwargs[f.name] = _typed(hints[f.name], raw[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{f.name}: missing")
    return cls(**kwargs)


def _part(cls: type[T], raw: Any, where: str) -> Part[T] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or type(raw.get("received_wall_ms")) is not int:
        raise ValueError(f"{where}: expected a value and its received_wall_ms")
    return Part(_dataclass(cls, raw.get("value"), f"{where}.value"), raw["received_wall_ms"])


def encode_state(state: PublishedState) -> bytes:
    def part(p: Part[Any] | None) -> dict[str, Any] | None:
        return (
            None
            if p is None
            else {"value": _plain(p.value), "received_wall_ms": p.received_wall_ms}
        )

    return orjson.dumps(
        {
            "account": state.account,
            "status": part(state.status),
            "snapshot": part(state.snapshot),
            "last_error": state.last_error,
            "last_error_kind": state.last_error_kind,
            "consecutive_failures": state.consecutive_failures,
            "published_wall_ms": state.published_wall_ms,
            "status_error": _plain(state.status_error),
            "snapshot_error": _plain(state.snapshot_error),
        }
    )


def decode_state(payload: bytes | str) -> PublishedState:
    """Raises ``ValueError`` for anything but a complete, well-typed state."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("state payload is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("state payload is not an object")
    failures = raw.get("consecutive_failures")
    published = raw.get("published_wall_ms")
    account = raw.get("account")
    if type(failures) is not int or type(published) is not int or not isinstance(account, str):
        raise ValueError("state payload lacks account, consecutive_failures or published_wall_ms")
    error, kind = raw.get("last_error"), raw.get("last_error_kind")
    if not (error is None or isinstance(error, str)) or not (kind is None or isinstance(kind, str)):
        raise ValueError("state payload: last_error and last_error_kind must be strings")
    return PublishedState(
        account=account,
        status=_part(AccountStatus, raw.get("status"), "status"),
        snapshot=_part(AccountSnapshot, raw.get("snapshot"), "snapshot"),
        last_error=error,
        last_error_kind=kind,
        consecutive_failures=failures,
        published_wall_ms=published,
        status_error=_typed(RefreshError | None, raw.get("status_error"), "status_error"),
        snapshot_error=_typed(RefreshError | None, raw.get("snapshot_error"), "snapshot_error"),
    )


def encode_market(market: PublishedMarket) -> bytes:
    def part(p: Part[Any] | None) -> dict[str, Any] | None:
        return (
            None
            if p is None
            else {"value": _plain(p.value), "received_wall_ms": p.received_wall_ms}
        )

    return orjson.dumps(
        {
            "host": market.host,
            "rules": part(market.rules),
            "marks": part(market.marks),
            "rules_error": market.rules_error,
            "marks_error": market.marks_error,
            "published_wall_ms": market.published_wall_ms,
        }
    )


def decode_market(payload: bytes | str) -> PublishedMarket:
    """Raises ``ValueError`` for anything but complete, well-typed market data."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("market payload is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("market payload is not an object")
    host, published = raw.get("host"), raw.get("published_wall_ms")
    if not isinstance(host, str) or type(published) is not int:
        raise ValueError("market payload lacks host or published_wall_ms")
    errors = {key: raw.get(key) for key in ("rules_error", "marks_error")}
    for key, error in errors.items():
        if not (error is None or isinstance(error, str)):
            raise ValueError(f"market payload: {key} must be a string")
    return PublishedMarket(
        host=host,
        rules=_part(MarketRules, raw.get("rules"), "rules"),
        marks=_part(MarkPrices, raw.get("marks"), "marks"),
        rules_error=errors["rules_error"],
        published_wall_ms=published,
        marks_error=errors["marks_error"],
    )


def encode_switch(switch: KillSwitch) -> bytes:
    return orjson.dumps(_plain(switch))


def decode_switch(payload: bytes | str) -> KillSwitch:
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("kill switch is not JSON") from None
    switch = _dataclass(KillSwitch, raw, "kill_switch")
    # Scope and fields must agree, as the admin API guarantees for what it writes.
    if (switch.scope is KillSwitchScope.GLOBAL) != (switch.account is None) or (
        switch.scope is KillSwitchScope.SYMBOL
    ) != (switch.symbol is not None):
        raise ValueError("kill switch: scope does not match account/symbol")
    if not isinstance(switch.mode, KillSwitchMode):  # pragma: no cover - _typed checked it
        raise ValueError("kill switch: bad mode")
    return switch
