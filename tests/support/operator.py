"""Loopback helpers for the operator tests: a guard wired to the simulator, a webhook
receiver that verifies signatures on its own (no guard code), and an SSE client.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tests.support.guard import READ_TOKEN, GuardProcess, guard_config
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import HEALTHY, SimAccount

WEBHOOK_SECRET = "whsec-integration-0123456789"


def account_config(simulator: SimulatorProcess, account: SimAccount = HEALTHY) -> dict[str, Any]:
    return {
        "exchange": "generic-v2",
        "base_url": simulator.base_url,
        "api_key": account.api_key,
        "api_secret": account.api_secret,
    }


@contextlib.contextmanager
def running_guard(
    simulator: SimulatorProcess,
    workdir: Path,
    *,
    accounts: Mapping[str, SimAccount] | None = None,
    poll: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    webhooks: list[dict[str, Any]] | None = None,
    wait_fresh: bool = True,
) -> Iterator[GuardProcess]:
    """A guard on loopback with its data directory in ``workdir``; stopped on exit."""
    config = guard_config(
        {name: account_config(simulator, acc) for name, acc in (accounts or {}).items()}
        or {"alpha": account_config(simulator)},
        port=free_port(),
        poll=poll,
        policy=policy,
        # Keep-alives every 0.2 s also let SseClient threads notice a close quickly.
        extra={
            "webhooks": webhooks or [],
            "events": {"watch_interval_s": 0.1, "sse_keepalive_s": 0.2},
        },
    )
    config["server"]["data_dir"] = str(workdir / "data")
    guard = GuardProcess(config, workdir).start()
    try:
        if wait_fresh:
            wait_ready(guard)
        yield guard
    finally:
        guard.stop()


def wait_ready(guard: GuardProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{guard.base_url}/readyz", timeout=2).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"guard not ready after {timeout}s:\n{guard.logs()[-3000:]}")


def crash(guard: GuardProcess) -> None:
    """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
    assert guard.proc is not None
    guard.proc.kill()
    guard.proc.wait()
    guard.proc = None


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class Delivery:
    received_mono: float
    headers: Mapping[str, str]
    body: bytes
    signature_valid: bool

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def signature_is_valid(secret: str, header: str | None, body: bytes, tolerance_ms: int) -> bool:
    """What any receiver does: HMAC-SHA256 over ``f"{t}." + body``, constant-time compare."""
    if not header:
        return False
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > tolerance_ms:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), given)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records and verifies each delivery.

    ``hang=True`` never answers (until ``close``), like a receiver stuck on a dead database.
    While ``failing`` is set, every request is answered 503 and recorded in ``refused``
    (not a delivery), like a receiver whose database is briefly down.
    """

    def __init__(
        self,
        secret: str = WEBHOOK_SECRET,
        *,
        hang: bool = False,
        failing: threading.Event | None = None,
    ) -> None:
        self.secret = secret
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self.refused: queue.Queue[Delivery] = queue.Queue()
        self.requests_seen = 0
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests_seen += 1
                if hang:
                    receiver._release.wait()
                    return
                valid = signature_is_valid(
                    receiver.secret, self.headers.get("X-Pretrade-Signature"), body, 60_000
                )
                delivery = Delivery(time.monotonic(), dict(self.headers.items()), body, valid)
                if failing is not None and failing.is_set():
                    receiver.refused.put(delivery)
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.deliveries.put(delivery)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a hung-up guard connection is expected in the hanging case

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def config(self, name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "url": self.url, "secret": self.secret, **extra}

    def next_delivery(self, timeout: float) -> Delivery:
        try:
            return self.deliveries.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no webhook delivery within {timeout}s") from None

    def wait_for(self, event_type: str, timeout: float) -> Delivery:
        deadline = time.monotonic() + timeout
        while True:
            delivery = self.next_delivery(max(0.01, deadline - time.monotonic()))
            if delivery.event["type"] == event_type:
                return delivery

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: str
    received_mono: float

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


class SseClient:
    """Follows ``GET /events`` in a thread and queues each message (comments skipped)."""

    def __init__(
        self,
        guard: GuardProcess,
        *,
        account: str | None = None,
        last_event_id: str | None = None,
        token: str = READ_TOKEN,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.messages: queue.Queue[SseMessage] = queue.Queue()
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = httpx.Client(
            base_url=guard.base_url, headers=headers, timeout=httpx.Timeout(5, read=None)
        )
        params = {"account": account} if account else {}
        self._thread = threading.Thread(target=self._run, args=(params,), daemon=True)
        self._thread.start()
        if not self.connected.wait(5):
            raise AssertionError(f"SSE stream did not open: {self.error!r}")

    def _run(self, params: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", "/events", params=params) as response:
                response.raise_for_status()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.connected.set()
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                        continue
                    if "data" in fields:
                        self.messages.put(
                            SseMessage(
                                fields.get("id"),
                                fields.get("event"),
                                fields["data"],
                                time.monotonic(),
                            )
                        )
                    fields = {}
        except Exception as exc:  # a closed client ends the thread; keep it for asserts
            self.error = exc
        finally:
            self.connected.set()
            self.ended.set()

    def next(self, timeout: float) -> SseMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SSE message within {timeout}s") from None

    def wait_for(self, event_type: str, timeout: float) -> SseMessage:
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if message.event == event_type:
                return message

    def drain(self) -> list[SseMessage]:
        found: list[SseMessage] = []
        with contextlib.suppress(queue.Empty):
            while True:
                found.append(self.messages.get_nowait())
        return found

    def close(self) -> None:
        """Stop reading (at the next line: keep-alives come every 0.2 s) and disconnect."""
        self._stop.set()
        self._thread.join(5)
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
