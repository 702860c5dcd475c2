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
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from typing import Any

import orjson

from app.decision_log import DecisionLog, line_fragment, timestamp
from app.domain import (
    AccountSnapshot,
    AccountState,
    AccountStatus,
    Decision,
    Instant,
    KillSwitch,
    Observed,
    OrderIntent,
    OrderRate,
    Policy,
    RateLimit,
    Reason,
    ReasonCode,
    WarningCode,
)
from app.markets.store import MarketView
from app.metrics import Metrics
from app.rules import evaluate
from app.rules.limits import exchange_rate_reasons, order_rate_reasons
from app.state.ports import SharedOrderRate
from app.state.ratelimit import ExchangeOrderWindows, OrderRateCounter
from app.state.store import StateStore, UnknownAccount


def reason_dict(reason: Reason) -> dict[str, Any]:
    suggestion = reason.suggestion
    return {
        "code": reason.code.value,
        "message": reason.message,
        "retry_after_ms": reason.retry_after_ms,
        "limit": reason.limit,
        "observed": reason.observed,
        "suggestion": None if suggestion is None else suggestion.as_dict(),
    }


class EvaluationKey:
    """What a reused evaluation is looked up by: an intent, and its amounts as written (equal
    Decimals may print differently).

    Its hash is computed once: hashing an intent hashes its Decimals, which cost more than
    the rest of a lookup. A caller that sees the same intent again (the fast path's tables)
    keeps the key, and a lookup then finds it by identity."""

    __slots__ = ("_hash", "_parts")

    def __init__(self, intent: OrderIntent) -> None:
        quantity, price, stop = intent.quantity, intent.price, intent.stop_price
        self._parts = (
            intent,
            None if quantity is None else str(quantity),
            None if price is None else str(price),
            None if stop is None else str(stop),
        )
        self._hash = hash(self._parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return type(other) is EvaluationKey and self._parts == other._parts

    def __repr__(self) -> str:
        return f"EvaluationKey{self._parts!r}"


def evaluation_key(intent: OrderIntent) -> EvaluationKey:
    """The key of ``intent``'s reused evaluation (compute it once for an intent seen again)."""
    return EvaluationKey(intent)


def _line_fields(
    intent: OrderIntent, decision: Decision
) -> tuple[str, str | None, str | None, bool, bool, list[str], list[str]]:
    """A decision line's fields after its id: account, symbol, side, reduce_only, allowed,
    reason codes, warning codes."""
    return (
        intent.account,
        intent.symbol,
        intent.side.value if intent.side else None,
        intent.reduce_only,
        decision.allowed,
        [r.code.value for r in decision.reasons],
        [w.code.value for w in decision.warnings],
    )


class _Rendered:
    """The constant parts of a reused evaluation's answer: the body around the decision id
    and the ages, and the middle of its decision log line."""

    __slots__ = ("head", "log", "mid")

    def __init__(self, intent: OrderIntent, decision: Decision, trading_status: str | None) -> None:
        verdict = orjson.dumps(
            {
                "allowed": decision.allowed,
                "reasons": [reason_dict(r) for r in decision.reasons],
                "warnings": [reason_dict(w) for w in decision.warnings],
            }
        )
        self.head = verdict[:-1] + b',"decision_id":"'
        where = orjson.dumps(
            {"account": intent.account, "symbol": intent.symbol, "trading_status": trading_status}
        )
        self.mid = b'",' + where[1:-1] + b',"status_age_ms":'
        self.log = line_fragment(*_line_fields(intent, decision))


class _Entry:
    """A reused evaluation: valid for this state object and policy object until
    ``fresh_until`` (monotonic seconds)."""

    __slots__ = (
        "decision",
        "fresh_until",
        "market",
        "policy",
        "rendered",
        "snapshot",
        "state",
        "status",
    )

    def __init__(
        self,
        state: AccountState,
        status: Observed[AccountStatus],
        snapshot: Observed[AccountSnapshot],
        policy: Policy,
        fresh_until: float,
        decision: Decision,
        market: MarketView | None,
    ) -> None:
        self.state = state
        self.market = market
        #: ``state.status`` and ``state.snapshot``, known here to be present.
        self.status = status
        self.snapshot = snapshot
        self.policy = policy
        self.fresh_until = fresh_until
        self.decision = decision
        self.rendered: _Rendered | None = None


class Decider:
    def __init__(
        self,
        store: StateStore,
        policies: Mapping[str, Policy],
        metrics: Metrics,
        *,
        decision_log: str | DecisionLog = "all",
        clock: Callable[[], Instant] = Instant.now,
        switches: Callable[[str], tuple[KillSwitch, ...]] = lambda _account: (),
        rate_counter: OrderRateCounter | None = None,
        shared_rates: SharedOrderRate | None = None,
        cache_size: int = 4096,
        markets: Callable[[str], MarketView | None] = lambda _account: None,
    ) -> None:
        self._store = store
        self._markets = markets
        self._exchange_rates = ExchangeOrderWindows()
        self._configured = dict(policies)
        self._policies = dict(policies)
        self._switches = switches
        self._rates = rate_counter or OrderRateCounter()
        #: Fleet mode: the order-rate counter every replica shares (``decide_shared``).
        self._shared = shared_rates
        #: Held by the admin API around a run-time policy change (read, audit, replace).
        self.policy_changes = asyncio.Lock()
        self._metrics = metrics
        #: Where decision lines go (``server.decision_log`` says which decisions).
        self.decision_log = (
            decision_log if isinstance(decision_log, DecisionLog) else DecisionLog(decision_log)
        )
        self._clock = clock
        # Decision ids: a random per-process prefix and a counter; unique and cheap. They are
        # made as ASCII bytes (hex digits and a dash: JSON text as they are).
        self._id_prefix = os.urandom(6).hex().encode() + b"-"
        self._ids = count(1)
        #: Rule evaluations by intent (see ``_evaluate``); cleared when ``cache_size`` is hit.
        self._cache_size = cache_size
        self._evaluations: dict[EvaluationKey, _Entry] = {}
        self._decision_seconds = metrics.decision_seconds.child()
        self._allowed = metrics.decisions.labels("allowed")
        self._denied = metrics.decisions.labels("denied")
        # Label children looked up once, not per decision (a lookup takes a lock and a hash).
        self._reason_counters = {c: metrics.decision_reasons.labels(c.value) for c in ReasonCode}
        self._warning_counters = {c: metrics.decision_warnings.labels(c.value) for c in WarningCode}

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

    def needs_shared_rate(self, intent: OrderIntent) -> bool:
        """Fleet mode: this order falls under a rate limit counted fleet-wide, so it must be
        decided by ``decide_shared`` (one bounded Redis round trip), not ``decide``."""
        if self._shared is None or intent.side is None:
            return False
        policy = self._policies.get(intent.account)
        return policy is not None and (
            policy.order_rate is not None
            or (policy.symbol_order_rate is not None and intent.symbol is not None)
        )

    async def decide_shared(self, intent: OrderIntent) -> dict[str, Any]:
        """``decide`` for an order under a fleet-wide rate limit: the rules first, then, only
        if they allow it, the shared counter admits (and counts) it or denies it. A counter
        that does not answer in time denies (fail closed)."""
        state = self._store.get(intent.account)
        if state is None:
            raise UnknownAccount(intent.account)
        shared = self._shared
        now = self._clock()
        started = time.perf_counter()
        policy = self._policies[intent.account]
        market = self._markets(intent.account)
        decision = evaluate(
            intent,
            state,
            policy,
            now,
            switches=self._switches(intent.account),
            rate=None,
            market=market,
        )
        limits = _exchange_limits(market, policy)
        if limits:
            full = self._exchange_rates.full(intent.account, limits, now.mono)
            if full:
                extra = exchange_rate_reasons(intent.account, full)
                decision = Decision(False, decision.reasons + extra, decision.warnings)
        if decision.allowed and shared is not None:
            answer = await shared.admit(intent.account, intent.symbol, policy)
            if not answer.admitted:
                extra = order_rate_reasons(intent, policy, answer.rate)
                if answer.unavailable is not None or not extra:
                    extra = (
                        Reason(
                            ReasonCode.ORDER_RATE_LIMIT,
                            answer.unavailable or "the fleet's order-rate counter refused",
                        ),
                    )
                decision = Decision(
                    allowed=False, reasons=decision.reasons + extra, warnings=decision.warnings
                )
        if decision.allowed and limits:
            self._exchange_rates.record(intent.account, limits, self._clock().mono)
        decision_id = self._finish(intent, decision, None, None)
        self._decision_seconds.observe(time.perf_counter() - started)
        return _body(intent, decision, decision_id.decode(), state, now)

    def decide(self, intent: OrderIntent, key: EvaluationKey | None = None) -> dict[str, Any]:
        """Evaluate one intent: the decision body. Raises ``UnknownAccount`` for an account not
        configured. ``key`` is ``evaluation_key(intent)`` when the caller has it already."""
        now = self._clock()
        started = time.perf_counter()
        decision, decision_id, state, _entry = self._decide(intent, key, now, None)
        self._decision_seconds.observe(time.perf_counter() - started)
        return _body(intent, decision, decision_id.decode(), state, now)

    def decide_json(self, intent: OrderIntent, key: EvaluationKey | None = None) -> bytes:
        """``decide``, rendered as JSON (exactly ``orjson.dumps(decide(intent))``).

        A reused evaluation keeps its rendered parts, so the answer is then one formatting
        operation around the decision id and the two ages."""
        now = self._clock()
        started = time.perf_counter()
        decided = self._decide(intent, key, now, None)
        self._decision_seconds.observe(time.perf_counter() - started)
        return self._json(intent, now, *decided)

    def decide_json_many(
        self, intents: Sequence[tuple[OrderIntent, EvaluationKey | None]]
    ) -> list[bytes]:
        """``decide_json`` for each intent, in order, all at one reading of the clock (as one
        request, they are decided at one instant, and their log lines carry one timestamp).
        Raises ``UnknownAccount`` before deciding anything if an account is not configured.
        The decision-time histogram gets each intent's share of the whole."""
        for intent, _key in intents:
            if self._store.get(intent.account) is None:
                raise UnknownAccount(intent.account)
        now = self._clock()
        started = time.perf_counter()
        stamp = timestamp()
        decide, render = self._decide, self._json
        bodies = [render(intent, now, *decide(intent, key, now, stamp)) for intent, key in intents]
        if intents:
            share = (time.perf_counter() - started) / len(intents)
            self._decision_seconds.observe_many(share, len(intents))
        return bodies

    def _json(
        self,
        intent: OrderIntent,
        now: Instant,
        decision: Decision,
        decision_id: bytes,
        state: AccountState,
        entry: _Entry | None,
    ) -> bytes:
        if entry is None:
            return orjson.dumps(_body(intent, decision, decision_id.decode(), state, now))
        rendered = self._rendered(entry, intent)
        mono = now.mono
        status_age = int((mono - entry.status.received_mono) * 1000)
        snapshot_age = int((mono - entry.snapshot.received_mono) * 1000)
        return b'%s%s%s%d,"snapshot_age_ms":%d}' % (
            rendered.head,
            decision_id,
            rendered.mid,
            status_age if status_age > 0 else 0,  # as _age_ms
            snapshot_age if snapshot_age > 0 else 0,
        )

    def _decide(
        self, intent: OrderIntent, key: EvaluationKey | None, now: Instant, stamp: bytes | None
    ) -> tuple[Decision, bytes, AccountState, _Entry | None]:
        """The decision at ``now``, its id, the state it was made on, and the reused
        evaluation when the decision is exactly that (no order-rate reason added); counted
        and logged (``stamp``: the log line's timestamp, None for the time now)."""
        state = self._store.get(intent.account)
        if state is None:
            raise UnknownAccount(intent.account)
        policy = self._policies[intent.account]
        # Only orders (a side named) use and consume the shared order-rate budget; the counts
        # reach the rules only when a window is full (below every limit they change nothing).
        is_order = intent.side is not None
        rates = self._rates
        rate = rates.blocking(intent.account, intent.symbol, policy, now.mono) if is_order else None
        market = self._markets(intent.account)
        decision, entry = self._evaluate(
            intent, key, state, policy, now, self._switches(intent.account), rate, market
        )
        limits = _exchange_limits(market, policy) if is_order else ()
        if limits:
            full = self._exchange_rates.full(intent.account, limits, now.mono)
            if full:
                extra = exchange_rate_reasons(intent.account, full)
                decision = Decision(False, decision.reasons + extra, decision.warnings)
                entry = None
        if decision.allowed and is_order and self.needs_shared_rate(intent):
            # Fail closed: an order under a fleet-wide limit decided without the shared counter
            # (a caller that did not route it to ``decide_shared``) is never allowed.
            reason = Reason(ReasonCode.ORDER_RATE_LIMIT, "fleet order-rate counter not consulted")
            decision, entry = Decision(allowed=False, reasons=(reason,)), None
        if decision.allowed and is_order:
            # No await between the check and the record: concurrent requests cannot share a
            # slot.
            rates.record(intent.account, intent.symbol, policy, now.mono)
            if limits:
                self._exchange_rates.record(intent.account, limits, now.mono)
        return decision, self._finish(intent, decision, entry, stamp), state, entry

    def _finish(
        self, intent: OrderIntent, decision: Decision, entry: _Entry | None, stamp: bytes | None
    ) -> bytes:
        """The decision's id; the decision counted and logged."""
        decision_id = b"%s%x" % (self._id_prefix, next(self._ids))
        if decision.allowed and not decision.warnings:
            self._allowed.inc()  # the common case of _count
        else:
            self._count(decision)
        log = self.decision_log
        if log.wants(decision.allowed):
            if log.writer is None:  # the console format: through structlog
                log.record(decision_id.decode(), *_line_fields(intent, decision))
            else:
                fragment = (
                    self._rendered(entry, intent).log
                    if entry is not None
                    else line_fragment(*_line_fields(intent, decision))
                )
                log.record_fragment(decision_id, fragment, stamp)
        return decision_id

    @staticmethod
    def _rendered(entry: _Entry, intent: OrderIntent) -> _Rendered:
        rendered = entry.rendered
        if rendered is None:
            rendered = entry.rendered = _Rendered(
                intent, entry.decision, entry.status.value.trading_status
            )
        return rendered

    def _evaluate(
        self,
        intent: OrderIntent,
        key: EvaluationKey | None,
        state: AccountState,
        policy: Policy,
        now: Instant,
        switches: tuple[KillSwitch, ...],
        rate: OrderRate | None,
        market: MarketView | None = None,
    ) -> tuple[Decision, _Entry | None]:
        """``rules.evaluate``, with the rate-independent part reused while nothing it reads
        can have changed; also the reused evaluation when the decision is exactly it.

        Reused only for an intent already evaluated on the same state object (states are
        immutable: a refresh stores a new one), the same policy object, no kill switch and no
        quantitative-rule indicator (both read the time), and while both parts of the data
        are still fresh (the only other use of the time; a stale or missing answer is never
        reused). The order-rate check, the last check and the only one reading the counts,
        is applied anew every time.
        """
        status, snapshot = state.status, state.snapshot
        if (
            switches
            or status is None
            or snapshot is None
            or status.value.indicators
            or self._cache_size == 0
        ):
            decision = evaluate(
                intent, state, policy, now, switches=switches, rate=rate, market=market
            )
            return decision, None
        cache = self._evaluations
        if key is None:
            key = evaluation_key(intent)
        entry = cache.get(key)
        if (
            entry is None
            or entry.state is not state
            or entry.policy is not policy
            or entry.market is not market
            or now.mono > entry.fresh_until
        ):
            base = evaluate(intent, state, policy, now, rate=None, market=market)
            fresh_until = min(
                status.received_mono + policy.max_status_age_s,
                snapshot.received_mono + policy.max_snapshot_age_s,
            )
            if now.mono > fresh_until:  # stale: the data gate answered; no check ran
                return base, None
            fresh_until = _market_fresh_until(market, policy, fresh_until)
            if len(cache) >= self._cache_size:
                cache.clear()
            entry = cache[key] = _Entry(state, status, snapshot, policy, fresh_until, base, market)
        extra = order_rate_reasons(intent, policy, rate) if rate is not None else ()
        if not extra:
            return entry.decision, entry
        base = entry.decision
        return Decision(allowed=False, reasons=base.reasons + extra, warnings=base.warnings), None

    def _count(self, decision: Decision) -> None:
        if decision.allowed:
            self._allowed.inc()
        else:
            self._denied.inc()
            for reason in decision.reasons:
                self._reason_counters[reason.code].inc()  # type: ignore[index]
        for warning in decision.warnings:
            self._warning_counters[warning.code].inc()  # type: ignore[index]


def _exchange_limits(market: MarketView | None, policy: Policy) -> tuple[RateLimit, ...]:
    """The exchange's per-account order limits the account's orders are counted against."""
    if market is None or not policy.exchange_order_rate or market.rules is None:
        return ()
    return market.rules.value.order_limits


def _market_fresh_until(market: MarketView | None, policy: Policy, until: float) -> float:
    """``until``, or earlier when the market rules or mark prices turn stale before it (a
    reused evaluation must not outlive the data it read; stale market data denies)."""
    if market is None or market.static:
        return until
    if market.rules is not None:
        until = min(until, market.rules.received_mono + policy.max_market_rules_age_s)
    if market.marks is not None:
        until = min(until, market.marks.received_mono + policy.max_mark_price_age_s)
    return until


def _body(
    intent: OrderIntent, decision: Decision, decision_id: str, state: AccountState, now: Instant
) -> dict[str, Any]:
    status, snapshot = state.status, state.snapshot
    return {
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


def _age_ms(now: Instant, received_mono: float) -> int:
    return max(0, int((now.mono - received_mono) * 1000))
