"""The gate every request body passes before the app reads it: who sends it, how big it is,
how long it takes.

Pure ASGI, in front of the fast paths and FastAPI (``GuardApp`` calls it first). For a
request that declares a body (``Content-Length`` above 0, or ``Transfer-Encoding``):

* without a known bearer token: ``401`` at once, **without reading the body** (the answer
  goes out before ``receive`` is called, so ``Expect: 100-continue`` gets no ``100 Continue``);
* with a ``Content-Length`` above ``max_body_bytes``: ``413`` at once, body unread;
* otherwise the body is read here, counting bytes (a chunked body above the limit: ``413``,
  the rest unread) under one deadline for the whole body (``body_timeout_s``: a client that
  drips it gets ``408``), and replayed to the app.

Every answer here has the JSON error shape and closes the connection (the unread body must
not be taken for the next request). Requests without a body pass untouched. The token check
is ``TokenAuth.authenticate`` (any scope: the route still checks its own), with the same
401 answer as the routes give.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import Message, Receive, Scope, Send

from app.api.security import AuthError, TokenAuth

#: Default body limit: a batch of the largest allowed size (1000 orders) with every field at
#: its longest and pretty-printed is about 400 KiB; 1 MiB leaves room for any formatting.
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_BODY_TIMEOUT_S = 10.0


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


class BodyGate:
    def __init__(
        self,
        auth: TokenAuth,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    ) -> None:
        self._auth = auth
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The ``receive`` the app should use (the body replayed), or None when this gate has
        answered the request itself. ``declares_body`` tells, without a coroutine, whether a
        request has anything to gate."""
        length, chunked = _declared(scope["headers"])
        if not chunked and not length:
            return receive  # no body: nothing to gate
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            self._auth.authenticate(authorization)
        except AuthError as exc:  # the same answer as the routes' own check
            await _answer(
                send,
                exc.status_code,
                _error(exc.code, exc.message),
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return None
        limit = self.max_body_bytes
        if length is not None and length > limit:
            await _answer(send, 413, _too_large(length, limit))
            return None
        received: list[Message] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    received.append(message)
                    if message["type"] != "http.request":
                        break
                    size += len(message.get("body", b""))
                    if size > limit:
                        await _answer(send, 413, _too_large(None, limit))
                        return None
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _answer(
                send,
                408,
                _error(
                    "REQUEST_TIMEOUT",
                    f"the request body was not received within {self.body_timeout_s:g} s",
                ),
            )
            return None
        return _replay(received, receive)


def _declared(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (None: absent or unreadable) and whether the body is
    chunked."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)  # httptools has checked it: ASCII digits
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


def declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request declares a body (``Content-Length`` above 0, or chunked): only
    those go through ``BodyGate.admit``."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def _too_large(length: int | None, limit: int) -> bytes:
    size = f"{length} bytes" if length is not None else "more than that"
    return _error(
        "BODY_TOO_LARGE",
        f"request body is too large: {size}; the limit is {limit} bytes (server.max_body_bytes)",
    )


async def _answer(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the messages already read, then reads on."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
