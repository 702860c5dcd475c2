"""Checks every exchange's snapshot parser applies to its position rows.

One row per symbol and side: two ``BTCUSDT LONG`` rows in one answer (``0.1`` and ``10``) make
the answer ambiguous. Taking either one could understate the position a limit is checked
against, so the whole answer is malformed. A hedge-mode ``LONG`` and ``SHORT`` row of one
symbol are two positions, not duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain import Position, PositionSide
from app.exchanges.jsonfields import Fields


def unique_positions(rows: Iterable[tuple[Fields, Position | None]]) -> tuple[Position, ...]:
    """The positions of ``(row, position)`` pairs (``None``: a row without a position), in
    order; raises ``ExchangeProtocolError`` naming the row that repeats a symbol and side."""
    seen: set[tuple[str, PositionSide]] = set()
    positions: list[Position] = []
    for row, position in rows:
        if position is None:
            continue
        key = (position.symbol, position.side)
        if key in seen:
            raise row.error(
                "symbol",
                f"repeats the {position.side.value} position of {position.symbol} "
                "(one row per symbol and side)",
            )
        seen.add(key)
        positions.append(position)
    return tuple(positions)
