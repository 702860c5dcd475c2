"""``Instant.now``: built through the slots, the same frozen object the dataclass builds."""

from __future__ import annotations

import dataclasses
import time

import pytest

from app.domain import Instant


def test_now_reads_both_clocks_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_796_000_000_123_999_999)
    monkeypatch.setattr(time, "monotonic", lambda: 4321.0625)
    now = Instant.now()
    assert type(now) is Instant
    assert now.wall_ms == 1_796_000_000_123  # truncated, as before
    assert type(now.wall_ms) is int
    assert now.mono == 4321.0625
    built = Instant(1_796_000_000_123, 4321.0625)
    assert now == built
    assert hash(now) == hash(built)
    assert repr(now) == repr(built)
    assert dataclasses.astuple(now) == (1_796_000_000_123, 4321.0625)


def test_now_is_frozen() -> None:
    now = Instant.now()
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.mono = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.wall_ms = 0  # type: ignore[misc]
