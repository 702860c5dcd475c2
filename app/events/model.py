"""Event types and the event JSON every channel carries (log, SSE, webhooks)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class EventType(StrEnum):
    """What changed. A stable public contract, like reason codes; also a metric label."""

    TRADING_STATUS_CHANGED = "TRADING_STATUS_CHANGED"
    CAN_TRADE_CHANGED = "CAN_TRADE_CHANGED"
    FUTURES_ENABLED_CHANGED = "FUTURES_ENABLED_CHANGED"
    SYMBOL_LOCKED = "SYMBOL_LOCKED"
    SYMBOL_UNLOCKED = "SYMBOL_UNLOCKED"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    ACCOUNT_UNLOCKED = "ACCOUNT_UNLOCKED"
    QUANT_RULE_NEAR_TRIGGER = "QUANT_RULE_NEAR_TRIGGER"
    DATA_STALE = "DATA_STALE"
    DATA_FRESH = "DATA_FRESH"
    KILL_SWITCH_ENGAGED = "KILL_SWITCH_ENGAGED"
    KILL_SWITCH_RELEASED = "KILL_SWITCH_RELEASED"


@dataclass(frozen=True, slots=True)
class Event:
    """One change of an account's derived state (``account`` is ``None`` for global ones)."""

    type: EventType
    account: str | None
    symbol: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def concerns(self, account: str) -> bool:
        """Whether a subscriber filtering on ``account`` gets it (global events go to all)."""
        return self.account is None or self.account == account


@dataclass(frozen=True, slots=True)
class StampedEvent:
    """An event as published: a unique id, the wall time, and its JSON body (rendered once)."""

    id: str
    time_ms: int
    event: Event
    body: bytes

    @staticmethod
    def stamp(event: Event, event_id: str, time_ms: int) -> StampedEvent:
        """``{"id", "type", "account", "symbol"?, "time_ms", "data"}`` rendered once."""
        payload: dict[str, Any] = {
            "id": event_id,
            "type": event.type.value,
            "account": event.account,
        }
        if event.symbol is not None:
            payload["symbol"] = event.symbol
        payload["time_ms"] = time_ms
        payload["data"] = dict(event.data)
        return StampedEvent(event_id, time_ms, event, orjson.dumps(payload))


#: A Redis stream entry id, ``<ms>-<seq>``: what event ids are in fleet mode.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")

StreamId = tuple[int, int]


def parse_stream_id(text: str | bytes | None) -> StreamId | None:
    """``(ms, seq)`` of a stream entry id; None for anything else."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    found = _STREAM_ID.fullmatch(text.strip(" \t"))
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2))
