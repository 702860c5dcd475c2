"""Client of Binance USDⓈ-M futures (``https://fapi.binance.com``), read-only.

Endpoints and weights (exchanges.md §1.6.8):

=========================================  ======  ============================================
``GET /fapi/v1/time``                      1       clock offset (public)
``GET /fapi/v1/accountConfig``             5       ``canTrade`` / ``canDeposit`` / ``canWithdraw``
``GET /fapi/v1/apiTradingStatus``          10      quant-rule indicators, no ``symbol`` = all
``GET /fapi/v3/account``                   5       totals and open positions (default)
``GET /fapi/v1/symbolConfig``              5       leverage / margin type, which v3 dropped
``GET /fapi/v2/account``                   10      fallback snapshot (5 on its page, 10 in the
                                                   2024-08-07 change log: budget for 10)
``GET /fapi/v1/openOrders``                1/40    per symbol of the account / all symbols
                                                   (``binance_usdm_market``)
``GET /fapi/v1/openAlgoOrders``            1/40    the same for conditional orders of the
                                                   Algo Service, plus one all-symbols sweep
                                                   every ``algo_orders_sweep_s``
``GET /sapi/v1/account/apiRestrictions``   1       start-up key-permission check (spot host)
=========================================  ======  ============================================

Options (``accounts.<name>.options``): ``snapshot_endpoint`` ``"v3"`` (default) or ``"v2"``;
``sapi_base_url`` (default ``https://api.binance.com``); ``algo_orders_sweep_s`` (default 60,
0 = never): how often every symbol's open algo orders are read at once (weight 40).

Why a sweep: v3 account lists the symbols with a position or open orders, and the open orders
of those symbols are read one call each. Binance does not say whether a symbol whose only
open orders are algo (conditional) orders is listed; if it is not, its algo orders would never
be counted toward MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS. The sweep finds such symbols, and the
snapshots until the next sweep read them one call each as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from app.domain import AccountSnapshot, AccountStatus, OpenOrder
from app.errors import ConfigError, ExchangeError
from app.exchanges.base import Capabilities, MarketSource
from app.exchanges.binance_usdm_market import (
    OPEN_ALGO_ORDERS_ALL_WEIGHT,
    BinanceUsdmMarket,
    account_symbols,
    fetch_open_algo_orders,
    fetch_open_orders,
    parse_max_notional,
    per_symbol,
)
from app.exchanges.binance_usdm_parsing import (
    MAX_LEVERAGE,
    parse_account,
    parse_status,
    parse_symbol_config,
    permission_warnings,
)
from app.exchanges.jsondecode import call_without_gc
from app.exchanges.jsonfields import Fields
from app.exchanges.mbx import MbxClient, check_http_url

ACCOUNT_CONFIG_PATH = "/fapi/v1/accountConfig"
TRADING_STATUS_PATH = "/fapi/v1/apiTradingStatus"
SYMBOL_CONFIG_PATH = "/fapi/v1/symbolConfig"
ACCOUNT_PATHS: Mapping[str, str] = {"v3": "/fapi/v3/account", "v2": "/fapi/v2/account"}
API_RESTRICTIONS_PATH = "/sapi/v1/account/apiRestrictions"
DEFAULT_SAPI_BASE_URL = "https://api.binance.com"

ACCOUNT_CONFIG_WEIGHT = 5
TRADING_STATUS_WEIGHT = 10  # 1 with a symbol, 10 without; we want every symbol at once
V3_ACCOUNT_WEIGHT = 5
SYMBOL_CONFIG_WEIGHT = 5
V2_ACCOUNT_WEIGHT = 10
API_RESTRICTIONS_WEIGHT = 1

#: Default seconds between two all-symbols ``openAlgoOrders`` reads (weight 40 each).
DEFAULT_ALGO_SWEEP_S = 60.0
_MAX_ALGO_SWEEP_S = 86_400.0

_OPTIONS = ("snapshot_endpoint", "sapi_base_url", "algo_orders_sweep_s")


def _parse_v3(account: Fields, rows: list[Any]) -> AccountSnapshot:
    return parse_account(account, parse_symbol_config(rows, endpoint=SYMBOL_CONFIG_PATH))


class BinanceUsdmClient(MbxClient):
    """One Binance USD-M futures account. Needs a key that can read futures (no trading)."""

    name: ClassVar[str] = "binance-usdm"
    # v3 account + symbolConfig = 5 + 5, and the v2 fallback alone = 10: the same snapshot
    # weight either way, so the capabilities can stay class data.
    capabilities: ClassVar[Capabilities] = Capabilities(
        has_trading_status=False,
        has_quant_rules=True,
        status_weight=ACCOUNT_CONFIG_WEIGHT + TRADING_STATUS_WEIGHT,
        snapshot_weight=V3_ACCOUNT_WEIGHT + SYMBOL_CONFIG_WEIGHT,
        time_weight=1,
        # REQUEST_WEIGHT 2400/min, counted per IP, not per key (exchanges.md §1.4).
        weight_limit_per_minute=2400,
        weight_scope="host",
        max_leverage=MAX_LEVERAGE,
    )
    time_path: ClassVar[str] = "/fapi/v1/time"
    error_hints: ClassVar[Mapping[int, str]] = {
        # ccxt#18997: retired endpoint versions hard-fail with -5000; v2 account will follow.
        -5000: (
            "the exchange retired this endpoint version; if it is the account snapshot, set "
            "the account option snapshot_endpoint to the other version ('v3' or 'v2')"
        ),
    }

    auth_hint: ClassVar[str] = (
        "likely causes: wrong API key or secret; this host's IP is not on the key's IP "
        "whitelist; futures not enabled on the key (or the key predates the futures account); "
        "a portfolio-margin account, which must use the /papi API"
    )

    snapshot_endpoint: str
    sapi_base_url: str
    algo_orders_sweep_s: float
    #: Symbols the last all-symbols ``openAlgoOrders`` read found orders on.
    _algo_symbols: frozenset[str] = frozenset()
    #: ``time.monotonic()`` from which the next snapshot reads every symbol's algo orders.
    _algo_sweep_due: float = 0.0

    def configure(self, options: Mapping[str, Any]) -> None:
        """Validate ``snapshot_endpoint`` and ``sapi_base_url``; refuse unknown keys."""
        unknown = sorted(map(str, set(options) - set(_OPTIONS)))
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown option(s) {', '.join(unknown)}; "
                f"known options: {', '.join(_OPTIONS)}"
            )
        endpoint = options.get("snapshot_endpoint", "v3")
        if endpoint not in ACCOUNT_PATHS:
            raise ConfigError(
                f"{self.name}: options.snapshot_endpoint must be 'v3' or 'v2', got {endpoint!r}"
            )
        self.snapshot_endpoint = endpoint
        sapi = options.get("sapi_base_url", DEFAULT_SAPI_BASE_URL)
        if not isinstance(sapi, str):
            raise ConfigError(f"{self.name}: options.sapi_base_url must be a string")
        self.sapi_base_url = check_http_url(sapi, f"{self.name}: options.sapi_base_url")
        sweep = options.get("algo_orders_sweep_s", DEFAULT_ALGO_SWEEP_S)
        if (
            isinstance(sweep, bool)
            or not isinstance(sweep, int | float)
            or not 0 <= sweep <= _MAX_ALGO_SWEEP_S
        ):
            raise ConfigError(
                f"{self.name}: options.algo_orders_sweep_s must be a number of seconds in "
                f"0..{_MAX_ALGO_SWEEP_S:g} (0 = never), got {sweep!r}"
            )
        self.algo_orders_sweep_s = float(sweep)

    def extra_weight_per_minute(self) -> float:
        """The all-symbols ``openAlgoOrders`` sweep: 40 every ``algo_orders_sweep_s``."""
        if not self.algo_orders_sweep_s:
            return 0.0
        return OPEN_ALGO_ORDERS_ALL_WEIGHT * 60 / self.algo_orders_sweep_s

    async def fetch_status(self) -> AccountStatus:
        """``accountConfig`` (may trade, position and multi-assets modes) +
        ``apiTradingStatus`` (quant-rule locks)."""
        config = await self.get_object(ACCOUNT_CONFIG_PATH, weight=ACCOUNT_CONFIG_WEIGHT)
        rules = await self.get_object(TRADING_STATUS_PATH, weight=TRADING_STATUS_WEIGHT)
        status = parse_status(config, rules, clock_offset_ms=self.clock_offset_ms)
        return replace(
            status,
            hedge_mode=config.opt_flag("dualSidePosition"),
            multi_assets=config.opt_flag("multiAssetsMargin"),
        )

    async def fetch_snapshot(self) -> AccountSnapshot:
        """v3 account + symbolConfig, or the v2 account alone when configured; then the open
        orders and open algo orders of the account's symbols (``binance_usdm_market``)."""
        path = ACCOUNT_PATHS[self.snapshot_endpoint]
        # Parsed in a worker thread: a big account must not stall others' decisions.
        if self.snapshot_endpoint == "v2":
            body = await self.get_object(path, weight=V2_ACCOUNT_WEIGHT)
            snapshot = await asyncio.to_thread(call_without_gc, parse_account, body, None)
            rows = [
                {"symbol": row.text("symbol"), "maxNotionalValue": row.opt_decimal("maxNotional")}
                for row in body.objects("positions")
            ]
            symbols = None
        else:
            body = await self.get_object(path, weight=V3_ACCOUNT_WEIGHT)
            rows = await self.get_array(SYMBOL_CONFIG_PATH, weight=SYMBOL_CONFIG_WEIGHT)
            snapshot = await asyncio.to_thread(call_without_gc, _parse_v3, body, rows)
            symbols = account_symbols(body)
        orders = await fetch_open_orders(self, symbols)
        algo = await self._open_algo_orders(symbols)
        return replace(
            snapshot,
            open_orders=(*orders, *algo),
            max_notional_by_symbol=parse_max_notional(rows, endpoint=SYMBOL_CONFIG_PATH),
        )

    async def _open_algo_orders(self, symbols: list[str] | None) -> list[OpenOrder]:
        """Algo orders of ``symbols`` and of the symbols the last sweep found orders on; every
        symbol's (one call, weight 40) when a sweep is due, on the v2 snapshot (no symbol
        list), or when there are too many symbols for one call each."""
        now = time.monotonic()
        if symbols is not None and not (self.algo_orders_sweep_s and now >= self._algo_sweep_due):
            wanted = sorted({*symbols, *self._algo_symbols})
            if per_symbol(wanted):
                return await fetch_open_algo_orders(self, wanted)
        orders = await fetch_open_algo_orders(self, None)
        self._algo_symbols = frozenset(order.symbol for order in orders)
        self._algo_sweep_due = now + self.algo_orders_sweep_s
        return orders

    def market_source(self) -> MarketSource:
        """``exchangeInfo`` and ``premiumIndex`` of this account's host."""
        return BinanceUsdmMarket(self)

    async def check_permissions(self) -> list[str]:
        """Warn when the key can trade or withdraw; never raises (a failed check is a warning).

        The SAPI lives on the spot host with its own per-endpoint limits; its weight still goes
        through this account's gate, which over-counts by 1 once at start-up.
        """
        try:
            body = await self.get_object(
                API_RESTRICTIONS_PATH, weight=API_RESTRICTIONS_WEIGHT, base_url=self.sapi_base_url
            )
            return permission_warnings(body)
        except ExchangeError as exc:
            return [f"could not verify the API key's permissions: {exc}"]
