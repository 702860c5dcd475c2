"""The guard as a hostile or broken client finds it (issue 12): real guard, real simulator,
real HTTP on loopback. Bad input gets a precise 4xx in the JSON error shape, never a 500 and
never a decision made on a value other than the one the client sent."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.guard import (
    ADMIN_TOKEN,
    BOT_TOKEN,
    READ_TOKEN,
    GuardProcess,
    guard_config,
    wait_until,
)
from tests.support.guard_fixtures import BASIC_GUARD_ACCOUNTS, account_entry, ready
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    accounts = {
        name: account_entry(_session_simulator, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()
    }
    # 0.01 BTC at 60000 is exactly at the order limit: a hair more is denied.
    accounts["alpha"]["policy"] = {"max_position_notional": "40000", "max_order_notional": "600"}
    guard = GuardProcess(
        guard_config(accounts, port=free_port()), tmp_path_factory.mktemp("guard")
    ).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def guard(module_guard: GuardProcess, sim_control: SimControl) -> GuardProcess:
    wait_until(lambda: ready(module_guard), timeout=10, what="guard ready after reset")
    return module_guard


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON error body of ``response``, which must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    return dict(body["error"])


def fields_of(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error.get("fields") or ()]


BASE_QUERY = "account=alpha&symbol=BTCUSDT&side=BUY&price=60000"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (BASE_QUERY + "&quantity=%D9%A3", "quantity"),  # Arabic-Indic three
        (BASE_QUERY + "&quantity=%EF%BC%91%EF%BC%90%EF%BC%90", "quantity"),  # fullwidth 100
        (BASE_QUERY + "&quantity=1_000", "quantity"),
        (BASE_QUERY + "&quantity=%201%20", "quantity"),  # padded
        (BASE_QUERY + "&quantity=1e-2", "quantity"),
        (BASE_QUERY + "&quantity=1000000&quantity=0.01", "quantity"),
        (BASE_QUERY + "&quantity=0.01&quantity=0.01", "quantity"),
        ("account=delta&account=alpha&symbol=BTCUSDT&side=BUY&quantity=0.01", "account"),
        (BASE_QUERY.replace("price=60000", "price=%D9%A3") + "&quantity=0.01", "price"),
    ],
)
def test_get_refuses_lax_numbers_and_duplicate_keys_naming_the_field(
    guard: GuardProcess, query: str, field: str
) -> None:
    with guard.client(BOT_TOKEN) as bot:
        response = bot.get(f"/can-trade?{query}")
    error = error_of(response, 422)
    assert error["code"] == "INVALID_REQUEST"
    assert fields_of(error) == [field]


def test_a_json_number_is_read_exactly_not_through_a_float(guard: GuardProcess) -> None:
    order: dict[str, Any] = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY"}
    with guard.client(BOT_TOKEN) as bot:
        exact = bot.post(
            "/can-trade",
            content=b'{"account":"alpha","symbol":"BTCUSDT","side":"BUY",'
            b'"quantity":0.01000000000000000001,"price":60000}',
            headers={"Content-Type": "application/json"},
        )
        at_limit = bot.post("/can-trade", json={**order, "quantity": "0.01", "price": "60000"})
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["allowed"] is True, at_limit.json()
    # As a float the quantity would be 0.01, exactly at the 600 USDT order limit.
    assert exact.status_code == 200, exact.text
    body = exact.json()
    assert body["allowed"] is False
    assert [r["code"] for r in body["reasons"]] == ["ORDER_NOTIONAL_LIMIT"]
    assert body["reasons"][0]["observed"].startswith("600.0000000")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/can-trade",
            b'{"account":"delta","account":"alpha","symbol":"BTCUSDT","side":"BUY",'
            b'"quantity":"0.01","price":"60000"}',
            "account",
        ),
        (
            "/can-trade",
            b'{"account":"alpha","symbol":"BTCUSDT","side":"BUY",'
            b'"quantity":"1000000","quantity":"0.01","price":"60000"}',
            "quantity",
        ),
        (
            "/can-trade/batch",
            b'{"orders":[{"account":"alpha","symbol":"BTCUSDT","side":"BUY","quantity":"0.01",'
            b'"price":"60000"},{"account":"delta","account":"alpha"}]}',
            "orders.1.account",
        ),
        (
            "/can-trade/batch",
            b'{"orders":[{"account":"delta"}],"orders":[{"account":"alpha"}]}',
            "orders",
        ),
        (
            "/can-trade",
            '{"account":"alpha","symbol":"BTCUSDT","side":"BUY","quantity":"١٠٠"}'.encode(),
            "quantity",
        ),
        (
            "/can-trade",
            b'{"account":"alpha","symbol":"BTCUSDT","side":"BUY","quantity":1e-2,"price":true}',
            "price",
        ),
        ("/can-trade", b'{"account": }', "(body)"),
        ("/can-trade/batch", b'{"orders": [', "(body)"),
        ("/can-trade", b'{"account":"alpha","quantity":' + b"9" * 5000 + b"}", "quantity"),
    ],
)
def test_post_refuses_duplicate_keys_lax_numbers_and_bad_json_naming_the_field(
    guard: GuardProcess, path: str, body: bytes, field: str
) -> None:
    with guard.client(BOT_TOKEN) as bot:
        response = bot.post(path, content=body, headers={"Content-Type": "application/json"})
    error = error_of(response, 422)
    assert error["code"] == "INVALID_REQUEST"
    assert field in fields_of(error), error


# ------------------------------------------------------------------------ Last-Event-ID


@pytest.mark.parametrize(
    "last_event_id",
    [
        "abcd1234-٣".encode(),  # Arabic-Indic digit (isdigit() is true for it)
        "abcd1234-²".encode(),  # a superscript: isdigit() true, int() raises
        b"abcd1234-" + b"9" * 5000,  # more digits than int() converts
        b"no dash at all",
    ],
)
def test_a_malformed_last_event_id_is_a_json_400_not_a_dropped_stream(
    guard: GuardProcess, last_event_id: bytes
) -> None:
    with httpx.Client(base_url=guard.base_url, timeout=5) as client:
        response = client.get(
            "/events",
            headers={
                b"Authorization": f"Bearer {READ_TOKEN}".encode(),
                b"Last-Event-ID": last_event_id,
            },
        )
    error = error_of(response, 400)
    assert error["code"] == "INVALID_LAST_EVENT_ID"
    assert fields_of(error) == ["Last-Event-ID"]
    assert "Traceback" not in guard.logs()


# ------------------------------------------------------------------- rules never raise


def test_a_position_of_1e999999999_is_never_a_500_nor_an_allowed(
    guard: GuardProcess, sim_control: SimControl
) -> None:
    account = sim_control.account(HEALTHY.id)
    position = dict(account["account"]["positions"][0])
    position["quantity"] = "1E+999999999"
    sim_control.patch_account(HEALTHY.id, {"positions": [position]})
    order = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
    bodies = []
    with guard.client(BOT_TOKEN) as bot:
        # Several snapshot polls (0.3 s each): the guard has taken or refused the snapshot.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            response = bot.get("/can-trade", params={**order, "price": "60000"})
            assert response.status_code == 200, response.text
            bodies.append(response.json())
            time.sleep(0.1)
    last = bodies[-1]
    assert last["allowed"] is False, last
    assert "Traceback" not in guard.logs()


def test_admin_token_still_works_after_hostile_requests(guard: GuardProcess) -> None:
    with guard.client(ADMIN_TOKEN) as ops:
        assert ops.get("/admin/kill-switches").status_code == 200


# ------------------------------------------------------------- bodies and slow clients

LIMITS = {
    "max_body_bytes": 65536,
    "body_timeout_s": 1.0,
    "header_timeout_s": 1.0,
    "keepalive_timeout_s": 1.0,
}


@pytest.fixture(scope="module")
def tight_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    """A guard with small body, header and body-time limits."""
    accounts = {"alpha": account_entry(_session_simulator, HEALTHY)}
    config = guard_config(accounts, port=free_port())
    config["server"].update(LIMITS)
    guard = GuardProcess(config, tmp_path_factory.mktemp("tight")).start()
    try:
        yield guard
    finally:
        guard.stop()


def raw_exchange(
    guard: GuardProcess, head: bytes, body: bytes = b"", *, wait_s: float = 5
) -> bytes:
    """Send ``head`` (and ``body``) on a fresh connection; everything the guard sends back
    until it closes the connection (or ``wait_s`` passes)."""
    with socket.create_connection(("127.0.0.1", guard.port), timeout=wait_s) as sock:
        sock.sendall(head + body)
        received = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    return received


def status_and_json(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def post_head(path: str, *, token: str | None, length: int | None, extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: guard", "Content-Type: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_an_unauthenticated_body_is_refused_unread_without_100_continue(
    tight_guard: GuardProcess,
) -> None:
    head = post_head("/can-trade", token=None, length=100 << 20, extra="Expect: 100-continue")
    raw = raw_exchange(tight_guard, head)  # the 100 MiB are never sent
    assert b"100 Continue" not in raw
    status, body = status_and_json(raw)
    assert status == 401
    assert body["error"]["code"] == "UNAUTHORIZED"
    wrong = raw_exchange(tight_guard, post_head("/can-trade", token="wrong-token-123", length=5))
    assert status_and_json(wrong)[0] == 401


def test_a_body_above_the_limit_is_413_before_it_is_read(tight_guard: GuardProcess) -> None:
    head = post_head(
        "/can-trade/batch", token=BOT_TOKEN, length=10 << 20, extra="Expect: 100-continue"
    )
    raw = raw_exchange(tight_guard, head)
    assert b"100 Continue" not in raw
    status, body = status_and_json(raw)
    assert status == 413
    assert body["error"]["code"] == "BODY_TOO_LARGE"


def test_a_chunked_body_is_counted_and_refused_past_the_limit(tight_guard: GuardProcess) -> None:
    chunk = b"x" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))
    raw = raw_exchange(
        tight_guard, post_head("/can-trade/batch", token=BOT_TOKEN, length=None), chunks
    )
    status, body = status_and_json(raw)
    assert status == 413
    assert body["error"]["code"] == "BODY_TOO_LARGE"


def test_a_valid_batch_still_passes_the_gate(tight_guard: GuardProcess) -> None:
    orders = [{"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}] * 50
    with tight_guard.client(BOT_TOKEN) as bot:
        response = bot.post("/can-trade/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    assert len(response.json()["decisions"]) == 50


def test_a_dripped_body_gets_408_and_the_connection_is_closed(tight_guard: GuardProcess) -> None:
    with socket.create_connection(("127.0.0.1", tight_guard.port), timeout=10) as sock:
        sock.sendall(post_head("/can-trade", token=BOT_TOKEN, length=100))
        for _ in range(3):  # 3 of the 100 bytes, then nothing: the body never completes
            sock.sendall(b" ")
            time.sleep(0.2)
        received = b""
        while True:  # until the guard closes (the socket timeout bounds the wait)
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status, body = status_and_json(received)
    assert status == 408
    assert body["error"]["code"] == "REQUEST_TIMEOUT"


def test_slowloris_connections_are_cut_and_other_clients_are_answered(
    tight_guard: GuardProcess,
) -> None:
    slow = [
        socket.create_connection(("127.0.0.1", tight_guard.port), timeout=10) for _ in range(50)
    ]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: guard\r\n")
        with tight_guard.client(BOT_TOKEN) as bot:
            response = bot.get("/can-trade", params={"account": "alpha"})
            assert response.status_code == 200, response.text
        closed = 0
        for sock in slow:
            sock.settimeout(10)
            data = b""
            try:
                for _ in range(100):  # keeps dripping header bytes until the guard gives up
                    sock.sendall(b"X")
                    sock.settimeout(0.1)
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        continue
                    data += chunk
                    if not chunk:
                        break
            except OSError:
                pass
            if data.startswith(b"HTTP/1.1 408") or data == b"":
                closed += 1
        assert closed == len(slow)
    finally:
        for sock in slow:
            sock.close()


# --------------------------------------------------------------------- SSE fan-out


@pytest.fixture(scope="module")
def sse_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    accounts = {"alpha": account_entry(_session_simulator, HEALTHY)}
    config = guard_config(
        accounts,
        port=free_port(),
        extra={
            "events": {
                "sse_max_subscribers": 60,
                "sse_queue_size": 64,
                "sse_send_timeout_s": 1.0,
                "sse_keepalive_s": 0.5,
            }
        },
    )
    guard = GuardProcess(config, tmp_path_factory.mktemp("sse")).start()
    try:
        yield guard
    finally:
        guard.stop()


def test_subscribers_that_never_read_do_not_stall_kill_switches_or_decisions(
    sse_guard: GuardProcess,
) -> None:
    head = (
        f"GET /events HTTP/1.1\r\nHost: guard\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n"
    ).encode()
    silent = []
    try:
        for _ in range(60):  # up to the cap; none of them ever reads
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", sse_guard.port))
            sock.sendall(head)
            silent.append(sock)
        with sse_guard.client(ADMIN_TOKEN) as ops:
            wait_until(
                lambda: sse_guard.metric("pretrade_guard_sse_subscribers") == 60,
                timeout=10,
                what="60 subscribers",
            )
            # One more is refused with the JSON error shape.
            refused = ops.get("/events")
            error = error_of(refused, 503)
            assert error["code"] == "TOO_MANY_SUBSCRIBERS"
            assert refused.headers["retry-after"] == "5"
            switch = {"scope": "account", "account": "alpha", "mode": "HALT", "actor": "t"}
            for i in range(100):
                engaged = ops.post("/admin/kill-switches", json={**switch, "reason": f"drill {i}"})
                assert engaged.status_code == 201, engaged.text
                released = ops.delete(
                    f"/admin/kill-switches/{engaged.json()['id']}",
                    params={"actor": "t", "reason": "done"},
                )
                assert released.status_code == 200, released.text
                decision = ops.get("/can-trade", params={"account": "alpha"})
                assert decision.status_code == 200, decision.text
    finally:
        for sock in silent:
            sock.close()
    # Their slots are freed once they hang up.
    wait_until(
        lambda: sse_guard.metric("pretrade_guard_sse_subscribers") == 0,
        timeout=15,
        what="subscribers gone after hang-up",
    )


# ------------------------------------------------------------------ storage errors


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_a_full_disk_on_engage_is_a_json_storage_error_not_a_500(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """The guard's files may not grow past 600 kB (RLIMIT_FSIZE, as a full disk would stop
    them): engaging switches until the database cannot grow any more."""
    config = guard_config({"alpha": account_entry(shared_simulator, HEALTHY)}, port=free_port())
    config["server"]["decision_log"] = "none"  # the log file is limited too
    guard = GuardProcess(
        config, tmp_path, command=["prlimit", "--fsize=600000", sys.executable, "-m", "app"]
    ).start()
    try:
        failed = None
        with guard.client(ADMIN_TOKEN) as ops:
            switch = {"scope": "global", "mode": "HALT", "actor": "t", "reason": "r" * 200}
            for _ in range(400):
                response = ops.post("/admin/kill-switches", json=switch)
                if response.status_code != 201:
                    failed = response
                    break
            assert failed is not None, "the database never filled up"
            error = error_of(failed, failed.status_code)
            assert (failed.status_code, error["code"]) in {
                (507, "STORAGE_FULL"),
                (503, "STORAGE_UNAVAILABLE"),
            }
            # The guard still answers.
            assert ops.get("/can-trade", params={"account": "alpha"}).status_code == 200
    finally:
        guard.stop()
