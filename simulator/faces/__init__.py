"""The exchange APIs the simulator speaks, each declared as a tuple of ``Endpoint``."""

from __future__ import annotations

from simulator.endpoint import Endpoint
from simulator.faces import (
    binance,
    binance_algo,
    binance_market,
    binance_modes,
    binance_orders,
    generic_v2,
)

ENDPOINTS: tuple[Endpoint, ...] = (
    *generic_v2.ENDPOINTS,
    *binance.ENDPOINTS,
    *binance_market.ENDPOINTS,
    *binance_modes.ENDPOINTS,
    *binance_orders.ENDPOINTS,
    *binance_algo.ENDPOINTS,
)
