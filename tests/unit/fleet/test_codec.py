"""What crosses Redis decodes to exactly what was sent, and anything malformed is refused."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest

from app.domain import (
    AccountSnapshot,
    AccountStatus,
    Funding,
    HistoricalOrder,
    KillSwitch,
    KillSwitchMode,
    KillSwitchScope,
    OpenOrder,
    OrderSide,
    Position,
    PositionSide,
    QuantIndicator,
    RefreshError,
)
from app.fleet.codec import (
    Part,
    PartMemo,
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


def _full_state() -> PublishedState:
    snapshot = AccountSnapshot(
        available_balance=Decimal("19700.76"),
        margin_balance=Decimal("25601.20"),
        maintenance_margin=Decimal("144.36"),
        positions=(
            Position("BTCUSDT", PositionSide.LONG, Decimal("0.3"), entry_price=Decimal(60000)),
            Position("ETHUSDT", PositionSide.SHORT, Decimal("2.4"), margin_type="CROSSED"),
        ),
        account_id="B-1",
        open_orders=(OpenOrder("9", "BTCUSDT", OrderSide.BUY, "LIMIT", Decimal(1), Decimal(2)),),
        order_history=(
            HistoricalOrder("8", "ETHUSDT", OrderSide.SELL, "MARKET", "FILLED", Decimal("0.1")),
        ),
        funding=Funding(Decimal("-0.5"), 1, 2),
        update_time_ms=7,
        leverage_by_symbol={"BTCUSDT": Decimal(10)},
        max_notional_by_symbol={"BTCUSDT": Decimal(1_000_000)},
    )
    return PublishedState(
        "alpha",
        Part(STATUS, 1),
        Part(snapshot, 2),
        "status: timeout",
        "timeout",
        1,
        3,
        status_error=RefreshError("status: timeout", "timeout", 1),
    )


def test_every_field_of_every_nested_type_round_trips() -> None:
    state = _full_state()
    assert decode_state(encode_state(state)) == state
    assert decode_state(encode_state(state).decode()) == state  # str payloads too


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda raw: raw.update(extra=1), "unknown field extra"),
        (lambda raw: raw["status"].update(extra=1), "status: unknown field"),
        (lambda raw: raw["status"]["value"].update(color="red"), "status.value.color: unknown"),
        (
            lambda raw: raw["snapshot"]["value"]["positions"][1].update(colour=1),
            r"snapshot.value.positions\[1\].colour: unknown field",
        ),
        (
            lambda raw: raw["snapshot"]["value"]["open_orders"][0].update(quantity=1),
            r"open_orders\[0\].quantity: expected a decimal string",
        ),
        (
            lambda raw: raw["snapshot"]["value"]["leverage_by_symbol"].update(ETHUSDT="x"),
            r"leverage_by_symbol.ETHUSDT: not a decimal",
        ),
        (
            lambda raw: raw["snapshot"]["value"]["funding"].update(last_funding_time_ms=1.5),
            r"funding.last_funding_time_ms: expected an integer",
        ),
        (
            lambda raw: raw["snapshot"]["value"].update(positions={"BTCUSDT": 1}),
            "positions: expected a list",
        ),
        (
            lambda raw: raw["snapshot"]["value"]["order_history"][0].update(side=["BUY"]),
            r"order_history\[0\].side: not a OrderSide",
        ),
        (lambda raw: raw["snapshot"]["value"].pop("margin_balance"), "margin_balance: missing"),
        (lambda raw: raw["status"]["value"].update(can_trade=1), "can_trade: expected a boolean"),
        (lambda raw: raw["status_error"].update(kind=None), "status_error.kind: expected a str"),
        (lambda raw: raw.update(status=[1]), "status: expected a value"),
        (lambda raw: raw.update(account=None), "lacks account"),
    ],
)
def test_a_malformed_field_is_refused_by_name(mutate: object, named: str) -> None:
    raw = orjson.loads(encode_state(_full_state()))
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ValueError, match=named):
        decode_state(orjson.dumps(raw))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b"1",
        b'"x"',
        b'{"account": "a"}',
        "\udcff".encode(errors="surrogatepass"),
    ],
)
def test_garbage_is_refused_with_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        decode_state(payload)


def test_any_value_swapped_into_any_field_is_refused_or_decoded_never_a_crash() -> None:
    """Replace each leaf of a real state, one at a time, by values of every JSON type: the
    decoder either refuses the payload with ValueError or returns a state (a same-typed
    value); no other exception escapes."""
    raw = orjson.loads(encode_state(_full_state()))
    replacements: list[object] = [None, True, 0, -1, 1.5, "", "1", "NaN", [], [1], {}, {"a": 1}]

    def paths(node: object, prefix: tuple[object, ...]) -> list[tuple[object, ...]]:
        found = [prefix] if prefix else []
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else []
        )
        for key, child in items:
            found += paths(child, (*prefix, key))
        return found

    checked = 0
    for path in paths(raw, ()):
        for value in replacements:
            mutated = orjson.loads(orjson.dumps(raw))
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            try:
                decoded = decode_state(orjson.dumps(mutated))
            except ValueError:
                pass
            else:
                assert isinstance(decoded, PublishedState)
            checked += 1
    assert checked > 1000


def test_a_switch_with_a_field_it_does_not_know_is_still_read() -> None:
    """Refusing it would drop a switch a newer replica engaged: fail open."""
    switch = KillSwitch("ks-2", KillSwitchScope.GLOBAL, KillSwitchMode.HALT, "ops", "why", 5)
    raw = orjson.loads(encode_switch(switch))
    raw["added_later"] = {"any": "thing"}
    assert decode_switch(orjson.dumps(raw)) == switch
    raw["mode"] = "PAUSE"
    with pytest.raises(ValueError, match=r"kill_switch\.mode: not a KillSwitchMode"):
        decode_switch(orjson.dumps(raw))


def test_with_a_memo_an_unchanged_part_is_the_same_value_and_a_changed_one_is_decoded() -> None:
    state = _full_state()
    memo: PartMemo = {}
    first = decode_state(encode_state(state), memo)
    assert first == state
    later = dataclasses.replace(state, status=Part(STATUS, 10), published_wall_ms=11)
    again = decode_state(encode_state(later), memo)
    assert again == later
    assert first.status is not None
    assert again.status is not None
    assert again.status.value is first.status.value  # not decoded again
    assert again.status.received_wall_ms == 10
    changed = dataclasses.replace(STATUS, trading_status="REDUCE_ONLY")
    third = decode_state(encode_state(dataclasses.replace(later, status=Part(changed, 12))), memo)
    assert third.status is not None
    assert third.status.value == changed
    # A changed part is validated like any other, whatever the memo holds.
    raw = orjson.loads(encode_state(later))
    raw["status"]["value"]["can_trade"] = "yes"
    with pytest.raises(ValueError, match=r"status\.value\.can_trade: expected a boolean"):
        decode_state(orjson.dumps(raw), memo)


def test_the_wire_format_has_decimals_as_strings_and_enums_as_values() -> None:
    """What older and newer replicas exchange: field names, decimal strings, enum values."""
    raw = orjson.loads(encode_state(_full_state()))
    snapshot = raw["snapshot"]["value"]
    assert snapshot["available_balance"] == "19700.76"
    assert snapshot["positions"][0]["side"] == "LONG"
    assert snapshot["positions"][0]["entry_price"] == "60000"
    assert snapshot["leverage_by_symbol"] == {"BTCUSDT": "10"}
    assert snapshot["funding"] == {
        "last_funding_fee": "-0.5",
        "last_funding_time_ms": 1,
        "next_funding_time_ms": 2,
    }
    assert raw["status_error"] == {
        "message": "status: timeout",
        "kind": "timeout",
        "consecutive_failures": 1,
    }
    assert raw["snapshot_error"] is None
    assert raw["status"]["received_wall_ms"] == 1


def test_market_rules_unchanged_are_not_decoded_again_and_unknown_fields_are_refused() -> None:
    from app.domain import RateLimit
    from app.fleet.codec import PublishedMarket, decode_market, encode_market
    from app.markets.model import MarketRules, MarkPrices

    rules = MarketRules(symbols={}, order_limits=(RateLimit(300, 10.0),))
    first = PublishedMarket("h", Part(rules, 1), Part(MarkPrices({"X": Decimal(1)}), 1), None, 2)
    memo: PartMemo = {}
    decoded = decode_market(encode_market(first), memo)
    assert decoded == first
    later = PublishedMarket("h", Part(rules, 3), Part(MarkPrices({"X": Decimal(2)}), 3), None, 4)
    again = decode_market(encode_market(later), memo)
    assert again == later
    assert again.rules is not None
    assert decoded.rules is not None
    assert again.rules.value is decoded.rules.value
    raw = orjson.loads(encode_market(later))
    raw["rules"]["value"]["spot"] = True
    with pytest.raises(ValueError, match=r"rules\.value\.spot: unknown field"):
        decode_market(orjson.dumps(raw), memo)
