"""The HTTP server's own limits: a header deadline and a connection cap (uvicorn + httptools).

uvicorn times out idle keep-alive connections but not a client that connects and sends its
headers a byte at a time (slowloris): each such connection holds a file descriptor for as
long as the client likes, and at the descriptor limit every client gets a reset and the
pollers cannot open connections to the exchanges. ``header_deadline_protocol`` adds a
deadline for the headers of each request, counted from the connection (first request) or
from the request's first byte (the next ones on a keep-alive connection); past it the
guard answers ``408`` in the JSON error shape and closes. Bodies have their own deadline
(``app/api/body_gate.py``).

``connection_cap`` sizes uvicorn's ``limit_concurrency`` (above it uvicorn answers ``503``
in plain text, before the app runs) below the file-descriptor limit, keeping room for the
exchange connections and the guard's own files.
"""

from __future__ import annotations

import asyncio
import resource

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Connections the exchange pollers' HTTP client may open (``main.py`` sizes its pool so).
EXCHANGE_CONNECTIONS = 100
#: Descriptors for everything else: the listening socket, SQLite and its WAL, logs, webhooks.
OWN_FILES = 64
_TIMEOUT_BODY = orjson.dumps(
    {
        "error": {
            "code": "REQUEST_TIMEOUT",
            "message": "the request headers were not received in time (server.header_timeout_s)",
        }
    }
)
#: The event loop's clock counts whole milliseconds (libuv): a timer can fire that much early.
_CLOCK_RESOLUTION_S = 0.001
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def connection_cap(configured: int | None, open_files_limit: int | None = None) -> int:
    """Client connections to allow: ``configured``, never more than the descriptor limit
    leaves after the exchange connections and the guard's own files (at least 16)."""
    if open_files_limit is None:
        open_files_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = max(16, open_files_limit - EXCHANGE_CONNECTIONS - OWN_FILES)
    return room if configured is None else min(configured, room)


def header_deadline_protocol(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline on each request's headers.

    A request's headers are pending from the connection (first request) or from the request's
    first byte (the next ones) until they are complete. One timer per connection watches
    them, armed once and not per request: a timer armed and cancelled for every request cost
    ~3 % of a decision's CPU (a ``TimerHandle`` and a libuv timer each time). Each request only
    notes when its headers began; when the timer fires it answers ``408`` if the pending
    headers began ``header_timeout_s`` ago or earlier, re-arms itself for the rest if they
    began later (an earlier request finished in time), and lapses if none are pending (the
    next request's first byte arms it again). The deadline is the same to the loop clock's
    millisecond."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        #: Loop time the pending request's headers began; None: no headers pending.
        _headers_since: float | None = None
        _header_timer: asyncio.TimerHandle | None = None

        def _watch(self, delay: float) -> None:
            self._header_timer = self.loop.call_later(delay, self._headers_due)

        def _headers_due(self) -> None:
            self._header_timer = None
            since = self._headers_since
            if since is None or self.transport.is_closing():
                return
            left = since + header_timeout_s - self.loop.time()
            if left > _CLOCK_RESOLUTION_S:  # these headers began after the timer was armed
                self._watch(left)
                return
            self._headers_since = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._headers_since = self.loop.time()
            self._watch(header_timeout_s)

        def on_message_begin(self) -> None:
            HttpToolsProtocol.on_message_begin(self)
            if self._headers_since is None:  # not the connection's first request
                self._headers_since = self.loop.time()
                if self._header_timer is None:
                    self._watch(header_timeout_s)

        def on_headers_complete(self) -> None:
            self._headers_since = None
            HttpToolsProtocol.on_headers_complete(self)

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_since = None
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
