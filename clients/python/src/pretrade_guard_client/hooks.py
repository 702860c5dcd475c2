"""Metrics hooks: callbacks the bot attaches to see how long the guard took and what it said.

Each call to the guard (one order or one batch) produces one ``GuardCall``, passed to every
hook after the answer (or the failure) and before the client returns or raises. A hook that
raises is logged and ignored: a broken metric must never change a trading decision.

    def record(call: GuardCall) -> None:
        GUARD_SECONDS.observe(call.duration_s)
        DENIED.inc(call.denied)

    GuardClient(url, token, hooks=[record])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pretrade_guard_client.errors import GuardError
from pretrade_guard_client.models import Decision

log = logging.getLogger("pretrade_guard_client")


@dataclass(frozen=True, slots=True)
class GuardCall:
    #: ``"can-trade"`` or ``"can-trade/batch"``.
    endpoint: str
    #: Wall time of the call, from sending to parsing the answer (``time.perf_counter``).
    duration_s: float
    #: Number of orders asked about.
    orders: int
    #: The guard's decisions (empty when the call failed).
    decisions: tuple[Decision, ...] = ()
    #: What went wrong (``GuardUnavailable`` or ``GuardRequestError``), else ``None``.
    error: GuardError | None = None

    @property
    def allowed(self) -> int:
        return sum(1 for d in self.decisions if d.allowed)

    @property
    def denied(self) -> int:
        return sum(1 for d in self.decisions if not d.allowed)


Hook = Callable[[GuardCall], None]


def notify(hooks: Sequence[Hook], call: GuardCall) -> None:
    for hook in hooks:
        try:
            hook(call)
        except Exception:
            log.exception("pretrade-guard client hook %r failed", hook)


def record(
    hooks: Sequence[Hook],
    endpoint: str,
    started: float,
    orders: int,
    *,
    decisions: Sequence[Decision] = (),
    error: GuardError | None = None,
) -> None:
    """Tell every hook about a call that began at ``started`` (``time.perf_counter()``)."""
    if hooks:
        duration = time.perf_counter() - started
        notify(hooks, GuardCall(endpoint, duration, orders, tuple(decisions), error))
