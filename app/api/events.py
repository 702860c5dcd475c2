"""``/events``: status changes as a server-sent-events stream (``read`` scope).

Bots follow it instead of polling ``/accounts``. Each message has ``id:``, ``event:`` (the
event type) and ``data:`` (the event JSON, one line). Idle streams get a comment line every
``sse_keepalive_s`` so proxies keep them open. A client that reconnects with
``Last-Event-ID`` first gets the events it missed, while they are still in the guard's
replay ring (same process only; in fleet mode, from the fleet's event stream on any
replica, with a ``gap`` message first when some of them are no longer there). A client too
slow to keep up gets an ``overflow`` message and the stream ends; it should reconnect (with
``Last-Event-ID``). One that stops reading is disconnected after
``events.sse_send_timeout_s``; clients are capped (``events.sse_max_subscribers``, 503
beyond).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import ReadAuth, ServicesDep
from app.api.responses import error_body
from app.api.schemas import ErrorOut
from app.api.strict import StrictRoute
from app.events.bus import (
    EventBus,
    InvalidEventId,
    Replay,
    Subscription,
    TooManySubscribers,
    parse_event_id,
)
from app.events.model import StampedEvent, parse_stream_id
from app.state.store import UnknownAccount

router = APIRouter(tags=["events"], route_class=StrictRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "`Last-Event-ID` is not an event id of this guard "
        "(code `INVALID_LAST_EVENT_ID`).",
    },
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorOut, "description": "The token lacks the `read` scope."},
    404: {"model": ErrorOut, "description": "Unknown account."},
    503: {
        "model": ErrorOut,
        "description": "`events.sse_max_subscribers` clients are connected "
        "(code `TOO_MANY_SUBSCRIBERS`; retry after `Retry-After` seconds).",
    },
}
_OVERFLOW = (
    b"event: overflow\n"
    b'data: {"message": "this client fell behind and was dropped; reconnect with '
    b'Last-Event-ID"}\n\n'
)


def gap_frame(notice: str, last_event_id: str) -> bytes:
    """The ``gap`` message: events after the client's ``Last-Event-ID`` are lost to it."""
    data = orjson.dumps({"message": notice, "last_event_id": last_event_id})
    return b"event: gap\ndata: %s\n\n" % data


def frame(event: StampedEvent) -> bytes:
    """One SSE message (the JSON body never contains a newline)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event.id.encode(),
        event.event.type.value.encode(),
        event.body,
    )


class EventStream(Response):
    """The ``/events`` stream as a plain ASGI response.

    Each wake-up sends everything the client missed in one write. A write the client does
    not take within ``send_timeout_s`` (it stopped reading) ends the stream: the
    subscription is dropped and counted, and the connection is closed (uvicorn logs that the
    response was not completed). A disconnect ends the subscription at once."""

    media_type = "text/event-stream"

    def __init__(
        self,
        bus: EventBus,
        account: str | None,
        last_event_id: str | None,
        keepalive_s: float,
        send_timeout_s: float,
        replay: Replay | None = None,
        replay_size: int = 0,
    ) -> None:
        self.status_code = 200
        self._replay = replay
        self._replay_size = replay_size
        self.background = None
        self._bus = bus
        self._account = account
        self._last_event_id = last_event_id
        self._keepalive_s = keepalive_s
        self._send_timeout_s = send_timeout_s
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bus = self._bus
        # Subscribe and read the replay ring with no await in between: nothing is published
        # in that gap, so no event is missed and none is sent twice.
        try:
            sub = bus.subscribe(self._account)
        except TooManySubscribers:
            await _too_many(bus)(scope, receive, send)
            return
        listener = asyncio.create_task(_end_on_disconnect(receive, sub))
        try:
            first = b"retry: 2000\n: connected\n\n"
            floor: tuple[int, int] | None = None
            if self._replay is None:
                missed = bus.replay_after(self._last_event_id, self._account)
            else:
                # Fleet: subscribed first, then read from the stream; live events up to the
                # newest replayed one are skipped (they were replayed), so none is missed
                # and none is sent twice.
                missed, notice = await self._fleet_replay()
                if notice is not None:
                    first += gap_frame(notice, (self._last_event_id or "").strip(" \t"))
                if missed:
                    floor = parse_stream_id(missed[-1].id)
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            first += b"".join(frame(e) for e in missed)
            if not await self._write(send, sub, first):
                return
            while True:
                batch = await sub.next_batch(self._keepalive_s)
                if batch is None:
                    if sub.overflowed:
                        await self._write(send, sub, _OVERFLOW)
                    break
                if batch is not False and floor is not None:
                    batch = [e for e in batch if _after(e, floor)]
                    if not batch:
                        continue
                chunk = b": keep-alive\n\n" if batch is False else b"".join(map(frame, batch))
                if not await self._write(send, sub, chunk):
                    return  # not completed: uvicorn closes the connection
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
            bus.unsubscribe(sub)

    async def _fleet_replay(self) -> tuple[list[StampedEvent], str | None]:
        last = (self._last_event_id or "").strip(" \t")
        if self._replay is None or not last:
            return [], None
        return await self._replay.replay(last, self._account, self._replay_size)

    async def _write(self, send: Send, sub: Subscription, body: bytes) -> bool:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except TimeoutError:
            self._bus.dropped(sub, "send_timeout")
            sub.end()
            return False
        return True


def _after(event: StampedEvent, floor: tuple[int, int]) -> bool:
    sid = parse_stream_id(event.id)
    return sid is None or sid > floor


async def _end_on_disconnect(receive: Receive, sub: Subscription) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            sub.end()
            return


def _too_many(bus: EventBus) -> Response:
    return error_body(
        503,
        "TOO_MANY_SUBSCRIBERS",
        "the /events subscriber limit (events.sse_max_subscribers) is reached; retry later",
        headers={"Retry-After": "5"},
    )


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A stream of status-change events (see the operator guide). "
            "In fleet mode event ids are the fleet's stream ids, `Last-Event-ID` resumes on "
            "any replica, and the stream begins with an `event: gap` message when events "
            "after it are no longer kept.",
        },
        **_ERRORS,
    },
    summary="Status-change events as server-sent events",
)
async def events(
    services: ServicesDep,
    _: ReadAuth,
    account: Annotated[
        str | None, Query(description="Only this account's events (and global ones).")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    if account is not None and services.store.get(account) is None:
        raise UnknownAccount(account)
    try:
        parse_event_id(last_event_id)
    except InvalidEventId as exc:
        return error_body(
            400,
            "INVALID_LAST_EVENT_ID",
            str(exc),
            fields=[{"field": "Last-Event-ID", "message": str(exc)}],
        )
    if services.events.full:
        services.metrics.sse_refused.inc()
        return _too_many(services.events)
    return EventStream(
        services.events,
        account,
        last_event_id,
        services.sse_keepalive_s,
        services.sse_send_timeout_s,
        services.event_replay,
        services.replay_size,
    )
