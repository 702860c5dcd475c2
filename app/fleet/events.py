"""Status-change events once per fleet: one Redis Stream, one emitter per change.

**Who emits.** Each change is written to the fleet's event stream (``ns:events:stream``,
trimmed to about ``fleet.events_maxlen`` entries) by exactly one process:

* status changes (``diff``) by the refresher holding the account's lease, in the same fenced
  script that publishes the state (``feed.StatePublisher``): a holder that lost its lease
  can publish neither, and the next holder diffs against the last published state;
* kill-switch changes by the replica that wrote them, in the same script as the change
  (``controls``): an expiry ended by several replicas at once is ended, and announced, once;
* data turning stale or fresh (time-driven) by the first api process that sees it
  (``FleetEvents``): a compare-and-set per account on the announced freshness, refused to a
  replica whose data is older than what the fleet holds (a replica cut off from the feed
  does not announce its own staleness as the fleet's).

The event id is the stream entry id (``<ms>-<seq>``), the same on every replica, so a
``Last-Event-ID`` from one replica resumes on any other (``EventTail.replay``) and receivers
de-duplicate webhook deliveries fleet-wide. The stream stores the event JSON without its id
(``tail``); readers splice the id in, so every replica sends the same bytes.

**Redis down.** Nothing here is awaited by a decision: publication is queued (a bounded
outbox, oldest dropped and counted) and written when Redis answers again; status changes
wait with the state they came with (``feed``). Streams and webhooks get them then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson
import structlog
from redis.asyncio import Redis

from app.domain import AccountState, Policy
from app.events.bus import EventBus
from app.events.diff import diff
from app.events.model import Event, EventType, StampedEvent, StreamId, parse_stream_id
from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.model import Keys
from app.metrics import Metrics
from app.state.store import StateStore

log = structlog.get_logger("app.events")


# KEYS: freshness hash of the account, event stream, latest-state hash of the account.
# ARGV: 'fresh' | 'stale', basis (newest receive wall ms this replica has), maxlen, tail.
# Announces only a change, only from a view at least as new as the announced one, and
# "stale" only from a replica holding the newest data the fleet published.
_FRESHNESS = """
local cur = redis.call('HMGET', KEYS[1], 's', 'b')
local basis = tonumber(ARGV[2])
if cur[1] == ARGV[1] then return 0 end
if cur[2] and tonumber(cur[2]) > basis then return 0 end
if ARGV[1] == 'stale' then
  local newest = tonumber(redis.call('HGET', KEYS[3], 'rw') or '0')
  if basis < newest then return 0 end
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'b', ARGV[2])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4])
"""

# KEYS: event stream; ARGV: last id seen, at most this many entries.
# Returns {exists, entries newest first (at most ARGV[2] + 1), lost}: lost is 1 when entries
# after the id may be gone: trimmed (every entry before the oldest one kept was) or deleted.
_REPLAY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}, 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
local function id(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function after(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2]) end
local seen = id(ARGV[1])
local lost = 0
if after(id(f['max-deleted-entry-id']), seen) then lost = 1 end
if tonumber(f['length']) == 0 then
  if after(id(f['last-generated-id']), seen) then lost = 1 end
elseif after(id(f['recorded-first-entry-id']), seen) then
  lost = 1
end
if after(seen, id(f['last-generated-id'])) then lost = 2 end
local rows = redis.call('XREVRANGE', KEYS[1], '+', '(' .. ARGV[1], 'COUNT', ARGV[2] + 1)
return {1, rows, lost}
"""


def format_stream_id(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def event_tail(event: Event, time_ms: int) -> bytes:
    """The event JSON without its id (``StampedEvent.stamp``'s shape, same key order)."""
    payload: dict[str, Any] = {"type": event.type.value, "account": event.account}
    if event.symbol is not None:
        payload["symbol"] = event.symbol
    payload["time_ms"] = time_ms
    payload["data"] = dict(event.data)
    return orjson.dumps(payload)


def stamped_from_entry(entry_id: bytes | str, fields: dict[Any, Any]) -> StampedEvent:
    """A stream entry as the event every channel sends; ``ValueError`` when unreadable."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    if parse_stream_id(eid) is None:
        raise ValueError("not a stream id")
    tail = fields.get(b"e", fields.get("e"))
    if isinstance(tail, str):
        tail = tail.encode()
    if not isinstance(tail, bytes) or not tail.startswith(b"{"):
        raise ValueError("event entry without its JSON")
    try:
        raw = orjson.loads(tail)
    except orjson.JSONDecodeError:
        raise ValueError("event entry is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("event entry is not an object")
    account, symbol, time_ms, data = (
        raw.get("account"),
        raw.get("symbol"),
        raw.get("time_ms"),
        raw.get("data"),
    )
    if not (account is None or isinstance(account, str)) or not (
        symbol is None or isinstance(symbol, str)
    ):
        raise ValueError("event entry: account and symbol must be strings")
    if type(time_ms) is not int or not isinstance(data, dict):
        raise ValueError("event entry lacks time_ms or data")
    try:
        kind = EventType(str(raw.get("type")))
    except ValueError:
        raise ValueError("event entry of an unknown type") from None
    event = Event(kind, account, symbol, data)
    body = b'{"id":"' + eid.encode() + b'",' + tail[1:]
    return StampedEvent(eid, time_ms, event, body)


def entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """Stream entries from XREAD/XRANGE/XAUTOCLAIM replies (RESP2 lists or RESP3 maps)."""
    rows = []
    for entry in reply or ():
        if entry is None or entry[1] is None:
            continue
        entry_id, fields = entry[0], entry[1]
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        rows.append((entry_id, fields))
    return rows


def streams(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries of an XREAD/XREADGROUP reply on one stream."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[Any, dict[Any, Any]]] = []
    for _name, rows in pairs:
        if rows and isinstance(rows[0], list) and rows[0] and isinstance(rows[0][0], list | tuple):
            rows = rows[0]  # redis-py's RESP3 shape nests the list once more
        out.extend(entries(rows))
    return out


class Announcer:
    """What the emitting process does with an event it wrote: a log line and the count."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._outcomes = {
            o: metrics.fleet_events.labels(o)
            for o in ("published", "duplicate", "fenced", "dropped")
        }

    def published(self, event: Event, event_id: str) -> None:
        self._metrics.events.labels(event.type.value).inc()
        self._outcomes["published"].inc()
        log.info(
            "status event",
            event_id=event_id,
            event_type=event.type.value,
            account=event.account,
            symbol=event.symbol,
            data=dict(event.data),
        )

    def count(self, outcome: Literal["duplicate", "fenced", "dropped"], n: int = 1) -> None:
        if n > 0:
            self._outcomes[outcome].inc(n)


def basis_ms(state: AccountState | None) -> int:
    """The newest receive wall time (ms) of an account's data in one process's store."""
    if state is None:
        return 0
    walls = [p.received_wall_ms for p in (state.status, state.snapshot) if p is not None]
    return max(walls, default=0)


class StateChanges:
    """Refresher side: a listener on the refresher's own store that finds the status-change
    events between two states (``diff``) and queues them with the state's publication.

    ``quiet(account)`` suppresses detection while a new lease holder loads the last
    published state into its store: that is where the previous holder left off, not a
    change."""

    def __init__(
        self,
        queue: Callable[[str, list[Event], int], None],
        policy_for: Callable[[str], Policy],
        *,
        clock: Callable[[], int],
    ) -> None:
        self._queue = queue
        self._policy_for = policy_for
        self._clock = clock
        self._quiet: set[str] = set()

    @contextlib.contextmanager
    def quiet(self, account: str) -> Iterator[None]:
        self._quiet.add(account)
        try:
            yield
        finally:
            self._quiet.discard(account)

    def __call__(self, old: AccountState, new: AccountState) -> None:
        if new.account in self._quiet:
            return
        # A store listener runs inside the poller's success path: never raise out of it.
        try:
            fraction = self._policy_for(new.account).quant_warning_fraction
            self._queue(new.account, diff(old, new, warning_fraction=fraction), self._clock())
        except Exception:
            log.exception("status event detection failed", account=new.account)


class FleetEvents:
    """The time-driven events of an api process (``Watcher``'s publisher in fleet mode).

    ``publish`` never waits: it queues the event in a bounded outbox that ``run`` writes to
    Redis, retrying while Redis is unreachable (the oldest queued event is dropped, and
    counted, when the outbox is full)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        announcer: Announcer,
        store: StateStore,
        *,
        maxlen: int,
        outbox_size: int,
        clock: Callable[[], int],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._link = link
        self._announcer = announcer
        self._store = store
        self._maxlen = maxlen
        self._clock = clock
        self._freshness = redis.register_script(_FRESHNESS)
        self._outbox: deque[tuple[Event, bytes, int]] = deque(maxlen=outbox_size)
        self._depth = metrics.fleet_events_outbox.labels(link.role)
        self._depth.set(0)
        self._wake = asyncio.Event()

    def publish(self, event: Event) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self._announcer.count("dropped")
            log.warning("fleet event outbox full; oldest event dropped")
        basis = basis_ms(self._store.get(event.account)) if event.account else 0
        self._outbox.append((event, event_tail(event, self._clock()), basis))
        self._depth.set(len(self._outbox))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._outbox)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                event, tail, basis = self._outbox[0]
                try:
                    await self._write(event, tail, basis)
                except REDIS_ERRORS as exc:
                    self._link.error("events", exc)
                    await asyncio.sleep(0.5)
                    continue
                except Exception:  # a bug: drop this event (counted), keep the others
                    log.exception("fleet event not written", event_type=event.type.value)
                    self._announcer.count("dropped")
                    self._outbox.popleft()
                    continue
                self._link.ok()
                if self._outbox and self._outbox[0][1] is tail:
                    self._outbox.popleft()
                self._depth.set(len(self._outbox))

    async def _write(self, event: Event, tail: bytes, basis: int) -> None:
        k = self._keys
        if event.type in (EventType.DATA_STALE, EventType.DATA_FRESH) and event.account:
            state = "fresh" if event.type is EventType.DATA_FRESH else "stale"
            keys = [k.freshness(event.account), k.events_stream, k.state(event.account)]
            result = await self._freshness(keys=keys, args=[state, basis, self._maxlen, tail])
            if result in (0, b"0"):
                self._announcer.count("duplicate")  # another replica announced it
                return
            event_id = result
        else:  # not emitted by api processes today; written as is
            event_id = await self._redis.xadd(
                k.events_stream, {"e": tail}, maxlen=self._maxlen, approximate=True
            )
        self._announcer.published(event, _text(event_id))


class EventTail:
    """An api process's copy of the fleet's event stream: follows it with ``XREAD`` and
    hands each event to the local bus (the ``/events`` streams); answers replays.

    A gap while following (the stream trimmed past this process's position, e.g. after a
    long Redis outage) ends every open ``/events`` stream with the ``overflow`` notice, as
    for a client that fell behind: clients reconnect with ``Last-Event-ID`` and get a
    ``gap`` notice there."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        bus: EventBus,
        *,
        block_s: float,
        batch: int = 500,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._link = link
        self._bus = bus
        self._block_ms = max(10, round(block_s * 1000))
        self._batch = batch
        self._replay = redis.register_script(_REPLAY)
        self._position: StreamId | None = None
        self.invalid = 0

    async def run(self) -> None:
        failed = False
        while True:
            try:
                await self._follow(check_gap=failed)
            except REDIS_ERRORS as exc:
                self._link.error("events-tail", exc)
                failed = True
                await asyncio.sleep(0.5)
            except Exception:  # the loop boundary: /events must outlive a bug
                log.exception("fleet event stream follower failed; restarting it")
                failed = True
                await asyncio.sleep(1.0)

    async def _follow(self, *, check_gap: bool) -> None:
        stream = self._keys.events_stream
        if self._position is None:
            newest = await self._redis.xrevrange(stream, count=1)
            found = parse_stream_id(newest[0][0]) if newest else None
            self._position = found or (0, 0)
        elif check_gap:
            await self._check_gap()
        while True:
            reply = await self._redis.xread(
                {stream: format_stream_id(self._position)},
                count=self._batch,
                block=self._block_ms,
            )
            self._link.ok()
            rows = streams(reply)
            for entry_id, fields in rows:
                sid = parse_stream_id(entry_id)
                if sid is None:
                    continue
                self._position = sid
                try:
                    stamped = stamped_from_entry(entry_id, fields)
                except ValueError as exc:
                    self.invalid += 1
                    log.error("unreadable fleet event", event_id=_text(entry_id), error=str(exc))
                    continue
                self._bus.deliver(stamped)
            if len(rows) >= self._batch:
                await self._check_gap()

    async def _check_gap(self) -> None:
        if self._position is None:
            return
        exists, _rows, lost = await self._replay(
            keys=[self._keys.events_stream], args=[format_stream_id(self._position), 0]
        )
        if int(exists) and int(lost) == 1:
            log.warning(
                "fleet events trimmed before this replica read them; open /events streams end",
                position=format_stream_id(self._position),
            )
            self._bus.lose_all()

    async def replay(
        self, last_event_id: str, account: str | None, limit: int
    ) -> tuple[list[StampedEvent], str | None]:
        """Events after ``last_event_id`` (at most ``limit``, the newest), and a gap notice
        (None when nothing was lost). Raises the Redis error when unreachable."""
        after = parse_stream_id(last_event_id)
        if after is None:
            return [], (
                f"Last-Event-ID {last_event_id!r} is not an event id of this fleet (ids are "
                "<ms>-<seq> stream ids); nothing replayed: resynchronise with GET /accounts"
            )
        try:
            exists, rows, lost = await self._replay(
                keys=[self._keys.events_stream], args=[format_stream_id(after), max(0, limit)]
            )
        except REDIS_ERRORS as exc:
            self._link.error("events-replay", exc)
            return [], (
                f"the fleet's event stream (Redis) is unreachable: events after "
                f"{last_event_id} cannot be replayed now; live events follow when it is back, "
                "resynchronise with GET /accounts"
            )
        self._link.ok()
        if not int(exists):
            return [], None
        found = entries(rows)
        gap: str | None = None
        if int(lost) == 2:
            gap = "is newer than any event of this fleet's stream"
        elif int(lost) == 1:
            gap = "is older than the events kept (the stream is trimmed to fleet.events_maxlen)"
        elif len(found) > limit:
            gap = f"was followed by more events than events.replay_size ({limit})"
        found = found[:limit]
        out: list[StampedEvent] = []
        for entry_id, fields in reversed(found):
            try:
                stamped = stamped_from_entry(entry_id, fields)
            except ValueError:
                continue
            if account is None or stamped.event.concerns(account):
                out.append(stamped)
        notice = (
            None
            if gap is None
            else (
                f"Last-Event-ID {last_event_id} {gap}: some events are lost to this stream; "
                "resynchronise with GET /accounts"
            )
        )
        return out, notice


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
