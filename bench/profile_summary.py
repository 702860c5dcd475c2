"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the guard.

    python -m bench.profile_summary guard.pyspy.txt [--us-per-request 350]

Two views:

* **Owner (self) time**: each sample is charged to the innermost frame that belongs to a known
  layer (stdlib helpers such as ``json``, ``enum``, ``contextlib`` are looked through to their
  caller), so the rows add up to 100% of the samples.
* **Inclusive time** of the frames that matter for the request path (everything below them).

With ``--us-per-request`` (CPU microseconds per request, from the load run) the shares are also
shown as microseconds per request.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

#: (layer, path prefixes); the first match from the innermost frame outwards wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("structlog + logging: decision log line", ("structlog/", "logging/")),
    (
        "fleet feed + controls: app/fleet, redis-py (background)",
        ("app/fleet/", "redis/", "hiredis/", "app/markets/store.py"),
    ),
    ("decision log (app/decision_log.py)", ("app/decision_log.py",)),
    ("lean metrics (app/lean_metrics.py)", ("app/lean_metrics.py",)),
    ("HTTP limits: app/http_server.py (header deadline)", ("app/http_server.py",)),
    ("prometheus_client: counters/histograms", ("prometheus_client/",)),
    ("rules: app/rules", ("app/rules/",)),
    ("decider + state + domain", ("app/api/decider.py", "app/state/", "app/domain.py")),
    ("auth: app/api/security.py + HTTPBearer", ("app/api/security.py", "fastapi/security/")),
    ("metrics middleware: app/api/middleware.py", ("app/api/middleware.py",)),
    ("orjson response: app/api/responses.py", ("app/api/responses.py",)),
    ("route handler, deps, schemas: app/api", ("app/api/",)),
    (
        "pollers, exchange clients, httpx (background)",  # == BACKGROUND
        (
            "app/refresher/",
            "app/exchanges/",
            "httpx/",
            "httpcore/",
            "h11/",
            "app/events/",
            "ssl.py",
            "hmac.py",
            "urllib/",
        ),
    ),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    (
        "threadpool hop: sync dependencies (anyio.to_thread)",
        (
            "starlette/concurrency.py",
            "anyio/",
            "concurrent/",
            "threading.py",
            "queue.py",
        ),
    ),
    ("FastAPI: DI, params, request handler", ("fastapi/",)),
    ("Starlette: routing, middleware, Request/Response", ("starlette/",)),
    ("opentelemetry (FastAPI telemetry middleware)", ("opentelemetry/", "context/", "trace/")),
    ("uvicorn + httptools: HTTP protocol", ("uvicorn/", "httptools/")),
    (
        "event loop: uvloop C code (socket I/O, scheduling) + asyncio",
        (
            "asyncio/",
            "uvloop/",
            "<frozen runpy>",
            "app/__main__.py",
            "app/server.py",
        ),
    ),
)

BACKGROUND = "pollers, exchange clients, httpx (background)"

#: Inclusive views: (label, regex on "function (path)"); the last one is the background.
INCLUSIVE: tuple[tuple[str, str], ...] = (
    (
        "uvicorn RequestResponseCycle.run_asgi (the whole ASGI app)",
        r"^RequestResponseCycle\.run_asgi \(uvicorn/",
    ),
    ("RequestMetrics.__call__ (our middleware and all below)", r"^RequestMetrics\.__call__ "),
    (
        "FastAPI get_request_handler app (route: deps + endpoint + response)",
        r"^get_request_handler\.<locals>\.app \(fastapi/",
    ),
    ("FastAPI solve_dependencies (query model, auth, services)", r"^solve_dependencies \("),
    ("  query -> OrderQuery (request_params_to_args)", r"^request_params_to_args \("),
    ("  sync dependencies in the threadpool (run_in_threadpool)", r"^run_in_threadpool \("),
    ("endpoint can_trade_get", r"^can_trade_get \("),
    ("  Decider.decide", r"^Decider\.decide \("),
    ("    rules.evaluate", r"^evaluate \(app/rules/engine\.py"),
    ("    decision log line (structlog + logging)", r"\(structlog/_native\.py\)$"),
    ("JSONBody rendering (orjson)", r"^JSONBody\.render \("),
    ("background pollers (AccountPoller.run)", r"^AccountPoller\.run \("),
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw.strip())
        if match:
            frames.append((match.group("func"), match.group("path")))
        else:
            frames.append((raw.strip(), ""))
    return frames


def parse(lines: Iterable[str]) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append((_frames(stack), int(count)))
    return stacks


def _layer(frames: list[tuple[str, str]]) -> str:
    for _func, path in reversed(frames):
        for layer, prefixes in LAYERS:
            if path.startswith(prefixes):
                return layer
    return "other"


_IDLE_LEAVES = ("Condition.wait (threading.py)", "_worker (concurrent/futures/thread.py)")


_THREAD_FRAMES = ("Thread._bootstrap", "Thread.run", "WorkerThread.run", "_worker")


def _is_main_thread(frames: list[tuple[str, str]]) -> bool:
    """The event loop's thread. ``--nonblocking`` samples may miss their outer frames, so a
    stack counts as the event loop's unless it shows a worker thread's frames."""
    return bool(frames) and not any(func in _THREAD_FRAMES for func, _path in frames)


def summarize(
    lines: Iterable[str], us_per_request: float | None = None, *, wall_samples: int | None = None
) -> str:
    """Shares of the event-loop (main) thread's non-idle samples; ``wall_samples`` (rate x
    seconds) turns the sample count into the main thread's busy share."""
    stacks = parse(lines)
    main = [(frames, n) for frames, n in stacks if _is_main_thread(frames)]
    workers = [
        (frames, n)
        for frames, n in stacks
        if not _is_main_thread(frames)
        and frames
        and f"{frames[-1][0]} ({frames[-1][1]})" not in _IDLE_LEAVES
    ]
    total = sum(count for _f, count in main)
    if not total:
        return "no samples"
    owners: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    patterns = [(label, re.compile(rx)) for label, rx in INCLUSIVE]
    for frames, count in main:
        owners[_layer(frames)] += count
        names = [f"{func} ({path})" for func, path in frames]
        for label, pattern in patterns:
            if any(pattern.search(name) for name in names):
                inclusive[label] += count

    background = owners[BACKGROUND]
    foreground = max(1, total - background)

    def line(label: str, samples: int) -> str:
        share = samples / total
        us = f" {share * us_per_request:>7.1f} us/req" if us_per_request else ""
        own = (
            ""
            if label in (BACKGROUND, INCLUSIVE[-1][0])
            else f" {100 * samples / foreground:>5.1f}%"
        )
        return f"  {label:<66} {100 * share:>5.1f}%{own}{us}"

    busy = f", {100 * total / wall_samples:.0f}% of wall time" if wall_samples else ""
    out = [f"event-loop thread: {total} non-idle samples{busy}"]
    worker_samples = sum(n for _f, n in workers)
    out.append(
        f"worker threads (sync dependencies etc.), non-waiting: {worker_samples} samples "
        f"({100 * worker_samples / total:.1f}% of the event loop's)"
    )
    out.append(
        "owner (self) time by layer, event-loop thread: % of all samples, % of the samples not "
        "spent polling the exchange (the request path), CPU us per request"
    )
    out.extend(line(label, n) for label, n in owners.most_common())
    out.append("inclusive time of key frames, event-loop thread (same columns):")
    out.extend(line(label, inclusive[label]) for label, _rx in INCLUSIVE)
    return "\n".join(out)


def summarize_file(
    path: Path, us_per_request: float | None = None, *, wall_samples: int | None = None
) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return summarize(handle, us_per_request, wall_samples=wall_samples)


def main() -> None:
    parser = argparse.ArgumentParser(description="summarise a py-spy raw profile")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--us-per-request", type=float, default=None)
    args = parser.parse_args()
    print(summarize_file(args.profile, args.us_per_request))


if __name__ == "__main__":
    main()
