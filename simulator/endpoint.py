"""What an exchange endpoint is: a path, a weight, whether it is signed, and a handler.

Faces (``simulator/faces``) declare their endpoints as data; the gateway runs every request
through the same pipeline (faults, weight, signature, handler).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulator.accounts import AccountState
from simulator.state import SimulatorState


class Face(StrEnum):
    """Which exchange API an endpoint belongs to; decides whose weight budget it spends."""

    GENERIC_V2 = "generic-v2"  # budget per API key
    BINANCE = "binance"  # budget per client IP


@dataclass(frozen=True, slots=True)
class Call:
    """One accepted request as a handler sees it."""

    state: SimulatorState
    #: The authenticated account; None on public endpoints.
    account: AccountState | None
    params: Mapping[str, str]
    server_time_ms: int

    def signed_account(self) -> AccountState:
        if self.account is None:
            raise RuntimeError("handler of a public endpoint asked for an account")
        return self.account


@dataclass(frozen=True, slots=True)
class Answer:
    """A handler's answer with extra response headers (e.g. ``X-MBX-ORDER-COUNT-1M``)."""

    payload: Any
    headers: Mapping[str, str]


#: Returns the JSON answer (or an ``Answer``); raises ``simulator.errors.ApiError`` for an
#: error answer.
Handler = Callable[[Call], Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    face: Face
    signed: bool
    weight: int
    handler: Handler
    #: Weight when the optional ``symbol`` parameter is absent, if that costs more.
    weight_without_symbol: int | None = None
    method: str = "GET"

    def weight_for(self, params: Mapping[str, str]) -> int:
        if self.weight_without_symbol is not None and not params.get("symbol"):
            return self.weight_without_symbol
        return self.weight
