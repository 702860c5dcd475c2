"""The shared order-rate counter: sliding windows of allowed orders, per account and symbol."""

from __future__ import annotations

from dataclasses import replace

from app.domain import OrderRate, Policy, RateCount, RateLimit
from app.state.ratelimit import OrderRateCounter

THREE_PER_SECOND = Policy(order_rate=RateLimit(max_orders=3, window_s=1.0))


def fill(counter: OrderRateCounter, policy: Policy, *times: float, symbol: str = "BTCUSDT") -> None:
    for at in times:
        counter.record("a", symbol, policy, at)


def test_no_limit_counts_nothing() -> None:
    counter = OrderRateCounter()
    counter.record("a", "BTCUSDT", Policy(), 1.0)
    assert counter.observe("a", "BTCUSDT", Policy(), 1.0) is None


def test_window_fills_then_frees_as_stamps_age_out() -> None:
    counter = OrderRateCounter()
    fill(counter, THREE_PER_SECOND, 10.0, 10.2, 10.4)

    assert counter.observe("a", "BTCUSDT", THREE_PER_SECOND, 10.5) == OrderRate(
        account=RateCount(3, 500)
    )
    # At 11.0 the stamp of 10.0 is exactly one window old: it no longer counts.
    assert counter.observe("a", "BTCUSDT", THREE_PER_SECOND, 11.0) == OrderRate(
        account=RateCount(2)
    )
    assert counter.observe("a", "BTCUSDT", THREE_PER_SECOND, 99.0) == OrderRate(
        account=RateCount(0)
    )


def test_accounts_are_counted_apart() -> None:
    counter = OrderRateCounter()
    fill(counter, THREE_PER_SECOND, 1.0, 1.1, 1.2)
    assert counter.observe("b", "BTCUSDT", THREE_PER_SECOND, 1.3) == OrderRate(RateCount(0))


def test_symbol_windows_are_per_symbol_and_need_a_symbol() -> None:
    policy = Policy(symbol_order_rate=RateLimit(max_orders=1, window_s=5.0))
    counter = OrderRateCounter()
    fill(counter, policy, 1.0, symbol="BTCUSDT")

    assert counter.observe("a", "BTCUSDT", policy, 2.0) == OrderRate(symbol=RateCount(1, 4000))
    assert counter.observe("a", "ETHUSDT", policy, 2.0) == OrderRate(symbol=RateCount(0))
    assert counter.observe("a", None, policy, 2.0) is None


def test_account_and_symbol_windows_together() -> None:
    policy = replace(THREE_PER_SECOND, symbol_order_rate=RateLimit(2, 1.0))
    counter = OrderRateCounter()
    fill(counter, policy, 1.0, 1.1, symbol="BTCUSDT")
    fill(counter, policy, 1.2, symbol="ETHUSDT")
    assert counter.observe("a", "BTCUSDT", policy, 1.3) == OrderRate(
        account=RateCount(3, 700), symbol=RateCount(2, 700)
    )


def test_a_limit_changed_at_run_time_applies_to_the_recent_stamps() -> None:
    counter = OrderRateCounter()
    fill(counter, THREE_PER_SECOND, 1.0, 1.1, 1.2)
    tighter = Policy(order_rate=RateLimit(max_orders=2, window_s=1.0))
    looser = Policy(order_rate=RateLimit(max_orders=10, window_s=1.0))

    assert counter.observe("a", None, tighter, 1.3) == OrderRate(RateCount(2, 800))
    # Only the two newest stamps are kept when the limit shrinks; growing keeps them all.
    assert counter.observe("a", None, looser, 1.3) == OrderRate(RateCount(2))


def test_retry_after_rounds_up_to_the_next_millisecond() -> None:
    counter = OrderRateCounter()
    policy = Policy(order_rate=RateLimit(max_orders=1, window_s=1.0))
    fill(counter, policy, 1.0)
    rate = counter.observe("a", None, policy, 1.0004)
    assert rate is not None
    assert rate.account == RateCount(1, 1000)


def test_blocking_gives_the_counts_only_when_a_window_is_full() -> None:
    policy = replace(THREE_PER_SECOND, symbol_order_rate=RateLimit(2, 1.0))
    counter = OrderRateCounter()
    assert counter.blocking("a", "BTCUSDT", policy, 1.0) is None  # nothing recorded yet
    fill(counter, policy, 1.0, symbol="BTCUSDT")
    fill(counter, policy, 1.1, symbol="ETHUSDT")
    assert counter.blocking("a", "BTCUSDT", policy, 1.2) is None  # 2 of 3, 1 of 2
    fill(counter, policy, 1.2, symbol="BTCUSDT")  # BTCUSDT's window is full, the account's too
    for symbol in ("BTCUSDT", "ETHUSDT", None):
        assert counter.blocking("a", symbol, policy, 1.3) == counter.observe(
            "a", symbol, policy, 1.3
        )
    assert counter.blocking("a", "BTCUSDT", policy, 2.5) is None  # the stamps aged out
    assert counter.blocking("a", "BTCUSDT", Policy(), 1.3) is None  # no limit at all


def test_a_limit_raised_at_run_time_lets_the_window_fill_to_the_new_limit() -> None:
    # As the decider uses the counter: check (blocking), then record what was allowed.
    counter = OrderRateCounter()
    looser = Policy(order_rate=RateLimit(max_orders=10, window_s=1.0))
    admitted = {}
    for policy, name in ((THREE_PER_SECOND, "three"), (looser, "ten")):
        admitted[name] = 0
        for i in range(12):
            now = 1.0 + i / 100
            if counter.blocking("a", None, policy, now) is None:
                counter.record("a", None, policy, now)
                admitted[name] += 1
    assert admitted == {"three": 3, "ten": 7}  # ten in the window in all
    assert counter.blocking("a", None, looser, 1.2) == OrderRate(RateCount(10, 800))
