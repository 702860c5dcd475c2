"""Position-mode checks: the order's ``position_side`` and ``reduce_only`` must match the
account's mode, or the exchange rejects it (binance-order-rules.md §4.2):

* hedge mode: ``position_side`` LONG or SHORT is required (-4061), and ``reduce_only`` may not
  be sent at all (-1106); a close is SELL+LONG or BUY+SHORT;
* one-way mode: ``position_side`` is BOTH or absent (-4061); a close is sent reduce-only.

Each reason's ``suggestion`` says what to send instead. Accounts whose exchange does not
report a mode (``hedge_mode`` unknown) are not checked.
"""

from __future__ import annotations

from app.domain import OrderPositionSide, OrderSide, Reason, ReasonCode, Suggestion
from app.rules.facts import Facts

_NONE: tuple[Reason, ...] = ()


def check_position_mode(facts: Facts) -> tuple[Reason, ...]:
    """``POSITION_SIDE_REQUIRED``, ``REDUCE_ONLY_NOT_ALLOWED`` (hedge mode) and
    ``POSITION_SIDE_NOT_ALLOWED`` (one-way mode)."""
    intent = facts.intent
    hedge = facts.status.hedge_mode
    side = intent.side
    if hedge is None or side is None:
        return _NONE
    given = intent.position_side
    if hedge:
        if intent.reduce_only:
            closes = "LONG" if side is OrderSide.SELL else "SHORT"
            return (
                Reason(
                    ReasonCode.REDUCE_ONLY_NOT_ALLOWED,
                    "the account is in hedge mode, where reduce_only may not be sent: to "
                    f"close a {closes.lower()} send {side.value} with position_side={closes} "
                    "and no reduce_only",
                    limit="hedge mode",
                    observed="reduce_only=true",
                    suggestion=Suggestion(position_side=closes, reduce_only=False),
                ),
            )
        if given is None or given is OrderPositionSide.BOTH:
            opens = "LONG" if side is OrderSide.BUY else "SHORT"
            closes = "LONG" if side is OrderSide.SELL else "SHORT"
            return (
                Reason(
                    ReasonCode.POSITION_SIDE_REQUIRED,
                    f"the account is in hedge mode: send position_side={opens} to open or add "
                    f"to a {opens.lower()} with {side.value}, or position_side={closes} to "
                    f"close a {closes.lower()}",
                    limit="LONG or SHORT",
                    observed=given.value if given is not None else None,
                    suggestion=Suggestion(position_side=opens),
                ),
            )
        return _NONE
    if given is None or given is OrderPositionSide.BOTH:
        return _NONE
    closing = intent.hedge_close is not None
    advice = "send position_side=BOTH (or none)"
    if closing:
        advice += " with reduce_only=true to close"
    return (
        Reason(
            ReasonCode.POSITION_SIDE_NOT_ALLOWED,
            f"the account is in one-way mode, where position_side {given.value} is rejected: "
            f"{advice}",
            limit="BOTH",
            observed=given.value,
            suggestion=Suggestion(position_side="BOTH", reduce_only=True if closing else None),
        ),
    )
