"""Exact tick and step arithmetic on ``Decimal`` (binance-order-rules.md §2.2).

The exchange's checks are modular, ``(value - minimum) % step == 0``, not decimal counts. All
arithmetic uses one explicit wide context without traps: an absurd input gives NaN, which is
"not on the step", never an exception on the decision path.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

_CTX = Context(prec=120, traps=[])
_ZERO = Decimal(0)


def on_step(value: Decimal, base: Decimal | None, step: Decimal | None) -> bool:
    """Whether ``value - base`` is a whole multiple of ``step`` (no step: always)."""
    if step is None or step <= _ZERO:
        return True
    remainder = _CTX.remainder(_CTX.subtract(value, base or _ZERO), step)
    return remainder == _ZERO  # NaN compares unequal: not on the step


def to_step(value: Decimal, base: Decimal | None, step: Decimal, *, up: bool) -> Decimal:
    """The multiple of ``step`` above ``base`` nearest to ``value``, downwards or upwards."""
    origin = base or _ZERO
    steps = _CTX.divide(_CTX.subtract(value, origin), step)
    whole = steps.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR, context=_CTX)
    return _CTX.add(origin, _CTX.multiply(whole, step))


def show(value: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros ("0.001", "100")."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
