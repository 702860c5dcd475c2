"""Order-level checks: what the exchange would reject for the order itself, with a reason a
bot can act on (binance-order-rules.md §2.2, §4.2). Table-driven over one realistic market."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Decision,
    Observed,
    OpenOrder,
    OrderIntent,
    OrderPositionSide,
    OrderSide,
    Policy,
    PositionSide,
    RateLimit,
    Reason,
    ReasonCode,
    Suggestion,
    WarningCode,
)
from app.markets.model import Bounds, MarketRules, MarkPrices, SymbolRules
from app.markets.store import MarketView
from app.rules import evaluate
from tests.unit.rules.builders import ACCOUNT, NOW, position, snapshot, state, status

D = Decimal
R = ReasonCode

ETH = SymbolRules(
    symbol="ETHUSDT",
    status="TRADING",
    order_types=frozenset({"LIMIT", "MARKET", "STOP", "STOP_MARKET"}),
    price=Bounds(D("0.01"), D("100000"), D("0.01")),
    lot=Bounds(D("0.001"), D("10000"), D("0.001")),
    market_lot=Bounds(D("0.001"), D("100"), D("0.001")),
    min_notional=D("20"),
    multiplier_up=D("1.05"),
    multiplier_down=D("0.95"),
    max_orders=3,
    max_algo_orders=1,
    time_in_force=frozenset({"GTC", "IOC"}),
    price_precision=2,
    quantity_precision=3,
)
OLD = SymbolRules(symbol="OLDUSDT", status="SETTLING")
RULES = MarketRules({"ETHUSDT": ETH, "OLDUSDT": OLD}, (RateLimit(300, 10.0),))
MARKS = MarkPrices({"ETHUSDT": D("3000")})


def market(rules_age: float = 10.0, marks_age: float = 1.0, *, marks: bool = True) -> MarketView:
    return MarketView(
        host="binance-usdm@fapi",
        rules=Observed(RULES, NOW.mono - rules_age, 0),
        marks=Observed(MARKS, NOW.mono - marks_age, 0) if marks else None,
    )


def eth(
    side: str = "BUY", quantity: str | None = "0.01", price: str | None = "3000", **kw: Any
) -> OrderIntent:
    if "stop_price" in kw:
        kw["stop_price"] = D(kw["stop_price"])
    return OrderIntent(
        account=ACCOUNT,
        symbol=kw.pop("symbol", "ETHUSDT"),
        side=OrderSide(side),
        quantity=None if quantity is None else D(quantity),
        price=None if price is None else D(price),
        **kw,
    )


def decide(
    intent: OrderIntent,
    view: MarketView | None = None,
    account: AccountSnapshot | None = None,
    hedge: bool | None = False,
    policy: Policy | None = None,
) -> Decision:
    account_status: AccountStatus = dataclasses.replace(status(), hedge_mode=hedge)
    return evaluate(
        intent,
        state(account_status, account or snapshot(available="1000000000")),
        policy or Policy(),
        NOW,
        market=view if view is not None else market(),
    )


def codes(decision: Decision) -> list[ReasonCode | WarningCode]:
    return [r.code for r in decision.reasons]


def reason(decision: Decision, code: ReasonCode) -> Reason:
    return next(r for r in decision.reasons if r.code is code)


# ------------------------------------------------------------------ the examples


def test_off_tick_and_off_step_order_is_denied_with_a_valid_suggestion() -> None:
    decision = decide(eth(quantity="0.0101234", price="3000.123456"))
    assert codes(decision) == [R.PRICE_NOT_ON_TICK, R.QUANTITY_NOT_ON_STEP]
    tick = reason(decision, R.PRICE_NOT_ON_TICK)
    assert (tick.limit, tick.observed) == ("0.01", "3000.123456")
    assert tick.suggestion == Suggestion(price="3000.12")  # a BUY rounds down (passive)
    step = reason(decision, R.QUANTITY_NOT_ON_STEP)
    assert step.suggestion == Suggestion(quantity="0.01")  # truncated to the step
    # The suggestion is a valid order.
    assert decide(eth(quantity="0.01", price="3000.12")).allowed


def test_a_sell_off_tick_rounds_up() -> None:
    decision = decide(eth("SELL", price="2999.991"))
    assert reason(decision, R.PRICE_NOT_ON_TICK).suggestion == Suggestion(price="3000")


def test_a_tiny_notional_is_denied_with_the_minimum_quantity() -> None:
    decision = decide(eth(quantity="0.001", price="3000"))
    assert codes(decision) == [R.NOTIONAL_TOO_SMALL]
    small = reason(decision, R.NOTIONAL_TOO_SMALL)
    assert (small.limit, small.observed) == ("20", "3")
    assert small.suggestion == Suggestion(quantity="0.007")  # 0.007 × 3000 = 21 >= 20
    assert decide(eth(quantity="0.007", price="3000")).allowed


def test_an_unlisted_symbol_is_unknown() -> None:
    decision = decide(eth(symbol="FOOBARUSDT"))
    assert codes(decision)[0] is R.UNKNOWN_SYMBOL


def test_a_symbol_not_trading_denies_whatever_its_status_says() -> None:
    decision = decide(eth(symbol="OLDUSDT"))
    assert codes(decision)[0] is R.SYMBOL_NOT_TRADING
    assert reason(decision, R.SYMBOL_NOT_TRADING).observed == "SETTLING"


# ------------------------------------------------------------------ filters, table-driven


@pytest.mark.parametrize(
    ("intent", "expected", "suggestion"),
    [
        pytest.param(eth(), [], None, id="valid-limit"),
        pytest.param(eth(price=None), [], None, id="valid-market-at-mark"),
        pytest.param(
            eth(price="0.001", quantity="9000"),
            [R.PRICE_OUT_OF_RANGE, R.NOTIONAL_TOO_SMALL],
            Suggestion(price="0.01"),
            id="below-min",
        ),
        pytest.param(
            eth(price="100001"),
            [R.PRICE_OUT_OF_RANGE, R.PRICE_OUTSIDE_BAND],
            Suggestion(price="100000"),
            id="above-max",
        ),
        pytest.param(
            eth(quantity="20000"),
            [R.QUANTITY_OUT_OF_RANGE],
            Suggestion(quantity="10000"),
            id="above-lot-max",
        ),
        pytest.param(
            eth(quantity="200", price=None, order_type="MARKET"),
            [R.QUANTITY_OUT_OF_RANGE],
            Suggestion(quantity="100"),
            id="market-uses-market-lot-size",
        ),
        pytest.param(
            eth(price="3200"),
            [R.PRICE_OUTSIDE_BAND],
            Suggestion(price="3150"),
            id="buy-above-band",
        ),
        pytest.param(
            eth("SELL", price="2800"),
            [R.PRICE_OUTSIDE_BAND],
            Suggestion(price="2850"),
            id="sell-below-band",
        ),
        pytest.param(
            eth(price=None, quantity="0.01", order_type="STOP_MARKET", stop_price="3100.005"),
            [R.PRICE_NOT_ON_TICK],
            Suggestion(stop_price="3100"),
            id="stop-price-off-tick",
        ),
        pytest.param(
            eth(price=None, order_type="TAKE_PROFIT_MARKET", stop_price="3100"),
            [R.ORDER_TYPE_NOT_ALLOWED],
            None,
            id="type-not-listed",
        ),
        pytest.param(
            eth(time_in_force="FOK"), [R.ORDER_TYPE_NOT_ALLOWED], None, id="tif-not-listed"
        ),
        pytest.param(
            eth(quantity="0.005", reduce_only=True, side="SELL"),
            [R.REDUCE_ONLY_WOULD_INCREASE],
            None,
            id="reduce-only-exempt-from-notional-but-needs-a-position",
        ),
    ],
)
def test_filters(intent: OrderIntent, expected: list[ReasonCode], suggestion: Any) -> None:
    decision = decide(intent)
    assert codes(decision) == expected
    if suggestion is not None:
        assert decision.reasons[0].suggestion == suggestion


def test_a_reduce_only_close_below_the_minimum_notional_is_allowed() -> None:
    held = snapshot(position("ETHUSDT", PositionSide.LONG, "1", mark_price="3000"))
    assert decide(eth("SELL", quantity="0.001", reduce_only=True), account=held).allowed


# ------------------------------------------------------------------ market data freshness


def test_stale_or_missing_market_rules_deny_every_order_on_a_symbol() -> None:
    stale = decide(eth(), view=market(rules_age=901))
    assert codes(stale) == [R.MARKET_RULES_UNAVAILABLE]
    missing = decide(eth(), view=MarketView(host="h", rules_error="exchangeInfo: timed out"))
    assert codes(missing) == [R.MARKET_RULES_UNAVAILABLE]
    assert "timed out" in missing.reasons[0].message


def test_a_market_order_without_a_fresh_mark_price_is_denied() -> None:
    decision = decide(eth(price=None), view=market(marks_age=31))
    assert R.MARKET_RULES_UNAVAILABLE in codes(decision)
    # A bare "may it trade" question is not an order: no market data needed.
    bare = OrderIntent(account=ACCOUNT)
    assert decide(bare, view=market(rules_age=10_000)).allowed


# ------------------------------------------------------------------ open orders, leverage


def _orders(n: int, kind: str = "LIMIT") -> tuple[OpenOrder, ...]:
    return tuple(
        OpenOrder(str(i), "ETHUSDT", OrderSide.BUY, kind, D("0.01"), D("2900")) for i in range(n)
    )


def test_too_many_open_orders() -> None:
    full = dataclasses.replace(snapshot(available="1000000"), open_orders=_orders(3))
    decision = decide(eth(), account=full)
    assert codes(decision) == [R.TOO_MANY_OPEN_ORDERS]
    assert (decision.reasons[0].limit, decision.reasons[0].observed) == ("3", "3")
    algo = dataclasses.replace(snapshot(available="1000000"), open_orders=_orders(1, "STOP"))
    stop = eth(price=None, order_type="STOP_MARKET", stop_price="3100")
    assert codes(decide(stop, account=algo)) == [R.TOO_MANY_OPEN_ORDERS]
    assert decide(eth(), account=algo).allowed  # a plain order: 2 of 3


def test_algo_service_orders_count_toward_both_limits() -> None:
    """Conditional orders from ``openAlgoOrders`` count toward MAX_NUM_ALGO_ORDERS whatever
    their type says, and toward MAX_NUM_ORDERS with the plain ones (Binance -4045 / -2025)."""
    resting = OpenOrder("9", "ETHUSDT", OrderSide.SELL, "SOMETHING_NEW", D("0.01"), algo=True)
    one = dataclasses.replace(snapshot(available="1000000"), open_orders=(resting,))
    stop = eth(price=None, order_type="STOP_MARKET", stop_price="3100")
    denied = decide(stop, account=one)
    assert codes(denied) == [R.TOO_MANY_OPEN_ORDERS]
    assert "MAX_NUM_ALGO_ORDERS 1" in denied.reasons[0].message
    assert decide(eth(), account=one).allowed  # a plain order: 1 of 3
    full = dataclasses.replace(one, open_orders=(*_orders(2), resting))
    plain = decide(eth(), account=full)
    assert codes(plain) == [R.TOO_MANY_OPEN_ORDERS]
    assert "3 orders are open on ETHUSDT (1 of them algo orders)" in plain.reasons[0].message


def test_position_limit_at_leverage_suggests_what_still_fits() -> None:
    account = dataclasses.replace(
        snapshot(position("ETHUSDT", PositionSide.LONG, "1", mark_price="3000"), available="1e9"),
        max_notional_by_symbol={"ETHUSDT": D("6000")},
    )
    decision = decide(eth(quantity="1.5"), account=account)
    assert codes(decision) == [R.POSITION_LIMIT_AT_LEVERAGE]
    limit = decision.reasons[0]
    assert (limit.limit, limit.observed) == ("6000", "7500")
    assert limit.suggestion == Suggestion(quantity="1")
    assert decide(eth(quantity="1"), account=account).allowed


# ------------------------------------------------------------------ position mode


def test_hedge_mode_requires_a_position_side_and_says_which() -> None:
    decision = decide(eth(), hedge=True)
    assert codes(decision) == [R.POSITION_SIDE_REQUIRED]
    assert decision.reasons[0].suggestion == Suggestion(position_side="LONG")
    assert decide(eth(position_side=OrderPositionSide.LONG), hedge=True).allowed


def test_hedge_mode_refuses_reduce_only_and_says_what_to_send() -> None:
    decision = decide(eth("SELL", reduce_only=True), hedge=True)
    assert R.REDUCE_ONLY_NOT_ALLOWED in codes(decision)
    assert reason(decision, R.REDUCE_ONLY_NOT_ALLOWED).suggestion == Suggestion(
        position_side="LONG", reduce_only=False
    )


def test_one_way_mode_refuses_long_short() -> None:
    decision = decide(eth("SELL", position_side=OrderPositionSide.LONG), hedge=False)
    assert R.POSITION_SIDE_NOT_ALLOWED in codes(decision)
    assert reason(decision, R.POSITION_SIDE_NOT_ALLOWED).suggestion == Suggestion(
        position_side="BOTH", reduce_only=True
    )


def test_a_hedge_close_has_reduce_only_semantics_net_of_resting_closes() -> None:
    held = snapshot(
        position("ETHUSDT", PositionSide.LONG, "1", mark_price="3000"),
        position("ETHUSDT", PositionSide.SHORT, "2", mark_price="3000"),
        available="0",  # no margin at all: only a close can pass
    )
    close = eth("SELL", quantity="0.6", position_side=OrderPositionSide.LONG)
    assert decide(close, account=held, hedge=True).allowed
    resting = OpenOrder("9", "ETHUSDT", OrderSide.SELL, "LIMIT", D("0.5"), D("3100"))
    resting = dataclasses.replace(resting, position_side="LONG")
    busy = dataclasses.replace(held, open_orders=(resting,))
    denied = decide(close, account=busy, hedge=True)
    # Not a real exit any more: margin is checked too, as for any order opening exposure.
    assert codes(denied) == [R.REDUCE_ONLY_WOULD_INCREASE, R.INSUFFICIENT_MARGIN]
    assert denied.reasons[0].limit == "0.5"  # 1 held - 0.5 already closing
    # Below the minimum notional: a close is exempt.
    assert decide(
        eth("SELL", quantity="0.001", position_side=OrderPositionSide.LONG),
        account=held,
        hedge=True,
    ).allowed
