"""The Binance market: symbol rules (filters, status, order types), brackets and mark prices.

A scenario's ``markets`` table declares each symbol with Binance's own names
(``binance-order-rules.md`` §2-3); absent, ``DEFAULT_MARKETS`` gives a realistic variety:
different ticks, steps and minimum notionals, one symbol with a small MARKET_LOT_SIZE
(DOGEUSDT) and one that is not trading (MATICUSDT, ``SETTLING``). The control API can patch any
field of a symbol at run time (mark price, status, brackets...); ``reset`` returns to the
scenario.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from pydantic.alias_generators import to_camel

ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
#: Conditional (algo) order types: counted against MAX_NUM_ALGO_ORDERS too.
CONDITIONAL_TYPES = frozenset(ORDER_TYPES[2:])
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD")
TRADING = "TRADING"
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD")
#: ``deliveryDate`` of a perpetual on Binance (year 2100).
PERPETUAL_DELIVERY_DATE = 4133404800000


class BracketSpec(BaseModel):
    """One notional tier; ``notionalFloor`` is the previous tier's cap, ``cum`` is derived."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    initial_leverage: PositiveInt
    notional_cap: Decimal = Field(gt=0)
    maint_margin_ratio: Decimal = Field(ge=0, lt=1)


def _brackets(rows: tuple[tuple[int, int, str], ...]) -> list[BracketSpec]:
    return [
        BracketSpec(
            initial_leverage=lev, notional_cap=Decimal(cap), maint_margin_ratio=Decimal(mmr)
        )
        for lev, cap, mmr in rows
    ]


MAJOR_BRACKETS = _brackets(
    (
        (125, 50_000, "0.004"),
        (100, 600_000, "0.005"),
        (75, 3_000_000, "0.0065"),
        (50, 12_000_000, "0.01"),
        (25, 70_000_000, "0.02"),
        (20, 100_000_000, "0.025"),
        (10, 230_000_000, "0.05"),
        (5, 480_000_000, "0.1"),
        (4, 600_000_000, "0.125"),
        (3, 800_000_000, "0.15"),
        (2, 1_200_000_000, "0.25"),
        (1, 1_800_000_000, "0.5"),
    )
)
ALT_BRACKETS = _brackets(
    (
        (75, 5_000, "0.005"),
        (50, 25_000, "0.01"),
        (25, 100_000, "0.02"),
        (20, 250_000, "0.025"),
        (10, 1_000_000, "0.05"),
        (5, 5_000_000, "0.1"),
        (4, 10_000_000, "0.125"),
        (2, 20_000_000, "0.25"),
        (1, 50_000_000, "0.5"),
    )
)


class MarketSpec(BaseModel):
    """One USDⓈ-M perpetual: everything ``exchangeInfo``, ``leverageBracket`` and
    ``premiumIndex`` report for it, and what ``order/test`` checks against."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    #: Any text; only ``TRADING`` accepts orders (unknown values are served as given).
    status: str = TRADING
    contract_type: str = "PERPETUAL"
    price_precision: int = Field(default=2, ge=0, le=18)
    quantity_precision: int = Field(default=3, ge=0, le=18)
    min_price: Decimal = Field(default=Decimal("0.01"), ge=0)
    max_price: Decimal = Field(default=Decimal("1000000"), ge=0)
    tick_size: Decimal = Field(default=Decimal("0.01"), ge=0)
    min_qty: Decimal = Field(default=Decimal("0.001"), ge=0)
    max_qty: Decimal = Field(default=Decimal("1000"), ge=0)
    step_size: Decimal = Field(default=Decimal("0.001"), ge=0)
    #: MARKET_LOT_SIZE; each defaults to the LOT_SIZE value.
    market_min_qty: Decimal | None = Field(default=None, ge=0)
    market_max_qty: Decimal | None = Field(default=None, ge=0)
    market_step_size: Decimal | None = Field(default=None, ge=0)
    min_notional: Decimal = Field(default=Decimal("5"), ge=0)
    multiplier_up: Decimal = Field(default=Decimal("1.0500"), gt=0)
    multiplier_down: Decimal = Field(default=Decimal("0.9500"), ge=0)
    multiplier_decimal: int = Field(default=4, ge=0, le=18)
    max_num_orders: PositiveInt = 200
    max_num_algo_orders: PositiveInt = 10
    order_types: tuple[str, ...] = ORDER_TYPES
    time_in_force: tuple[str, ...] = TIME_IN_FORCE
    mark_price: Decimal = Field(default=Decimal("100"), gt=0)
    #: Best bid/ask for MARKET orders' PERCENT_PRICE check (-4131); default: the mark price.
    best_bid: Decimal | None = Field(default=None, gt=0)
    best_ask: Decimal | None = Field(default=None, gt=0)
    last_funding_rate: Decimal = Decimal("0.00010000")
    brackets: tuple[BracketSpec, ...] = tuple(ALT_BRACKETS)

    @model_validator(mode="after")
    def _consistent(self) -> MarketSpec:
        if not self.brackets:
            raise ValueError("brackets must not be empty")
        caps = [bracket.notional_cap for bracket in self.brackets]
        leverages = [bracket.initial_leverage for bracket in self.brackets]
        if caps != sorted(caps) or len(set(caps)) != len(caps):
            raise ValueError("bracket notionalCap values must increase")
        if leverages != sorted(leverages, reverse=True):
            raise ValueError("bracket initialLeverage values must not increase")
        if self.max_price and self.min_price > self.max_price:
            raise ValueError("minPrice above maxPrice")
        if self.max_qty and self.min_qty > self.max_qty:
            raise ValueError("minQty above maxQty")
        return self

    # ------------------------------------------------------------------ derived values

    @property
    def market_lot(self) -> tuple[Decimal, Decimal, Decimal]:
        """MARKET_LOT_SIZE ``(minQty, maxQty, stepSize)``, each defaulting to LOT_SIZE's."""
        return (
            self.min_qty if self.market_min_qty is None else self.market_min_qty,
            self.max_qty if self.market_max_qty is None else self.market_max_qty,
            self.step_size if self.market_step_size is None else self.market_step_size,
        )

    @property
    def bid(self) -> Decimal:
        return self.mark_price if self.best_bid is None else self.best_bid

    @property
    def ask(self) -> Decimal:
        return self.mark_price if self.best_ask is None else self.best_ask

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].initial_leverage

    def max_notional_at(self, leverage: int) -> Decimal:
        """The largest position notional allowed at ``leverage`` (0 above the maximum)."""
        caps = [b.notional_cap for b in self.brackets if b.initial_leverage >= leverage]
        return max(caps) if caps else Decimal(0)

    def bracket_rows(self) -> list[dict[str, Any]]:
        """``leverageBracket`` rows: numbers, as Binance sends them; ``cum`` made continuous."""
        rows: list[dict[str, Any]] = []
        floor = Decimal(0)
        cum = Decimal(0)
        previous_mmr = Decimal(0)
        for number, bracket in enumerate(self.brackets, start=1):
            cum += floor * (bracket.maint_margin_ratio - previous_mmr)
            rows.append(
                {
                    "bracket": number,
                    "initialLeverage": bracket.initial_leverage,
                    "notionalCap": _number(bracket.notional_cap),
                    "notionalFloor": _number(floor),
                    "maintMarginRatio": float(bracket.maint_margin_ratio),
                    "cum": _number(cum),
                }
            )
            floor = bracket.notional_cap
            previous_mmr = bracket.maint_margin_ratio
        return rows


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _spec(**fields: Any) -> MarketSpec:
    return MarketSpec.model_validate(fields)


DEFAULT_MARKETS: dict[str, MarketSpec] = {
    "BTCUSDT": _spec(
        pricePrecision=2,
        quantityPrecision=3,
        minPrice="261.10",
        maxPrice="809484",
        tickSize="0.10",
        minQty="0.001",
        maxQty="1000",
        stepSize="0.001",
        marketMaxQty="120",
        minNotional="100",
        markPrice="60000.00",
        brackets=MAJOR_BRACKETS,
    ),
    "ETHUSDT": _spec(
        pricePrecision=2,
        quantityPrecision=3,
        minPrice="39.86",
        maxPrice="306177",
        tickSize="0.01",
        minQty="0.001",
        maxQty="10000",
        stepSize="0.001",
        marketMaxQty="2000",
        minNotional="20",
        markPrice="3000.00",
        brackets=MAJOR_BRACKETS,
    ),
    "BNBUSDT": _spec(
        pricePrecision=3,
        quantityPrecision=2,
        minPrice="6.600",
        maxPrice="100000",
        tickSize="0.010",
        minQty="0.01",
        maxQty="100000",
        stepSize="0.01",
        marketMaxQty="2000",
        minNotional="5",
        markPrice="600.000",
    ),
    "SOLUSDT": _spec(
        pricePrecision=4,
        quantityPrecision=0,
        minPrice="0.4200",
        maxPrice="6857",
        tickSize="0.0100",
        minQty="1",
        maxQty="1000000",
        stepSize="1",
        marketMaxQty="5000",
        minNotional="5",
        markPrice="150.0000",
    ),
    "XRPUSDT": _spec(
        pricePrecision=4,
        quantityPrecision=1,
        minPrice="0.0143",
        maxPrice="100000",
        tickSize="0.0001",
        minQty="0.1",
        maxQty="10000000",
        stepSize="0.1",
        marketMaxQty="2000000",
        minNotional="5",
        multiplierUp="1.1500",
        multiplierDown="0.8500",
        markPrice="0.5500",
    ),
    "DOGEUSDT": _spec(
        pricePrecision=6,
        quantityPrecision=0,
        minPrice="0.002440",
        maxPrice="30",
        tickSize="0.000010",
        minQty="1",
        maxQty="50000000",
        stepSize="1",
        marketMinQty="1",
        marketMaxQty="30000",
        marketStepSize="1",
        minNotional="5",
        multiplierUp="1.1500",
        multiplierDown="0.8500",
        maxNumAlgoOrders=100,
        markPrice="0.150000",
        orderTypes=("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT_MARKET"),
        timeInForce=("GTC", "IOC", "FOK", "GTX"),
    ),
    "MATICUSDT": _spec(
        status="SETTLING",
        pricePrecision=5,
        quantityPrecision=0,
        minPrice="0.00380",
        maxPrice="60",
        tickSize="0.00010",
        minQty="1",
        maxQty="10000000",
        stepSize="1",
        marketMaxQty="100000",
        minNotional="5",
        markPrice="0.40000",
    ),
}


DEFAULT_SPEC = MarketSpec()


def base_and_quote(symbol: str) -> tuple[str, str]:
    quote = next((q for q in QUOTE_ASSETS if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
    base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
    return base, quote


class MarketBook:
    """The symbols of the market; a mutable copy of the scenario's table."""

    def __init__(self, specs: Mapping[str, MarketSpec]) -> None:
        self._specs = dict(specs)
        self._current: dict[str, MarketSpec] = {}
        self.reset()

    def reset(self) -> None:
        self._current = dict(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._current

    def get(self, symbol: str) -> MarketSpec | None:
        return self._current.get(symbol)

    def rules(self, symbol: str) -> MarketSpec:
        """The symbol's rules; a symbol outside the table (held, say) gets the defaults."""
        return self._current.get(symbol) or DEFAULT_SPEC

    def patch(self, symbol: str, fields: Mapping[str, Any]) -> MarketSpec:
        """Merge ``fields`` over the symbol's rules (a new symbol starts from the defaults);
        ``ValidationError`` when the result is not a valid market."""
        current = self._current.get(symbol, MarketSpec())
        merged = {**current.model_dump(by_alias=True), **fields}
        spec = MarketSpec.model_validate(merged)
        self._current[symbol] = spec
        return spec

    def describe(self) -> dict[str, Any]:
        return {
            symbol: spec.model_dump(mode="json", by_alias=True)
            for symbol, spec in self._current.items()
        }
