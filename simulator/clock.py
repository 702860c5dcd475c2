"""The exchange's clock: real time plus an offset that tests set to simulate skew."""

from __future__ import annotations

import time


class SimClock:
    """Server time in epoch milliseconds, shifted by ``offset_ms``.

    Used by the time endpoints, the signed-request timestamp checks, ``updateTime`` fields and
    quantitative-rule lock expiry. Rate-limit windows use ``time.monotonic()`` instead, so moving
    the clock never refills or drains a weight budget.
    """

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def reset(self) -> None:
        self.offset_ms = 0
