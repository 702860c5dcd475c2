"""The header deadline (``app/http_server.py``): one timer per connection, exact per request.

uvicorn's own protocol runs on a real event loop with an in-memory transport; the deadline
is short, and every wait is "until it happens" (bounded), never a duration asserted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from app.http_server import header_deadline_protocol

TIMEOUT_S = 0.3
REQUEST = b"GET / HTTP/1.1\r\nHost: guard\r\n\r\n"


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connect() -> tuple[Any, _Transport]:
    config = uvicorn.Config(
        _ok,
        http=header_deadline_protocol(TIMEOUT_S),
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=3600,
    )
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}
    )
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _until(check: Any, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not seen: {what}")


def _answers(transport: _Transport) -> int:
    return transport.written.count(b"HTTP/1.1 200")


def test_headers_never_sent_get_408_and_the_connection_closes() -> None:
    async def scenario() -> None:
        _protocol, transport = _connect()
        await _until(lambda: transport.closed, "the connection closed")
        assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b'"code":"REQUEST_TIMEOUT"' in transport.written

    asyncio.run(scenario())


def test_an_idle_keep_alive_connection_is_not_cut_by_the_header_deadline() -> None:
    async def scenario() -> None:
        protocol, transport = _connect()
        protocol.data_received(REQUEST)
        await _until(lambda: _answers(transport) == 1, "the answer")
        # The timer armed at the connection lapses: no headers are pending.
        await _until(lambda: protocol._header_timer is None, "the timer lapsed")
        assert not transport.closed
        # The next request arms it again and is answered.
        protocol.data_received(REQUEST)
        await _until(lambda: _answers(transport) == 2, "the second answer")
        assert not transport.closed
        protocol.connection_lost(None)

    asyncio.run(scenario())


def test_a_request_begun_after_the_timer_was_armed_gets_its_whole_deadline() -> None:
    async def scenario() -> None:
        protocol, transport = _connect()
        protocol.data_received(REQUEST)
        await _until(lambda: _answers(transport) == 1, "the answer")
        protocol.data_received(b"GET / HTTP/1.1\r\nHo")  # the next request's first bytes
        begun = protocol._headers_since
        assert begun is not None
        # The timer armed at the connection fires (here: at once) before this request's
        # deadline: it re-arms itself instead of cutting the request.
        timer = protocol._header_timer
        assert timer is not None
        timer.cancel()
        protocol._headers_due()
        assert not transport.closed
        assert protocol._header_timer is not None
        # Completed in time: answered, nothing pending, the timer lapses when it fires.
        protocol.data_received(b"st: guard\r\n\r\n")
        await _until(lambda: _answers(transport) == 2, "the second answer")
        assert protocol._headers_since is None
        await _until(lambda: protocol._header_timer is None, "the timer lapsed")
        assert not transport.closed
        # Begun and never completed: 408 once its own deadline has passed.
        protocol.data_received(b"GET / HTTP/1.1\r\n")
        await _until(lambda: transport.closed, "the connection closed")
        assert transport.written.count(b"HTTP/1.1 408") == 1

    asyncio.run(scenario())


def test_the_first_request_is_timed_from_the_connection() -> None:
    async def scenario() -> None:
        protocol, transport = _connect()
        connected = protocol._headers_since
        protocol.data_received(b"GET / HTTP/1.1\r\n")  # the first bytes, later
        assert protocol._headers_since == connected
        await _until(lambda: transport.closed, "the connection closed")
        assert transport.written.startswith(b"HTTP/1.1 408")

    asyncio.run(scenario())
