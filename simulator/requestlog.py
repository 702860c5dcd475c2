"""What the exchange faces were asked: counters since the last reset and a bounded recent log.

Tests read it through ``GET /_sim/requests`` to prove the guard does not hammer the exchange.
Counters cover every request since start or reset; ``recent`` keeps only the newest entries.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    #: Real wall-clock time in epoch ms (not shifted by the simulated clock offset).
    time_ms: int
    api_key: str | None
    path: str
    status: int
    #: Exchange error code of the answer, if it was an error body.
    code: int | None
    #: Kind of the injected fault that shaped the answer, if any.
    fault: str | None


class RequestLog:
    def __init__(self, capacity: int) -> None:
        self._recent: deque[LoggedRequest] = deque(maxlen=capacity)
        self._counts: Counter[tuple[str | None, str, int]] = Counter()

    def record(
        self, api_key: str | None, path: str, status: int, code: int | None, fault: str | None
    ) -> None:
        self._recent.append(
            LoggedRequest(time.time_ns() // 1_000_000, api_key, path, status, code, fault)
        )
        self._counts[(api_key, path, status)] += 1

    def summary(self, api_key: str | None, path_prefix: str | None, limit: int) -> dict[str, Any]:
        """Counters and the newest ``limit`` entries (oldest first) matching both filters.

        ``api_key`` must equal the request's key; ``path_prefix`` must start its path.
        """

        def wanted(key: str | None, path: str) -> bool:
            if api_key is not None and key != api_key:
                return False
            return path_prefix is None or path.startswith(path_prefix)

        by_path: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        by_api_key: Counter[str] = Counter()
        for (key, path, status), count in self._counts.items():
            if wanted(key, path):
                by_path[path] += count
                by_status[str(status)] += count
                by_api_key[key or ""] += count
        recent = [asdict(entry) for entry in self._recent if wanted(entry.api_key, entry.path)]
        return {
            "total": sum(by_path.values()),
            "by_path": dict(sorted(by_path.items())),
            "by_status": dict(sorted(by_status.items())),
            "by_api_key": dict(sorted(by_api_key.items())),
            "recent": recent[-limit:] if limit > 0 else [],
        }

    def clear(self) -> None:
        self._recent.clear()
        self._counts.clear()
