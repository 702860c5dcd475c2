"""Status-change events: detected from state changes, fanned out to log, SSE and webhooks.

``diff`` (pure) turns an account's old and new state into events; ``watch`` adds the
time-driven ones (data turning stale or fresh, kill switches expiring); ``EventBus`` stamps
each event and hands it to every sink without ever waiting on one.
"""

from app.events.model import Event, EventType, StampedEvent

__all__ = ["Event", "EventType", "StampedEvent"]
