"""Wire schemas of the public API. Field names and reason codes are a public contract."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from app.api.order_fields import TimeInForce, order_fields_problem
from app.api.strict import strict_amount
from app.domain import OrderIntent, OrderPositionSide, OrderSide, ReasonCode, WarningCode
from app.markets.model import OrderType

Symbol = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Exchange symbol, e.g. BTCUSDT (upper-cased by the guard).",
    ),
]
#: ASCII digits with an optional fraction as text, or an exactly read JSON number.
Amount = Annotated[
    Decimal, BeforeValidator(strict_amount), Field(gt=0, allow_inf_nan=False, max_digits=40)
]
AccountName = Annotated[
    str, Field(min_length=1, max_length=64, description="Account name from the guard's config.")
]


class OrderQuery(BaseModel):
    """One order intent. Only ``account`` is required: alone it asks "may it trade at all"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: AccountName
    symbol: Symbol | None = None
    side: OrderSide | None = None
    quantity: Amount | None = Field(default=None, description="Order quantity (base asset).")
    price: Amount | None = Field(
        default=None,
        description="Limit price. Without it the margin check uses the position's mark price; "
        "with neither, the answer is a PRICE_UNAVAILABLE denial.",
    )
    reduce_only: bool = False
    type: OrderType | None = Field(
        default=None,
        description="Order type. Default: LIMIT when price is given, else MARKET.",
    )
    position_side: OrderPositionSide | None = Field(
        default=None,
        description="BOTH (one-way mode) or LONG/SHORT (hedge mode, required there). In hedge "
        "mode SELL+LONG and BUY+SHORT close a position (reduce-only semantics).",
    )
    stop_price: Amount | None = Field(
        default=None, description="Trigger price of STOP/TAKE_PROFIT(_MARKET) orders."
    )
    time_in_force: TimeInForce | None = Field(
        default=None, description="Checked against the symbol's allowed values."
    )
    close_position: bool = Field(
        default=False, description="Close-all STOP_MARKET/TAKE_PROFIT_MARKET (no quantity)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.quantity is not None or self.side is not None) and self.symbol is None:
            raise ValueError("symbol is required when side or quantity is given")
        if self.quantity is not None and self.side is None:
            raise ValueError("side is required when quantity is given")
        if self.price is not None and self.quantity is None:
            raise ValueError("quantity is required when price is given")
        if self.reduce_only and (self.symbol is None or self.side is None):
            raise ValueError("reduce_only needs symbol and side")
        problem = order_fields_problem(
            has_side=self.side is not None,
            quantity=self.quantity,
            price=self.price,
            reduce_only=self.reduce_only,
            order_type=self.type,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            close_position=self.close_position,
            has_position_side=self.position_side is not None,
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    def intent(self) -> OrderIntent:
        return OrderIntent(
            account=self.account,
            symbol=self.symbol.upper() if self.symbol else None,
            side=self.side,
            quantity=self.quantity,
            price=self.price,
            reduce_only=self.reduce_only,
            order_type=None if self.type is None else self.type.value,
            position_side=self.position_side,
            stop_price=self.stop_price,
            time_in_force=None if self.time_in_force is None else self.time_in_force.value,
            close_position=self.close_position,
        )


class BatchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: list[OrderQuery] = Field(min_length=1, max_length=1000)


class SuggestionOut(BaseModel):
    """A nearby order the exchange would accept: resend the order with these fields changed."""

    price: str | None = Field(
        default=None, description="Nearest valid price, rounded away from the aggressive side."
    )
    stop_price: str | None = Field(default=None, description="Nearest valid stop price.")
    quantity: str | None = Field(
        default=None,
        description="Quantity truncated to the step, or the smallest meeting the minimum.",
    )
    position_side: str | None = Field(default=None, description="Position side to send.")
    reduce_only: bool | None = Field(default=None, description="reduce_only to send.")


class ReasonOut(BaseModel):
    code: ReasonCode | WarningCode
    message: str
    retry_after_ms: int | None = Field(
        default=None, description="When the condition is expected to lift (ms from now)."
    )
    limit: str | None = Field(default=None, description="The limit that applies (decimal).")
    observed: str | None = Field(default=None, description="The observed value (decimal).")
    suggestion: SuggestionOut | None = Field(
        default=None,
        description="Where a valid order is near: the fields to resend (null otherwise).",
    )


class DecisionOut(BaseModel):
    allowed: bool
    reasons: list[ReasonOut] = Field(description="Why the order is denied; empty when allowed.")
    warnings: list[ReasonOut] = Field(description="Advice that does not deny the order.")
    decision_id: str = Field(description="Unique id; log it beside the order for audits.")
    account: str
    symbol: str | None
    trading_status: str | None = Field(
        description="Exchange trading status (raw value), null when not reported or no data."
    )
    status_age_ms: int | None = Field(description="Age of the status data; null when none.")
    snapshot_age_ms: int | None = Field(description="Age of the snapshot data; null when none.")


class BatchOut(BaseModel):
    decisions: list[DecisionOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[dict[str, str]] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
