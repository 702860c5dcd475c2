"""Binance USDⓈ-M new-order validation, as a pure function (``binance-order-rules.md``).

``check_order(params, market, account, ...)`` answers what ``POST /fapi/v1/order`` (and its
``/test`` twin) would: an ``Accepted`` order, or the first ``Rejected(code, msg)`` in this
order of checks (the simulator's documented order; Binance does not publish one):

1.  mandatory ``symbol``, ``side``, ``type`` (-1102); unknown symbol (-1121); side (-1117);
    type not an order type or not in the symbol's ``orderTypes`` (-1116); a conditional type
    while the scenario has ``algo_service`` (-4120); symbol status: ``CLOSE`` -4141, anything
    else but ``TRADING`` -1122;
2.  ``positionSide`` not BOTH/LONG/SHORT (-4060); LONG/SHORT on a one-way account or
    BOTH/nothing on a hedge-mode account (-4061); ``reduceOnly`` not true/false (-4062), sent
    in hedge mode or with ``closePosition=true`` (-1106); ``closePosition`` with TRAILING
    (-4136), with another type but STOP_MARKET/TAKE_PROFIT_MARKET (-1106), with ``quantity``
    (-4137);
3.  per type: missing mandatory parameters (-1102), ``timeInForce`` on MARKET (-1114), ``price``
    or ``stopPrice`` where the type takes none (-1106), ``timeInForce`` not allowed (-1115), GTD
    without or with a bad ``goodTillDate`` (-1102 / -5040);
4.  numbers: not a plain decimal (-1102), more decimals than ``pricePrecision`` /
    ``quantityPrecision`` (-1111; trailing zeros do not count), price <= 0 (-4001), quantity <=
    0 (-4003), stopPrice <= 0 (-4006), callbackRate outside 0.1..10 (-1130);
5.  ``newClientOrderId``: pattern (-4015), already used by an open order (-4116);
6.  PRICE_FILTER on price (-4013 below min, -4002 above max, -4014 off tick) and stopPrice
    (-4013, -4007, -4014); LOT_SIZE, or MARKET_LOT_SIZE for MARKET (-4004, -4005, -4023);
    each part disabled when its value is 0; ticks and steps counted from min (modular check);
7.  PERCENT_PRICE against the mark price: LIMIT BUY above ``mark * multiplierUp`` -4016, LIMIT
    SELL below ``mark * multiplierDown`` -4024; MARKET BUY whose best ask (or SELL whose best
    bid) is outside that band -4131;
8.  MIN_NOTIONAL (-4164): ``quantity * p`` below ``notional``, with ``p`` = price (LIMIT, STOP,
    TAKE_PROFIT), stopPrice (STOP_MARKET, TAKE_PROFIT_MARKET) or the mark price (MARKET,
    TRAILING_STOP_MARKET); reduce-only orders, ``closePosition`` and hedge-mode closes exempt;
9.  open orders on the symbol (normal and conditional) >= MAX_NUM_ORDERS (-2025); conditional
    open orders >= MAX_NUM_ALGO_ORDERS for a conditional order (-4045);
10. account: ``canTrade`` or ``isFuturesTradingEnabled`` false (-4088); a not-NORMAL
    ``tradingStatus`` (-4087), a locked quantitative-rule indicator of the symbol or the account
    (-4400): both for orders that do not reduce;
11. reducing orders (``reduceOnly=true``; hedge-mode closes SELL+LONG / BUY+SHORT): no position
    to reduce in that direction, or quantity above the position minus the open reducing
    orders of the same side (and position side) (-2022);
12. orders that add exposure: position after the order plus the open same-direction orders
    that add exposure, times the mark price, above the maximum notional at the account's
    leverage for the symbol (largest bracket ``notionalCap`` with ``initialLeverage >=``
    leverage) (-2027);
13. margin (-2019), not for conditional types (no margin check before they trigger): the
    opening quantity (one-way: beyond what closes the opposite position; hedge: all of an
    opening order) times the assuming price / leverage, plus open loss, above
    ``availableBalance``. Assuming price: LIMIT BUY its price; LIMIT SELL ``max(price,
    mark * 1.0015)``; MARKET BUY ``ask * 1.0005``; MARKET SELL ``max(bid, mark)``. Open loss
    per unit: ``|min(0, d * (mark - assumingPrice))|`` with d = +1 BUY, -1 SELL.

An accepted order carries that required margin, which a resting order reserves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal, InvalidOperation, localcontext

from simulator.markets import CONDITIONAL_TYPES, ORDER_TYPES, TRADING, MarketSpec

BUY, SELL = "BUY", "SELL"
BOTH, LONG, SHORT = "BOTH", "LONG", "SHORT"
PRICED_TYPES = frozenset({"LIMIT", "STOP", "TAKE_PROFIT"})
STOP_PRICED_TYPES = frozenset({"STOP", "TAKE_PROFIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"})
CLOSE_POSITION_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
KNOWN_TIF = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD", "RPI"})
CLIENT_ORDER_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
GTD_MIN_AHEAD_MS = 600_000
GTD_MAX_MS = 253402300799000
LIMIT_SHORT_BUFFER = Decimal("1.0015")
MARKET_LONG_BUFFER = Decimal("1.0005")
MARGIN_QUANTUM = Decimal("0.00000001")
#: Digits for the tick/step modulo: any price or quantity with at most 18 decimals and up to
#: 40 integer digits divides exactly.
GRID_PRECISION = 60
MIN_CALLBACK_RATE, MAX_CALLBACK_RATE = Decimal("0.1"), Decimal("10")


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order of the account on the symbol being checked."""

    side: str
    position_side: str
    type: str
    quantity: Decimal
    reduce_only: bool = False
    close_position: bool = False
    client_order_id: str = ""


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the checks need to know of the account, for one symbol."""

    dual_side_position: bool = False
    can_trade: bool = True
    #: ``tradingStatus == NORMAL`` (else only reducing orders pass).
    normal: bool = True
    #: A locked quantitative-rule indicator for the symbol or the whole account.
    locked: bool = False
    leverage: int = 20
    available_balance: Decimal = Decimal(0)
    #: Position quantities (>= 0) per side; one-way positions are netted from both.
    long_qty: Decimal = Decimal(0)
    short_qty: Decimal = Decimal(0)
    open_orders: Sequence[OpenOrder] = field(default_factory=tuple)

    @property
    def net(self) -> Decimal:
        return self.long_qty - self.short_qty


@dataclass(frozen=True, slots=True)
class Rejected:
    code: int
    msg: str
    status: int = 400


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid order, normalised; ``margin`` is what it reserves while it rests."""

    symbol: str
    side: str
    type: str
    position_side: str
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    time_in_force: str
    reduce_only: bool
    close_position: bool
    client_order_id: str
    margin: Decimal
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    good_till_date: int = 0


class _Reject(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.rejection = Rejected(code, msg)


def _fail(code: int, msg: str) -> _Reject:
    return _Reject(code, msg)


def _mandatory(name: str) -> _Reject:
    return _fail(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> _Reject:
    return _fail(-1106, f"Parameter '{name}' sent when not required.")


def _flag(params: Mapping[str, str], name: str, code: int) -> bool | None:
    """A "true"/"false" parameter (any case); None when absent."""
    raw = params.get(name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        if code == -4062:
            raise _fail(-4062, "Invalid or improper reduceOnly value.")
        raise _mandatory(name)
    return lowered == "true"


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not DECIMAL_TEXT.fullmatch(raw):
        raise _mandatory(name)
    try:
        return Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise _mandatory(name) from exc


def decimals(value: Decimal) -> int:
    """Digits after the point, trailing zeros not counted."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _on_grid(value: Decimal, start: Decimal, step: Decimal) -> bool:
    """``(value - start) % step == 0``; a quotient too large to compute is off the grid."""
    if step == 0:
        return True
    with localcontext() as context:
        context.prec = GRID_PRECISION
        try:
            return (value - start) % step == 0
        except InvalidOperation:
            return False


def check_order(
    params: Mapping[str, str],
    market: MarketSpec | None,
    account: AccountView,
    *,
    algo_service: bool = False,
    now_ms: int = 0,
) -> Accepted | Rejected:
    """Validate one new order; see the module docstring for the checks and their order."""
    try:
        return _check(params, market, account, algo_service, now_ms)
    except _Reject as exc:
        return exc.rejection


def _check(
    params: Mapping[str, str],
    market: MarketSpec | None,
    account: AccountView,
    algo_service: bool,
    now_ms: int,
) -> Accepted:
    for name in ("symbol", "side", "type"):
        if not params.get(name):
            raise _mandatory(name)
    symbol, side, order_type = params["symbol"], params["side"], params["type"]
    if market is None:
        raise _fail(-1121, "Invalid symbol.")
    if side not in (BUY, SELL):
        raise _fail(-1117, "Invalid side.")
    if order_type not in ORDER_TYPES or order_type not in market.order_types:
        raise _fail(-1116, "Invalid orderType.")
    conditional = order_type in CONDITIONAL_TYPES
    if algo_service and conditional:
        raise _fail(
            -4120,
            "Order type not supported for this endpoint. "
            "Please use the Algo Order API endpoints instead.",
        )
    if market.status != TRADING:
        if market.status == "CLOSE":
            raise _fail(-4141, "Symbol is closed.")
        raise _fail(-1122, "Invalid symbol status.")

    # --- position mode, reduceOnly, closePosition -------------------------------------------
    position_side = params.get("positionSide")
    if position_side is not None and position_side not in (BOTH, LONG, SHORT):
        raise _fail(-4060, "Invalid position side.")
    hedge = account.dual_side_position
    if (hedge and position_side in (None, BOTH)) or (not hedge and position_side in (LONG, SHORT)):
        raise _fail(-4061, "Order's position side does not match user's setting.")
    position_side = position_side or BOTH
    reduce_only_sent = _flag(params, "reduceOnly", -4062)
    close_position = _flag(params, "closePosition", -1102) is True
    if reduce_only_sent is not None and (hedge or close_position):
        raise _not_required("reduceOnly")
    if close_position:
        if order_type == "TRAILING_STOP_MARKET":
            raise _fail(-4136, "Target strategy invalid for orderType TRAILING_STOP_MARKET.")
        if order_type not in CLOSE_POSITION_TYPES:
            raise _not_required("closePosition")
        if "quantity" in params:
            raise _fail(-4137, "Quantity must be zero with closePosition equals true")
    reduce_only = reduce_only_sent is True
    hedge_close = hedge and (side, position_side) in ((SELL, LONG), (BUY, SHORT))

    # --- parameters per type -----------------------------------------------------------------
    required = []
    if not close_position:
        required.append("quantity")
    if order_type in PRICED_TYPES:
        required.append("price")
    if order_type == "LIMIT":
        required.append("timeInForce")
    if order_type in STOP_PRICED_TYPES:
        required.append("stopPrice")
    if order_type == "TRAILING_STOP_MARKET":
        required.append("callbackRate")
    for name in required:
        if not params.get(name):
            raise _mandatory(name)
    if order_type == "MARKET" and "timeInForce" in params:
        raise _fail(-1114, "TimeInForce parameter sent when not required.")
    if order_type not in PRICED_TYPES and "price" in params:
        raise _not_required("price")
    if order_type not in STOP_PRICED_TYPES and "stopPrice" in params:
        raise _not_required("stopPrice")
    time_in_force = params.get("timeInForce") or "GTC"
    if time_in_force not in KNOWN_TIF or time_in_force not in market.time_in_force:
        raise _fail(-1115, "Invalid timeInForce.")
    good_till_date = 0
    if time_in_force == "GTD":
        raw_gtd = params.get("goodTillDate", "")
        if not raw_gtd.isdigit():
            raise _mandatory("goodTillDate")
        good_till_date = int(raw_gtd)
        if not now_ms + GTD_MIN_AHEAD_MS < good_till_date < GTD_MAX_MS:
            raise _fail(
                -5040,
                "The goodTillDate timestamp must be greater than the current time plus 600 "
                "seconds and smaller than 253402300799000 (UTC 9999-12-31 23:59:59)",
            )

    # --- numbers -------------------------------------------------------------------------------
    quantity = _decimal(params, "quantity")
    price = _decimal(params, "price")
    stop_price = _decimal(params, "stopPrice")
    callback_rate = _decimal(params, "callbackRate")
    activation_price = _decimal(params, "activationPrice")
    for value, precision in (
        (price, market.price_precision),
        (stop_price, market.price_precision),
        (activation_price, market.price_precision),
        (quantity, market.quantity_precision),
    ):
        if value is not None and decimals(value) > precision:
            raise _fail(-1111, "Precision is over the maximum defined for this asset.")
    if price is not None and price <= 0:
        raise _fail(-4001, "Price less than 0.")
    if quantity is not None and quantity <= 0:
        raise _fail(-4003, "Quantity less than zero.")
    if stop_price is not None and stop_price <= 0:
        raise _fail(-4006, "Stop price less than zero.")
    if callback_rate is not None and not (MIN_CALLBACK_RATE <= callback_rate <= MAX_CALLBACK_RATE):
        raise _fail(-1130, "Data sent for parameter 'callbackRate' is not valid.")

    client_order_id = params.get("newClientOrderId", "")
    if "newClientOrderId" in params:
        if not CLIENT_ORDER_ID.fullmatch(client_order_id):
            raise _fail(-4015, "Client order id is not valid.")
        if any(order.client_order_id == client_order_id for order in account.open_orders):
            raise _fail(-4116, "clientOrderId is duplicated.")

    # --- filters -------------------------------------------------------------------------------
    if price is not None:
        if market.min_price > 0 and price < market.min_price:
            raise _fail(-4013, "Price less than min price.")
        if market.max_price > 0 and price > market.max_price:
            raise _fail(-4002, "Price greater than max price.")
        if not _on_grid(price, market.min_price, market.tick_size):
            raise _fail(-4014, "Price not increased by tick size.")
    if stop_price is not None:
        if market.min_price > 0 and stop_price < market.min_price:
            raise _fail(-4013, "Price less than min price.")
        if market.max_price > 0 and stop_price > market.max_price:
            raise _fail(-4007, "Stop price greater than max price.")
        if not _on_grid(stop_price, market.min_price, market.tick_size):
            raise _fail(-4014, "Price not increased by tick size.")
    if quantity is not None:
        if order_type == "MARKET":
            min_qty, max_qty, step = market.market_lot
        else:
            min_qty, max_qty, step = market.min_qty, market.max_qty, market.step_size
        if min_qty > 0 and quantity < min_qty:
            raise _fail(-4004, "Quantity less than min quantity.")
        if max_qty > 0 and quantity > max_qty:
            raise _fail(-4005, "Quantity greater than max quantity.")
        if not _on_grid(quantity, min_qty, step):
            raise _fail(-4023, "Qty not increased by step size.")

    mark = market.mark_price
    cap, floor = mark * market.multiplier_up, mark * market.multiplier_down
    if order_type == "LIMIT" and price is not None:
        if side == BUY and price > cap:
            raise _fail(-4016, "Price is higher than mark price multiplier cap.")
        if side == SELL and price < floor:
            raise _fail(-4024, "Price is lower than mark price multiplier floor.")
    if order_type == "MARKET" and (
        (side == BUY and market.ask > cap) or (side == SELL and market.bid < floor)
    ):
        raise _fail(
            -4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit"
        )

    reducing = reduce_only or close_position or hedge_close
    if quantity is not None and not reducing:
        if order_type in PRICED_TYPES and price is not None:
            notional_price = price
        elif order_type in STOP_PRICED_TYPES and stop_price is not None:
            notional_price = stop_price
        else:
            notional_price = mark
        if quantity * notional_price < market.min_notional:
            raise _fail(
                -4164,
                f"Order's notional must be no smaller than {market.min_notional} "
                "(unless you choose reduce only)",
            )

    # --- open-order limits -----------------------------------------------------------------------
    if len(account.open_orders) >= market.max_num_orders:
        raise _fail(-2025, "Reach max open order limit.")
    if conditional and (
        sum(1 for order in account.open_orders if order.type in CONDITIONAL_TYPES)
        >= market.max_num_algo_orders
    ):
        raise _fail(-4045, "Reach max stop order limit.")

    # --- account state ----------------------------------------------------------------------------
    if not account.can_trade:
        raise _fail(-4088, "User can not place order currently")
    if not reducing and not account.normal:
        raise _fail(-4087, "User can only place reduce only order")
    if not reducing and account.locked:
        raise _fail(
            -4400,
            "Futures Trading Quantitative Rules violated, only reduceOnly order is allowed, "
            "please try again later.",
        )

    qty = quantity or Decimal(0)
    if (reduce_only or hedge_close) and not close_position:
        _check_reduction(account, side, position_side, qty, hedge)

    margin = Decimal(0)
    if not reducing:
        _check_position_limit(account, market, side, position_side, qty, hedge)
        if not conditional:
            margin = _required_margin(account, market, order_type, side, qty, price, hedge)
            if margin > account.available_balance:
                raise _fail(-2019, "Margin is insufficient.")

    return Accepted(
        symbol=symbol,
        side=side,
        type=order_type,
        position_side=position_side,
        quantity=qty,
        price=price or Decimal(0),
        stop_price=stop_price or Decimal(0),
        time_in_force=time_in_force,
        reduce_only=reduce_only or hedge_close,
        close_position=close_position,
        client_order_id=client_order_id,
        margin=margin,
        callback_rate=callback_rate,
        activation_price=activation_price,
        working_type=params.get("workingType") or "CONTRACT_PRICE",
        price_protect=(params.get("priceProtect") or "").lower() == "true",
        good_till_date=good_till_date,
    )


def _check_reduction(
    account: AccountView, side: str, position_side: str, qty: Decimal, hedge: bool
) -> None:
    if hedge:
        position = account.long_qty if position_side == LONG else account.short_qty
        pending = sum(
            (
                order.quantity
                for order in account.open_orders
                if order.side == side and order.position_side == position_side
            ),
            Decimal(0),
        )
    else:
        net = account.net
        position = net if side == SELL else -net
        pending = sum(
            (
                order.quantity
                for order in account.open_orders
                if order.side == side and order.reduce_only
            ),
            Decimal(0),
        )
    if position <= 0 or qty > position - pending:
        raise _fail(-2022, "ReduceOnly Order is rejected.")


def _adding(order: OpenOrder, side: str, position_side: str) -> bool:
    return (
        order.side == side
        and order.position_side == position_side
        and not order.reduce_only
        and not order.close_position
        and order.type not in CONDITIONAL_TYPES
    )


def _check_position_limit(
    account: AccountView,
    market: MarketSpec,
    side: str,
    position_side: str,
    qty: Decimal,
    hedge: bool,
) -> None:
    pending = sum(
        (o.quantity for o in account.open_orders if _adding(o, side, position_side)),
        Decimal(0),
    )
    if hedge:
        held = account.long_qty if position_side == LONG else account.short_qty
        after = held + pending + qty
    else:
        direction = 1 if side == BUY else -1
        after = account.net * direction + pending + qty
    if after > 0 and after * market.mark_price > market.max_notional_at(account.leverage):
        raise _fail(-2027, "Exceeded the maximum allowable position at current leverage.")


def _required_margin(
    account: AccountView,
    market: MarketSpec,
    order_type: str,
    side: str,
    qty: Decimal,
    price: Decimal | None,
    hedge: bool,
) -> Decimal:
    mark = market.mark_price
    if hedge:
        opening = qty
    else:
        opposite = account.short_qty - account.long_qty if side == BUY else account.net
        opening = max(Decimal(0), qty - max(Decimal(0), opposite))
    if opening == 0:
        return Decimal(0)
    if order_type == "MARKET" or price is None:
        assuming = market.ask * MARKET_LONG_BUFFER if side == BUY else max(market.bid, mark)
    else:
        assuming = price if side == BUY else max(price, mark * LIMIT_SHORT_BUFFER)
    direction = 1 if side == BUY else -1
    open_loss = abs(min(Decimal(0), direction * (mark - assuming)))
    required = opening * assuming / Decimal(max(1, account.leverage)) + opening * open_loss
    with localcontext() as context:
        context.prec = GRID_PRECISION
        try:
            return required.quantize(MARGIN_QUANTUM, rounding=ROUND_UP)
        except InvalidOperation:  # too many digits for 8 decimals: far above any balance
            return required
