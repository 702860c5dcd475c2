"""SIGTERM: requests in flight complete, pollers stop, the process exits 0 within the grace period.

Guard API requests take well under a millisecond, so "in flight" is made deterministic with raw
sockets that send their headers and half a body before the signal and the rest after it. A
concurrent load runs across the signal too: every decision the guard logs must have reached
its client in full (a request cut off mid-answer would show as a logged decision no client
saw).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.guard import BOT_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import account_entry, ready
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration

GRACE_S = 4.0
log = logging.getLogger(__name__)  # figures: pytest -o log_cli=true --log-cli-level=INFO


@pytest.fixture
def guard(shared_simulator: SimulatorProcess, tmp_path: Path) -> Iterator[GuardProcess]:
    config = guard_config({"alpha": account_entry(shared_simulator, HEALTHY)}, port=free_port())
    config["server"]["graceful_shutdown_s"] = GRACE_S
    guard = GuardProcess(config, tmp_path).start()
    wait_until(lambda: ready(guard), timeout=15, what="guard ready")
    try:
        yield guard
    finally:
        guard.stop()


class PartialRequest:
    """``POST /can-trade`` over a raw socket: headers and half the body now, the rest later."""

    def __init__(self, port: int) -> None:
        self._body = json.dumps({"account": "alpha", "reduce_only": False}).encode()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = (
            "POST /can-trade HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Authorization: Bearer {BOT_TOKEN}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self._body)}\r\n\r\n"
        ).encode()
        self._sock.sendall(head + self._body[:10])

    def finish(self) -> tuple[int, dict[str, Any]]:
        """Send the rest of the body; return the status and the JSON answer (read in full)."""
        self._sock.sendall(self._body[10:])
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += self._recv()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(body) < length:
            body += self._recv()
        self._sock.close()
        return int(lines[0].split()[1]), json.loads(body[:length])

    def stall(self) -> bytes:
        """Never send the rest; return whatever the server sends before it closes."""
        received = b""
        try:
            while chunk := self._sock.recv(65536):
                received += chunk
        except OSError:
            pass
        self._sock.close()
        return received

    def _recv(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the guard closed the connection mid-answer")
        return chunk


class Load:
    """Threads posting ``/can-trade`` in a loop until the guard stops answering."""

    def __init__(self, guard: GuardProcess, workers: int = 8) -> None:
        self.received: list[str] = []  # decision ids of complete 200 answers
        self.errors_before_signal: list[str] = []
        self.signalled = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(guard,), daemon=True) for _ in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
            assert not thread.is_alive()

    def _run(self, guard: GuardProcess) -> None:
        with guard.client() as client:
            while True:
                try:
                    response = client.post("/can-trade", json={"account": "alpha"})
                except httpx.TransportError as exc:
                    if not self.signalled.is_set():
                        with self._lock:
                            self.errors_before_signal.append(repr(exc))
                    if isinstance(exc, httpx.ConnectError):
                        return  # the listener is closed: the guard is going away
                    continue
                assert response.status_code == 200, response.text
                with self._lock:
                    self.received.append(response.json()["decision_id"])


def _logged_decisions(guard: GuardProcess) -> set[str]:
    ids = set()
    for line in guard.logs().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "decision":
            ids.add(event["decision_id"])
    return ids


def _sigterm(guard: GuardProcess) -> float:
    assert guard.proc is not None
    guard.proc.send_signal(signal.SIGTERM)
    return time.monotonic()


def test_sigterm_completes_in_flight_requests_and_exits_zero(guard: GuardProcess) -> None:
    in_flight = [PartialRequest(guard.port) for _ in range(5)]
    load = Load(guard)
    load.start()
    time.sleep(0.5)  # the load is running: keep-alive connections, requests mid-way
    signalled = _sigterm(guard)
    load.signalled.set()
    time.sleep(0.5)  # the guard is shutting down: no new connections, old ones draining
    answers = [request.finish() for request in in_flight]
    assert guard.proc is not None
    code = guard.proc.wait(timeout=GRACE_S + 5)
    elapsed = time.monotonic() - signalled
    load.join()

    log.info(
        "SIGTERM to exit: %.2f s; %d load answers, in flight: %s",
        elapsed,
        len(load.received),
        [status for status, _ in answers],
    )
    assert [status for status, _ in answers] == [200] * 5
    assert all(body["account"] == "alpha" and body["allowed"] for _, body in answers)
    assert code == 0
    assert elapsed < GRACE_S, f"exit took {elapsed:.2f} s"
    assert load.errors_before_signal == []
    assert len(load.received) > 100
    # Every decision the guard made reached its client in full, and nothing else was answered.
    logged = _logged_decisions(guard)
    assert logged == set(load.received) | {body["decision_id"] for _, body in answers}
    logs = guard.logs()
    assert '"event": "guard stopped"' in logs
    assert "poller ended with an error" not in logs
    assert "timeout graceful shutdown exceeded" not in logs
    assert '"level": "error"' not in logs


def test_a_stalled_request_does_not_hold_the_exit_past_the_grace_period(
    guard: GuardProcess,
) -> None:
    stalled = PartialRequest(guard.port)
    # A barrier: the guard's event loop has read the stalled request's headers once it has
    # answered a request sent after them (one loop turn handles every socket that is ready).
    # Signalled before that, the connection still looks idle and is closed at once.
    assert httpx.get(f"{guard.base_url}/healthz", timeout=5).status_code == 200
    signalled = _sigterm(guard)
    assert guard.proc is not None
    code = guard.proc.wait(timeout=GRACE_S + 5)
    elapsed = time.monotonic() - signalled
    received = stalled.stall()
    log.info("stalled request: exit after %.2f s (grace %.1f s)", elapsed, GRACE_S)
    assert code == 0
    # uvicorn waits out the grace period for the stalled request, then cancels it.
    assert GRACE_S <= elapsed < GRACE_S + 1.5, f"exit took {elapsed:.2f} s"
    assert b" 200 " not in received  # no answer was made up for a request never received
    assert '"event": "guard stopped"' in guard.logs()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{guard.base_url}/healthz", timeout=1)
