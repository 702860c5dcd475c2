"""The latest market rules and mark prices of every exchange host the guard watches.

Like the account store, every value is immutable and replaced whole: a refresh builds a new
``MarketView`` for its host, which every account of that host then reads. Accounts whose
symbol rules come from configuration (generic v2) get a view of their own that never ages.
Nothing here reads a clock: callers pass ``Instant``s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.domain import Instant, Observed
from app.markets.model import MarketRules, MarkPrices


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the order checks of one account read: its host's symbol rules and mark prices.

    ``static`` rules come from configuration and never turn stale; ``marks`` is ``None`` for
    a source that has no mark prices (then checks needing one deny, unless ``static``, where
    they do not apply).
    """

    host: str
    rules: Observed[MarketRules] | None = None
    marks: Observed[MarkPrices] | None = None
    last_error: str | None = None
    static: bool = False


class MarketStore:
    """Latest ``MarketView`` per host, and which host each account trades on."""

    def __init__(self) -> None:
        self._views: dict[str, MarketView] = {}
        self._account_host: dict[str, str] = {}

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

    def put_rules(self, host: str, rules: MarketRules, now: Instant) -> MarketView:
        """Record a successful symbol-rules refresh; clears the last error."""
        return self._replace(host, rules=Observed(rules, now.mono, now.wall_ms), last_error=None)

    def put_marks(self, host: str, marks: MarkPrices, now: Instant) -> MarketView:
        """Record a successful mark-price refresh; clears the last error."""
        return self._replace(host, marks=Observed(marks, now.mono, now.wall_ms), last_error=None)

    def put_failure(self, host: str, message: str) -> MarketView:
        """Record a failed refresh: the last good values stay and keep ageing."""
        return self._replace(host, last_error=message)

    def _replace(self, host: str, **changes: object) -> MarketView:
        old = self._views.get(host) or MarketView(host)
        new = dataclasses.replace(old, **changes)  # type: ignore[arg-type]
        self._views[host] = new
        return new
