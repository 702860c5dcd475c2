"""The ceiling: a bare ASGI app answering every request with one fixed JSON body.

It does nothing a web stack can skip (no routing, no parsing of the query, no auth, no
metrics, no logging) and sends the same headers as the guard (``content-type``,
``content-length``; no ``server`` header) with a body as long as a real decision body. It runs
under exactly the server settings of production (``app/server.py``): uvicorn, one worker,
``loop="uvloop"``, ``http="httptools"``, access log off. Whatever the guard costs beyond this
is the price of the framework and of our own code.

    python -m bench.baseline_app --port 8090 --body-bytes 260 [--busy-us 10] [--workers 2]

``--busy-us N`` makes it spin N microseconds of CPU per request before answering: a stand-in
for per-request work, used by ``bench.run``'s calibration to show what a given amount of work
costs in throughput on the machine at hand.

``--workers N`` runs N server processes on one socket bound by the parent, the model of the
guard's worker pool (``app/worker_pool.py``): the 2-worker baseline of ``bench.fleet``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from types import FrameType
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

#: A decision body's shape; ``decision_id`` is padded so the whole body has the wanted size.
_TEMPLATE: dict[str, Any] = {
    "allowed": True,
    "reasons": [],
    "warnings": [],
    "decision_id": "",
    "account": "acc-00000",
    "symbol": "BTCUSDT",
    "trading_status": "NORMAL",
    "status_age_ms": 1234,
    "snapshot_age_ms": 2345,
}


def decision_like_body(size: int) -> bytes:
    """Decision-shaped JSON of exactly ``size`` bytes (or the bare template if smaller)."""
    bare = len(orjson.dumps(_TEMPLATE))
    return orjson.dumps({**_TEMPLATE, "decision_id": "d" * max(0, size - bare)})


def make_app(body: bytes, busy_us: float = 0) -> ASGIApp:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    payload = {"type": "http.response.body", "body": body}
    busy_s = busy_us / 1e6
    clock = time.perf_counter

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if busy_s:
                until = clock() + busy_s
                while clock() < until:
                    pass
            await send(start)
            await send(payload)
            return
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=260)
    parser.add_argument(
        "--busy-us", type=float, default=0, help="CPU microseconds spent per request"
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes on one socket")
    args = parser.parse_args()
    # The same server settings as app/server.py.
    config = uvicorn.Config(
        make_app(decision_like_body(args.body_bytes), args.busy_us),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    if args.workers == 1:
        uvicorn.Server(config).run()
        return
    _serve_workers(config, args.workers)


def _serve_workers(config: uvicorn.Config, workers: int) -> None:
    """``workers`` forked servers accepting on one socket; SIGTERM/SIGINT stop them all."""
    sock = config.bind_socket()
    children = []
    for _ in range(workers):
        pid = os.fork()  # before any event loop exists: nothing to copy but the app
        if pid == 0:
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
