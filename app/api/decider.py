"""Turns an order intent into the public decision body: rules + ages + id + metrics + log.

This is the whole decision path. It reads the latest immutable state from the store, the
kill-switch snapshot (memory, never SQLite) and the order-rate counts, and calls the pure
rules; it never does network or disk I/O, so an exchange outage shows up as stale data.

The Decider also holds each account's effective policy: the configured one, or one set at
run time through the admin API (``set_policy``/``reset_policy``; not persisted).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from itertools import count
from typing import Any

import structlog

from app.domain import Decision, Instant, KillSwitch, OrderIntent, Policy, Reason
from app.metrics import Metrics
from app.rules import evaluate
from app.state.ratelimit import OrderRateCounter
from app.state.store import StateStore, UnknownAccount

log = structlog.get_logger("app.decisions")


def reason_dict(reason: Reason) -> dict[str, Any]:
    return {
        "code": reason.code.value,
        "message": reason.message,
        "retry_after_ms": reason.retry_after_ms,
        "limit": reason.limit,
        "observed": reason.observed,
    }


class Decider:
    def __init__(
        self,
        store: StateStore,
        policies: Mapping[str, Policy],
        metrics: Metrics,
        *,
        decision_log: str = "all",
        clock: Callable[[], Instant] = Instant.now,
        switches: Callable[[str], tuple[KillSwitch, ...]] = lambda _account: (),
        rate_counter: OrderRateCounter | None = None,
    ) -> None:
        self._store = store
        self._configured = dict(policies)
        self._policies = dict(policies)
        self._switches = switches
        self._rates = rate_counter or OrderRateCounter()
        #: Held by the admin API around a run-time policy change (read, audit, replace).
        self.policy_changes = asyncio.Lock()
        self._metrics = metrics
        self._decision_log = decision_log
        self._clock = clock
        # Decision ids: a random per-process prefix and a counter; unique and cheap.
        self._id_prefix = os.urandom(6).hex()
        self._ids = count(1)
        self._allowed = metrics.decisions.labels("allowed")
        self._denied = metrics.decisions.labels("denied")

    def policy(self, account: str) -> Policy:
        """The account's effective policy (raises ``KeyError`` for an unknown account)."""
        return self._policies[account]

    def configured_policy(self, account: str) -> Policy:
        """The account's policy as configured (what ``reset_policy`` goes back to)."""
        return self._configured[account]

    def is_overridden(self, account: str) -> bool:
        return self._policies[account] is not self._configured[account]

    def set_policy(self, account: str, policy: Policy) -> None:
        """Use ``policy`` for ``account`` from the next decision on (until reset or restart)."""
        if account not in self._policies:
            raise UnknownAccount(account)
        self._policies[account] = policy

    def reset_policy(self, account: str) -> None:
        """Go back to the configured policy."""
        if account not in self._policies:
            raise UnknownAccount(account)
        self._policies[account] = self._configured[account]

    def decide(self, intent: OrderIntent) -> dict[str, Any]:
        """Evaluate one intent. Raises ``UnknownAccount`` for an account not configured."""
        state = self._store.get(intent.account)
        if state is None:
            raise UnknownAccount(intent.account)
        now = self._clock()
        started = time.perf_counter()
        policy = self._policies[intent.account]
        # Only orders (a side named) use and consume the shared order-rate budget.
        is_order = intent.side is not None
        rate = (
            self._rates.observe(intent.account, intent.symbol, policy, now.mono)
            if is_order
            else None
        )
        decision: Decision = evaluate(
            intent, state, policy, now, switches=self._switches(intent.account), rate=rate
        )
        if decision.allowed and rate is not None:
            # No await between observe and record: concurrent requests cannot share a slot.
            self._rates.record(intent.account, intent.symbol, policy, now.mono)
        self._metrics.decision_seconds.observe(time.perf_counter() - started)
        decision_id = f"{self._id_prefix}-{next(self._ids):x}"

        status = state.status
        snapshot = state.snapshot
        body = {
            "allowed": decision.allowed,
            "reasons": [reason_dict(r) for r in decision.reasons],
            "warnings": [reason_dict(w) for w in decision.warnings],
            "decision_id": decision_id,
            "account": intent.account,
            "symbol": intent.symbol,
            "trading_status": status.value.trading_status if status else None,
            "status_age_ms": _age_ms(now, status.received_mono) if status else None,
            "snapshot_age_ms": _age_ms(now, snapshot.received_mono) if snapshot else None,
        }
        self._count(decision)
        if self._decision_log == "all" or (self._decision_log == "denied" and not decision.allowed):
            log.info(
                "decision",
                decision_id=decision_id,
                account=intent.account,
                symbol=intent.symbol,
                side=intent.side.value if intent.side else None,
                reduce_only=intent.reduce_only,
                allowed=decision.allowed,
                reasons=[r.code.value for r in decision.reasons],
                warnings=[w.code.value for w in decision.warnings],
            )
        return body

    def _count(self, decision: Decision) -> None:
        if decision.allowed:
            self._allowed.inc()
        else:
            self._denied.inc()
            for reason in decision.reasons:
                self._metrics.decision_reasons.labels(reason.code.value).inc()
        for warning in decision.warnings:
            self._metrics.decision_warnings.labels(warning.code.value).inc()


def _age_ms(now: Instant, received_mono: float) -> int:
    return max(0, int((now.mono - received_mono) * 1000))
