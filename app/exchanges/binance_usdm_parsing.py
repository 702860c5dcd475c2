"""Binance USDⓈ-M futures answers mapped onto the exchange-neutral domain types.

Field meanings are from exchanges.md §1.6 (accountConfig, symbolConfig, v2/v3 account,
apiTradingStatus) and §2.3 (apiRestrictions). The rules never learn which exchange spoke: a
Binance snapshot looks exactly like a generic-v2 one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.domain import AccountSnapshot, AccountStatus, Position, PositionSide, QuantIndicator
from app.exchanges.bounds import MAX_PRICE, MIN_PRICE
from app.exchanges.jsonfields import Fields
from app.exchanges.positions import unique_positions

#: Binance USD-M's highest leverage (exchanges.md: 125x on the largest symbols).
MAX_LEVERAGE = Decimal(125)


@dataclass(frozen=True, slots=True)
class SymbolConfig:
    """Per-symbol settings that v3 account rows no longer carry (ccxt PR #23225)."""

    leverage: Mapping[str, Decimal]
    margin_type: Mapping[str, str]


def parse_status(
    config: Fields, trading_status: Fields, *, clock_offset_ms: int = 0
) -> AccountStatus:
    """``accountConfig`` flags plus ``apiTradingStatus`` indicators.

    USD-M has no account trading-status string, so ``trading_status`` is ``None`` and only an
    explicit ``canTrade: false`` or a locked indicator restricts trading. ``clock_offset_ms``
    (server minus local time) converts lock recovery times to the guard's clock.
    """
    return AccountStatus(
        trading_status=None,
        reason="",
        can_trade=config.flag("canTrade"),
        futures_enabled=None,
        can_deposit=config.opt_flag("canDeposit"),
        can_withdraw=config.opt_flag("canWithdraw"),
        update_time_ms=trading_status.opt_integer("updateTime"),
        indicators=parse_indicators(trading_status, clock_offset_ms=clock_offset_ms),
    )


def parse_indicators(body: Fields, *, clock_offset_ms: int = 0) -> tuple[QuantIndicator, ...]:
    """Quantitative-rule indicators keyed by symbol or ``ACCOUNT`` (account-wide, e.g. TMV).

    An empty ``indicators`` object is the healthy answer: indicators below the recording
    threshold are not returned (exchanges.md §1.6.7, node-binance-api#536). A missing one is
    an unusable answer.

    ``plannedRecoverTime`` is the exchange's epoch ms; the rules compare it with the guard's
    own clock (``retry_after_ms``), so it is shifted by ``clock_offset_ms`` (server minus
    local). Without that, a 3 s skew would tell bots to wait 3 s too long or too little.
    """
    indicators = body.child("indicators")
    return tuple(
        QuantIndicator(
            scope=scope,
            indicator=row.text("indicator"),
            # Documented as JSON floats; the transport parsed them straight to Decimal.
            value=row.decimal("value"),
            trigger_value=row.decimal("triggerValue"),
            is_locked=row.flag("isLocked"),
            planned_recover_time_ms=_local_time(
                row.opt_integer("plannedRecoverTime"), clock_offset_ms
            ),
        )
        # Keys are symbols or the literal "ACCOUNT", which is the domain's ACCOUNT_SCOPE.
        for scope in indicators
        for row in indicators.objects(scope)
    )


def _local_time(server_ms: int | None, clock_offset_ms: int) -> int | None:
    # 0 means "no planned recovery" (unlocked indicators, locks the exchange just cleared).
    return server_ms - clock_offset_ms if server_ms else server_ms


def parse_symbol_config(rows: list[Any], *, endpoint: str) -> SymbolConfig:
    """``/fapi/v1/symbolConfig``: leverage (int) and margin type per symbol."""
    leverage: dict[str, Decimal] = {}
    margin_type: dict[str, str] = {}
    for i, item in enumerate(rows):
        row = Fields.of(item, endpoint=endpoint, path=f"[{i}]")
        symbol = row.text("symbol")
        if symbol in leverage:
            raise row.error("symbol", f"repeats {symbol} (one row per symbol)")
        leverage[symbol] = row.leverage("leverage", MAX_LEVERAGE)
        kind = row.opt_text("marginType")
        if kind is not None:
            margin_type[symbol] = kind
    return SymbolConfig(leverage=leverage, margin_type=margin_type)


def _side(row: Fields, amount: Decimal) -> PositionSide:
    # Hedge mode reports LONG/SHORT rows (SHORT amounts are negative); one-way mode reports
    # BOTH rows whose sign is the direction (exchanges.md §1.6.3).
    value = row.text("positionSide")
    if value == "BOTH":
        return PositionSide.LONG if amount > 0 else PositionSide.SHORT
    if value not in PositionSide.__members__:
        raise row.error("positionSide", "must be BOTH, LONG or SHORT")
    return PositionSide(value)


def _position(row: Fields, config: SymbolConfig | None) -> Position | None:
    amount = row.amount("positionAmt")
    symbol = row.text("symbol")
    if amount == 0:
        return None  # v2 lists every symbol; v3 also lists symbols with only open orders
    side = _side(row, amount)
    quantity = abs(amount)
    notional = row.opt_amount("notional")
    notional = abs(notional) if notional is not None else None
    if config is None:  # v2 rows carry their own leverage, entry price and margin mode
        leverage = row.opt_leverage("leverage", MAX_LEVERAGE)
        isolated = row.opt_flag("isolated")
        margin_type = None if isolated is None else ("ISOLATED" if isolated else "CROSSED")
        entry_price = row.opt_price_or_zero("entryPrice")
    else:
        leverage = config.leverage.get(symbol)
        margin_type = config.margin_type.get(symbol)
        entry_price = None
    unrealized_pnl = row.opt_amount("unrealizedProfit")
    # notional = positionAmt x markPrice, so the mark price the rules need is recoverable.
    mark_price = notional / quantity if notional else None
    source = "notional"
    if notional is None and entry_price and unrealized_pnl is not None:
        # v2 rows have no notional, but unrealizedProfit = (mark - entry) x positionAmt.
        mark_price = entry_price + unrealized_pnl / amount
        notional = mark_price * quantity
        source = "unrealizedProfit"
    if mark_price is not None and not MIN_PRICE <= mark_price <= MAX_PRICE:
        raise row.error(
            source,
            f"gives an implausible mark price {mark_price:.6g} "
            f"(outside [{MIN_PRICE}, {MAX_PRICE}])",
        )
    return Position(
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry_price=entry_price,
        mark_price=mark_price,
        leverage=leverage,
        notional=notional,
        unrealized_pnl=unrealized_pnl,
        initial_margin=row.opt_amount("initialMargin"),
        maintenance_margin=row.opt_amount("maintMargin"),
        margin_type=margin_type,
    )


def parse_account(body: Fields, config: SymbolConfig | None) -> AccountSnapshot:
    """A v3 account (with ``config`` from symbolConfig) or a v2 account (``config=None``).

    In single-asset mode the ``total*`` values cover USDT only; in multi-assets mode they are
    USD sums (exchanges.md §1.6.3). Either way they are the account's margin figures.
    """
    rows = body.objects("positions")
    positions = unique_positions((row, _position(row, config)) for row in rows)
    if config is None:
        leverage = {
            row.text("symbol"): lev
            for row in rows
            if (lev := row.opt_leverage("leverage", MAX_LEVERAGE)) is not None
        }
    else:
        leverage = dict(config.leverage)
    return AccountSnapshot(
        available_balance=body.amount("availableBalance"),
        margin_balance=body.amount("totalMarginBalance"),
        maintenance_margin=body.non_negative_amount("totalMaintMargin"),
        positions=positions,
        wallet_balance=body.amount_or_zero("totalWalletBalance"),
        unrealized_pnl=body.amount_or_zero("totalUnrealizedProfit"),
        initial_margin=body.amount_or_zero("totalInitialMargin"),
        leverage_by_symbol=leverage,
    )


#: apiRestrictions flags that let a key do more than read, and what each allows.
_RISKY_PERMISSIONS = (
    ("enableWithdrawals", "withdraw funds"),
    ("enableFutures", "trade futures"),
    ("enableSpotAndMarginTrading", "trade spot and margin"),
    ("enablePortfolioMarginTrading", "trade on portfolio margin"),
)


def permission_warnings(body: Fields) -> list[str]:
    """Warnings for a ``/sapi/v1/account/apiRestrictions`` answer (empty for a read-only key)."""
    warnings = [
        f"API key can {what} ({flag}=true); the guard only reads, use a read-only key"
        for flag, what in _RISKY_PERMISSIONS
        if body.opt_flag(flag)
    ]
    if body.opt_flag("enablePortfolioMarginTrading"):
        # exchanges.md §2.3-2.4: a portfolio-margin account answers -2015 on /fapi.
        warnings.append("portfolio-margin account: /fapi calls fail with -2015 (it must use /papi)")
    if body.opt_flag("enableReading") is False:
        warnings.append("API key cannot read (enableReading=false): every refresh will fail")
    return warnings
