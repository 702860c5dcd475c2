"""Which price an order is judged at: its own, its trigger, or the mark price.

* LIMIT, STOP, TAKE_PROFIT: the order's limit price;
* STOP_MARKET, TAKE_PROFIT_MARKET: the trigger price (``stop_price``), else the mark price;
* MARKET, TRAILING_STOP_MARKET (and an order without a price): the mark price of the host's
  mark-price feed, else the mark price of the account's position in the symbol.

For margin, a market BUY is priced like Binance's "assuming price": the best ask plus 0.05 %
slippage (binance-order-rules.md §5.1). The guard has no order book, so it takes the mark price
plus 0.05 %; a SELL is priced at the mark (Binance: max(best bid, mark)). A SELL limit is
priced at ``max(price, mark × 1.0015)`` (the newer FAQ's rule for shorts).
"""

from __future__ import annotations

from decimal import Decimal

from app.domain import OrderSide
from app.rules.facts import Facts

#: Binance's market-order slippage factor for a long's assuming price (FAQ "cost to open").
MARKET_BUY_SLIPPAGE = Decimal("1.0005")
#: The newer FAQ's floor of a short limit's assuming price: ``max(price, mark × 1.0015)``
#: (Binance uses the last price there; the guard has only the mark).
LIMIT_SELL_BUFFER = Decimal("1.0015")
PRICED = frozenset({"LIMIT", "STOP", "TAKE_PROFIT"})
TRIGGERED_MARKET = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
#: Conditional types: the exchange reserves no margin for them until they trigger.
CONDITIONAL = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)


def mark_price(facts: Facts) -> Decimal | None:
    """The symbol's mark price: the host's fresh feed, else the position's."""
    if facts.mark is not None:
        return facts.mark
    symbol = facts.intent.symbol
    return None if symbol is None else facts.snapshot.mark_price_for(symbol)


def order_price(facts: Facts) -> Decimal | None:
    """The price the order's notional is computed at (see the module docstring)."""
    intent = facts.intent
    kind = intent.effective_type
    if kind in PRICED and intent.price is not None:
        return intent.price
    if kind in TRIGGERED_MARKET and intent.stop_price is not None:
        return intent.stop_price
    if intent.price is not None:
        return intent.price
    return mark_price(facts)


def margin_price(facts: Facts) -> Decimal | None:
    """Binance's "assuming price" of the order's initial margin: a BUY limit's price; a SELL
    limit's ``max(price, mark × 1.0015)``; a market BUY's mark + 0.05 %; a market SELL's mark."""
    intent = facts.intent
    if intent.price is not None or intent.effective_type in TRIGGERED_MARKET:
        price = order_price(facts)
        mark = mark_price(facts)
        if price is None or mark is None or intent.side is not OrderSide.SELL:
            return price
        return max(price, mark * LIMIT_SELL_BUFFER)
    mark = mark_price(facts)
    if mark is None or intent.side is not OrderSide.BUY:
        return mark
    return mark * MARKET_BUY_SLIPPAGE


def open_loss(facts: Facts, quantity: Decimal, price: Decimal) -> Decimal:
    """Binance's open loss: ``quantity × |min(0, direction × (mark − price))|`` (0 when the
    mark price is unknown: nothing to compare with)."""
    mark = mark_price(facts)
    if mark is None:
        return Decimal(0)
    gap = price - mark if facts.intent.side is OrderSide.BUY else mark - price
    return quantity * gap if gap > 0 else Decimal(0)
