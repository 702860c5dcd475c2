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
from pretrade_guard_client.hooks import Hook, record
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
        request = self._http.build_request(
            "GET",
            wire.CAN_TRADE_PATH,
            params=wire.query_params(order),
            timeout=wire.timeout_for(self._settings.timeout, deadline),
        )
        (decision,) = self._call("can-trade", request, (order,), deadline, batch=False)
        return decision

    def check_batch(
        self, orders: Sequence[Order], *, deadline: float | None = None
    ) -> list[Decision]:
        """Decisions on up to 1000 orders in one request, in order (``POST /can-trade/batch``).

        The guard judges the batch as a whole: an unknown account anywhere answers 404
        for the whole batch (raised as ``GuardRequestError``).
        """
        request = self._http.build_request(
            "POST",
            wire.BATCH_PATH,
            json=wire.batch_body(orders),
            timeout=wire.timeout_for(self._settings.timeout, deadline),
        )
        return self._call("can-trade/batch", request, tuple(orders), deadline, batch=True)

    def _call(
        self,
        endpoint: str,
        request: httpx.Request,
        orders: tuple[Order, ...],
        deadline: float | None,
        *,
        batch: bool,
    ) -> list[Decision]:
        started = time.perf_counter()
        try:
            decisions = wire.parse(self._fetch(request, deadline), len(orders), batch=batch)
        except GuardError as error:
            record(self._settings.hooks, endpoint, started, len(orders), error=error)
            if isinstance(error, GuardUnavailable) and self._settings.deny_when_unavailable:
                return [wire.denial(order, error) for order in orders]
            raise
        record(self._settings.hooks, endpoint, started, len(orders), decisions=decisions)
        return decisions

    def _fetch(self, request: httpx.Request, deadline: float | None) -> wire.Answer:
        """Send, and read a bounded answer; past the deadline the read stops."""
        body = wire.Body(deadline)
        try:
            response = self._http.send(request, stream=True)
            try:
                for chunk in response.iter_bytes():
                    body.add(chunk)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise wire.unavailable(exc) from exc
        return wire.Answer(response.status_code, body.content())
