"""The synchronous client: one pooled ``httpx.Client`` per ``GuardClient``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import httpx

from pretrade_guard_client import wire
from pretrade_guard_client.codes import OnUnavailable, OrderSide, OrderType, PositionSide
from pretrade_guard_client.errors import GuardError, GuardUnavailable
from pretrade_guard_client.hooks import GuardCall, Hook, notify
from pretrade_guard_client.models import Amount, Decision, Order
from pretrade_guard_client.settings import ClientSettings


class GuardClient:
    """Ask the guard before every order. Thread-safe; reuse one per process (it pools
    connections); close it, or use it as a context manager.

    ``timeout`` (seconds) bounds connecting, sending and reading each answer; each call may
    pass its own ``deadline`` (seconds) instead. ``on_unavailable`` chooses between
    raising ``GuardUnavailable`` (default) and returning a client-side denial.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = ClientSettings.DEFAULT_TIMEOUT_S,
        on_unavailable: OnUnavailable = OnUnavailable.RAISE,
        hooks: Sequence[Hook] = (),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = ClientSettings.build(base_url, token, timeout, on_unavailable, hooks)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"GuardClient({self._settings.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def can_trade(
        self,
        account: str,
        symbol: str | None = None,
        side: OrderSide | str | None = None,
        quantity: Amount | None = None,
        price: Amount | None = None,
        *,
        reduce_only: bool = False,
        type: OrderType | str | None = None,
        position_side: PositionSide | str | None = None,
        stop_price: Amount | None = None,
        time_in_force: str | None = None,
        close_position: bool | None = None,
        deadline: float | None = None,
    ) -> Decision:
        """``check(Order(...))`` with the order's fields as arguments."""
        order = Order(
            account,
            symbol,
            side,
            quantity,
            price,
            reduce_only,
            type,
            position_side,
            stop_price,
            time_in_force,
            close_position,
        )
        return self.check(order, deadline=deadline)

    def check(self, order: Order, *, deadline: float | None = None) -> Decision:
        """The guard's decision on one order (``GET /can-trade``)."""
        params = wire.query_params(order)
        started = time.perf_counter()
        try:
            try:
                response = self._http.get(
                    wire.CAN_TRADE_PATH,
                    params=params,
                    timeout=wire.timeout_for(self._settings.timeout, deadline),
                )
            except httpx.HTTPError as exc:
                raise wire.unavailable(exc) from exc
            decision = wire.decision(response)
        except GuardError as error:
            self._failed("can-trade", started, 1, error)
            if isinstance(error, GuardUnavailable) and self._settings.deny_when_unavailable:
                return wire.denial(order, error)
            raise
        self._done("can-trade", started, (decision,))
        return decision

    def check_batch(
        self, orders: Sequence[Order], *, deadline: float | None = None
    ) -> list[Decision]:
        """Decisions on up to 1000 orders in one request, in order (``POST /can-trade/batch``).

        The guard judges the batch as a whole: an unknown account anywhere answers 404
        for the whole batch (raised as ``GuardRequestError``).
        """
        body = wire.batch_body(orders)
        started = time.perf_counter()
        try:
            try:
                response = self._http.post(
                    wire.BATCH_PATH,
                    json=body,
                    timeout=wire.timeout_for(self._settings.timeout, deadline),
                )
            except httpx.HTTPError as exc:
                raise wire.unavailable(exc) from exc
            decisions = wire.decisions(response, len(orders))
        except GuardError as error:
            self._failed("can-trade/batch", started, len(orders), error)
            if isinstance(error, GuardUnavailable) and self._settings.deny_when_unavailable:
                return [wire.denial(order, error) for order in orders]
            raise
        self._done("can-trade/batch", started, tuple(decisions))
        return decisions

    def _done(self, endpoint: str, started: float, decisions: tuple[Decision, ...]) -> None:
        duration = time.perf_counter() - started
        call = GuardCall(endpoint, duration, len(decisions), decisions)
        notify(self._settings.hooks, call)

    def _failed(self, endpoint: str, started: float, orders: int, error: GuardError) -> None:
        duration = time.perf_counter() - started
        notify(self._settings.hooks, GuardCall(endpoint, duration, orders, error=error))
