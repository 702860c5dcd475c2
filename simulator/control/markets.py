"""``/_sim/markets``: read and change the Binance market (rules, status, brackets, prices)."""

from __future__ import annotations

import logging
import re

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.control.wire import ControlError, invalid, read_object, reply
from simulator.state import SimulatorState

logger = logging.getLogger(__name__)

SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{2,32}")


class MarketsApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_sim/markets", self.list_markets, methods=["GET"]),
            Route("/_sim/markets/{symbol}", self.get_market, methods=["GET"]),
            Route("/_sim/markets/{symbol}", self.patch_market, methods=["PATCH"]),
        ]

    async def list_markets(self, request: Request) -> Response:
        return reply({"markets": self._state.markets.describe()})

    async def get_market(self, request: Request) -> Response:
        symbol = request.path_params["symbol"]
        if symbol not in self._state.markets:
            raise ControlError(404, f"no market {symbol!r}")
        return reply(self._state.markets.describe()[symbol])

    async def patch_market(self, request: Request) -> Response:
        """Merge fields over a symbol's rules; an unknown symbol is added with the defaults."""
        symbol = request.path_params["symbol"]
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise ControlError(422, "symbol must be 2-32 of A-Z 0-9", symbol)
        patch = await read_object(request)
        try:
            self._state.markets.patch(symbol, patch)
        except ValidationError as exc:
            raise invalid(exc) from exc
        logger.info("market %s patched: %s", symbol, sorted(patch))
        return reply(self._state.markets.describe()[symbol])
