"""How the client turns the guard's answers (and failures) into values and errors.

These are unit tests of the client's parsing and error mapping, so the answers come from
``httpx.MockTransport``; the behaviour against the real guard is in test_client_against_guard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pretrade_guard_client import (
    AsyncGuardClient,
    ClientReasonCode,
    Decision,
    GuardCall,
    GuardClient,
    GuardRequestError,
    GuardUnavailable,
    OnUnavailable,
    Order,
    OrderDenied,
    OrderType,
    PositionSide,
    ReasonCode,
    WarningCode,
)

URL = "http://guard.test"
TOKEN = "bot-token-secret-0001"

Handler = Callable[[httpx.Request], httpx.Response]


def decision_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "allowed": True,
        "reasons": [],
        "warnings": [],
        "decision_id": "5f2b5f1d1ec3-4",
        "account": "alpha",
        "symbol": "BTCUSDT",
        "trading_status": "NORMAL",
        "status_age_ms": 534,
        "snapshot_age_ms": 1485,
    }
    body.update(overrides)
    return body


def answering(status: int, body: Any, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handle


def client(handler: Handler, **kwargs: Any) -> GuardClient:
    return GuardClient(URL, TOKEN, transport=httpx.MockTransport(handler), **kwargs)


def test_an_allowed_answer_becomes_a_decision_and_the_request_carries_the_order() -> None:
    seen: list[httpx.Request] = []
    with client(answering(200, decision_body(), seen)) as guard:
        decision = guard.can_trade("alpha", "BTCUSDT", "BUY", Decimal("1E-2"), 60000)
    assert decision.allowed
    assert decision.raise_for_denial() is decision
    assert decision.decision_id == "5f2b5f1d1ec3-4"
    assert (decision.status_age_ms, decision.snapshot_age_ms) == (534, 1485)
    assert not decision.client_side
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/can-trade"
    # Amounts as plain decimal digits; fields that are not set are not sent at all (an older
    # guard refuses fields it does not know).
    assert dict(request.url.params) == {
        "account": "alpha",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.01",
        "price": "60000",
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_order_detail_fields_are_sent_when_set() -> None:
    seen: list[httpx.Request] = []
    order = Order(
        "alpha",
        "BTCUSDT",
        "SELL",
        "0.5",
        type=OrderType.STOP_MARKET,
        position_side=PositionSide.LONG,
        stop_price="58000.5",
        time_in_force="GTC",
        close_position=False,
        reduce_only=True,
    )
    with client(answering(200, decision_body(), seen)) as guard:
        guard.check(order)
    assert dict(seen[0].url.params) == {
        "account": "alpha",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.5",
        "type": "STOP_MARKET",
        "position_side": "LONG",
        "stop_price": "58000.5",
        "time_in_force": "GTC",
        "reduce_only": "true",
        "close_position": "false",
    }


def test_floats_and_non_numbers_are_refused_before_anything_is_sent() -> None:
    seen: list[httpx.Request] = []
    with client(answering(200, decision_body(), seen)) as guard:
        with pytest.raises(TypeError, match="quantity must be a Decimal"):
            guard.can_trade("alpha", "BTCUSDT", "BUY", 0.1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="price is not a decimal"):
            guard.can_trade("alpha", "BTCUSDT", "BUY", "1", "sixty")
        with pytest.raises(ValueError, match="finite"):
            guard.can_trade("alpha", "BTCUSDT", "BUY", "NaN")
    assert seen == []


def test_a_denial_is_a_value_and_raise_for_denial_carries_reasons_and_suggestions() -> None:
    reasons = [
        {
            "code": "INSUFFICIENT_MARGIN",
            "message": "order needs 3000 USDT initial margin but 25.00 is available",
            "retry_after_ms": None,
            "limit": "25.00",
            "observed": "3000",
        },
        {
            "code": "FUNDING_SETTLEMENT_PAUSE",  # from a newer guard: unknown to this client
            "message": "orders pause around funding; try this price after it",
            "retry_after_ms": 1500,
            "limit": "0.1",
            "observed": "60000.05",
            "suggestion": {"price": "60000.1"},
        },
    ]
    warnings = [{"code": "QUANT_RULE_NEAR_TRIGGER", "message": "UFR at 0.92 of 0.99"}]
    body = decision_body(allowed=False, reasons=reasons, warnings=warnings)
    with client(answering(200, body)) as guard:
        decision = guard.can_trade("alpha", "BTCUSDT", "BUY", "1", "60000.05")
    assert not decision.allowed
    margin, tick = decision.reasons
    assert margin.code is ReasonCode.INSUFFICIENT_MARGIN
    assert (margin.limit, margin.observed, margin.suggestion) == ("25.00", "3000", None)
    assert margin.known
    # An unknown code parses: kept as the raw string, compared like any code.
    assert tick.code == "FUNDING_SETTLEMENT_PAUSE"
    assert not tick.known
    assert tick.suggestion is not None
    assert tick.suggestion.price == Decimal("60000.1")
    assert tick.suggestion.quantity is None
    assert decision.warnings[0].code is WarningCode.QUANT_RULE_NEAR_TRIGGER
    assert decision.codes == ("INSUFFICIENT_MARGIN", "FUNDING_SETTLEMENT_PAUSE")

    with pytest.raises(OrderDenied) as denied:
        decision.raise_for_denial()
    assert denied.value.decision is decision
    assert denied.value.codes == ("INSUFFICIENT_MARGIN", "FUNDING_SETTLEMENT_PAUSE")
    assert [s.price for s in denied.value.suggestions] == [Decimal("60000.1")]
    assert "alpha BTCUSDT (decision 5f2b5f1d1ec3-4)" in str(denied.value)
    assert "INSUFFICIENT_MARGIN: order needs 3000 USDT" in str(denied.value)


@pytest.mark.parametrize(
    ("status", "body", "what"),
    [
        (500, {"error": {"code": "INTERNAL", "message": "boom"}}, "HTTP 500"),
        (503, b"<html>bad gateway</html>", "HTTP 503"),
        (302, b"", "HTTP 302"),
        (200, b"not json", "not JSON"),
        (200, b"\xff\xfe", "not JSON"),
        (200, [], "not a JSON object"),
        (200, decision_body(allowed="true"), "'allowed' is not a boolean"),
        (200, decision_body(allowed=1), "'allowed' is not a boolean"),
        (200, {"decision_id": "x", "account": "alpha"}, "'allowed' is not a boolean"),
        (200, decision_body(reasons=None), "'reasons' is not a list"),
        (200, decision_body(reasons=[{"message": "no code"}]), "'code' is not a string"),
        (200, decision_body(status_age_ms="534"), "'status_age_ms' is not an integer"),
        (200, decision_body(decision_id=None), "'decision_id' is not a string"),
        # Contradictory: fail closed rather than trust "allowed".
        (
            200,
            decision_body(reasons=[{"code": "NO_DATA", "message": "no data"}]),
            "allowed with reasons",
        ),
    ],
)
def test_anything_but_a_decision_raises_guard_unavailable(
    status: int, body: Any, what: str
) -> None:
    with client(answering(status, body)) as guard, pytest.raises(GuardUnavailable, match=what):
        guard.can_trade("alpha")


@pytest.mark.parametrize(
    ("status", "code", "fields"),
    [
        (401, "UNAUTHORIZED", None),
        (403, "FORBIDDEN", None),
        (404, "UNKNOWN_ACCOUNT", None),
        (422, "INVALID_REQUEST", [{"field": "side", "message": "Input should be 'BUY'"}]),
    ],
)
def test_4xx_raise_request_errors_with_the_guards_detail(
    status: int, code: str, fields: list[dict[str, str]] | None
) -> None:
    error: dict[str, Any] = {"code": code, "message": f"{code} detail"}
    if fields:
        error["fields"] = fields
    calls: list[GuardCall] = []
    with (
        client(
            answering(status, {"error": error}),
            on_unavailable=OnUnavailable.DENY,  # never turns a caller's bug into a denial
            hooks=[calls.append],
        ) as guard,
        pytest.raises(GuardRequestError) as raised,
    ):
        guard.can_trade("alpha", "BTCUSDT", "UP")
    assert raised.value.status_code == status
    assert raised.value.code == code
    assert raised.value.detail == f"{code} detail"
    assert list(raised.value.fields) == (fields or [])
    assert f"guard answered {status} {code}: {code} detail" in str(raised.value)
    assert [c.error for c in calls] == [raised.value]


def test_a_4xx_without_the_error_shape_still_raises_a_request_error() -> None:
    with (
        client(answering(400, b"plain text " * 100)) as guard,
        pytest.raises(GuardRequestError) as raised,
    ):
        guard.can_trade("alpha")
    assert raised.value.code is None
    assert raised.value.detail == ("plain text " * 100)[:200]


def test_deny_mode_turns_unavailability_into_a_client_side_denial() -> None:
    with client(answering(502, b""), on_unavailable=OnUnavailable.DENY) as guard:
        decision = guard.can_trade("alpha", "btcusdt", "BUY", "1")
        batch = guard.check_batch([Order("alpha"), Order("bravo")])
    assert not decision.allowed
    assert decision.client_side
    assert decision.decision_id is None
    assert decision.symbol == "BTCUSDT"
    (reason,) = decision.reasons
    assert reason.code is ClientReasonCode.GUARD_UNAVAILABLE
    assert "HTTP 502" in reason.message
    assert [(d.account, d.allowed, d.client_side) for d in batch] == [
        ("alpha", False, True),
        ("bravo", False, True),
    ]
    with pytest.raises(OrderDenied, match="GUARD_UNAVAILABLE"):
        decision.raise_for_denial()


def test_transport_errors_raise_guard_unavailable_without_the_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client(refuse) as guard, pytest.raises(GuardUnavailable) as raised:
        guard.can_trade("alpha")
    assert "could not be reached" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(guard)


def test_batch_posts_json_and_checks_the_number_of_answers() -> None:
    seen: list[httpx.Request] = []
    two = {"decisions": [decision_body(), decision_body(account="bravo", allowed=False)]}
    orders = [Order("alpha", "BTCUSDT", "BUY", "0.01", "60000"), Order("bravo", reduce_only=False)]
    with client(answering(200, two, seen)) as guard:
        decisions = guard.check_batch(orders)
        assert [d.allowed for d in decisions] == [True, False]
        with pytest.raises(GuardUnavailable, match="2 decisions for 3 orders"):
            guard.check_batch([*orders, Order("charlie")])
        with pytest.raises(ValueError, match="at least one order"):
            guard.check_batch([])
        with pytest.raises(ValueError, match="at most 1000"):
            guard.check_batch([Order("alpha")] * 1001)
    assert json.loads(seen[0].content) == {
        "orders": [
            {
                "account": "alpha",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "quantity": "0.01",
                "price": "60000",
            },
            {"account": "bravo"},
        ]
    }
    assert seen[0].url.path == "/can-trade/batch"


def test_hooks_see_each_call_and_a_failing_hook_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[GuardCall] = []

    def broken(call: GuardCall) -> None:
        raise RuntimeError("metrics backend down")

    denied = decision_body(allowed=False, reasons=[{"code": "NO_DATA", "message": "none yet"}])
    with (
        caplog.at_level(logging.ERROR, "pretrade_guard_client"),
        client(
            answering(200, {"decisions": [decision_body(), denied]}), hooks=[broken, calls.append]
        ) as guard,
    ):
        decisions = guard.check_batch([Order("alpha"), Order("alpha")])
    assert [d.allowed for d in decisions] == [True, False]
    (call,) = calls
    assert call.endpoint == "can-trade/batch"
    assert (call.orders, call.allowed, call.denied, call.error) == (2, 1, 1, None)
    assert call.duration_s > 0
    assert "hook" in caplog.text
    assert "metrics backend down" in caplog.text


def test_settings_are_checked_when_the_client_is_built() -> None:
    with pytest.raises(ValueError, match="http"):
        GuardClient("127.0.0.1:8080", TOKEN)
    with pytest.raises(ValueError, match="token"):
        GuardClient(URL, "")
    with pytest.raises(ValueError, match="timeout"):
        GuardClient(URL, TOKEN, timeout=0)
    with (
        client(answering(200, decision_body())) as guard,
        pytest.raises(ValueError, match="deadline"),
    ):
        guard.can_trade("alpha", deadline=0)


async def test_the_async_client_parses_and_maps_errors_the_same_way() -> None:
    seen: list[httpx.Request] = []
    calls: list[GuardCall] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("account") == "down":
            return httpx.Response(503)
        if request.url.params.get("account") == "nobody":
            return httpx.Response(404, json={"error": {"code": "UNKNOWN_ACCOUNT", "message": "no"}})
        return httpx.Response(200, json=decision_body())

    transport = httpx.MockTransport(handle)
    async with AsyncGuardClient(URL, TOKEN, transport=transport, hooks=[calls.append]) as guard:
        decision = await guard.can_trade("alpha", "BTCUSDT", "BUY", "0.01", "60000")
        assert isinstance(decision, Decision)
        assert decision.allowed
        with pytest.raises(GuardUnavailable, match="HTTP 503"):
            await guard.can_trade("down")
        with pytest.raises(GuardRequestError, match="UNKNOWN_ACCOUNT"):
            await guard.can_trade("nobody")
    assert [c.error is None for c in calls] == [True, False, False]
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_answer_larger_than_the_bound_is_refused() -> None:
    huge = decision_body(padding="x" * (8 * 1024 * 1024))
    with client(answering(200, huge)) as guard, pytest.raises(GuardUnavailable, match="larger"):
        guard.can_trade("alpha")


def test_a_suggestion_applies_to_the_order_it_fixes() -> None:
    reasons = [
        {
            "code": "PRICE_NOT_ON_TICK",
            "message": "price 60000.05 is not on the tick 0.1",
            "limit": "0.1",
            "observed": "60000.05",
            "suggestion": {"price": "60000.1", "quantity": None},
        },
        {
            "code": "POSITION_SIDE_REQUIRED",
            "message": "hedge mode: send position_side",
            "suggestion": {"position_side": "SHORT", "reduce_only": False},
        },
    ]
    order = Order("alpha", "BTCUSDT", "BUY", "0.01", "60000.05", reduce_only=True)
    with client(answering(200, decision_body(allowed=False, reasons=reasons))) as guard:
        denial = guard.check(order)
    first, second = (r.suggestion for r in denial.reasons)
    assert first is not None
    assert second is not None
    fixed = second.applied_to(first.applied_to(order))
    assert fixed == Order(
        "alpha", "BTCUSDT", "BUY", "0.01", Decimal("60000.1"), position_side="SHORT"
    )
    assert (second.position_side, second.reduce_only, second.price) == ("SHORT", False, None)
