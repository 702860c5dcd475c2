"""Instructions per ``GET /can-trade`` of the whole HTTP stack, counted by valgrind (callgrind).

    python -m bench.instructions [--requests 3000] [--warmup 1000] [--only guard|baseline]
                                 [--tree DIR ...] [--jobs 2] [--plain-http]

On a shared machine closed-loop throughput (wrk) moves by 10-60 % between identical runs; a
1-3 % lever can only be judged on a count the neighbours cannot move. This counts the CPU
instructions one request costs in-process, deterministically (``PYTHONHASHSEED=0``; the same
checkout twice agrees within ~0.03 %, two checkouts of one commit within ~0.3 %):

- the guard: ``create_app`` from the bench's 100-account config (``bench/scenario.py``:
  auth, metrics, JSON logs, ``decision_log: all``, the bench policy with its order-rate
  window), the state of each account from ``scenario.parsed_status/parsed_snapshot``; the
  decision log goes to a sink (``/dev/null``) through a ``DecisionLogWriter`` whose thread never
  flushes: the harness flushes it every 1,000 requests, so the count does not depend on when a
  thread ran. The max data ages (and the header deadline) are raised so the slow valgrind run
  never turns stale (nor times out);
- wrapped by uvicorn's ``Config.load()`` (ProxyHeaders middleware) with the guard's
  ``server_options`` (the header-deadline protocol, the connection cap, keep-alive), the
  lifespan off (no pollers: the state is put into the store directly);
- driven on a uvloop loop through uvicorn's real ``HttpToolsProtocol.data_received`` over an
  in-memory transport, one keep-alive connection: the bench's GET as wrk sends it (``Host``,
  ``Authorization: Bearer``, ``Accept``), one of the 100 accounts in turn; one account's
  state replaced every 100 requests, as the fleet feed does (~1 % misses of the decision
  cache);
- the bare baseline app (``bench/baseline_app.py``, the same body size) through the same
  driver, with uvicorn's plain httptools protocol as ``bench.baseline_app`` runs it.

Instructions per request = (Ir of warmup + N requests - Ir of warmup requests) / N: two
valgrind runs per figure (run ``--jobs`` at a time). ``--tree DIR`` (a checkout of another
commit, e.g. ``git worktree add --detach /tmp/a <commit>``) counts the guard of that tree with
that tree's own ``app/`` and ``bench/`` (first on ``sys.path``, cwd there): a lever is an A/B
of two counts. A tree older than the guard's server options (issue 12's header deadline) runs
on uvicorn's plain httptools protocol, as it did; ``--plain-http`` runs every guard that way,
for a like-for-like comparison with such a tree. Each valgrind run takes ~1-2 minutes (Python
under callgrind is ~50x slower).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Set (to "1") for the children: the guard on uvicorn's plain httptools protocol.
PLAIN_HTTP_ENV = "BENCH_INSTRUCTIONS_PLAIN_HTTP"
#: This repository's root (the tree of this file).
HERE = Path(__file__).resolve().parent.parent
#: Accounts of the bench config; one account's state is replaced every REFRESH_EVERY requests.
ACCOUNTS = 100
REFRESH_EVERY = 100
#: The harness writes the queued decision lines every FLUSH_EVERY requests.
FLUSH_EVERY = 1_000
#: The baseline's body: as long as the guard's answer to the bench GET (~187 bytes).
BASELINE_BODY_BYTES = 187
#: Raised so a run 50x slower than native never sees stale data or a header timeout.
_SLOW_RUN_POLICY = {"max_status_age_s": 1e6, "max_snapshot_age_s": 1e6}
_SLOW_RUN_HEADER_TIMEOUT_S = 300.0
#: uvicorn writes a response in two chunks (status line + headers, then the body).
WRITES_PER_RESPONSE = 2


def bench_request(path: str, token: str | None) -> bytes:
    """The bench's GET as wrk sends it (``bench/wrk.py``): the request line, ``Host``,
    ``Authorization: Bearer`` (unless ``token`` is None) and ``Accept``."""
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n{auth}Accept: application/json\r\n\r\n"
    ).encode()


class MemoryTransport(asyncio.Transport):
    """What uvicorn's protocol writes to, kept in memory; never pauses, never fails."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}
        return extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.chunks.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Connection:
    """One keep-alive client connection to ``app`` through uvicorn's real protocol object
    (``Config.load()``: ProxyHeaders, the ``http`` protocol class of ``options``)."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        import uvicorn
        from uvicorn.server import ServerState

        self.config = uvicorn.Config(
            app,
            loop="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            **options,
        )
        self.config.load()
        self.transport = MemoryTransport()
        self.protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        self.protocol.connection_made(self.transport)

    async def exchange(self, raw: bytes, *, max_turns: int = 10_000) -> bytes:
        """Send one request; its whole response (status line, headers, body)."""
        chunks = self.transport.chunks
        chunks.clear()
        self.protocol.data_received(raw)
        for _ in range(max_turns):
            data = b"".join(chunks)
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if match is not None and len(body) >= int(match.group(1)):
                    return data
            await asyncio.sleep(0)
        raise TimeoutError(f"no whole response after {max_turns} loop turns: {chunks!r}")

    def close(self) -> None:
        self.protocol.connection_lost(None)


@dataclass
class Target:
    """An app to drive, its uvicorn options, and what the harness does every 100 requests."""

    app: Any
    options: dict[str, Any]
    refresh: Callable[[int], None] | None = None  # arg: the request's index
    flush: Callable[[], None] | None = None
    close: Callable[[], None] | None = None  # what the app leaves open (threads, files)


def guard_target(tmp: Path) -> Target:
    """The guard from the bench's 100-account config, every account's state in its store."""
    from prometheus_client import CollectorRegistry

    import app.main
    from app.config import Settings
    from app.decision_log import DecisionLogWriter
    from app.domain import Instant
    from app.logs import configure_logging
    from bench import scenario

    # A tree from before the slow-client protections (issue 12) has no server options: it
    # ran uvicorn's plain httptools protocol, and so does --plain-http for any tree.
    server_options = getattr(app.main, "server_options", None)
    plain = server_options is None or os.environ.get(PLAIN_HTTP_ENV) == "1"

    config = scenario.guard_config(
        ACCOUNTS,
        port=8080,
        sim_url="http://127.0.0.1:9",
        data_dir=tmp / "data",
        policy=_SLOW_RUN_POLICY,
    )
    if not plain:
        config["server"]["header_timeout_s"] = _SLOW_RUN_HEADER_TIMEOUT_S
    settings = Settings(**config)
    configure_logging(settings.server.log_format, settings.server.log_level)
    guard = app.main.create_app(settings, registry=CollectorRegistry())
    services = guard.state.services
    log = services.decider.decision_log
    if log.writer is None:
        raise RuntimeError("the bench config's decision log has no batched writer")
    devnull = open(os.devnull, "wb")  # noqa: SIM115 (lives as long as the process)

    def sink(data: bytes) -> None:
        devnull.write(data)

    # The thread (started by the first line) waits forever; the harness flushes instead.
    log.writer = DecisionLogWriter(
        sink, services.metrics.decision_log_dropped, flush_lines=10**9, interval_s=1e9
    )
    names = [scenario.account_name(i) for i in range(ACCOUNTS)]
    states = [(scenario.parsed_status(i), scenario.parsed_snapshot(i)) for i in range(ACCOUNTS)]

    def put(k: int) -> None:
        now = Instant.now()
        services.store.put_status(names[k], states[k][0], now)
        services.store.put_snapshot(names[k], states[k][1], now)

    def close() -> None:
        log.close()  # stops the writer's thread, writes what is left
        devnull.close()

    for k in range(ACCOUNTS):
        put(k)
    options = (
        server_options(settings)
        if server_options is not None and not plain
        else {"http": "httptools"}
    )
    return Target(
        guard,
        options,
        refresh=lambda i: put((i // REFRESH_EVERY) % ACCOUNTS),
        flush=log.writer.flush,
        close=close,
    )


def baseline_target() -> Target:
    from bench.baseline_app import decision_like_body, make_app

    # bench.baseline_app runs uvicorn's plain httptools protocol: no server options.
    return Target(make_app(decision_like_body(BASELINE_BODY_BYTES)), {"http": "httptools"})


def requests() -> list[bytes]:
    from bench import scenario

    return [bench_request(path, scenario.BOT_TOKEN) for path in scenario.order_paths(ACCOUNTS)]


async def drive(target: Target, count: int) -> bytes:
    """``count`` bench GETs over one connection; the last response. Checks that the first
    answer of every 100 is a 200 (outside of that, the loop is what the count measures)."""
    raws = requests()
    conn = Connection(target.app, target.options)
    chunks = conn.transport.chunks
    feed = conn.protocol.data_received
    refresh, flush = target.refresh, target.flush
    sleep = asyncio.sleep
    want = 0
    for i in range(count):
        if i % REFRESH_EVERY == 0:
            if chunks and not chunks[0].startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"request {i - REFRESH_EVERY}: {b''.join(chunks[:2])!r}")
            chunks.clear()
            want = 0
            if refresh is not None:
                refresh(i)
            if flush is not None and i % FLUSH_EVERY == 0:
                flush()
        want += WRITES_PER_RESPONSE
        feed(raws[i % ACCOUNTS])
        while len(chunks) < want:
            await sleep(0)
    last = b"".join(chunks[-WRITES_PER_RESPONSE:])
    conn.close()
    if flush is not None:
        flush()
    return last


def _child(which: str, count: int, tree: Path) -> None:
    """In the process valgrind runs: ``count`` requests against ``which`` of ``tree``."""
    import uvloop

    import app
    import bench.scenario

    for module in (app, bench.scenario):
        if not Path(module.__file__ or "").resolve().is_relative_to(tree):
            raise RuntimeError(f"{module.__name__} from {module.__file__}, not from {tree}")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        target = guard_target(Path(tmp)) if which == "guard" else baseline_target()
        last = uvloop.run(drive(target, count))
        if target.close is not None:
            target.close()
    if not last.startswith(b"HTTP/1.1 200 ") or (which == "guard" and b'"allowed":' not in last):
        raise RuntimeError(f"unexpected last answer: {last!r}")


def _child_command(which: str, count: int, tree: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        which,
        "--tree",
        str(tree),
        "--requests",
        str(count),
    ]


def _preflight(which: str, tree: Path) -> None:
    """A few requests without valgrind: fails in seconds, not minutes, when a tree cannot
    run, and writes the tree's bytecode cache, so the valgrind runs of every tree load their
    modules alike (compiling them at import shifts the heap the counts run on)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = _child_command(which, 2 * REFRESH_EVERY, tree)
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} (cwd {tree}) failed:\n{done.stderr[-3000:]}")


def _count(which: str, count: int, tree: Path, out_dir: Path) -> int:
    """Ir of one valgrind run of ``count`` requests (imports and setup included)."""
    out = out_dir / f"callgrind.{which}.{tree.name}.{count}.{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        *_child_command(which, count, tree),
    ]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} (cwd {tree}) failed:\n{done.stderr[-3000:]}")
    match = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
    out.unlink()
    if match is None:
        raise RuntimeError(f"no 'summary:' line in {out}")
    return int(match.group(1))


@dataclass
class Figure:
    label: str
    which: str
    tree: Path
    warmup_ir: int = 0
    total_ir: int = 0
    requests: int = 0

    @property
    def per_request(self) -> float:
        return (self.total_ir - self.warmup_ir) / self.requests


def measure(
    figures: Sequence[Figure], requests: int, warmup: int, jobs: int
) -> tuple[list[Figure], float]:
    started = time.monotonic()
    for figure in figures:
        _preflight(figure.which, figure.tree)
    with (
        tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp,
        concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        runs = {
            (n, count): pool.submit(_count, f.which, count, f.tree, Path(tmp))
            for n, f in enumerate(figures)
            for count in (warmup, warmup + requests)
        }
        for (n, count), run in runs.items():
            figure = figures[n]
            figure.requests = requests
            if count == warmup:
                figure.warmup_ir = run.result()
            else:
                figure.total_ir = run.result()
    return list(figures), time.monotonic() - started


def render(figures: Sequence[Figure], elapsed_s: float) -> list[str]:
    lines = [
        f"instructions per GET /can-trade (callgrind Ir, {figures[0].requests} requests after "
        f"the warmup; {elapsed_s:.0f} s)"
    ]
    for f in figures:
        lines.append(f"{f.label:<60} {f.per_request:>12,.0f}")
    baseline = next((f for f in figures if f.which == "baseline"), None)
    guards = [f for f in figures if f.which == "guard"]
    if baseline is not None:
        for g in guards:
            lines.append(
                f"baseline/guard {g.label}: {baseline.per_request / g.per_request:.3f} "
                "(the throughput ratio it predicts)"
            )
    if len(guards) > 1:
        a = guards[0]
        for b in guards[1:]:
            change = (b.per_request - a.per_request) / a.per_request * 100
            lines.append(
                f"tree A {a.tree} {a.per_request:,.0f} vs tree B {b.tree} "
                f"{b.per_request:,.0f}: {change:+.1f} %"
            )
    return lines


def _guard_label(tree: Path, plain_http: bool) -> str:
    if plain_http:
        return f"guard {tree} (plain httptools)"
    if "def server_options" not in (tree / "app" / "main.py").read_text(encoding="utf-8"):
        return f"guard {tree} (plain httptools: no server options in this tree)"
    return f"guard {tree}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3_000, help="measured requests (N)")
    parser.add_argument("--warmup", type=int, default=1_000, help="requests before them (M)")
    parser.add_argument("--only", choices=("guard", "baseline"), default=None)
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="another checkout whose guard to count too (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at a time")
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="run every guard on uvicorn's plain httptools protocol (no header deadline): "
        "compares with trees older than the server options, which run that way anyway",
    )
    parser.add_argument("--child", choices=("guard", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        tree = args.tree[0].resolve()
        sys.path[0] = str(tree)  # the tree's app/ and bench/, not this file's directory
        _child(args.child, args.requests, tree)
        return
    if args.requests <= 0 or args.warmup <= 0:
        parser.error("--requests and --warmup must be positive")
    if shutil.which("valgrind") is None:
        sys.exit(
            "bench.instructions: valgrind is not installed (Debian/Ubuntu: apt-get install "
            "valgrind); it counts the instructions"
        )
    trees = [t.resolve() for t in args.tree]
    for tree in trees:
        if not (tree / "app" / "main.py").is_file() or not (tree / "bench").is_dir():
            parser.error(f"--tree {tree}: not a checkout of this repository")
    if args.plain_http:
        os.environ[PLAIN_HTTP_ENV] = "1"  # the children inherit it
    figures: list[Figure] = []
    if args.only != "guard":
        figures.append(Figure("baseline (bare ASGI app)", "baseline", HERE))
    if args.only != "baseline":
        figures += [Figure(_guard_label(t, args.plain_http), "guard", t) for t in [HERE, *trees]]
    done, elapsed = measure(figures, args.requests, args.warmup, args.jobs)
    print("\n".join(render(done, elapsed)))


if __name__ == "__main__":
    main()
