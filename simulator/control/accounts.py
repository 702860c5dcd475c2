"""``/_sim/accounts``: read and change the simulated accounts."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.accounts import AccountState, CredentialConflict
from simulator.control.wire import ControlError, read_object, reply, validate
from simulator.scenario import check_api_key
from simulator.state import SimulatorState

logger = logging.getLogger(__name__)

MAX_LEVERAGE = 125


class CredentialsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None
    api_secret: str | None = Field(default=None, min_length=1)

    @field_validator("api_key")
    @classmethod
    def _key_format(cls, value: str | None) -> str | None:
        return None if value is None else check_api_key(value)


class BinancePatch(BaseModel):
    """``PATCH .../binance``: modes and leverage, set without Binance's refusals."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dualSidePosition: bool | None = None  # noqa: N815 (Binance's names)
    multiAssetsMargin: bool | None = None  # noqa: N815
    #: Merged into the account's leverage map; null for a symbol removes its entry.
    leverage: dict[str, int | None] | None = None

    @field_validator("leverage")
    @classmethod
    def _leverage_range(cls, value: dict[str, int | None] | None) -> dict[str, int | None] | None:
        for symbol, lever in (value or {}).items():
            if lever is not None and not 1 <= lever <= MAX_LEVERAGE:
                raise ValueError(f"leverage of {symbol} must be 1..{MAX_LEVERAGE}")
        return value


class IndicatorEntries(BaseModel):
    """Shape check for ``PUT .../indicators``: symbol or ACCOUNT → list of objects."""

    model_config = ConfigDict(extra="forbid")

    indicators: dict[str, list[dict[str, Any]]]


class AccountsApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        base = "/_sim/accounts"
        return [
            Route(base, self.list_accounts, methods=["GET"]),
            Route(base + "/{id}", self.get_account, methods=["GET"]),
            Route(base + "/{id}/status", self.patch_status, methods=["PATCH"]),
            Route(base + "/{id}/account", self.patch_account, methods=["PATCH"]),
            Route(base + "/{id}/indicators", self.put_indicators, methods=["PUT"]),
            Route(base + "/{id}/credentials", self.patch_credentials, methods=["PATCH"]),
            Route(base + "/{id}/binance", self.patch_binance, methods=["PATCH"]),
        ]

    def _now(self) -> int:
        return self._state.clock.now_ms()

    def _account(self, request: Request) -> AccountState:
        account_id = request.path_params["id"]
        account = self._state.accounts.get(account_id)
        if account is None:
            raise ControlError(404, f"no account with id {account_id!r}")
        return account

    def _describe(self, account: AccountState) -> Response:
        return reply(account.describe(self._now()))

    async def list_accounts(self, request: Request) -> Response:
        now_ms = self._now()
        return reply({"accounts": [account.describe(now_ms) for account in self._state.accounts]})

    async def get_account(self, request: Request) -> Response:
        return self._describe(self._account(request))

    async def patch_status(self, request: Request) -> Response:
        account = self._account(request)
        patch = await read_object(request)
        account.patch_status(patch, self._now())
        logger.info("account %s status patched: %s", account.id, sorted(patch))
        return self._describe(account)

    async def patch_account(self, request: Request) -> Response:
        account = self._account(request)
        patch = await read_object(request)
        account.patch_account(patch, self._now())
        logger.info("account %s snapshot patched: %s", account.id, sorted(patch))
        return self._describe(account)

    async def put_indicators(self, request: Request) -> Response:
        account = self._account(request)
        body = validate(IndicatorEntries, {"indicators": await read_object(request)})
        account.replace_indicators(body.indicators, self._now())
        logger.info("account %s indicators replaced: %s", account.id, sorted(body.indicators))
        return self._describe(account)

    async def patch_credentials(self, request: Request) -> Response:
        account = self._account(request)
        patch = validate(CredentialsPatch, await read_object(request))
        try:
            self._state.accounts.change_credentials(account, patch.api_key, patch.api_secret)
        except CredentialConflict as exc:
            raise ControlError(409, "another account already uses this api_key") from exc
        logger.info("account %s credentials changed", account.id)
        return self._describe(account)

    async def patch_binance(self, request: Request) -> Response:
        account = self._account(request)
        patch = validate(BinancePatch, await read_object(request))
        if patch.dualSidePosition is not None:
            account.dual_side_position = patch.dualSidePosition
        if patch.multiAssetsMargin is not None:
            account.multi_assets_margin = patch.multiAssetsMargin
        for symbol, lever in (patch.leverage or {}).items():
            if lever is None:
                account.leverage.pop(symbol, None)
            else:
                account.leverage[symbol] = lever
        logger.info("account %s binance settings patched", account.id)
        return self._describe(account)
