"""The facts every check reads: one order, the fresh state behind it, and whether it reduces."""

from __future__ import annotations

from typing import NamedTuple

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Instant,
    KillSwitch,
    OrderIntent,
    OrderRate,
    OrderSide,
    Policy,
    Position,
    PositionSide,
)


class Facts(NamedTuple):
    """Inputs of the checks, resolved once per decision.

    A NamedTuple rather than a frozen dataclass: it is built on every request and
    tuple construction is several times cheaper than a frozen dataclass ``__init__``.
    """

    intent: OrderIntent
    status: AccountStatus
    snapshot: AccountSnapshot
    policy: Policy
    now: Instant
    #: The position a reduce-only order would reduce (opposite side, same symbol), if any.
    target: Position | None
    #: True when the order is reduce-only and fits inside ``target``.
    reduces: bool
    #: Kill switches that may concern the account (the check filters scope and expiry).
    switches: tuple[KillSwitch, ...] = ()
    #: Allowed orders already counted in the rate windows; ``None`` when nothing is counted.
    rate: OrderRate | None = None


def target_position(intent: OrderIntent, snapshot: AccountSnapshot) -> Position | None:
    """The position a reduce-only ``intent`` would shrink, or ``None``.

    A SELL reduces the LONG position of the symbol and a BUY the SHORT one. Looking the
    position up by (symbol, side) works in both one-way mode (at most one side is held)
    and hedge mode (both sides may be held at once).
    """
    if not intent.reduce_only or intent.symbol is None or intent.side is None:
        return None
    side = PositionSide.LONG if intent.side is OrderSide.SELL else PositionSide.SHORT
    return snapshot.position(intent.symbol, side)


def really_reduces(intent: OrderIntent, target: Position | None) -> bool:
    """Whether a reduce-only order can only shrink ``target``, never open or grow exposure.

    An order without a quantity (close what is there) reduces as long as there is a
    position; one with a quantity must not exceed the position.
    """
    if target is None or target.quantity <= 0:
        return False
    return intent.quantity is None or intent.quantity <= target.quantity


def build_facts(
    intent: OrderIntent,
    status: AccountStatus,
    snapshot: AccountSnapshot,
    policy: Policy,
    now: Instant,
    switches: tuple[KillSwitch, ...] = (),
    rate: OrderRate | None = None,
) -> Facts:
    """Resolve the facts for one decision (the target position is looked up once)."""
    target = target_position(intent, snapshot)
    reduces = really_reduces(intent, target)
    return Facts(intent, status, snapshot, policy, now, target, reduces, switches, rate)
