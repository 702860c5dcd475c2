"""Kill switches, run-time limits and the audit log, shared by the fleet in Redis.

Every change is one Lua script (atomic): the switch or limit, its audit entry, a raised
**version** of the control set, and a notification on a Pub/Sub channel. Every replica
re-reads the whole versioned set when notified and at least every ``poll_s`` (a missed
notification costs at most that), and decides from its in-memory copy only.

A switch leaves the set only by a release or an expiry, each of which leaves a tombstone
(``released``: id -> who, why, when). A replica that finds a switch it enforces missing
from Redis without a tombstone (an older set restored after a failover, or a lost AOF tail)
keeps enforcing it, writes it back and raises the version above anything it has seen; it
logs an error and counts ``pretrade_guard_fleet_controls_restored_total``. An older set can
therefore never re-enable trading silently.

Until the first successful read, and (with ``on_redis_loss: deny``) while Redis has been
unreachable for longer than the grace, a synthetic global HALT switch is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from app.domain import KillSwitch, KillSwitchMode, KillSwitchScope
from app.errors import SharedStateUnavailable
from app.events.model import Event
from app.events.watch import kill_switch_event
from app.fleet.codec import decode_switch, encode_switch
from app.fleet.connection import REDIS_ERRORS, RedisLink
from app.fleet.events import Announcer, event_tail
from app.fleet.model import Keys
from app.metrics import Metrics
from app.state.killswitch import (
    SYSTEM_ACTOR,
    AuditEntry,
    KillSwitchChange,
    switch_dict,
    wall_ms,
)
from app.tasks import cancel_and_wait

log = structlog.get_logger("app.fleet")

Listener = Callable[[KillSwitchChange], None]
#: ``(account, limits)``: a limits dict (``limits_dict`` shape), or None for the configured.
LimitsListener = Callable[[str, Mapping[str, Any] | None], None]

_READ = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local s = redis.call('HGETALL', KEYS[2])
local l = redis.call('HGETALL', KEYS[3])
local r = {}
for i = 1, #ARGV do
  local t = redis.call('HGET', KEYS[4], ARGV[i])
  if t then r[#r + 1] = ARGV[i]; r[#r + 1] = t end
end
return {v, s, l, r}
"""
# KEYS: version, switches, audit, audit seq, event stream; ARGV: channel, id, switch JSON,
# audit tail, event stream maxlen, event JSON (no id). The event is announced by the
# replica that engages, once, in the same script.
_ENGAGE = """
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local a = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], a, '{"id":' .. a .. ',' .. string.sub(ARGV[4], 2))
redis.call('PUBLISH', ARGV[1], v)
local e = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[6])
return {v, a, e}
"""
# KEYS: version, switches, audit, audit seq, released, event stream; ARGV: channel, id,
# expected switch JSON, audit tail, tombstone JSON, event stream maxlen, event JSON. Ends
# the switch (and announces it) only if it is still the one read: an expiry that several
# replicas see at once ends it once.
_END = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return {0, 0, ''} end
redis.call('HDEL', KEYS[2], ARGV[2])
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
local a = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], a, '{"id":' .. a .. ',' .. string.sub(ARGV[4], 2))
redis.call('PUBLISH', ARGV[1], v)
local e = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[7])
return {v, a, e}
"""
# KEYS: audit, audit seq; ARGV: audit tail.
_RECORD = """
local a = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], a, '{"id":' .. a .. ',' .. string.sub(ARGV[1], 2))
return a
"""
# KEYS: version, limits, audit, audit seq; ARGV: channel, account, limits JSON ('' resets),
# audit tail.
_LIMITS = """
if ARGV[3] == '' then redis.call('HDEL', KEYS[2], ARGV[2])
else redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
local v = redis.call('INCR', KEYS[1])
local a = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], a, '{"id":' .. a .. ',' .. string.sub(ARGV[4], 2))
redis.call('PUBLISH', ARGV[1], v)
return {v, a}
"""
# KEYS: version, switches, released; ARGV: channel, min version, then id/JSON pairs.
# Writes back switches that vanished without a tombstone; the version ends above min.
_RESTORE = """
for i = 3, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
local v = redis.call('INCR', KEYS[1])
if v < tonumber(ARGV[2]) then v = tonumber(ARGV[2]); redis.call('SET', KEYS[1], v) end
redis.call('PUBLISH', ARGV[1], v)
return v
"""


def _synthetic(reason: str) -> KillSwitch:
    return KillSwitch(
        id="fleet-controls-unavailable",
        scope=KillSwitchScope.GLOBAL,
        mode=KillSwitchMode.HALT,
        actor=SYSTEM_ACTOR,
        reason=reason,
        created_at_ms=wall_ms(),
    )


def _audit_tail(
    time_ms: int,
    action: str,
    actor: str,
    reason: str,
    principal: str | None,
    account: str | None,
    symbol: str | None,
    target: str | None,
    details: Mapping[str, Any],
) -> bytes:
    """An audit entry's JSON without its id (the script puts the id first)."""
    return orjson.dumps(
        {
            "time_ms": time_ms,
            "action": action,
            "actor": actor,
            "reason": reason,
            "principal": principal,
            "account": account,
            "symbol": symbol,
            "target": target,
            "details": dict(details),
        },
        default=str,
    )


class FleetControls:
    """Implements ``app.state.ports.KillSwitches`` (and limit changes) on Redis."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: RedisLink,
        metrics: Metrics,
        *,
        poll_s: float = 1.0,
        deny_after_s: float | None = None,
        clock: Callable[[], int] = wall_ms,
        announcer: Announcer | None = None,
        events_maxlen: int = 10_000,
    ) -> None:
        self._redis = redis
        self._announcer = announcer
        self._events_maxlen = events_maxlen
        self._keys = keys
        self._link = link
        self._metrics = metrics
        self.poll_s = poll_s
        #: With ``on_redis_loss: deny``: Redis unreachable this long engages a global HALT.
        self._deny_after_s = deny_after_s
        self._clock = clock
        self._read = redis.register_script(_READ)
        self._engage = redis.register_script(_ENGAGE)
        self._end = redis.register_script(_END)
        self._record = redis.register_script(_RECORD)
        self._limits_script = redis.register_script(_LIMITS)
        self._restore = redis.register_script(_RESTORE)
        self._listeners: list[Listener] = []
        self._limit_listeners: list[LimitsListener] = []
        self.version = 0
        self.loaded = False
        self._switches: dict[str, KillSwitch] = {}
        self._raw: dict[str, bytes] = {}
        self._limits: dict[str, bytes] = {}
        self._synthetic: KillSwitch | None = _synthetic(
            "kill switches not loaded from the fleet's Redis yet"
        )
        self._active: tuple[KillSwitch, ...] = ()
        self._global: tuple[KillSwitch, ...] = ()
        self._by_account: dict[str, tuple[KillSwitch, ...]] = {}
        self._next_expiry_ms: int | None = None
        self._wake = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._rebuild()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """First read (if Redis answers; until then the synthetic HALT holds)."""
        try:
            await self.sync()
        except REDIS_ERRORS as exc:
            self._link.error("controls", exc)
            log.error("kill switches not loaded: redis unreachable; every order is denied")

    async def close(self) -> None:
        return None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe_limits(self, listener: LimitsListener) -> None:
        self._limit_listeners.append(listener)

    # ------------------------------------------------------------------ decision path

    def for_account(self, account: str) -> tuple[KillSwitch, ...]:
        return self._by_account.get(account, self._global)

    def active(self) -> tuple[KillSwitch, ...]:
        return self._active

    def due_for_expiry(self, now_ms: int) -> bool:
        return self._next_expiry_ms is not None and self._next_expiry_ms <= now_ms

    def _rebuild(self) -> None:
        real = sorted(self._switches.values(), key=lambda s: (s.created_at_ms, s.id))
        ordered = ([self._synthetic] if self._synthetic is not None else []) + real
        glob = tuple(s for s in ordered if s.scope is KillSwitchScope.GLOBAL)
        by_account: dict[str, list[KillSwitch]] = {}
        for switch in ordered:
            if switch.account is not None:
                by_account.setdefault(switch.account, list(glob)).append(switch)
        expiries = [s.expires_at_ms for s in real if s.expires_at_ms is not None]
        self._by_account = {account: tuple(items) for account, items in by_account.items()}
        self._global = glob
        self._active = tuple(ordered)
        self._next_expiry_ms = min(expiries) if expiries else None
        self._metrics.fleet_controls_version.set(self.version)

    def _set_synthetic(self, switch: KillSwitch | None) -> None:
        if (switch is None) != (self._synthetic is None):
            self._synthetic = switch
            self._rebuild()

    # ------------------------------------------------------------------ sync

    async def run(self) -> None:
        """Re-read on every notification, and every ``poll_s`` anyway. Returns only when
        cancelled."""
        listening = asyncio.create_task(self._listen(), name="fleet-controls-listen")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):  # not wait_for: app/tasks.py
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.sync()
                except REDIS_ERRORS as exc:
                    self._link.error("controls", exc)
                self._check_loss()
        finally:
            await cancel_and_wait((listening,))

    def _check_loss(self) -> None:
        if not self.loaded:
            return
        if self._deny_after_s is not None and self._link.down_for() > self._deny_after_s:
            if self._synthetic is None:
                log.error("redis unreachable past the grace: denying every order (deny mode)")
            self._set_synthetic(_synthetic("fleet Redis unreachable (fleet.on_redis_loss: deny)"))
        elif self._synthetic is not None and self._link.up:
            self._set_synthetic(None)

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.controls_channel)
                self._wake.set()  # anything sent while we were not listening
                while True:
                    message = await pubsub.get_message(timeout=self.poll_s)
                    if message is not None:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._link.error("controls-listen", exc)
                await asyncio.sleep(min(1.0, self.poll_s))
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def sync(self) -> None:
        """Read the whole set and apply it (raises the Redis error when unreachable)."""
        async with self._sync_lock:
            await self._sync()

    async def _sync(self) -> None:
        held = list(self._switches)
        k = self._keys
        raw = await self._read(keys=[k.version, k.switches, k.limits, k.released], args=held)
        self._link.ok()
        version = int(raw[0])
        switches_raw = _pairs(raw[1])
        limits = _pairs(raw[2])
        tombstones = _pairs(raw[3])
        now = self._clock()
        missing = {
            sid: self._raw[sid]
            for sid, switch in self._switches.items()
            if sid not in switches_raw and sid not in tombstones and switch.active(now)
        }
        if missing or version < self.version:
            log.error(
                "kill switches missing from redis without a release (an older set restored?); "
                "writing them back",
                missing=sorted(missing),
                redis_version=version,
                known_version=self.version,
            )
            self._metrics.fleet_controls_restored.inc(len(missing))
            args: list[Any] = [k.controls_channel, self.version + 1]
            for sid, payload in missing.items():
                args += [sid, payload]
            version = int(await self._restore(keys=[k.version, k.switches, k.released], args=args))
            switches_raw.update(missing)
        self._apply(version, switches_raw, limits, tombstones, now)

    def _apply(
        self,
        version: int,
        switches_raw: dict[str, bytes],
        limits: dict[str, bytes],
        tombstones: dict[str, bytes],
        now: int,
    ) -> None:
        decoded: dict[str, KillSwitch] = {}
        for sid, payload in switches_raw.items():
            try:
                decoded[sid] = decode_switch(payload)
            except ValueError as exc:
                # Unreadable: keep what we had for it (fail closed), else refuse it loudly.
                log.error("unreadable kill switch in redis", kill_switch=sid, error=str(exc))
                if sid in self._switches:
                    decoded[sid] = self._switches[sid]
        changes: list[KillSwitchChange] = []
        for sid, switch in decoded.items():
            if sid not in self._switches:
                changes.append(
                    KillSwitchChange("engaged", switch, switch.actor, switch.reason, now)
                )
        for sid, switch in self._switches.items():
            if sid not in decoded:
                changes.append(_ended(switch, tombstones.get(sid), now))
        limit_changes = [
            a for a in set(limits) | set(self._limits) if limits.get(a) != self._limits.get(a)
        ]
        self._switches = decoded
        self._raw = {sid: switches_raw[sid] for sid in decoded if sid in switches_raw}
        self._limits = limits
        self.version = max(self.version, version)
        first = not self.loaded
        self.loaded = True
        if first:
            self._synthetic = None
            log.info("kill switches loaded from redis", version=version, engaged=len(decoded))
        self._rebuild()
        if first:
            changes = []  # engaged before this process started: not news
        for account in limit_changes:
            value = limits.get(account)
            parsed = None if value is None else orjson.loads(value)
            for limits_listener in self._limit_listeners:
                limits_listener(account, parsed)
        for change in changes:
            for listener in self._listeners:
                listener(change)

    async def _after_write(self) -> None:
        try:
            await self.sync()
        except REDIS_ERRORS as exc:  # the write is in Redis; the next poll applies it
            self._link.error("controls", exc)

    # ------------------------------------------------------------------ writes

    async def engage(
        self,
        *,
        scope: KillSwitchScope,
        mode: KillSwitchMode,
        actor: str,
        reason: str,
        account: str | None = None,
        symbol: str | None = None,
        expires_at_ms: int | None = None,
        principal: str | None = None,
    ) -> KillSwitch:
        switch = KillSwitch.new(
            scope=scope,
            mode=mode,
            actor=actor,
            reason=reason,
            created_at_ms=self._clock(),
            account=account,
            symbol=symbol,
            expires_at_ms=expires_at_ms,
        )
        tail = _audit_tail(
            switch.created_at_ms,
            "kill_switch.engage",
            actor,
            reason,
            principal,
            account,
            symbol,
            switch.id,
            switch_dict(switch),
        )
        k = self._keys
        event = kill_switch_event(
            KillSwitchChange("engaged", switch, actor, reason, switch.created_at_ms)
        )
        _, _, event_id = await self._write(
            self._engage(
                keys=[k.version, k.switches, k.audit, k.audit_seq, k.events_stream],
                args=[
                    k.controls_channel,
                    switch.id,
                    encode_switch(switch),
                    tail,
                    self._events_maxlen,
                    event_tail(event, switch.created_at_ms),
                ],
            )
        )
        self._announce(event, event_id)
        await self._after_write()
        return switch

    def _announce(self, event: Event, event_id: Any) -> None:
        if self._announcer is not None:
            text = event_id.decode() if isinstance(event_id, bytes) else str(event_id)
            self._announcer.published(event, text)

    async def release(
        self, switch_id: str, *, actor: str, reason: str, principal: str | None = None
    ) -> KillSwitchChange | None:
        return await self._end_switch(
            switch_id, actor, reason, principal, "kill_switch.release", "released"
        )

    async def expire_due(self) -> list[KillSwitch]:
        now = self._clock()
        ended: list[KillSwitch] = []
        for switch in [s for s in self._switches.values() if not s.active(now)]:
            try:
                change = await self._end_switch(
                    switch.id, SYSTEM_ACTOR, "expired", None, "kill_switch.expire", "expired"
                )
            except SharedStateUnavailable:
                return ended  # the next watcher tick tries again
            if change is not None:
                ended.append(change.switch)
        return ended

    async def _end_switch(
        self,
        switch_id: str,
        actor: str,
        reason: str,
        principal: str | None,
        action: str,
        kind: str,
    ) -> KillSwitchChange | None:
        k = self._keys
        payload = await self._write(self._redis.hget(k.switches, switch_id))
        if payload is None:
            return None
        try:
            switch = decode_switch(payload)
        except ValueError:
            return None
        now = self._clock()
        tail = _audit_tail(
            now,
            action,
            actor,
            reason,
            principal,
            switch.account,
            switch.symbol,
            switch.id,
            switch_dict(switch),
        )
        tombstone = orjson.dumps({"kind": kind, "actor": actor, "reason": reason, "time_ms": now})
        change_kind = "released" if kind == "released" else "expired"
        change = KillSwitchChange(change_kind, switch, actor, reason, now)  # type: ignore[arg-type]
        event = kill_switch_event(change)
        version, _, event_id = await self._write(
            self._end(
                keys=[k.version, k.switches, k.audit, k.audit_seq, k.released, k.events_stream],
                args=[
                    k.controls_channel,
                    switch_id,
                    payload,
                    tail,
                    tombstone,
                    self._events_maxlen,
                    event_tail(event, now),
                ],
            )
        )
        if int(version) == 0:
            return None  # ended meanwhile by another replica
        self._announce(event, event_id)
        await self._after_write()
        return change

    async def record(
        self,
        action: str,
        *,
        actor: str,
        reason: str,
        principal: str | None = None,
        account: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        now = self._clock()
        tail = _audit_tail(
            now, action, actor, reason, principal, account, None, None, details or {}
        )
        row_id = await self._write(
            self._record(keys=[self._keys.audit, self._keys.audit_seq], args=[tail])
        )
        return AuditEntry(
            id=int(row_id),
            time_ms=now,
            action=action,
            actor=actor,
            reason=reason,
            principal=principal,
            account=account,
            details=dict(details or {}),
        )

    async def change_limits(
        self,
        account: str,
        limits: Mapping[str, Any] | None,
        *,
        action: str,
        actor: str,
        reason: str,
        principal: str | None,
        details: Mapping[str, Any],
    ) -> None:
        """Set (``None``: reset) the account's run-time limits fleet-wide, with the audit
        entry, in one script; in force here before this returns."""
        now = self._clock()
        tail = _audit_tail(now, action, actor, reason, principal, account, None, None, details)
        k = self._keys
        value = b"" if limits is None else orjson.dumps(dict(limits))
        await self._write(
            self._limits_script(
                keys=[k.version, k.limits, k.audit, k.audit_seq],
                args=[k.controls_channel, account, value, tail],
            )
        )
        await self._after_write()

    async def _write(self, call: Any) -> Any:
        try:
            result = await call
        except REDIS_ERRORS as exc:
            self._link.error("controls-write", exc)
            raise SharedStateUnavailable(
                "the fleet's Redis is unreachable; nothing was changed on any replica"
            ) from None
        self._link.ok()
        return result

    # ------------------------------------------------------------------ reads (rare)

    async def audit(self, limit: int = 100, *, before_id: int | None = None) -> list[AuditEntry]:
        top = "+inf" if before_id is None else f"({before_id}"
        rows = await self._write(
            self._redis.zrevrangebyscore(self._keys.audit, top, "-inf", start=0, num=limit)
        )
        entries = []
        for row in rows:
            raw = orjson.loads(row)
            entries.append(
                AuditEntry(
                    id=int(raw["id"]),
                    time_ms=int(raw["time_ms"]),
                    action=raw["action"],
                    actor=raw["actor"],
                    reason=raw["reason"],
                    principal=raw.get("principal"),
                    account=raw.get("account"),
                    symbol=raw.get("symbol"),
                    target=raw.get("target"),
                    details=raw.get("details") or {},
                )
            )
        return entries


def _pairs(flat: Iterable[Any] | dict[Any, Any]) -> dict[str, bytes]:
    """A flat ``[k1, v1, k2, v2]`` script reply (or a dict) as ``{k: v}``."""
    if isinstance(flat, dict):
        items = list(flat.items())
    else:
        seq = list(flat)
        items = list(zip(seq[::2], seq[1::2], strict=True))
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v if isinstance(v, bytes) else str(v).encode()
        )
        for k, v in items
    }


def _ended(switch: KillSwitch, tombstone: bytes | None, now: int) -> KillSwitchChange:
    if tombstone is None:
        return KillSwitchChange("expired", switch, SYSTEM_ACTOR, "expired", now)
    info = orjson.loads(tombstone)
    kind = "expired" if info.get("kind") == "expired" else "released"
    return KillSwitchChange(
        kind,  # type: ignore[arg-type]
        switch,
        str(info.get("actor", SYSTEM_ACTOR)),
        str(info.get("reason", "")),
        int(info.get("time_ms", now)),
    )
