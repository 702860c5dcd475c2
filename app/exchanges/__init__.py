"""Exchange clients, one module per protocol, and the registry the composition root builds from.

See ``base.py`` for the interface and ``app.errors`` for what clients raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from app.exchanges.base import ExchangeClient
from app.exchanges.binance_usdm import BinanceUsdmClient
from app.exchanges.generic_v2 import GenericV2Client

#: Every exchange client class, keyed by its configuration name (``exchange: generic-v2``).
EXCHANGES: Mapping[str, type[ExchangeClient]] = MappingProxyType(
    {cls.name: cls for cls in (GenericV2Client, BinanceUsdmClient)}
)


def client_class(name: str) -> type[ExchangeClient]:
    """Return the client class registered as ``name``.

    Raises ``ValueError`` naming the known exchanges when ``name`` is not one of them.
    """
    try:
        return EXCHANGES[name]
    except KeyError:
        known = ", ".join(sorted(EXCHANGES))
        raise ValueError(f"unknown exchange {name!r}; known exchanges: {known}") from None


__all__ = ["EXCHANGES", "ExchangeClient", "client_class"]
