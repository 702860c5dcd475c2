"""Operator kill switches: ``HALT`` denies every order, ``REDUCE_ONLY`` all but real exits.

Precedence: every switch that covers the order (global, its account, its account+symbol)
is considered and each one that denies gives its own ``KILL_SWITCH`` reason, so the answer
names every hold an operator would have to release. A narrower switch never loosens a wider
one: a ``HALT`` anywhere denies even an order that really reduces. Expired switches hold
nothing (the store removes them lazily; the rules just ignore them).
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain import Instant, KillSwitch, KillSwitchMode, OrderIntent, Reason, ReasonCode
from app.rules.facts import Facts

_NONE: tuple[Reason, ...] = ()
# Strictest first, then widest scope first, so the most important hold leads the answer.
_MODE_ORDER = {KillSwitchMode.HALT: 0, KillSwitchMode.REDUCE_ONLY: 1}
_SCOPE_ORDER = {"global": 0, "account": 1, "symbol": 2}


def _reason(switch: KillSwitch, now: Instant) -> Reason:
    if switch.mode is KillSwitchMode.HALT:
        effect = "every order is denied"
    else:
        effect = "only reduce-only orders that shrink an open position are allowed"
    message = (
        f"kill switch {switch.mode.value} ({switch.describe()}) engaged by {switch.actor}: "
        f"{switch.reason}; {effect}"
    )
    retry_after_ms = None
    if switch.expires_at_ms is not None:
        message += f"; expires at {switch.expires_at_ms} (epoch ms)"
        retry_after_ms = max(0, switch.expires_at_ms - now.wall_ms)
    return Reason(ReasonCode.KILL_SWITCH, message, retry_after_ms=retry_after_ms)


def kill_switch_reasons(
    intent: OrderIntent,
    switches: Iterable[KillSwitch],
    now: Instant,
    *,
    reduces: bool,
    halts_only: bool = False,
) -> tuple[Reason, ...]:
    """One ``KILL_SWITCH`` reason per active switch that covers ``intent`` and denies it.

    ``halts_only`` limits the answer to ``HALT`` switches: those hold whatever the
    exchange data says, so the engine reports them even when the data gates deny.
    """
    denying = [
        switch
        for switch in switches
        if switch.active(now.wall_ms)
        and switch.covers(intent.account, intent.symbol)
        and (switch.mode is KillSwitchMode.HALT or not (reduces or halts_only))
    ]
    if not denying:
        return _NONE
    denying.sort(key=lambda s: (_MODE_ORDER[s.mode], _SCOPE_ORDER[s.scope.value], s.created_at_ms))
    return tuple(_reason(switch, now) for switch in denying)


def check_kill_switch(facts: Facts) -> tuple[Reason, ...]:
    """Deny while a kill switch covers the order: ``HALT`` always, ``REDUCE_ONLY`` unless the
    order really reduces (a reduce-only order that fits inside the opposite position)."""
    if not facts.switches:
        return _NONE
    return kill_switch_reasons(facts.intent, facts.switches, facts.now, reduces=facts.reduces)
