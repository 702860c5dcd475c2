"""Typed reads out of an exchange's JSON answer, failing with the field's name.

Exchange payloads are validated by hand rather than with pydantic models: every check names the
exact field (``positions[2].quantity``) in an ``ExchangeProtocolError``, bools never pass for
numbers, and amounts go from JSON text to ``Decimal`` without touching ``float`` (the transport
parses JSON numbers with ``parse_float=Decimal``). A reader never returns partial data: the first
violation raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from app.errors import ExchangeProtocolError
from app.exchanges.bounds import MAX_AMOUNT, MAX_PRICE, MIN_LEVERAGE, MIN_PRICE

# Plain decimal notation in ASCII digits only: Decimal() alone would also accept "NaN",
# "Infinity", "1_000", surrounding whitespace and other scripts' digits ("١٠٠" is 100 to
# Decimal and to ``\d``), none of which is an amount an exchange sends.
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Integers are epoch ms and ids: 19 digits hold any int64, and int() of a longer digit string
# (or of Decimal("1E+999999999")) costs time and memory without bound.
_INT_RE = re.compile(r"-?[0-9]{1,19}")
_INT_LIMIT = 2**63


def parse_decimal(value: object) -> Decimal | None:
    """Return ``value`` as a finite ``Decimal``, or ``None`` when it is not an amount.

    Accepts decimal strings, ints and JSON numbers already parsed as ``Decimal``; rejects bools,
    NaN/Infinity and anything else.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Only reached when a caller parsed JSON without parse_float=Decimal; str() keeps the
        # shortest repr rather than the binary expansion.
        value = str(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            return None
    return None


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Fields:
    """A JSON object being read; ``path`` locates it in the response for error messages."""

    __slots__ = ("_data", "endpoint", "path")

    def __init__(self, data: Mapping[str, Any], *, endpoint: str, path: str = "") -> None:
        self._data = data
        self.endpoint = endpoint
        self.path = path

    @classmethod
    def of(cls, value: object, *, endpoint: str, path: str = "") -> Fields:
        """Wrap ``value``, which must be a JSON object."""
        if not isinstance(value, Mapping):
            where = f"field {path}" if path else "response body"
            raise ExchangeProtocolError(
                f"malformed response: {where} must be a JSON object, got {_type_name(value)}",
                endpoint=endpoint,
            )
        return cls(value, endpoint=endpoint, path=path)

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ExchangeProtocolError:
        """The protocol error for field ``key`` (for the caller to raise)."""
        return ExchangeProtocolError(
            f"malformed response: field {self._where(key)} {problem}", endpoint=self.endpoint
        )

    def _required(self, key: str) -> Any:
        value = self._data.get(key)
        if value is None:
            raise self.error(key, "is missing" if key not in self._data else "is null")
        return value

    def _wrong(self, key: str, expected: str, value: object) -> ExchangeProtocolError:
        return self.error(key, f"must be {expected}, got {_type_name(value)}")

    # -- scalars ---------------------------------------------------------------------------

    def text(self, key: str) -> str:
        value = self._required(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self._data.get(key) is None else self.text(key)

    def flag(self, key: str) -> bool:
        value = self._required(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "a JSON boolean", value)
        return value

    def opt_flag(self, key: str) -> bool | None:
        return None if self._data.get(key) is None else self.flag(key)

    def decimal(self, key: str) -> Decimal:
        value = self._required(key)
        parsed = parse_decimal(value)
        if parsed is None:
            raise self._wrong(key, "a finite decimal", value)
        return parsed

    def non_negative_decimal(self, key: str) -> Decimal:
        """A required amount that cannot be negative (a margin requirement, say): a negative
        one is a broken answer, and would make a margin ratio look safe."""
        parsed = self.decimal(key)
        if parsed < 0:
            raise self.error(key, f"must not be negative, got {parsed}")
        return parsed

    def opt_decimal(self, key: str) -> Decimal | None:
        return None if self._data.get(key) is None else self.decimal(key)

    def decimal_or_zero(self, key: str) -> Decimal:
        value = self.opt_decimal(key)
        return Decimal(0) if value is None else value

    # -- plausible amounts (app.exchanges.bounds) -----------------------------------------

    def _within(self, key: str, value: Decimal, low: Decimal, high: Decimal) -> Decimal:
        if not low <= value <= high:
            raise self.error(key, f"is out of the plausible range [{low}, {high}], got {value}")
        return value

    def amount(self, key: str) -> Decimal:
        """A required amount (balance, margin, PnL, notional, quantity) within ``MAX_AMOUNT``."""
        return self._within(key, self.decimal(key), -MAX_AMOUNT, MAX_AMOUNT)

    def opt_amount(self, key: str) -> Decimal | None:
        return None if self._data.get(key) is None else self.amount(key)

    def amount_or_zero(self, key: str) -> Decimal:
        value = self.opt_amount(key)
        return Decimal(0) if value is None else value

    def non_negative_amount(self, key: str) -> Decimal:
        """A required amount that cannot be negative (a margin requirement, say): a negative
        one is a broken answer, and would make a margin ratio look safe."""
        return self._within(key, self.non_negative_decimal(key), Decimal(0), MAX_AMOUNT)

    def opt_non_negative_amount(self, key: str) -> Decimal | None:
        return None if self._data.get(key) is None else self.non_negative_amount(key)

    def opt_price(self, key: str) -> Decimal | None:
        """A price that is a decision input (a mark price): strictly positive and bounded."""
        if self._data.get(key) is None:
            return None
        return self._within(key, self.decimal(key), MIN_PRICE, MAX_PRICE)

    def opt_price_or_zero(self, key: str) -> Decimal | None:
        """A price where 0 means "none" (entry, liquidation, a market order's price)."""
        if self._data.get(key) is None:
            return None
        return self._within(key, self.decimal(key), Decimal(0), MAX_PRICE)

    def leverage(self, key: str, max_leverage: Decimal) -> Decimal:
        return self._within(key, self.decimal(key), MIN_LEVERAGE, max_leverage)

    def opt_leverage(self, key: str, max_leverage: Decimal) -> Decimal | None:
        return None if self._data.get(key) is None else self.leverage(key, max_leverage)

    def integer(self, key: str) -> int:
        """An integer (epoch ms, ids); digit strings are accepted, bools and fractions not."""
        value = self._required(key)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT_LIMIT:
            return value
        if (
            isinstance(value, Decimal)
            and value.is_finite()
            and value.copy_abs() < _INT_LIMIT
            and value == value.to_integral_value()
        ):
            return int(value)
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            return int(value)
        raise self._wrong(key, "an integer", value)

    def opt_integer(self, key: str) -> int | None:
        return None if self._data.get(key) is None else self.integer(key)

    def ident(self, key: str) -> str:
        """An identifier sent either as a string or as an integer."""
        value = self._required(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._wrong(key, "a string or integer id", value)

    # -- containers ------------------------------------------------------------------------

    def array(self, key: str) -> list[Any]:
        value = self._required(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a JSON array", value)
        return value

    def objects(self, key: str, *, required: bool = True) -> list[Fields]:
        """The array ``key`` as readers of its objects; an absent optional array is empty."""
        if not required and self._data.get(key) is None:
            return []
        where = self._where(key)
        return [
            Fields.of(item, endpoint=self.endpoint, path=f"{where}[{i}]")
            for i, item in enumerate(self.array(key))
        ]

    def child(self, key: str) -> Fields:
        return Fields.of(self._required(key), endpoint=self.endpoint, path=self._where(key))

    def opt_child(self, key: str) -> Fields | None:
        return None if self._data.get(key) is None else self.child(key)

    def __iter__(self) -> Iterator[str]:
        """Keys of a JSON object used as a map (e.g. indicators by symbol)."""
        return iter(self._data)
