"""The simulator's ASGI app: ``/_sim`` goes to the control API, everything else to the exchange."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from simulator.control import create_control_app
from simulator.faces import ENDPOINTS
from simulator.gateway import Gateway
from simulator.scenario import Scenario
from simulator.state import SimulatorState

CONTROL_PREFIX = "/_sim"


class SimulatorApp:
    """Routes one ASGI connection to the control API or the exchange gateway."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self._control: ASGIApp = create_control_app(state)
        self._gateway: ASGIApp = Gateway(state, ENDPOINTS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        is_control = path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")
        if scope["type"] == "http" and not is_control:
            await self._gateway(scope, receive, send)
        else:  # control requests and the lifespan protocol
            await self._control(scope, receive, send)


def create_app(scenario: Scenario) -> SimulatorApp:
    return SimulatorApp(SimulatorState(scenario))
