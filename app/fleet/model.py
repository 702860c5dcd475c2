"""Bounded sets of fleet mode (roles, outage behaviour) and the Redis key layout."""

from __future__ import annotations

from enum import StrEnum


class FleetRole(StrEnum):
    """What one guard process does in fleet mode."""

    #: Polls the accounts whose lease it holds and answers decisions (the default).
    ALL = "all"
    #: Answers decisions from the state published through Redis; never polls (except in the
    #: outage fallback).
    API = "api"
    #: Polls and publishes; serves only ``/healthz``, ``/readyz`` and ``/metrics``.
    REFRESHER = "refresher"

    @property
    def answers(self) -> bool:
        return self is not FleetRole.REFRESHER

    @property
    def polls(self) -> bool:
        return self is not FleetRole.API


class RedisLossMode(StrEnum):
    """What api replicas do while Redis is unreachable."""

    #: Keep answering from memory with the last known kill switches; poll locally after
    #: ``fallback_grace_s`` (the default).
    KEEP_TRADING = "keep_trading"
    #: Deny every order after ``fallback_grace_s`` (a fleet-wide HALT) until Redis is back.
    DENY = "deny"


class Keys:
    """Every key and channel of one fleet, under its namespace (``ns:...``).

    Per-account keys carry the account in a hash tag (``{acct}``) so the scripts touching
    several of them would stay in one slot on a Redis Cluster.
    """

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        p = f"{namespace}:"
        #: Kill switches (hash id -> JSON) and run-time limits (hash account -> JSON).
        self.switches = p + "controls:switches"
        self.limits = p + "controls:limits"
        #: Version of the control set (switches + limits), raised by every change.
        self.version = p + "controls:version"
        #: Ids of released or expired switches (hash id -> version), so a switch vanishing
        #: without one (an older set restored after a failover) is noticed.
        self.released = p + "controls:released"
        self.controls_channel = p + "controls:changed"
        #: Audit log: sorted set scored by id, and its id counter.
        self.audit = p + "audit"
        self.audit_seq = p + "audit:seq"
        #: Live refreshers: sorted set, member = refresher id, score = expiry (ms).
        self.refreshers = p + "refreshers"
        #: State fan-out stream (every refresh result of every account).
        self.state_stream = p + "state:stream"
        #: Status-change events of the whole fleet (one entry per change; ids are event ids).
        self.events_stream = p + "events:stream"

    def lease(self, account: str) -> str:
        return f"{self.ns}:lease:{{{account}}}"

    def fence(self, account: str) -> str:
        return f"{self.ns}:fence:{{{account}}}"

    def state(self, account: str) -> str:
        return f"{self.ns}:state:{{{account}}}"

    def freshness(self, account: str) -> str:
        """The account's announced freshness (``DATA_STALE``/``DATA_FRESH`` once per fleet)."""
        return f"{self.ns}:events:fresh:{{{account}}}"

    def webhook_group(self, webhook: str) -> str:
        """The consumer group of one webhook on the event stream."""
        return f"webhook:{webhook}"

    def rate(self, account: str, symbol: str | None = None) -> str:
        if symbol is None:
            return f"{self.ns}:rate:{{{account}}}"
        return f"{self.ns}:rate:{{{account}}}:{symbol}"
