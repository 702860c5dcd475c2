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
