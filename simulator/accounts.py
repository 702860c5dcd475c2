"""The simulated accounts: one mutable model that both exchange faces read.

Fields are stored as plain JSON-like values, exactly as the scenario or the control API gave
them, so tests decide what the guard sees. The simulator only owns the ``updateTime`` values
(server-clock milliseconds, set whenever a part changes) and the expiry of quantitative-rule
locks whose ``plannedRecoverTime`` has passed.
"""

from __future__ import annotations

import copy
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from simulator.clock import SimClock
from simulator.scenario import AccountSpec

DEFAULT_STATUS: dict[str, Any] = {
    "tradingStatus": "NORMAL",
    "reason": "",
    "isMarginTradingEnabled": True,
    "isFuturesTradingEnabled": True,
    "accountLevel": "LEVEL_1",
    "canDeposit": True,
    "canWithdraw": True,
    "canTrade": True,
    "triggerCloseStatus": "ENABLED",
}

DEFAULT_ACCOUNT: dict[str, Any] = {
    "asset": "USDT",
    "walletBalance": "0",
    "unrealizedPnl": "0",
    "marginBalance": "0",
    "availableBalance": "0",
    "initialMargin": "0",
    "maintenanceMargin": "0",
    "positions": [],
    "openOrders": [],
    "orderHistory": [],
    "funding": {"lastFundingFee": "0", "lastFundingTime": 0, "nextFundingTime": 0},
}

DEFAULT_KEY_PERMISSIONS: dict[str, Any] = {
    "ipRestrict": False,
    "createTime": 1700000000000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": True,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": False,
}

UPDATE_TIME = "updateTime"


class CredentialConflict(Exception):
    """Another account already uses the requested API key."""


def _merge(target: dict[str, Any], patch: Mapping[str, Any], now_ms: int) -> int:
    """Merge ``patch`` into ``target`` at the top level; ``null`` deletes a field.

    Returns the new ``updateTime``: ``now_ms``, unless the patch names one itself (it is not
    stored as a field), which lets tests present old data.
    """
    requested = now_ms
    for name, value in patch.items():
        if name == UPDATE_TIME:
            if isinstance(value, int) and not isinstance(value, bool):
                requested = value
        elif value is None:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(value)
    return requested


class AccountState:
    """One account: credentials, status, snapshot and quantitative-rule indicators."""

    def __init__(self, spec: AccountSpec, now_ms: int) -> None:
        self.id = spec.id
        self.api_key = spec.api_key
        self.api_secret = spec.api_secret
        self.key_permissions = {**DEFAULT_KEY_PERMISSIONS, **copy.deepcopy(spec.key_permissions)}
        self.status = copy.deepcopy(DEFAULT_STATUS)
        self.status_update_time = _merge(self.status, spec.status, now_ms)
        self.account = copy.deepcopy(DEFAULT_ACCOUNT)
        self.account_update_time = _merge(self.account, spec.account, now_ms)
        self.indicators: dict[str, list[dict[str, Any]]] = copy.deepcopy(spec.indicators)
        self.indicators_update_time = now_ms
        # Binance settings (``PATCH /_sim/accounts/{id}/binance`` and the mode endpoints).
        self.dual_side_position = spec.binance.dual_side_position
        self.multi_assets_margin = spec.binance.multi_assets_margin
        self.leverage: dict[str, int] = dict(spec.binance.leverage)
        #: Server-clock ms of the account's recent new orders (``ORDERS`` limits, -1015).
        self.order_times: deque[int] = deque()

    def patch_status(self, patch: Mapping[str, Any], now_ms: int) -> None:
        """Merge ``patch`` into the status; a new ``tradingStatus`` brings its own ``reason``.

        The exchange's reason explains one status: a patch that sets ``tradingStatus`` without
        a ``reason`` clears the old one (``""``, as on a fresh account) instead of leaving, say,
        "Pending KYC review" on an account that is ``NORMAL`` again.
        """
        if "tradingStatus" in patch and "reason" not in patch:
            patch = {**patch, "reason": DEFAULT_STATUS["reason"]}
        self.status_update_time = _merge(self.status, patch, now_ms)

    def patch_account(self, patch: Mapping[str, Any], now_ms: int) -> None:
        self.account_update_time = _merge(self.account, patch, now_ms)

    def replace_indicators(
        self, indicators: Mapping[str, list[dict[str, Any]]], now_ms: int
    ) -> None:
        self.indicators = copy.deepcopy(dict(indicators))
        self.indicators_update_time = now_ms

    def current_indicators(self, now_ms: int) -> dict[str, list[dict[str, Any]]]:
        """The indicators after clearing every lock whose ``plannedRecoverTime`` has passed.

        A cleared entry stays listed (its value is still recorded) with ``isLocked: false`` and
        ``plannedRecoverTime: 0``, which is how an unlocked indicator looks on Binance.
        """
        changed = False
        for entries in self.indicators.values():
            for entry in entries:
                recover_at = entry.get("plannedRecoverTime")
                if (
                    entry.get("isLocked") is True
                    and isinstance(recover_at, int)
                    and not isinstance(recover_at, bool)
                    and 0 < recover_at <= now_ms
                ):
                    entry["isLocked"] = False
                    entry["plannedRecoverTime"] = 0
                    changed = True
        if changed:
            self.indicators_update_time = now_ms
        return self.indicators

    def binance_config(self) -> dict[str, Any]:
        return {
            "dualSidePosition": self.dual_side_position,
            "multiAssetsMargin": self.multi_assets_margin,
            "leverage": dict(self.leverage),
        }

    def open_orders(self) -> list[dict[str, Any]]:
        """The model's ``openOrders`` (object entries only)."""
        orders = self.account.get("openOrders")
        if not isinstance(orders, list):
            return []
        return [order for order in orders if isinstance(order, dict)]

    def replace_open_orders(self, orders: list[dict[str, Any]], now_ms: int) -> None:
        self.account["openOrders"] = orders
        self.account_update_time = now_ms

    def describe(self, now_ms: int) -> dict[str, Any]:
        """The control API's view of this account (the secret is never shown)."""
        return {
            "id": self.id,
            "api_key": self.api_key,
            "key_permissions": self.key_permissions,
            "status": {**self.status, UPDATE_TIME: self.status_update_time},
            "account": {**self.account, UPDATE_TIME: self.account_update_time},
            "indicators": self.current_indicators(now_ms),
            "indicators_update_time": self.indicators_update_time,
            "binance": self.binance_config(),
        }


class AccountBook:
    """Every account of the scenario, found by id or by API key."""

    def __init__(self, specs: list[AccountSpec], clock: SimClock) -> None:
        self._specs = specs
        self._clock = clock
        self._by_id: dict[str, AccountState] = {}
        #: Exchange order ids, unique across accounts (Binance's are numbers).
        self.order_ids = itertools.count(100_000_001)
        self.reset()

    def reset(self) -> None:
        """Back to the scenario's state (new ``updateTime`` values)."""
        now_ms = self._clock.now_ms()
        self._by_id = {spec.id: AccountState(spec, now_ms) for spec in self._specs}
        self.order_ids = itertools.count(100_000_001)

    def __iter__(self) -> Iterator[AccountState]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, account_id: str) -> AccountState | None:
        return self._by_id.get(account_id)

    def by_key(self, api_key: str) -> AccountState | None:
        return next((state for state in self._by_id.values() if state.api_key == api_key), None)

    def change_credentials(
        self, account: AccountState, api_key: str | None, api_secret: str | None
    ) -> None:
        if api_key is not None and api_key != account.api_key:
            if self.by_key(api_key) is not None:
                raise CredentialConflict(api_key)
            account.api_key = api_key
        if api_secret is not None:
            account.api_secret = api_secret
