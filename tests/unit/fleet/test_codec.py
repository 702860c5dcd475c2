"""What crosses Redis decodes to exactly what was sent, and anything malformed is refused."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    KillSwitch,
    KillSwitchMode,
    KillSwitchScope,
    Position,
    PositionSide,
    QuantIndicator,
    RefreshError,
)
from app.fleet.codec import (
    Part,
    PublishedState,
    decode_state,
    decode_switch,
    encode_state,
    encode_switch,
)

STATUS = AccountStatus(
    trading_status="NORMAL",
    reason="",
    can_trade=True,
    futures_enabled=True,
    indicators=(QuantIndicator("BTCUSDT", "UFR", Decimal("0.1"), Decimal("0.3"), False, None),),
)
SNAPSHOT = AccountSnapshot(
    available_balance=Decimal("1000.123456789012345678"),
    margin_balance=Decimal("1500"),
    maintenance_margin=Decimal("10"),
    positions=(Position("BTCUSDT", PositionSide.LONG, Decimal("0.5"), leverage=Decimal(5)),),
    leverage_by_symbol={"ETHUSDT": Decimal(3)},
)


def test_state_round_trip_keeps_decimals_exact() -> None:
    state = PublishedState(
        "alpha",
        Part(STATUS, 1_700_000_000_000),
        Part(SNAPSHOT, 1_700_000_000_500),
        "snapshot: timeout",
        "timeout",
        2,
        1_700_000_001_000,
        snapshot_error=RefreshError("snapshot: timeout", "timeout", 2),
    )
    decoded = decode_state(encode_state(state))
    assert decoded == state
    assert decoded.snapshot is not None
    assert decoded.snapshot.value.available_balance == Decimal("1000.123456789012345678")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw["snapshot"]["value"].update(available_balance=1000.5),  # a float
        lambda raw: raw["snapshot"]["value"].update(available_balance="NaN"),
        lambda raw: raw["status"]["value"].update(can_trade="yes"),
        lambda raw: raw["status"].pop("received_wall_ms"),
        lambda raw: raw.pop("consecutive_failures"),
        lambda raw: raw["snapshot"]["value"]["positions"][0].update(side="UP"),
    ],
)
def test_a_malformed_state_is_refused_whole(mutate: object) -> None:
    state = PublishedState("alpha", Part(STATUS, 1), Part(SNAPSHOT, 2), None, None, 0, 3)
    raw = orjson.loads(encode_state(state))
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"\w"):
        decode_state(orjson.dumps(raw))


def test_switch_round_trip_and_scope_consistency() -> None:
    switch = KillSwitch(
        "ks-1",
        KillSwitchScope.SYMBOL,
        KillSwitchMode.REDUCE_ONLY,
        "ops",
        "why",
        5,
        account="alpha",
        symbol="BTCUSDT",
        expires_at_ms=10,
    )
    assert decode_switch(encode_switch(switch)) == switch
    raw = orjson.loads(encode_switch(switch))
    raw["symbol"] = None
    with pytest.raises(ValueError, match="scope does not match"):
        decode_switch(orjson.dumps(raw))


def test_market_rules_round_trip_and_ages_come_from_the_exchanges_answer() -> None:
    from app.domain import Instant, RateLimit
    from app.fleet.codec import Part, PublishedMarket, decode_market, encode_market
    from app.fleet.feed import apply_market
    from app.markets.model import Bounds, MarketRules, MarkPrices, SymbolRules
    from app.markets.store import MarketStore

    rules = MarketRules(
        symbols={
            "BTCUSDT": SymbolRules(
                symbol="BTCUSDT",
                status="TRADING",
                order_types=frozenset({"LIMIT", "MARKET"}),
                price=Bounds(Decimal("0.10"), Decimal("1000000"), Decimal("0.10")),
                lot=Bounds(Decimal("0.001"), Decimal("1000"), Decimal("0.001")),
                min_notional=Decimal("100"),
                multiplier_up=Decimal("1.05"),
                max_orders=200,
                time_in_force=frozenset({"GTC", "IOC"}),
                price_precision=2,
            )
        },
        order_limits=(RateLimit(300, 10.0), RateLimit(1200, 60.0)),
    )
    marks = MarkPrices({"BTCUSDT": Decimal("60000.12345678")})
    market = PublishedMarket("binance-usdm@h", Part(rules, 1_000), Part(marks, 5_000), None, 6_000)
    decoded = decode_market(encode_market(market))
    assert decoded == market
    # Applied 25 s after the marks were received from the exchange: 25 s old here too.
    store = MarketStore()
    store.register("acct", "binance-usdm@h")
    now = Instant(mono=500.0, wall_ms=30_000)
    view = apply_market(store, decoded, now)
    assert view.marks is not None
    assert now.mono - view.marks.received_mono == pytest.approx(25.0)
    # An older publication never replaces newer data.
    older = PublishedMarket("binance-usdm@h", None, Part(MarkPrices({}), 4_000), None, 7_000)
    assert apply_market(store, older, now).marks == view.marks
    # Each refresh's error travels on its own: a failing exchangeInfo stays named while the
    # mark prices are fine.
    failing = PublishedMarket(
        "binance-usdm@h", None, None, "market_rules: HTTP 503", 8_000, marks_error=None
    )
    applied = apply_market(store, decode_market(encode_market(failing)), now)
    assert (applied.rules_error, applied.marks_error) == ("market_rules: HTTP 503", None)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"host": "h", "published_wall_ms": 1, "rules": {"value": {"symbols": 3}, '
        b'"received_wall_ms": 1}}',
        b'{"host": "h", "published_wall_ms": 1, "marks": {"value": {"prices": {"X": 1.5}}, '
        b'"received_wall_ms": 1}}',
        b'{"host": 1, "published_wall_ms": 1}',
        b"[]",
    ],
)
def test_malformed_market_data_is_refused_whole(payload: bytes) -> None:
    from app.fleet.codec import decode_market

    with pytest.raises(ValueError, match=r"market payload|rules|marks|expected"):
        decode_market(payload)
