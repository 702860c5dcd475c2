"""Decimal arithmetic and display for the margin checks.

Amounts are compared exactly and shown rounded. Both use explicit contexts instead of
the thread's current one, so a caller changing ``decimal.getcontext()`` cannot change a
decision, and no trap can turn an absurd input into an exception on the hot path.

``evaluate()`` also runs every check inside ``RULES`` (no traps), so whatever a check does
with operators cannot raise either: an overflow gives Infinity and an invalid operation NaN,
and every comparison with NaN is false. The checks are written so that false means "deny"
(``notional <= limit``, ``required <= available``), so an amount that is not finite denies.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

#: Decimal places shown for amounts and ratios (8, as exchanges print USDT amounts).
DISPLAY_PLACES = 8
_DISPLAY_EXP = Decimal(1).scaleb(-DISPLAY_PLACES)

#: The context the rules run in (see the module docstring): nothing raises.
RULES = Context(prec=34, traps=[])
# Rounding up when computing a requirement never understates it (fail closed). No traps:
# an overflow yields Infinity, which simply fails the comparison it feeds.
_REQUIRE = Context(prec=34, rounding=ROUND_CEILING, traps=[])
# A balance left over is rounded down, for the same reason.
_LEFT = Context(prec=34, rounding=ROUND_FLOOR, traps=[])
# Display contexts: a wide precision so any sane amount can be shown with 8 places, and
# no traps so an insane one shows as NaN instead of raising.
_SHOW_UP = Context(prec=60, rounding=ROUND_CEILING, traps=[])
_SHOW_DOWN = Context(prec=60, rounding=ROUND_FLOOR, traps=[])


def required_margin(quantity: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    """Initial margin of an order, ``quantity × price / leverage``, rounded up."""
    return _REQUIRE.divide(_REQUIRE.multiply(quantity, price), leverage)


def _show(amount: Decimal, context: Context) -> str:
    if not amount.is_finite():
        return str(amount)
    rounded = context.quantize(amount, _DISPLAY_EXP)
    # Keep the exchange's own notation when nothing is lost ("100.5", not "100.50000000"),
    # and when the amount is too large to carry 8 places (quantize then yields NaN).
    if rounded.is_nan() or rounded == amount:
        return str(amount)
    return str(rounded)


def show_up(amount: Decimal) -> str:
    """``amount`` for display, rounded up to at most 8 places (observed values over a limit).

    Rounding up keeps a value that exceeds a limit from printing as equal to it.
    """
    return _show(amount, _SHOW_UP)


def show_down(amount: Decimal) -> str:
    """``amount`` for display, rounded down to at most 8 places (limits and balances)."""
    return _show(amount, _SHOW_DOWN)


def order_notional(quantity: Decimal, price: Decimal) -> Decimal:
    """Notional of an order or position, ``quantity × price``, rounded up."""
    return _REQUIRE.multiply(quantity, price)


def add_up(augend: Decimal, addend: Decimal) -> Decimal:
    """``augend + addend`` rounded up (a position after an order is never understated)."""
    return _REQUIRE.add(augend, addend)


def subtract(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """``minuend - subtrahend`` rounded down (what is left is never overstated)."""
    return _LEFT.subtract(minuend, subtrahend)
