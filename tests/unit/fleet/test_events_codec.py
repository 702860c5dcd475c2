"""The event JSON through the fleet's stream: every replica sends the bytes embedded mode would
send for the same event and id, and an unreadable entry is refused whole."""

from __future__ import annotations

import orjson
import pytest

from app.events.model import Event, EventType, StampedEvent, parse_stream_id
from app.fleet.events import event_tail, stamped_from_entry

STATUS = Event(
    EventType.TRADING_STATUS_CHANGED,
    "alpha",
    None,
    {"trading_status": "RESTRICTED", "previous": "NORMAL", "reason": ""},
)
LOCK = Event(EventType.SYMBOL_LOCKED, "alpha", "BTCUSDT", {"indicators": []})


@pytest.mark.parametrize("event", [STATUS, LOCK], ids=["account", "symbol"])
def test_an_entry_read_back_is_the_event_embedded_mode_would_send_with_the_stream_id(
    event: Event,
) -> None:
    tail = event_tail(event, 1_763_712_000_123)
    read = stamped_from_entry(b"1763712000130-4", {b"e": tail})
    expected = StampedEvent.stamp(event, "1763712000130-4", 1_763_712_000_123)
    assert read.body == expected.body
    assert read == expected
    assert orjson.loads(read.body)["id"] == "1763712000130-4"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"e": b"not json"},
        {b"e": b"[1]"},
        {b"e": orjson.dumps({"type": "NO_SUCH", "account": None, "time_ms": 1, "data": {}})},
        {b"e": orjson.dumps({"type": "DATA_STALE", "account": 5, "time_ms": 1, "data": {}})},
        {b"e": orjson.dumps({"type": "DATA_STALE", "account": "a", "time_ms": "1", "data": {}})},
        {b"e": orjson.dumps({"type": "DATA_STALE", "account": "a", "time_ms": 1, "data": []})},
    ],
)
def test_an_unreadable_entry_is_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="event entry"):
        stamped_from_entry(b"1-0", fields)


def test_stream_ids_parse_and_anything_else_does_not() -> None:
    assert parse_stream_id("1763712000130-4") == (1763712000130, 4)
    assert parse_stream_id(b" 1-0 ") == (1, 0)
    assert parse_stream_id("8ebe9438-17") is None  # an embedded guard's id
    assert parse_stream_id("1-2-3") is None
    assert parse_stream_id(None) is None
