"""Refresh results through Redis: fenced publication, and every api process applying them.

Two kinds of item travel this way: accounts (status, snapshot, errors) and exchange hosts'
market rules and mark prices (item ``market:<host>``, leased like an account, so one
refresher polls each host fleet-wide and api processes never poll the exchange).

Publication (refresher side): every change of the refresher's own stores (a status, a
snapshot, a failure, new market rules or mark prices) is written by one script that refuses
it unless the writer's fencing token is still the item's latest and the (fence, sequence)
is newer than what is stored; it then replaces the item's latest-state hash
(``state:{item}``: the whole state, never a part) and appends it to the fan-out stream
(trimmed to about ``maxlen`` entries).

Application (api side): ``StateFeed`` tails the stream with ``XREAD``; at start, after any
error, and every ``resync_s`` it re-reads every account's latest-state hash, so a replica
that missed entries (a reconnect, a trimmed stream) recovers from whole stored states. An
entry not newer than what was applied (by fence, then sequence) is dropped. Ages come from
the wall time each part was received from the exchange, carried with it, so every replica
reports the same age; a replica whose feed stops sees the ages grow into ``STALE_DATA``
(and, for market data, ``MARKET_RULES_UNAVAILABLE``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis

from app.domain import AccountState, Instant, Observed
from app.events.model import Event
from app.fleet.codec import (
    Part,
    PartMemo,
    PublishedMarket,
    PublishedState,
    decode_market,
    decode_state,
    encode_market,
    encode_state,
)
from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.events import Announcer, basis_ms, event_tail
from app.fleet.model import Keys
from app.markets.store import MarketStore, MarketView
from app.metrics import Metrics
from app.state.store import StateStore

#: Lease and feed item of an exchange host's market data (account names have no colon).
MARKET_PREFIX = "market:"


def market_item(host: str) -> str:
    return MARKET_PREFIX + host


log = structlog.get_logger("app.fleet")

# KEYS: fence counter, state hash, stream, event stream; ARGV: fence, seq, payload, maxlen,
# account, newest receive wall ms, event stream maxlen, then the events' JSON (no id).
# Returns {1, event ids...}, {0} (not newer) or {-1} (fenced out).
_PUBLISH = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local fence = tonumber(ARGV[1])
local seq = tonumber(ARGV[2])
if fence < cur then return {-1} end
local sf = tonumber(redis.call('HGET', KEYS[2], 'fence') or '0')
local ss = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if fence < sf or (fence == sf and seq <= ss) then return {0} end
redis.call('HSET', KEYS[2], 'fence', ARGV[1], 'seq', ARGV[2], 'payload', ARGV[3], 'rw', ARGV[6])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*',
           'a', ARGV[5], 'f', ARGV[1], 's', ARGV[2], 'p', ARGV[3])
local ids = {1}
for i = 8, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'e', ARGV[i])
end
return ids
"""
#: Status-change events kept per account while they cannot be published (oldest dropped).
_PENDING_EVENTS = 64


#: Stream entries one XREAD returns at most.
_READ_COUNT = 500
#: After a read that returned entries, the feed waits this long before the next one, so one
#: XREAD gathers what was published meanwhile: with 100 accounts (~70 states/s) about 20
#: round trips a second instead of one per state (redis-py's per-command cost was then the
#: largest part of applying the feed). It adds at most this much to the publish-to-apply lag;
#: the ages answers report come from the exchange receive time, carried with the data.
GATHER_S = 0.05


def wall_now_ms() -> int:
    return time.time_ns() // 1_000_000


def published(state: AccountState, now_ms: int) -> PublishedState:
    """What a refresher publishes of its store's state."""
    status = state.status
    snapshot = state.snapshot
    return PublishedState(
        account=state.account,
        status=None if status is None else Part(status.value, status.received_wall_ms),
        snapshot=None if snapshot is None else Part(snapshot.value, snapshot.received_wall_ms),
        last_error=state.last_error,
        last_error_kind=state.last_error_kind,
        consecutive_failures=state.consecutive_failures,
        published_wall_ms=now_ms,
        status_error=state.status_error,
        snapshot_error=state.snapshot_error,
    )


def published_market(view: MarketView, now_ms: int) -> PublishedMarket:
    """What a refresher publishes of its host's market view."""
    rules, marks = view.rules, view.marks
    return PublishedMarket(
        host=view.host,
        rules=None if rules is None else Part(rules.value, rules.received_wall_ms),
        marks=None if marks is None else Part(marks.value, marks.received_wall_ms),
        rules_error=view.rules_error,
        published_wall_ms=now_ms,
        marks_error=view.marks_error,
    )


def _observed(part: Part[Any] | None, now: Instant) -> Observed[Any] | None:
    """A published part with its monotonic receive time derived from its wall time, so its
    age here is its age since the exchange answered (not since it reached this process)."""
    if part is None:
        return None
    age_s = max(0, now.wall_ms - part.received_wall_ms) / 1000
    return Observed(part.value, now.mono - age_s, part.received_wall_ms)


def apply_market(markets: MarketStore, market: PublishedMarket, now: Instant) -> MarketView:
    """Put published market data into ``markets``: each part only if newer (receive time)."""
    return markets.put_observed(
        market.host,
        _observed(market.rules, now),
        _observed(market.marks, now),
        rules_error=market.rules_error,
        marks_error=market.marks_error,
    )


def apply_published(store: StateStore, state: PublishedState, now: Instant) -> AccountState:
    """Put a published state into ``store``: each part replaced only by a newer one (by its
    receive wall time), with its monotonic receive time derived from that wall time."""
    current = store.get(state.account)
    if current is None:
        raise KeyError(state.account)

    def observed(part: Part[Any] | None, mine: Observed[Any] | None) -> Observed[Any] | None:
        if part is None:
            return mine
        if mine is not None and mine.received_wall_ms >= part.received_wall_ms:
            return mine
        return _observed(part, now)

    return store.put_all(
        state.account,
        status=observed(state.status, current.status),
        snapshot=observed(state.snapshot, current.snapshot),
        last_error=state.last_error,
        last_error_kind=state.last_error_kind,
        consecutive_failures=state.consecutive_failures,
        status_error=state.status_error,
        snapshot_error=state.snapshot_error,
    )


class StatePublisher:
    """Publishes every change of the refresher's stores, fenced by its lease's token.

    Store listeners mark the item dirty (cheap, never raise); one task publishes the latest
    state of each dirty item, so a slow Redis coalesces updates instead of queueing them
    (bounded by the number of accounts and hosts).

    The status-change events found between an account's states (``queue_events``) go into
    the fleet's event stream in the same script, so only the fenced holder announces them;
    they wait with the state while Redis is unreachable (at most ``_PENDING_EVENTS`` per
    account), and are dropped (counted ``fenced``) when the lease is lost: the next holder
    starts from the last published state and announces what it finds changed."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        store: StateStore,
        fence: Callable[[str], int | None],
        *,
        maxlen: int,
        markets: MarketStore | None = None,
        announcer: Announcer | None = None,
        events_maxlen: int = 10_000,
    ) -> None:
        self._announcer = announcer or Announcer(metrics)
        self._events_maxlen = events_maxlen
        #: Events found per account, with their JSON (no id), not yet published.
        self._events: dict[str, list[tuple[Event, bytes]]] = {}
        self._keys = keys
        self._link = link
        self._metrics = metrics
        self._store = store
        self._markets = markets
        #: Per host, a count of its market view's changes (the publication sequence).
        self._market_seq: dict[str, int] = {}
        self._fence = fence
        self._maxlen = maxlen
        self._script = redis.register_script(_PUBLISH)
        self._dirty: dict[str, None] = {}
        self._wake = asyncio.Event()
        self._outcomes = {o: metrics.fleet_published.labels(o) for o in ("ok", "fenced", "error")}

    def __call__(self, _old: AccountState, new: AccountState) -> None:
        self._dirty[new.account] = None
        self._wake.set()

    def queue_events(self, account: str, events: list[Event], time_ms: int) -> None:
        """Announce ``events`` with the account's next publication (never waits)."""
        if not events:
            return
        pending = self._events.setdefault(account, [])
        pending.extend((event, event_tail(event, time_ms)) for event in events)
        if len(pending) > _PENDING_EVENTS:
            self._announcer.count("dropped", len(pending) - _PENDING_EVENTS)
            del pending[: len(pending) - _PENDING_EVENTS]

    def drop_events(self, account: str) -> None:
        """The lease is gone: what was not published is the next holder's to find."""
        self._announcer.count("fenced", len(self._events.pop(account, ())))

    def market_changed(self, view: MarketView) -> None:
        """``MarketStore`` listener."""
        self._market_seq[view.host] = self._market_seq.get(view.host, 0) + 1
        self._dirty[market_item(view.host)] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                account = next(iter(self._dirty))
                del self._dirty[account]
                try:
                    await self.publish(account)
                except REDIS_ERRORS as exc:
                    self._outcomes["error"].inc()
                    self._link.error("publish", exc)
                    self._dirty[account] = None
                    await asyncio.sleep(0.2)

    def _latest(self, item: str) -> tuple[int, bytes, int] | None:
        """The item's (sequence, payload, newest receive wall ms) to publish, or ``None``."""
        if item.startswith(MARKET_PREFIX):
            host = item.removeprefix(MARKET_PREFIX)
            view = None if self._markets is None else self._markets.view(host)
            if view is None or host not in self._market_seq:
                return None
            payload = encode_market(published_market(view, wall_now_ms()))
            return self._market_seq[host], payload, 0
        state = self._store.get(item)
        if state is None:
            return None
        return state.version, encode_state(published(state, wall_now_ms())), basis_ms(state)

    async def publish(self, account: str) -> bool:
        """Publish an item (an account, or ``market:<host>``) if its lease is held, with the
        status-change events found since its last publication."""
        fence = self._fence(account)
        latest = self._latest(account)
        if fence is None or latest is None:
            self.drop_events(account)
            return False  # not (or no longer) ours to publish
        seq, payload, basis = latest
        k = self._keys
        events = self._events.pop(account, [])
        try:
            reply = await self._script(
                keys=[k.fence(account), k.state(account), k.state_stream, k.events_stream],
                args=[
                    fence,
                    seq,
                    payload,
                    self._maxlen,
                    account,
                    basis,
                    self._events_maxlen,
                    *(tail for _event, tail in events),
                ],
            )
        except BaseException:
            if events:  # not written: they go out with the next publication
                self._events[account] = events + self._events.get(account, [])
            raise
        self._link.ok()
        result = int(reply[0])
        self._outcomes["ok" if result == 1 else "fenced"].inc()
        if result == 1:
            for (event, _tail), event_id in zip(events, reply[1:], strict=False):
                self._announcer.published(event, _text(event_id))
        elif result < 0:
            self._announcer.count("fenced", len(events))
        # result 0: this state (and its events) was written already (a retried reply).
        return result == 1


class StateFeed:
    """Applies every published state to this process's store."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        store: StateStore,
        accounts: Sequence[str],
        *,
        resync_s: float,
        block_s: float = 1.0,
        gather_s: float = GATHER_S,
        markets: MarketStore | None = None,
        hosts: Sequence[str] = (),
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._link = link
        self._metrics = metrics
        self._store = store
        self._markets = markets
        self._hosts = {market_item(host): host for host in hosts} if markets is not None else {}
        #: Every item read on a resync: the accounts, then the market hosts.
        self._accounts = list(accounts) + list(self._hosts)
        self.resync_s = resync_s
        self._block_ms = max(1, round(min(block_s, resync_s) * 1000))
        self._gather_s = gather_s
        #: (fence, seq) last applied per account.
        self._seen: dict[str, tuple[int, int]] = {}
        #: Per item, the parts last decoded (an unchanged part is not decoded again).
        self._memo: dict[str, PartMemo] = {}
        self.synced = False
        self._lag = metrics.fleet_apply_lag
        self._outcomes = {o: metrics.fleet_applied.labels(o) for o in ("ok", "old", "invalid")}

    def markets_missing(self) -> list[str]:
        """Hosts whose market rules this process has never received (orders needing them
        deny with ``MARKET_RULES_UNAVAILABLE`` until they come)."""
        if self._markets is None:
            return []
        missing = []
        for host in self._hosts.values():
            view = self._markets.view(host)
            if view is None or view.rules is None:
                missing.append(host)
        return missing

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except REDIS_ERRORS as exc:
                self._link.error("feed", exc)
                await asyncio.sleep(0.2)

    async def _follow(self) -> None:
        last_id = await self.resync()
        next_resync = time.monotonic() + self.resync_s
        stream = self._keys.state_stream
        while True:
            reply = await self._redis.xread(
                {stream: last_id}, count=_READ_COUNT, block=self._block_ms
            )
            self._link.ok()
            read = 0
            for _name, entries in _streams(reply):
                read += len(entries)
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._entry(fields)
            if 0 < read < _READ_COUNT and self._gather_s > 0:
                await asyncio.sleep(self._gather_s)
            if time.monotonic() >= next_resync:
                await self._read_all()
                next_resync = time.monotonic() + self.resync_s

    async def resync(self) -> Any:
        """Every account's stored latest state; returns the stream id to follow from (read
        first, so nothing published meanwhile is skipped)."""
        newest = await self._redis.xrevrange(self._keys.state_stream, count=1)
        last_id: Any = newest[0][0] if newest else b"0-0"
        await self._read_all()
        self.synced = True
        return last_id

    async def _read_all(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for account in self._accounts:
                pipe.hmget(self._keys.state(account), ["fence", "seq", "payload"])
            replies = await pipe.execute()
        self._link.ok()
        for account, (fence, seq, payload) in zip(self._accounts, replies, strict=True):
            if payload is not None:
                self.apply(account, int(fence), int(seq), payload)

    def _entry(self, fields: dict[Any, Any]) -> None:
        try:
            account = _text(fields[b"a"])
            fence, seq = int(fields[b"f"]), int(fields[b"s"])
            payload = fields[b"p"]
        except (KeyError, ValueError):
            self._outcomes["invalid"].inc()
            return
        self.apply(account, fence, seq, payload)

    def apply(self, account: str, fence: int, seq: int, payload: bytes) -> bool:
        """Apply one published item (an account, or ``market:<host>``) if it is newer."""
        host = self._hosts.get(account)
        if host is None and self._store.get(account) is None:
            return False  # an account (or host) this guard does not guard
        seen = self._seen.get(account)
        if seen is not None and (fence, seq) <= seen:
            self._outcomes["old"].inc()
            return False
        now = Instant.now()
        try:
            if host is not None and self._markets is not None:
                market = decode_market(payload, self._memo.setdefault(account, {}))
                if market.host != host:
                    raise ValueError(f"market data of {market.host!r} under {account!r}")
                apply_market(self._markets, market, now)
                published_ms = market.published_wall_ms
            else:
                state = decode_state(payload, self._memo.setdefault(account, {}))
                if state.account != account:
                    raise ValueError(f"state of {state.account!r} under {account!r}")
                apply_published(self._store, state, now)
                published_ms = state.published_wall_ms
        except ValueError as exc:
            self._outcomes["invalid"].inc()
            log.error("unreadable published state", item=account, error=str(exc))
            return False
        self._seen[account] = (fence, seq)
        self._outcomes["ok"].inc()
        self._lag.observe(max(0, now.wall_ms - published_ms) / 1000)
        return True


async def read_latest(redis: Redis, keys: Keys, account: str) -> PublishedState | None:
    """The stored latest state of one account (a new lease holder starts from it)."""
    payload = await redis.hget(keys.state(account), "payload")
    if payload is None:
        return None
    try:
        return decode_state(payload)
    except ValueError:
        return None


async def read_latest_market(redis: Redis, keys: Keys, host: str) -> PublishedMarket | None:
    """The stored latest market data of one host (a new lease holder starts from it)."""
    payload = await redis.hget(keys.state(market_item(host)), "payload")
    if payload is None:
        return None
    try:
        market = decode_market(payload)
    except ValueError:
        return None
    return market if market.host == host else None


def _streams(reply: Any) -> list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]]:
    """XREAD's reply as ``[(stream, [(id, fields)])]`` (a RESP2 list or a RESP3 map)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    out = []
    for name, entries in pairs:
        rows = []
        for entry in entries:
            entry_id, fields = entry[0], entry[1]
            if not isinstance(fields, dict):
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
            rows.append((entry_id, fields))
        out.append((name, rows))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
