"""``/readyz``'s market part: per exchange host, the ages of the symbol rules and mark prices,
each one's last error, and a reason that says what is missing."""

from __future__ import annotations

from app.api.views import market_readiness
from app.domain import Instant
from app.markets.model import MarketRules, MarkPrices, SymbolRules
from app.markets.store import MarketStore

HOST = "binance-usdm@fapi.binance.test"
RULES = MarketRules({"BTCUSDT": SymbolRules("BTCUSDT", "TRADING")})


def at(mono: float) -> Instant:
    return Instant(1_700_000_000_000 + int(mono * 1000), mono)


def test_a_failing_exchange_info_stays_named_while_mark_prices_succeed() -> None:
    store = MarketStore()
    store.register("main", HOST)
    store.put_rules_failure(HOST, "market_rules: HTTP 503 from the exchange")
    # A later good mark-price refresh used to clear the one shared last error.
    store.put_marks(HOST, MarkPrices(), at(10))
    view = store.view(HOST)
    assert view is not None
    assert view.rules_error == "market_rules: HTTP 503 from the exchange"
    ready = market_readiness(view, ["main"], 900, 30, at(11))
    assert ready["ready"] is False
    assert ready["reason"] == (
        "no symbol rules received yet (exchangeInfo); "
        "last error: market_rules: HTTP 503 from the exchange"
    )
    assert (ready["rules_age_ms"], ready["marks_age_ms"], ready["symbols"]) == (None, 1000, 0)
    assert ready["marks_error"] is None


def test_stale_rules_and_marks_each_give_their_age_and_limit() -> None:
    store = MarketStore()
    store.register("main", HOST)
    store.put_rules(HOST, RULES, at(0))
    store.put_marks(HOST, MarkPrices(), at(0))
    store.put_marks_failure(HOST, "mark_prices: timed out")
    view = store.view(HOST)
    assert view is not None
    fresh = market_readiness(view, ["main"], 900, 30, at(20))
    # A failed refresh whose last good values are still fresh: ready, the error shown.
    assert (fresh["ready"], fresh["reason"], fresh["symbols"]) == (True, None, 1)
    assert fresh["marks_error"] == "mark_prices: timed out"
    stale = market_readiness(view, ["main"], 900, 30, at(950))
    assert stale["ready"] is False
    assert stale["reason"] == (
        "symbol rules are 950 s old (max 900 s); "
        "mark prices are 950 s old (max 30 s); last error: mark_prices: timed out"
    )


def test_only_polled_hosts_are_listed_with_their_accounts() -> None:
    store = MarketStore()
    store.register("a", HOST)
    store.register("b", HOST)
    store.configure_static("generic", MarketRules({}, complete=False), at(0))
    assert store.accounts_by_host() == {HOST: ["a", "b"]}
