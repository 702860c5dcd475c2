"""``/events``: status changes as a server-sent-events stream (``read`` scope).

Bots follow it instead of polling ``/accounts``. Each message has ``id:``, ``event:`` (the
event type) and ``data:`` (the event JSON, one line). Idle streams get a comment line every
``sse_keepalive_s`` so proxies keep them open. A client that reconnects with
``Last-Event-ID`` first gets the events it missed, while they are still in the guard's
replay ring (same process only). A client too slow to keep up gets an ``overflow`` message
and the stream ends; it should reconnect (with ``Last-Event-ID``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from app.api.deps import ReadAuth, ServicesDep
from app.api.responses import error_body
from app.api.schemas import ErrorOut
from app.events.bus import EventBus, InvalidEventId, parse_event_id
from app.events.model import StampedEvent
from app.state.store import UnknownAccount

router = APIRouter(tags=["events"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "`Last-Event-ID` is not an event id of this guard "
        "(code `INVALID_LAST_EVENT_ID`).",
    },
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorOut, "description": "The token lacks the `read` scope."},
    404: {"model": ErrorOut, "description": "Unknown account."},
}
_OVERFLOW = (
    b"event: overflow\n"
    b'data: {"message": "this client fell behind and was dropped; reconnect with '
    b'Last-Event-ID"}\n\n'
)


def frame(event: StampedEvent) -> bytes:
    """One SSE message (the JSON body never contains a newline)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event.id.encode(),
        event.event.type.value.encode(),
        event.body,
    )


async def _stream(
    bus: EventBus, account: str | None, last_event_id: str | None, keepalive_s: float
) -> AsyncIterator[bytes]:
    # Subscribe and read the replay ring with no await in between: nothing is published in
    # that gap, so no event is missed and none is sent twice. Subscribing here rather than in
    # the handler means the subscription cannot outlive a response that never started.
    sub = bus.subscribe(account)
    try:
        missed = bus.replay_after(last_event_id, account)
        yield b"retry: 2000\n: connected\n\n"
        for event in missed:
            yield frame(event)
        while True:
            item = await sub.next(keepalive_s)
            if item is False:
                yield b": keep-alive\n\n"
            elif item is None:
                if sub.overflowed:
                    yield _OVERFLOW
                return
            else:
                yield frame(item)
    finally:
        bus.unsubscribe(sub)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A stream of status-change events (see the operator guide).",
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
    return StreamingResponse(
        _stream(services.events, account, last_event_id, services.sse_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
