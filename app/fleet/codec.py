"""JSON for what crosses Redis: account state (status, snapshot, last error), market rules
and mark prices per exchange host, and switches.

Decoding is strict and typed from the domain dataclasses' annotations: a field of the wrong
type raises ``ValueError``, so a corrupt or foreign payload is refused whole (never applied
half). Decimals travel as strings, never as floats. A state or market payload with a field
its dataclass does not have is refused too (the feed counts it ``invalid``; the replica's
data then ages into ``STALE_DATA``), so api replicas are upgraded before refreshers. A kill
switch with an unknown field is still read: refusing it would drop a switch a newer replica
engaged, which fails open.

The decoders are built once per type from the annotations (``_decoder``): decoding a message
walks prebuilt closures, never ``typing`` or ``dataclasses`` reflection (that cost ~1.5 ms per
100-account-bench state, about 11 % of an api replica's core at 70 states/s).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
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

#: Decodes one JSON value (as ``orjson.loads`` returns it) to its typed value, or raises
#: ``_Refused``.
Decoder = Callable[[Any], Any]


class _Refused(ValueError):
    """A value the decoder does not accept; ``path`` is filled in while it unwinds."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str] = []

    def at(self, segment: str) -> _Refused:
        self.path.append(segment)
        return self

    def __str__(self) -> str:
        where = "".join(reversed(self.path)).lstrip(".")
        return f"{where}: {self.what}" if where else self.what


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


def _default(value: Any) -> Any:
    """What orjson does not render itself: Decimals as strings, read-only mappings as
    objects, sets as sorted lists (dataclasses, enums, tuples, dicts and floats it renders
    natively, in field order)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, frozenset | set):
        return sorted(_default(v) if isinstance(v, Decimal) else v for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


# --- decoders, built once per type -------------------------------------------------------


def _decimal(raw: Any) -> Decimal:
    if type(raw) is not str:
        raise _Refused("expected a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _Refused("not a decimal") from None
    if not value.is_finite():
        raise _Refused("not a finite decimal")
    return value


def _exact(tp: type, what: str) -> Decoder:
    def decode(raw: Any) -> Any:
        if type(raw) is not tp:
            raise _Refused(f"expected {what}")
        return raw

    return decode


def _float(raw: Any) -> float:
    if type(raw) not in (int, float) or not math.isfinite(raw):
        raise _Refused("expected a finite number")
    return float(raw)


def _string(raw: Any) -> str:
    if type(raw) is not str:
        raise _Refused("expected a string")
    return raw


def _enum(tp: type[Enum]) -> Decoder:
    members = {member.value: member for member in tp}
    what = f"not a {tp.__name__}"

    def decode(raw: Any) -> Any:
        try:
            return members[raw]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list, an object)
            raise _Refused(what) from None

    return decode


def _optional(inner: Decoder) -> Decoder:
    def decode(raw: Any) -> Any:
        return None if raw is None else inner(raw)

    return decode


def _tuple(inner: Decoder) -> Decoder:
    def decode(raw: Any) -> tuple[Any, ...]:
        if type(raw) is not list:
            raise _Refused("expected a list")
        try:
            return tuple([inner(v) for v in raw])
        except _Refused as exc:
            for index, value in enumerate(raw):  # the error path only: name the element
                try:
                    inner(value)
                except _Refused:
                    raise exc.at(f"[{index}]") from None
            raise  # pragma: no cover - the loop found it

    return decode


def _frozenset(inner: Decoder) -> Decoder:
    as_tuple = _tuple(inner)

    def decode(raw: Any) -> frozenset[Any]:
        return frozenset(as_tuple(raw))

    return decode


def _mapping(inner: Decoder) -> Decoder:
    def decode(raw: Any) -> dict[str, Any]:
        if type(raw) is not dict:
            raise _Refused("expected an object")
        out = {}
        for key, value in raw.items():
            try:
                out[key] = inner(value)
            except _Refused as exc:
                raise exc.at(f".{key}") from None
        return out

    return decode


def _dataclass(cls: type[T], *, strict: bool) -> Callable[[Any], T]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    decoders = {f.name: _decoder(hints[f.name], strict=strict) for f in fields}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def decode(raw: Any) -> T:
        if type(raw) is not dict:
            raise _Refused("expected an object")
        kwargs = {}
        for name, value in raw.items():
            field_decoder = decoders.get(name)
            if field_decoder is None:
                if strict:
                    raise _Refused("unknown field").at(f".{name}")
                continue
            try:
                kwargs[name] = field_decoder(value)
            except _Refused as exc:
                raise exc.at(f".{name}") from None
        if len(kwargs) < len(required) or not required.issubset(kwargs):
            missing = min(required.difference(kwargs))
            raise _Refused("missing").at(f".{missing}")
        return cls(**kwargs)

    return decode


@cache
def _decoder(tp: Any, *, strict: bool) -> Decoder:
    """The decoder of one annotated type (built once; the annotations are hashable)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        (inner,) = [a for a in args if a is not type(None)]
        decoder = _decoder(inner, strict=strict)
        return _optional(decoder) if type(None) in args else decoder
    if tp is Decimal:
        return _decimal
    if tp is bool:
        return _exact(bool, "a boolean")
    if tp is int:
        return _exact(int, "an integer")
    if tp is float:
        return _float
    if tp is str:
        return _string
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum(tp)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        return _tuple(_decoder(inner, strict=strict))
    if origin is frozenset:
        (inner,) = typing.get_args(tp)
        return _frozenset(_decoder(inner, strict=strict))
    if origin is Mapping or origin is dict:
        _key, inner = typing.get_args(tp)
        return _mapping(_decoder(inner, strict=strict))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, strict=strict)
    raise TypeError(f"no decoder for {tp!r}")  # a programming error, found at import


_STATUS = _decoder(AccountStatus, strict=True)
_SNAPSHOT = _decoder(AccountSnapshot, strict=True)
_REFRESH_ERROR = _decoder(RefreshError | None, strict=True)
_RULES = _decoder(MarketRules, strict=True)
_MARKS = _decoder(MarkPrices, strict=True)
_SWITCH = _decoder(KillSwitch, strict=False)
_STATE_FIELDS = frozenset(f.name for f in dataclasses.fields(PublishedState))
_MARKET_FIELDS = frozenset(f.name for f in dataclasses.fields(PublishedMarket))
_PART_FIELDS = frozenset(("value", "received_wall_ms"))


#: What ``decode_state`` / ``decode_market`` remember of one item, to skip decoding what did
#: not change: per part ("status", "snapshot"; "rules", "marks"), the part's value as the
#: JSON bytes last decoded and what they decoded to (an immutable value, safe to hand out
#: again).
PartMemo = dict[str, tuple[bytes, Any]]


def _part(decode: Decoder, raw: Any, where: str, memo: PartMemo | None) -> Part[Any] | None:
    if raw is None:
        return None
    if type(raw) is not dict or type(raw.get("received_wall_ms")) is not int:
        raise ValueError(f"{where}: expected a value and its received_wall_ms")
    if len(raw) != 2 or not _PART_FIELDS.issuperset(raw):
        raise ValueError(f"{where}: unknown field")
    value = raw["value"]
    key = b""
    if memo is not None:
        # A status or snapshot usually comes back unchanged from the exchange: re-rendering
        # its JSON (orjson, a few us) and comparing spares decoding it again (~0.2 ms for a
        # snapshot with a few positions, open orders and 20 history rows).
        key = orjson.dumps(value)
        known = memo.get(where)
        if known is not None and known[0] == key:
            return Part(known[1], raw["received_wall_ms"])
    try:
        decoded = decode(value)
    except _Refused as exc:
        raise exc.at(f"{where}.value") from None
    if memo is not None:
        memo[where] = (key, decoded)
    return Part(decoded, raw["received_wall_ms"])


def encode_state(state: PublishedState) -> bytes:
    return _dumps(state)


def decode_state(payload: bytes | str, memo: PartMemo | None = None) -> PublishedState:
    """Raises ``ValueError`` (only) for anything but a complete, well-typed state.

    With ``memo`` (one per account, kept by the caller), a part whose value is byte for byte
    the one this memo last decoded is not decoded again: its earlier result is returned (the
    same object, so listeners comparing by identity see no change)."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("state payload is not JSON") from None
    if type(raw) is not dict:
        raise ValueError("state payload is not an object")
    unknown = raw.keys() - _STATE_FIELDS
    if unknown:
        raise ValueError(f"state payload: unknown field {min(unknown)}")
    failures = raw.get("consecutive_failures")
    published = raw.get("published_wall_ms")
    account = raw.get("account")
    if type(failures) is not int or type(published) is not int or type(account) is not str:
        raise ValueError("state payload lacks account, consecutive_failures or published_wall_ms")
    error, kind = raw.get("last_error"), raw.get("last_error_kind")
    if not (error is None or type(error) is str) or not (kind is None or type(kind) is str):
        raise ValueError("state payload: last_error and last_error_kind must be strings")
    try:
        status_error = _REFRESH_ERROR(raw.get("status_error"))
    except _Refused as exc:
        raise exc.at("status_error") from None
    try:
        snapshot_error = _REFRESH_ERROR(raw.get("snapshot_error"))
    except _Refused as exc:
        raise exc.at("snapshot_error") from None
    return PublishedState(
        account=account,
        status=_part(_STATUS, raw.get("status"), "status", memo),
        snapshot=_part(_SNAPSHOT, raw.get("snapshot"), "snapshot", memo),
        last_error=error,
        last_error_kind=kind,
        consecutive_failures=failures,
        published_wall_ms=published,
        status_error=status_error,
        snapshot_error=snapshot_error,
    )


def encode_market(market: PublishedMarket) -> bytes:
    return _dumps(market)


def decode_market(payload: bytes | str, memo: PartMemo | None = None) -> PublishedMarket:
    """Raises ``ValueError`` (only) for anything but complete, well-typed market data;
    ``memo`` as for ``decode_state`` (market rules rarely change between polls)."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("market payload is not JSON") from None
    if type(raw) is not dict:
        raise ValueError("market payload is not an object")
    unknown = raw.keys() - _MARKET_FIELDS
    if unknown:
        raise ValueError(f"market payload: unknown field {min(unknown)}")
    host, published = raw.get("host"), raw.get("published_wall_ms")
    if type(host) is not str or type(published) is not int:
        raise ValueError("market payload lacks host or published_wall_ms")
    errors = {key: raw.get(key) for key in ("rules_error", "marks_error")}
    for key, error in errors.items():
        if not (error is None or type(error) is str):
            raise ValueError(f"market payload: {key} must be a string")
    return PublishedMarket(
        host=host,
        rules=_part(_RULES, raw.get("rules"), "rules", memo),
        marks=_part(_MARKS, raw.get("marks"), "marks", memo),
        rules_error=errors["rules_error"],
        published_wall_ms=published,
        marks_error=errors["marks_error"],
    )


def encode_switch(switch: KillSwitch) -> bytes:
    return _dumps(switch)


def decode_switch(payload: bytes | str) -> KillSwitch:
    """Raises ``ValueError`` (only) for anything but a complete, well-typed switch; fields it
    does not know are ignored (see the module's docstring)."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("kill switch is not JSON") from None
    try:
        switch: KillSwitch = _SWITCH(raw)
    except _Refused as exc:
        raise exc.at("kill_switch") from None
    # Scope and fields must agree, as the admin API guarantees for what it writes.
    if (switch.scope is KillSwitchScope.GLOBAL) != (switch.account is None) or (
        switch.scope is KillSwitchScope.SYMBOL
    ) != (switch.symbol is not None):
        raise ValueError("kill switch: scope does not match account/symbol")
    if not isinstance(switch.mode, KillSwitchMode):  # pragma: no cover - the decoder checked
        raise ValueError("kill switch: bad mode")
    return switch
