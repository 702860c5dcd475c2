"""``/_sim/faults``: inject, list and remove faults (``simulator.faults``)."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.control.wire import ControlError, invalid, read_object, reply, validate
from simulator.faults import FaultRequest
from simulator.state import SimulatorState

logger = logging.getLogger(__name__)


class FaultsApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_sim/faults", self.add, methods=["POST"]),
            Route("/_sim/faults", self.list_faults, methods=["GET"]),
            Route("/_sim/faults", self.clear, methods=["DELETE"]),
            Route("/_sim/faults/{id}", self.remove, methods=["DELETE"]),
        ]

    async def add(self, request: Request) -> Response:
        fault_request = validate(FaultRequest, await read_object(request))
        try:
            fault = self._state.faults.add(fault_request)
        except ValidationError as exc:
            raise invalid(exc) from exc
        logger.info(
            "fault %s added: %s key=%s path=%s count=%s duration_s=%s",
            fault.id,
            fault.kind,
            fault.api_key or "*",
            fault.path or "*",
            fault.remaining,
            fault.duration_s,
        )
        return reply(self._state.faults.view(fault), 201)

    async def list_faults(self, request: Request) -> Response:
        return reply({"faults": self._state.faults.describe()})

    async def clear(self, request: Request) -> Response:
        removed = self._state.faults.clear()
        logger.info("faults cleared (%d)", removed)
        return reply({"removed": removed})

    async def remove(self, request: Request) -> Response:
        fault_id = request.path_params["id"]
        if not self._state.faults.remove(fault_id):
            raise ControlError(404, f"no fault with id {fault_id!r}")
        logger.info("fault %s removed", fault_id)
        return reply({"removed": 1})
