"""The client against the real guard and the real simulator over loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pretrade_guard_client import (
    AsyncGuardClient,
    ClientReasonCode,
    GuardCall,
    GuardClient,
    GuardRequestError,
    GuardUnavailable,
    OnUnavailable,
    Order,
    OrderDenied,
    OrderSide,
    ReasonCode,
)

from tests.support.guard import BOT_TOKEN, READ_TOKEN, GuardProcess
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def bot(guard: GuardProcess) -> Iterator[GuardClient]:
    with GuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:
        yield client


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_allowed_and_denied_decisions_from_the_guard(bot: GuardClient) -> None:
    allowed = bot.can_trade("alpha", "BTCUSDT", OrderSide.BUY, Decimal("0.01"), Decimal(60000))
    assert allowed.allowed
    assert allowed.reasons == ()
    assert allowed.decision_id
    assert allowed.trading_status == "NORMAL"
    assert allowed.status_age_ms is not None

    restricted = bot.can_trade("bravo")
    assert not restricted.allowed
    assert ReasonCode.ACCOUNT_NOT_NORMAL in restricted.codes
    assert restricted.trading_status == "RESTRICTED"

    thin = bot.can_trade("charlie", "BTCUSDT", "BUY", "1", "60000")
    margin = next(r for r in thin.reasons if r.code is ReasonCode.INSUFFICIENT_MARGIN)
    assert margin.limit is not None
    assert margin.observed is not None
    assert Decimal(margin.observed) > Decimal(margin.limit)
    with pytest.raises(OrderDenied) as denied:
        thin.raise_for_denial()
    assert ReasonCode.INSUFFICIENT_MARGIN in denied.value.codes
    assert denied.value.decision.decision_id == thin.decision_id


def test_batch_answers_each_order_in_order(bot: GuardClient) -> None:
    orders = [
        Order("alpha", "BTCUSDT", "BUY", "0.01", "60000"),
        Order("delta"),
        Order("alpha", "btcusdt", "SELL", "0.1", reduce_only=True),
    ]
    decisions = bot.check_batch(orders)
    assert [d.allowed for d in decisions] == [True, False, True]
    assert ReasonCode.TRADING_DISABLED in decisions[1].codes
    assert decisions[2].symbol == "BTCUSDT"
    assert len({d.decision_id for d in decisions}) == 3


def test_request_errors_carry_the_guards_json_detail(guard: GuardProcess, bot: GuardClient) -> None:
    with pytest.raises(GuardRequestError) as unknown:
        bot.can_trade("nobody")
    assert (unknown.value.status_code, unknown.value.code) == (404, "UNKNOWN_ACCOUNT")

    with pytest.raises(GuardRequestError) as invalid:
        bot.can_trade("alpha", "BTCUSDT", "UP", "1")
    assert (invalid.value.status_code, invalid.value.code) == (422, "INVALID_REQUEST")
    assert [f["field"] for f in invalid.value.fields] == ["side"]

    with pytest.raises(GuardRequestError) as batch:
        bot.check_batch([Order("alpha"), Order("nobody")])
    assert (batch.value.status_code, batch.value.code) == (404, "UNKNOWN_ACCOUNT")

    with GuardClient(guard.base_url, "not-a-token") as stranger:
        with pytest.raises(GuardRequestError) as unauthorized:
            stranger.can_trade("alpha")
        assert unauthorized.value.status_code == 401
        assert "not-a-token" not in str(unauthorized.value)
    with GuardClient(guard.base_url, READ_TOKEN) as reader:
        with pytest.raises(GuardRequestError) as forbidden:
            reader.can_trade("alpha")
        assert forbidden.value.status_code == 403


def test_a_guard_that_does_not_answer_fails_closed(silent_port: int) -> None:
    calls: list[GuardCall] = []
    url = f"http://127.0.0.1:{silent_port}"
    with GuardClient(url, BOT_TOKEN, timeout=0.2, hooks=[calls.append]) as guard:
        with pytest.raises(GuardUnavailable, match="timed out"):
            guard.can_trade("alpha", "BTCUSDT", "BUY", "0.01", "60000")
        with pytest.raises(GuardUnavailable, match="timed out"):
            guard.check_batch([Order("alpha")], deadline=0.1)
    with GuardClient(url, BOT_TOKEN, timeout=0.2, on_unavailable=OnUnavailable.DENY) as guard:
        decision = guard.can_trade("alpha", "BTCUSDT", "BUY", "0.01", "60000")
    assert not decision.allowed
    assert decision.codes == (ClientReasonCode.GUARD_UNAVAILABLE,)
    assert [type(c.error) for c in calls] == [GuardUnavailable, GuardUnavailable]
    assert [c.endpoint for c in calls] == ["can-trade", "can-trade/batch"]


@pytest.fixture
def trickling_port() -> Iterator[int]:
    """A loopback HTTP server that sends a 200 header at once, then its body a byte at a
    time, slower than any deadline here, until the client hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not stop.wait(0.05):
                    conn.sendall(b" ")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def test_the_deadline_bounds_an_answer_that_trickles_in(trickling_port: int) -> None:
    # Each read gets a byte well within the 5 s timeout: only the deadline can end the call.
    with (
        GuardClient(f"http://127.0.0.1:{trickling_port}", BOT_TOKEN, timeout=5) as guard,
        pytest.raises(GuardUnavailable, match="deadline passed"),
    ):
        guard.can_trade("alpha", deadline=0.3)


def test_no_guard_listening_fails_closed() -> None:
    with (
        GuardClient(f"http://127.0.0.1:{free_port()}", BOT_TOKEN) as guard,
        pytest.raises(GuardUnavailable, match="could not be reached"),
    ):
        guard.can_trade("alpha")


def test_hooks_count_allowed_and_denied_across_calls(guard: GuardProcess) -> None:
    calls: list[GuardCall] = []
    with GuardClient(guard.base_url, BOT_TOKEN, timeout=5, hooks=[calls.append]) as client:
        client.can_trade("alpha")
        client.can_trade("bravo")
        client.check_batch([Order("alpha"), Order("delta"), Order("alpha", "ETHUSDT")])
    assert [(c.endpoint, c.orders, c.allowed, c.denied) for c in calls] == [
        ("can-trade", 1, 1, 0),
        ("can-trade", 1, 0, 1),
        ("can-trade/batch", 3, 2, 1),
    ]
    assert all(c.duration_s > 0 and c.error is None for c in calls)


async def test_async_client_against_the_guard(guard: GuardProcess, silent_port: int) -> None:
    async with AsyncGuardClient(guard.base_url, BOT_TOKEN, timeout=5) as client:
        allowed = await client.can_trade("alpha", "BTCUSDT", "BUY", "0.01", "60000")
        denied = await client.can_trade("bravo")
        batch = await client.check_batch([Order("alpha"), Order("delta")])
        with pytest.raises(GuardRequestError, match="UNKNOWN_ACCOUNT"):
            await client.can_trade("nobody")
    assert allowed.allowed
    assert ReasonCode.ACCOUNT_NOT_NORMAL in denied.codes
    assert [d.allowed for d in batch] == [True, False]

    url = f"http://127.0.0.1:{silent_port}"
    async with AsyncGuardClient(url, BOT_TOKEN, timeout=5) as silent:
        # The per-call deadline bounds the call, far below the client's 5 s timeout.
        with pytest.raises(GuardUnavailable, match="timed out"):
            await silent.can_trade("alpha", deadline=0.2)
    async with AsyncGuardClient(url, BOT_TOKEN, on_unavailable=OnUnavailable.DENY) as denying:
        (decision,) = await denying.check_batch([Order("alpha")], deadline=0.2)
    assert decision.client_side
    assert decision.codes == (ClientReasonCode.GUARD_UNAVAILABLE,)
