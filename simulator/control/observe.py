"""``/_sim`` health, clock, request log, weight usage and reset."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.control.wire import ControlError, read_object, reply, validate
from simulator.state import SimulatorState

logger = logging.getLogger(__name__)

#: One year either way: enough for any skew test, small enough to stay an int64 timestamp.
MAX_OFFSET_MS = 365 * 24 * 3600 * 1000
DEFAULT_RECENT_LIMIT = 100


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    offset_ms: int = Field(ge=-MAX_OFFSET_MS, le=MAX_OFFSET_MS)


class ObserveApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_sim/health", self.health, methods=["GET"]),
            Route("/_sim/clock", self.get_clock, methods=["GET"]),
            Route("/_sim/clock", self.set_clock, methods=["PUT"]),
            Route("/_sim/requests", self.get_requests, methods=["GET"]),
            Route("/_sim/requests", self.clear_requests, methods=["DELETE"]),
            Route("/_sim/weight", self.get_weight, methods=["GET"]),
            Route("/_sim/reset", self.reset, methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        return reply({"status": "ok"})

    def _clock(self) -> Response:
        clock = self._state.clock
        return reply({"offset_ms": clock.offset_ms, "server_time": clock.now_ms()})

    async def get_clock(self, request: Request) -> Response:
        return self._clock()

    async def set_clock(self, request: Request) -> Response:
        change = validate(ClockChange, await read_object(request))
        self._state.clock.offset_ms = change.offset_ms
        logger.info("clock offset set to %d ms", change.offset_ms)
        return self._clock()

    async def get_requests(self, request: Request) -> Response:
        query = request.query_params
        raw_limit = query.get("limit", str(DEFAULT_RECENT_LIMIT))
        if not raw_limit.isdigit():
            raise ControlError(400, "limit must be a non-negative integer", raw_limit)
        summary = self._state.requests.summary(
            api_key=query.get("api_key") or None,
            path_prefix=query.get("path") or None,
            limit=int(raw_limit),
        )
        return reply(summary)

    async def clear_requests(self, request: Request) -> Response:
        self._state.requests.clear()
        return reply({"cleared": True})

    async def get_weight(self, request: Request) -> Response:
        return reply(
            {
                "per_key": self._state.key_budget.snapshot(),
                "per_ip": self._state.ip_budget.snapshot(),
            }
        )

    async def reset(self, request: Request) -> Response:
        self._state.reset()
        logger.info("reset to the scenario")
        return reply({"status": "reset"})
