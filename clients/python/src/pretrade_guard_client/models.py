"""The decision contract as types: what a bot asks (``Order``) and what the guard answers.

Amounts are ``Decimal`` (or decimal strings), never floats: the guard compares them exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from pretrade_guard_client.codes import (
    ClientReasonCode,
    OrderSide,
    OrderType,
    PositionSide,
    ReasonCode,
    WarningCode,
)
from pretrade_guard_client.errors import OrderDenied

#: An amount as the guard takes it: a ``Decimal``, an ``int`` or a decimal string.
Amount = Decimal | int | str


@dataclass(frozen=True, slots=True)
class Order:
    """One order intent. Only ``account`` is required: alone it asks "may it trade at all".

    ``type``, ``position_side``, ``stop_price``, ``time_in_force`` and ``close_position``
    are sent only when set, and only a guard that knows them accepts them (an older guard
    answers 422, raised as ``GuardRequestError``).
    """

    account: str
    symbol: str | None = None
    side: OrderSide | str | None = None
    quantity: Amount | None = None
    price: Amount | None = None
    reduce_only: bool = False
    type: OrderType | str | None = None
    position_side: PositionSide | str | None = None
    stop_price: Amount | None = None
    time_in_force: str | None = None
    close_position: bool | None = None

    def fields(self) -> dict[str, str | bool]:
        """The request fields that are set: text and amounts as strings, flags as booleans."""
        out: dict[str, str | bool] = {"account": self.account}
        for name in ("symbol", "side", "type", "position_side", "time_in_force"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        for name in ("quantity", "price", "stop_price"):
            value = getattr(self, name)
            if value is not None:
                out[name] = _amount_text(name, value)
        if self.reduce_only:
            out["reduce_only"] = True
        if self.close_position is not None:
            out["close_position"] = self.close_position
        return out


_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _amount_text(name: str, value: object) -> str:
    """Plain decimal digits (``1E+2`` -> ``100``); floats are refused (use Decimal or str)."""
    if type(value) is str and _PLAIN_DECIMAL.fullmatch(value):
        return value  # already what the guard reads (the common case: no Decimal round trip)
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"{name} must be a Decimal, int or decimal string, not {type(value)}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be finite: {value!r}")
    return format(number, "f")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A fix the guard proposes for one reason (e.g. the nearest valid price, a quantity
    truncated to the step, the position side to send). ``values`` is the guard's object as
    sent; the properties read its fields (``None`` when absent or not of the expected type).
    """

    values: Mapping[str, Any]

    def decimal(self, name: str) -> Decimal | None:
        raw = self.values.get(name)
        if raw is None or isinstance(raw, bool):
            return None
        try:
            return Decimal(str(raw))
        except InvalidOperation:
            return None

    @property
    def price(self) -> Decimal | None:
        return self.decimal("price")

    @property
    def quantity(self) -> Decimal | None:
        return self.decimal("quantity")

    @property
    def stop_price(self) -> Decimal | None:
        return self.decimal("stop_price")

    @property
    def position_side(self) -> str | None:
        value = self.values.get("position_side")
        return value if isinstance(value, str) else None

    @property
    def reduce_only(self) -> bool | None:
        value = self.values.get("reduce_only")
        return value if isinstance(value, bool) else None

    def applied_to(self, order: Order) -> Order:
        """``order`` with the suggested fields changed: the order to ask about (and send)
        instead. Fields the suggestion does not name are kept."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("price", self.price),
                ("stop_price", self.stop_price),
                ("quantity", self.quantity),
                ("position_side", self.position_side),
                ("reduce_only", self.reduce_only),
            )
            if value is not None
        }
        return replace(order, **changes)


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason (or warning) of a decision.

    ``code`` is a ``ReasonCode``/``WarningCode`` member when this client knows it, else the
    raw string a newer guard sent (compare with ``==``, which works for both). ``limit`` and
    ``observed`` are the guard's decimal strings.
    """

    code: ReasonCode | WarningCode | ClientReasonCode | str
    message: str
    retry_after_ms: int | None = None
    limit: str | None = None
    observed: str | None = None
    suggestion: Suggestion | None = None

    @property
    def known(self) -> bool:
        """False for a code from a newer guard that this client version does not list."""
        return isinstance(self.code, ReasonCode | WarningCode | ClientReasonCode)


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's answer to one order. A denial is a normal value, not an exception."""

    allowed: bool
    account: str
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    #: Unique id; log it beside the order. ``None`` only for a client-side denial.
    decision_id: str | None = None
    symbol: str | None = None
    trading_status: str | None = None
    status_age_ms: int | None = None
    snapshot_age_ms: int | None = None
    #: True when this client made the decision up (guard unavailable, ``OnUnavailable.DENY``).
    client_side: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(str(r.code) for r in self.reasons)

    def raise_for_denial(self) -> Decision:
        """Raise ``OrderDenied`` (with the reasons and suggestions) unless allowed."""
        if not self.allowed:
            raise OrderDenied(self)
        return self
