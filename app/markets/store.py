"""The latest market rules and mark prices of every exchange host the guard watches.

Like the account store, every value is immutable and replaced whole: a refresh builds a new
``MarketView`` for its host, which every account of that host then reads. Accounts whose
symbol rules come from configuration (generic v2) get a view of their own that never ages.
Nothing here reads a clock: callers pass ``Instant``s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.domain import Instant, Observed
from app.markets.model import MarketRules, MarkPrices

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the order checks of one account read: its host's symbol rules and mark prices.

    ``static`` rules come from configuration and never turn stale; ``marks`` is ``None`` for
    a source that has no mark prices (then checks needing one deny, unless ``static``, where
    they do not apply). Each kind of refresh keeps its own last error, cleared only by its own
    success: a working mark-price feed must not hide why the symbol rules are missing.
    """

    host: str
    rules: Observed[MarketRules] | None = None
    marks: Observed[MarkPrices] | None = None
    #: Why the last symbol-rules / mark-price refresh failed (``None`` after a success).
    rules_error: str | None = None
    marks_error: str | None = None
    static: bool = False

    @property
    def last_error(self) -> str | None:
        """The symbol-rules error, else the mark-price one."""
        return self.rules_error or self.marks_error


#: Called with every new view of a polled host (fleet mode publishes it); must not raise.
MarketListener = Callable[[MarketView], None]


class MarketStore:
    """Latest ``MarketView`` per host, and which host each account trades on."""

    def __init__(self) -> None:
        self._views: dict[str, MarketView] = {}
        self._account_host: dict[str, str] = {}
        self._listeners: list[MarketListener] = []

    def subscribe(self, listener: MarketListener) -> None:
        self._listeners.append(listener)

    def register(self, account: str, host: str) -> None:
        """Decisions for ``account`` read ``host``'s rules (no data until the first refresh)."""
        self._account_host[account] = host
        self._views.setdefault(host, MarketView(host))

    def configure_static(self, account: str, rules: MarketRules, now: Instant) -> None:
        """Symbol rules given in the account's configuration: never stale, no mark prices."""
        host = f"config:{account}"
        self._account_host[account] = host
        self._views[host] = MarketView(
            host, rules=Observed(rules, now.mono, now.wall_ms), static=True
        )

    def get(self, account: str) -> MarketView | None:
        """The account's market view, or ``None`` when no market rules apply to it."""
        host = self._account_host.get(account)
        return None if host is None else self._views.get(host)

    def view(self, host: str) -> MarketView | None:
        return self._views.get(host)

    def hosts(self) -> list[str]:
        return [h for h, v in self._views.items() if not v.static]

    def accounts_by_host(self) -> dict[str, list[str]]:
        """The accounts of every polled host (not the configured, never-stale ones)."""
        found: dict[str, list[str]] = {}
        for account, host in self._account_host.items():
            view = self._views.get(host)
            if view is not None and not view.static:
                found.setdefault(host, []).append(account)
        return found

    def put_rules(self, host: str, rules: MarketRules, now: Instant) -> MarketView:
        """Record a successful symbol-rules refresh; clears the symbol-rules error."""
        return self._replace(host, rules=Observed(rules, now.mono, now.wall_ms), rules_error=None)

    def put_marks(self, host: str, marks: MarkPrices, now: Instant) -> MarketView:
        """Record a successful mark-price refresh; clears the mark-price error."""
        return self._replace(host, marks=Observed(marks, now.mono, now.wall_ms), marks_error=None)

    def put_rules_failure(self, host: str, message: str) -> MarketView:
        """Record a failed symbol-rules refresh: the last good rules stay and keep ageing."""
        return self._replace(host, rules_error=message)

    def put_marks_failure(self, host: str, message: str) -> MarketView:
        """Record a failed mark-price refresh: the last good marks stay and keep ageing."""
        return self._replace(host, marks_error=message)

    def put_observed(
        self,
        host: str,
        rules: Observed[MarketRules] | None,
        marks: Observed[MarkPrices] | None,
        *,
        rules_error: str | None,
        marks_error: str | None,
    ) -> MarketView:
        """Record values observed elsewhere (fleet mode: published by the host's refresher),
        each part only if it was received later than the one held."""

        def newer(new: Observed[T] | None, old: Observed[T] | None) -> Observed[T] | None:
            if new is None or (old is not None and old.received_wall_ms >= new.received_wall_ms):
                return old
            return new

        old = self._views.get(host) or MarketView(host)
        return self._replace(
            host,
            rules=newer(rules, old.rules),
            marks=newer(marks, old.marks),
            rules_error=rules_error,
            marks_error=marks_error,
        )

    def _replace(self, host: str, **changes: object) -> MarketView:
        old = self._views.get(host) or MarketView(host)
        new = dataclasses.replace(old, **changes)  # type: ignore[arg-type]
        self._views[host] = new
        for listener in self._listeners:
            listener(new)
        return new
