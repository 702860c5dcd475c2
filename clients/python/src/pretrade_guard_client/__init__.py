"""Client for pretrade-guard: ask "may this account place this order now?" before every order.

    from pretrade_guard_client import GuardClient

    with GuardClient("http://127.0.0.1:8080", token) as guard:
        decision = guard.can_trade("alpha", "BTCUSDT", "BUY", "0.01", "60000")
        decision.raise_for_denial()      # OrderDenied with the reasons and suggestions

Fail closed: a timeout, connection error, 5xx or unparseable answer raises
``GuardUnavailable`` (or, with ``on_unavailable=OnUnavailable.DENY``, returns a client-side
denial). A 4xx (bad token, unknown account, invalid field) raises ``GuardRequestError``.
"""

from pretrade_guard_client.aio import AsyncGuardClient
from pretrade_guard_client.client import GuardClient
from pretrade_guard_client.codes import (
    ClientReasonCode,
    OnUnavailable,
    OrderSide,
    OrderType,
    PositionSide,
    ReasonCode,
    WarningCode,
)
from pretrade_guard_client.errors import (
    GuardError,
    GuardRequestError,
    GuardUnavailable,
    OrderDenied,
)
from pretrade_guard_client.hooks import GuardCall, Hook
from pretrade_guard_client.models import Decision, Order, Reason, Suggestion

__version__ = "0.2.0"

__all__ = [
    "AsyncGuardClient",
    "ClientReasonCode",
    "Decision",
    "GuardCall",
    "GuardClient",
    "GuardError",
    "GuardRequestError",
    "GuardUnavailable",
    "Hook",
    "OnUnavailable",
    "Order",
    "OrderDenied",
    "OrderSide",
    "OrderType",
    "PositionSide",
    "Reason",
    "ReasonCode",
    "Suggestion",
    "WarningCode",
]
