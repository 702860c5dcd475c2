"""Client limits: the connection cap leaves room for the pollers, and the default body limit
fits the largest valid batch."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.api.body_gate import DEFAULT_MAX_BODY_BYTES, BodyGate, declares_body
from app.api.schemas import BatchQuery
from app.api.security import TokenAuth
from app.config import ServerSettings
from app.http_server import EXCHANGE_CONNECTIONS, OWN_FILES, connection_cap


def test_the_connection_cap_stays_below_the_descriptor_limit_with_room_for_pollers() -> None:
    assert connection_cap(None, 1024) == 1024 - EXCHANGE_CONNECTIONS - OWN_FILES
    assert connection_cap(100_000, 1024) == 1024 - EXCHANGE_CONNECTIONS - OWN_FILES
    assert connection_cap(200, 1024) == 200
    assert connection_cap(None, 100) == 16  # never zero, even with a tiny limit


def test_the_largest_valid_batch_fits_the_default_body_limit() -> None:
    order = {
        "account": "a" * 64,
        "symbol": "S" * 40,
        "side": "SELL",
        "quantity": "9" * 20 + "." + "9" * 19,
        "price": "9" * 20 + "." + "9" * 19,
        "reduce_only": False,
    }
    batch = {"orders": [order] * 1000}
    BatchQuery.model_validate(batch)  # valid, at every field's longest
    body = json.dumps(batch, indent=2).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES
    assert ServerSettings().max_body_bytes == DEFAULT_MAX_BODY_BYTES


#: Headers, and whether ``GuardApp`` sends the request through ``BodyGate.admit``.
HEADER_SETS: list[tuple[list[tuple[bytes, bytes]], bool]] = [
    ([], False),
    ([(b"host", b"x"), (b"authorization", b"Bearer t")], False),
    ([(b"content-length", b"0")], False),
    ([(b"content-length", b"00")], True),  # no body, but not spelled "0": the gate decides
    ([(b"content-length", b"12")], True),
    ([(b"transfer-encoding", b"chunked")], True),
    ([(b"content-length", b"0"), (b"transfer-encoding", b"chunked")], True),
]


@pytest.mark.parametrize(("headers", "gated"), HEADER_SETS)
def test_a_request_the_app_skips_the_gate_for_is_one_the_gate_would_pass_untouched(
    headers: list[tuple[bytes, bytes]], gated: bool
) -> None:
    """``GuardApp`` calls ``BodyGate.admit`` only when ``declares_body`` says so: whenever it
    says no, the gate itself would have passed the request on unread and unanswered."""
    assert declares_body(headers) is gated
    gate = BodyGate(TokenAuth([("bot", "a-long-enough-token", ["decide"])]))
    sent: list[object] = []
    read: list[object] = []

    async def receive() -> dict[str, object]:
        read.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        sent.append(message)

    admitted = asyncio.run(gate.admit({"type": "http", "headers": headers}, receive, send))
    if not gated:
        assert admitted is receive
        assert sent == []
        assert read == []
