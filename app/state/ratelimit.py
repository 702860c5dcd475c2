"""Sliding-window counts of *allowed* orders, shared by every bot of an account.

The guard, not each bot, sees every order of an account, so it is the one place that can
keep all bots together under what the exchange tolerates. Only allowed orders are counted:
a denied order is never sent, so it costs no budget.

Each window is a deque of monotonic timestamps bounded by the limit (``maxlen``): the
window is full exactly when it holds ``max_orders`` stamps younger than ``window_s``.
Checking and recording are amortised O(1). The decision path checks and records without an
``await`` in between, so on one event loop two concurrent requests cannot both take the
last slot.
"""

from __future__ import annotations

import math
from collections import deque

from app.domain import OrderRate, Policy, RateCount, RateLimit

#: Windows idle longer than this are forgotten when the symbol table grows large; it is the
#: longest window the configuration accepts, so no live window is ever dropped.
MAX_WINDOW_S = 3600.0
_SWEEP_ABOVE = 4096


class _Window:
    __slots__ = ("stamps",)

    def __init__(self, limit: int) -> None:
        self.stamps: deque[float] = deque(maxlen=limit)

    def _current(self, limit: RateLimit, now_mono: float) -> deque[float]:
        """The stamps still inside the window ending now (expired ones dropped)."""
        stamps = self.stamps
        if stamps.maxlen != limit.max_orders:  # the limit changed at run time
            stamps = self.stamps = deque(stamps, maxlen=limit.max_orders)
        horizon = now_mono - limit.window_s
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        return stamps

    def is_full(self, limit: RateLimit, now_mono: float) -> bool:
        """True when the window already holds ``max_orders`` stamps."""
        stamps = self.stamps
        if len(stamps) < limit.max_orders and stamps.maxlen == limit.max_orders:
            return False  # fewer stamps than the limit even counting expired ones
        return len(self._current(limit, now_mono)) >= limit.max_orders

    def count(self, limit: RateLimit, now_mono: float) -> RateCount:
        stamps = self._current(limit, now_mono)
        horizon = now_mono - limit.window_s
        observed = len(stamps)
        if observed < limit.max_orders:
            return RateCount(observed)
        retry_after_ms = max(0, math.ceil((stamps[0] - horizon) * 1000))
        return RateCount(observed, retry_after_ms)


class OrderRateCounter:
    """Allowed orders per account and per (account, symbol), in sliding windows."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Window] = {}
        self._symbols: dict[tuple[str, str], _Window] = {}

    def observe(
        self, account: str, symbol: str | None, policy: Policy, now_mono: float
    ) -> OrderRate | None:
        """Orders already counted in the account's (and the symbol's) current window.

        ``None`` when the policy sets no rate limit. Expired stamps are dropped on the way.
        """
        account_limit, symbol_limit = policy.order_rate, policy.symbol_order_rate
        if account_limit is None and (symbol_limit is None or symbol is None):
            return None
        account_count = symbol_count = None
        if account_limit is not None:
            window = self._accounts.get(account)
            account_count = (
                RateCount(0) if window is None else window.count(account_limit, now_mono)
            )
        if symbol_limit is not None and symbol is not None:
            window = self._symbols.get((account, symbol))
            symbol_count = RateCount(0) if window is None else window.count(symbol_limit, now_mono)
        return OrderRate(account=account_count, symbol=symbol_count)

    def blocking(
        self, account: str, symbol: str | None, policy: Policy, now_mono: float
    ) -> OrderRate | None:
        """``observe``, but only when one of the order's windows is full (the only case in
        which the counts change a decision); None otherwise, without building any counts."""
        account_limit, symbol_limit = policy.order_rate, policy.symbol_order_rate
        full = False
        if account_limit is not None:
            window = self._accounts.get(account)
            full = window is not None and window.is_full(account_limit, now_mono)
        if not full and symbol_limit is not None and symbol is not None:
            window = self._symbols.get((account, symbol))
            full = window is not None and window.is_full(symbol_limit, now_mono)
        return self.observe(account, symbol, policy, now_mono) if full else None

    def record(self, account: str, symbol: str | None, policy: Policy, now_mono: float) -> None:
        """Count one allowed order (call right after an allowing ``observe``)."""
        if policy.order_rate is not None:
            window = self._accounts.get(account)
            if window is None:
                window = self._accounts[account] = _Window(policy.order_rate.max_orders)
            window.stamps.append(now_mono)
        if policy.symbol_order_rate is not None and symbol is not None:
            key = (account, symbol)
            window = self._symbols.get(key)
            if window is None:
                if len(self._symbols) >= _SWEEP_ABOVE:
                    self._sweep(now_mono)
                window = self._symbols[key] = _Window(policy.symbol_order_rate.max_orders)
            window.stamps.append(now_mono)

    def _sweep(self, now_mono: float) -> None:
        # Bots could name many symbols over time; forget windows that hold nothing recent.
        horizon = now_mono - MAX_WINDOW_S
        idle = [key for key, w in self._symbols.items() if not w.stamps or w.stamps[-1] <= horizon]
        for key in idle:
            del self._symbols[key]


class ExchangeOrderWindows:
    """Allowed orders per account against the exchange's own per-account order limits
    (``exchangeInfo`` ``rateLimits`` of type ORDERS, e.g. 300 per 10 s and 1200 per minute),
    so the bots of an account together stay under them."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, RateLimit], _Window] = {}

    def full(
        self, account: str, limits: tuple[RateLimit, ...], now_mono: float
    ) -> tuple[tuple[RateLimit, RateCount], ...]:
        """The limits whose window is already full, with their counts (usually none)."""
        found: list[tuple[RateLimit, RateCount]] = []
        for limit in limits:
            window = self._windows.get((account, limit))
            if window is not None and window.is_full(limit, now_mono):
                found.append((limit, window.count(limit, now_mono)))
        return tuple(found)

    def record(self, account: str, limits: tuple[RateLimit, ...], now_mono: float) -> None:
        """Count one allowed order in every window of the account."""
        for limit in limits:
            key = (account, limit)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(limit.max_orders)
            window.stamps.append(now_mono)
