"""The lean ``GET /can-trade`` path answers exactly as the FastAPI route does.

Both paths run in-process on the SAME app (one store, one decider, one set of metrics): the
full app (fast path outermost) and the same middleware stack without the fast path. For every
request of the table the status and the body (minus ``decision_id`` and the data ages) are
equal, and the fast-path counter says which requests the fast path took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import Services
from app.api.fastpath import bearer_token, parse_order_query
from app.api.schemas import OrderQuery
from app.api.security import TokenAuth
from app.config import load_settings
from app.domain import Instant, KillSwitchMode, KillSwitchScope
from app.main import create_app
from tests.unit.rules.builders import snapshot, status

BOT = "bot-token-0123456789"
READER = "read-token-0123456789"
HEADERS = {"Authorization": f"Bearer {BOT}"}
ORDER = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "price": "100"}
STOP = {**{k: v for k, v in ORDER.items() if k != "price"}, "type": "STOP_MARKET"}
CLOSE = {k: v for k, v in STOP.items() if k != "quantity"} | {"stop_price": "59000"}
ACCOUNT = {
    "exchange": "generic-v2",
    "base_url": "http://127.0.0.1:9",
    "api_key": "key-123",
    "api_secret": "secret-123",
}


def _app(tmp_path: Path, policy: dict[str, Any] | None = None, bot_token: str = BOT) -> FastAPI:
    settings = load_settings(
        None,
        server={"data_dir": str(tmp_path), "decision_log": "none"},
        auth={
            "tokens": [
                {"name": "bot", "token": bot_token, "scopes": ["decide"]},
                {"name": "reader", "token": READER, "scopes": ["read"]},
            ]
        },
        accounts={"alpha": ACCOUNT, "bravo-2": ACCOUNT},
        policy=policy or {},
    )
    app = create_app(settings, registry=CollectorRegistry())
    services = _services(app)
    now = Instant.now()
    services.store.put_status("alpha", status(), now)
    services.store.put_snapshot("alpha", snapshot(available="10000"), now)
    # bravo-2 has no data: a NO_DATA denial, on both paths alike.
    return app


def _services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def _without_fast_path(app: FastAPI) -> ASGIApp:
    """The same app (same state) entered the FastAPI way, without the fast path in front."""

    async def alone(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    return alone


@pytest.fixture
async def clients(
    tmp_path: Path,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient]]:
    app = _app(tmp_path)
    base = "http://guard"
    fast = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
    slow = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_without_fast_path(app)), base_url=base
    )
    async with fast, slow:
        yield app, fast, slow


def _fast_count(app: FastAPI) -> float:
    value = _services(app).metrics.registry.get_sample_value(
        "pretrade_guard_http_fast_path_requests_total"
    )
    assert value is not None
    return value


def _comparable(response: httpx.Response) -> tuple[int, str, str | None, Any]:
    if not response.content:  # a redirect, say
        return response.status_code, "", response.headers.get("location"), None
    body = response.json()
    for key in ("decision_id", "status_age_ms", "snapshot_age_ms"):
        if isinstance(body, dict) and key in body:
            assert body[key] is not None or key != "decision_id"
            body[key] = "*"
    return response.status_code, response.headers.get("content-type", ""), None, body


def q(**params: str) -> str:
    return "/can-trade?" + urlencode(params)


#: (id, path, headers, served by the fast path?)
CASES: list[tuple[str, str, dict[str, str], bool]] = [
    ("bare account", q(account="alpha"), HEADERS, True),
    ("full order", q(**{**ORDER, "price": "60000"}), HEADERS, True),
    ("sell reduce-only", q(**{**ORDER, "side": "SELL"}, reduce_only="true"), HEADERS, True),
    ("reduce_only=Yes", q(**ORDER, reduce_only="Yes"), HEADERS, True),
    ("reduce_only=0", q(**ORDER, reduce_only="0"), HEADERS, True),
    ("reduce_only=off", q(**ORDER, reduce_only="OFF"), HEADERS, True),
    ("lower-case symbol", q(**{**ORDER, "symbol": "btc_usdt-1"}), HEADERS, True),
    ("symbol only", q(account="alpha", symbol="ETHUSDT"), HEADERS, True),
    ("side without quantity", q(account="alpha", symbol="BTCUSDT", side="SELL"), HEADERS, True),
    ("denied: too big", q(**{**ORDER, "quantity": "1000", "price": "60000"}), HEADERS, True),
    ("no data account", q(account="bravo-2"), HEADERS, True),
    ("trailing zeros", q(**{**ORDER, "quantity": "0.0100", "price": "60000.00"}), HEADERS, True),
    ("40 digits", q(**{**ORDER, "quantity": "0." + "0" * 37 + "1"}), HEADERS, True),
    ("param order", "/can-trade?quantity=1&side=BUY&symbol=X&account=alpha", HEADERS, True),
    ("type and tif", q(**ORDER, type="LIMIT", time_in_force="GTC"), HEADERS, True),
    ("hedge close", q(**{**ORDER, "side": "SELL"}, position_side="LONG"), HEADERS, True),
    ("stop market", q(**STOP, stop_price="59000"), HEADERS, True),
    ("stop limit", q(**ORDER, type="STOP", stop_price="59000"), HEADERS, True),
    ("close position", q(**CLOSE, close_position="true"), HEADERS, True),
    ("close_position=0", q(**ORDER, close_position="0"), HEADERS, True),
    # Everything below goes to the FastAPI route.
    ("no token", q(**ORDER), {}, False),
    ("wrong token", q(**ORDER), {"Authorization": "Bearer nope-nope-nope"}, False),
    ("read scope", q(**ORDER), {"Authorization": f"Bearer {READER}"}, False),
    ("lower-case scheme", q(**ORDER), {"Authorization": f"bearer {BOT}"}, False),
    ("basic scheme", q(**ORDER), {"Authorization": f"Basic {BOT}"}, False),
    ("padded token", q(**ORDER), {"Authorization": f"Bearer  {BOT} "}, False),
    ("empty bearer", q(**ORDER), {"Authorization": "Bearer "}, False),
    ("unknown account", q(**{**ORDER, "account": "nobody"}), HEADERS, False),
    ("unknown account, bad token", q(account="nobody"), {}, False),
    ("no query", "/can-trade", HEADERS, False),
    ("no account", q(symbol="BTCUSDT"), HEADERS, False),
    ("empty account", q(account=""), HEADERS, False),
    ("long account", q(account="a" * 65), HEADERS, False),
    ("bad symbol", q(**{**ORDER, "symbol": "BTC.USDT"}), HEADERS, False),
    ("long symbol", q(**{**ORDER, "symbol": "B" * 41}), HEADERS, False),
    ("empty symbol", q(**{**ORDER, "symbol": ""}), HEADERS, False),
    ("lower-case side", q(**{**ORDER, "side": "buy"}), HEADERS, False),
    ("bad side", q(**{**ORDER, "side": "HOLD"}), HEADERS, False),
    ("zero quantity", q(**{**ORDER, "quantity": "0"}), HEADERS, False),
    ("zero point zero", q(**{**ORDER, "quantity": "0.000"}), HEADERS, False),
    ("negative quantity", q(**{**ORDER, "quantity": "-1"}), HEADERS, False),
    ("nan quantity", q(**{**ORDER, "quantity": "NaN"}), HEADERS, False),
    ("inf price", q(**{**ORDER, "price": "Infinity"}), HEADERS, False),
    ("exponent", q(**{**ORDER, "quantity": "1e-2"}), HEADERS, False),
    ("plus sign", q(**{**ORDER, "quantity": "+1"}), HEADERS, False),
    ("leading dot", q(**{**ORDER, "quantity": ".5"}), HEADERS, False),
    ("41 digits", q(**{**ORDER, "quantity": "1" * 41}), HEADERS, False),
    ("underscore digits", q(**{**ORDER, "quantity": "1_000"}), HEADERS, False),
    ("quantity w/o side", q(account="alpha", symbol="X", quantity="1"), HEADERS, False),
    ("side w/o symbol", q(account="alpha", side="BUY"), HEADERS, False),
    ("price w/o quantity", q(account="alpha", symbol="X", side="BUY", price="1"), HEADERS, False),
    ("reduce_only w/o side", q(account="alpha", symbol="X", reduce_only="true"), HEADERS, False),
    ("reduce_only=maybe", q(**ORDER, reduce_only="maybe"), HEADERS, False),
    ("reduce_only empty", q(**ORDER, reduce_only=""), HEADERS, False),
    ("unknown param", q(**ORDER, colour="red"), HEADERS, False),
    ("upper-case key", "/can-trade?Account=alpha", HEADERS, False),
    ("repeated param", q(**ORDER) + "&side=SELL", HEADERS, False),
    ("repeated account", "/can-trade?account=alpha&account=alpha", HEADERS, False),
    ("percent-encoded", "/can-trade?account=%61lpha", HEADERS, False),
    ("plus in value", "/can-trade?account=alpha&symbol=BTC+USDT", HEADERS, False),
    ("empty pair", "/can-trade?account=alpha&&symbol=X", HEADERS, False),
    ("key without value", "/can-trade?account=alpha&symbol", HEADERS, False),
    ("semicolon", "/can-trade?account=alpha;symbol=X", HEADERS, False),
    ("non-ascii", "/can-trade?account=alpha&symbol=%C3%A9", HEADERS, False),
    ("trailing slash", "/can-trade/?account=alpha", HEADERS, False),
    ("market with price", q(**ORDER, type="MARKET"), HEADERS, False),
    ("limit without price", q(**{**STOP, "type": "LIMIT"}), HEADERS, False),
    ("stop without stop_price", q(**STOP), HEADERS, False),
    ("stop_price on limit", q(**ORDER, stop_price="1"), HEADERS, False),
    ("lower-case type", q(**ORDER, type="limit"), HEADERS, False),
    ("unknown type", q(**ORDER, type="ICEBERG"), HEADERS, False),
    ("bad position side", q(**ORDER, position_side="NET"), HEADERS, False),
    ("bad tif", q(**ORDER, time_in_force="DAY"), HEADERS, False),
    ("tif on market", q(**{**STOP, "type": "MARKET"}, time_in_force="GTC"), HEADERS, False),
    ("close with quantity", q(**STOP, stop_price="1", close_position="true"), HEADERS, False),
    ("close on limit", q(**ORDER, close_position="true"), HEADERS, False),
    ("close and reduce", q(**CLOSE, close_position="1", reduce_only="1"), HEADERS, False),
    ("type w/o side", q(account="alpha", symbol="X", type="LIMIT"), HEADERS, False),
    ("zero stop_price", q(**STOP, stop_price="0"), HEADERS, False),
]


@pytest.mark.parametrize(
    ("path", "headers", "fast"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_fast_path_answers_like_the_fastapi_route(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
    path: str,
    headers: dict[str, str],
    fast: bool,
) -> None:
    app, fast_client, slow_client = clients
    before = _fast_count(app)
    via_fast = await fast_client.get(path, headers=headers)
    took_fast = _fast_count(app) - before
    via_route = await slow_client.get(path, headers=headers)

    assert _comparable(via_fast) == _comparable(via_route)
    assert via_fast.headers.get("www-authenticate") == via_route.headers.get("www-authenticate")
    assert took_fast == (1 if fast else 0)


async def test_other_methods_and_routes_are_untouched(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    app, fast_client, slow_client = clients
    path = q(**ORDER)
    for method in ("HEAD", "POST", "PUT", "DELETE"):
        a = await fast_client.request(method, path, headers=HEADERS)
        b = await slow_client.request(method, path, headers=HEADERS)
        assert (a.status_code, a.content[:0]) == (b.status_code, b.content[:0])
    post = await fast_client.post("/can-trade", json=ORDER, headers=HEADERS)
    assert post.status_code == 200
    assert post.json()["allowed"] is True
    assert (await fast_client.get("/healthz")).status_code == 200
    assert _fast_count(app) == 0


async def test_fast_path_records_the_route_metrics(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    app, fast_client, _ = clients
    registry = _services(app).metrics.registry
    labels = {"route": "/can-trade", "method": "GET", "status": "200"}
    for _ in range(3):
        assert (await fast_client.get(q(**ORDER), headers=HEADERS)).status_code == 200
    await fast_client.get(q(**{**ORDER, "side": "bad"}), headers=HEADERS)  # the slow way: 422
    assert registry.get_sample_value("pretrade_guard_http_requests_total", labels) == 3
    assert registry.get_sample_value("pretrade_guard_http_fast_path_requests_total") == 3
    assert (
        registry.get_sample_value(
            "pretrade_guard_http_request_duration_seconds_count",
            {"route": "/can-trade", "method": "GET"},
        )
        == 4
    )
    assert (
        registry.get_sample_value("pretrade_guard_http_requests_total", {**labels, "status": "422"})
        == 1
    )
    ids = {
        (await fast_client.get(q(**ORDER), headers=HEADERS)).json()["decision_id"] for _ in range(5)
    }
    assert len(ids) == 5


async def test_order_rate_limit_applies_on_the_fast_path(tmp_path: Path) -> None:
    app = _app(tmp_path, {"order_rate": {"max_orders": 2, "window_s": 60}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        answers = [(await c.get(q(**ORDER), headers=HEADERS)).json() for _ in range(3)]
    assert [a["allowed"] for a in answers] == [True, True, False]
    assert [r["code"] for r in answers[2]["reasons"]] == ["ORDER_RATE_LIMIT"]
    assert _fast_count(app) == 3


async def test_kill_switches_apply_on_the_fast_path(tmp_path: Path) -> None:
    app = _app(tmp_path)
    switches = _services(app).kill_switches
    await switches.open()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://g"
        ) as c:
            assert (await c.get(q(**ORDER), headers=HEADERS)).json()["allowed"] is True
            await switches.engage(
                scope=KillSwitchScope.ACCOUNT,
                mode=KillSwitchMode.HALT,
                actor="ops",
                reason="drill",
                account="alpha",
            )
            halted = (await c.get(q(**ORDER), headers=HEADERS)).json()
    finally:
        await switches.close()
    assert halted["allowed"] is False
    assert [r["code"] for r in halted["reasons"]] == ["KILL_SWITCH"]
    assert _fast_count(app) == 2


# ------------------------------------------------------------------ the parser alone

ACCEPTED = [
    {"account": "alpha"},
    {"account": "a" * 64},
    {**ORDER},
    {**ORDER, "price": "60000.50"},
    {**ORDER, "quantity": "0.0100", "price": "00060000"},
    {**ORDER, "quantity": "1" * 40},
    {**ORDER, "quantity": "0." + "0" * 37 + "1"},
    {**ORDER, "symbol": "eth_usdt-perp"},
    *(
        {**ORDER, "reduce_only": word}
        for word in ("1", "0", "true", "False", "T", "f", "YES", "n", "on", "Off", "y", "No")
    ),
    {**ORDER, "type": "LIMIT", "time_in_force": "GTX", "position_side": "BOTH"},
    {**ORDER, "type": "TAKE_PROFIT", "stop_price": "61000.10", "position_side": "SHORT"},
    {**STOP, "stop_price": "59000"},
    {**CLOSE, "close_position": "yes", "side": "SELL"},
    {**{k: v for k, v in ORDER.items() if k != "price"}, "type": "TRAILING_STOP_MARKET"},
]


@pytest.mark.parametrize("params", ACCEPTED, ids=lambda p: urlencode(p)[:60])
def test_the_parser_builds_the_same_intent_as_order_query(params: dict[str, str]) -> None:
    intent = parse_order_query(urlencode(params).encode())
    expected = OrderQuery.model_validate(params).intent()
    assert intent == expected
    # Same Decimal, digit for digit (repr keeps trailing zeros and the exponent).
    assert repr(intent.quantity if intent else None) == repr(expected.quantity)
    assert repr(intent.price if intent else None) == repr(expected.price)


REJECTED = [
    "",
    "account=",
    "account=" + "a" * 65,
    "symbol=X",
    "account=alpha&symbol=X&side=BUY&quantity=0",
    "account=alpha&symbol=X&side=BUY&quantity=1.",
    "account=alpha&symbol=X&side=BUY&quantity=" + "1" * 41,
    "account=alpha&symbol=X&side=BUY&quantity=1&price=0.0",
    "account=alpha&symbol=X&side=Buy",
    "account=alpha&symbol=X&reduce_only=true",
    "account=alpha&symbol=X&side=BUY&reduce_only=2",
    "account=alpha&extra=1",
    "account=alpha&account=beta",
    "account=al%70ha",
    "account=alpha&symbol=A+B",
]


@pytest.mark.parametrize("query", REJECTED)
def test_the_parser_leaves_anything_unusual_to_the_route(query: str) -> None:
    assert parse_order_query(query.encode()) is None


def test_every_boolean_word_pydantic_accepts_is_parsed_alike() -> None:
    words = ["true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0"]
    candidates = {c for w in words for c in (w, w.upper(), w.title())} | {"2", "tr", "", " 1"}
    for word in sorted(candidates):
        params = {**ORDER, "reduce_only": word}
        try:
            expected = OrderQuery.model_validate(params).intent()
        except ValidationError:
            expected = None
        assert parse_order_query(urlencode(params).encode()) == expected, word


def test_bearer_token_takes_exactly_one_plain_bearer_header() -> None:
    assert bearer_token([(b"host", b"x"), (b"authorization", b"Bearer abc")]) == b"abc"
    assert bearer_token([]) is None
    assert bearer_token([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")]) is None
    assert bearer_token([(b"authorization", b"bearer abc")]) is None
    assert bearer_token([(b"authorization", b"Bearer a b")]) is None
    assert bearer_token([(b"authorization", b"Bearer ")]) is None
    assert bearer_token([(b"authorization", "Bearer é".encode())]) is None


def test_bearer_token_without_the_check_takes_the_token_as_sent() -> None:
    headers = [(b"authorization", b"Bearer  spaced token")]
    assert bearer_token(headers) is None
    assert bearer_token(headers, check=False) == b" spaced token"


def test_tokens_are_plain_only_when_every_configured_token_is() -> None:
    assert TokenAuth([("a", "plain-token-1", ["decide"]), ("b", "x~!#", ["read"])]).plain
    assert not TokenAuth([("a", "plain-token-1", ["decide"]), ("b", "two words", ["read"])]).plain
    assert not TokenAuth([("a", " leading-space", ["decide"])]).plain
    assert not TokenAuth([("a", "tok\u00e9n-with-accent", ["decide"])]).plain


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        (" lead-space-token-0001", "Bearer  lead-space-token-0001"),  # the route strips: 401
        ("two words-token-0001", "Bearer two words-token-0001"),  # the route takes it: 200
        (BOT, f"Bearer {BOT}"),
    ],
)
async def test_a_token_outside_the_plain_charset_is_judged_like_the_route(
    tmp_path: Path, configured: str, sent: str
) -> None:
    """The fast path skips its charset check only when every configured token is plain; a
    configured token with a space must not let the fast path take what the route refuses."""
    app = _app(tmp_path, bot_token=configured)
    path = q(**ORDER)
    base = "http://guard"
    fast = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
    slow = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_without_fast_path(app)), base_url=base
    )
    async with fast, slow:
        before = _fast_count(app)
        via_fast = await fast.get(path, headers={"Authorization": sent})
        took_fast = _fast_count(app) - before
        via_route = await slow.get(path, headers={"Authorization": sent})
    assert _comparable(via_fast) == _comparable(via_route)
    assert took_fast == (1 if configured == BOT else 0)


def test_amounts_stay_decimals() -> None:
    intent = parse_order_query(b"account=a&symbol=X&side=SELL&quantity=2.50&price=3")
    assert intent is not None
    assert intent.quantity == Decimal("2.50")
    assert intent.price == Decimal(3)


# ------------------------------------------------------------------ POST /can-trade/batch

JSON = {**HEADERS, "Content-Type": "application/json"}


def _batch(*orders: object, **extra: object) -> bytes:
    return orjson.dumps({"orders": list(orders), **extra})


#: (id, body, headers, served by the fast path?)
BATCH_CASES: list[tuple[str, bytes, dict[str, str], bool]] = [
    ("two orders", _batch(ORDER, {"account": "alpha"}), JSON, True),
    ("nulls", _batch({"account": "alpha", "symbol": None, "price": None}), JSON, True),
    ("reduce_only", _batch({**ORDER, "side": "SELL", "reduce_only": True}), JSON, True),
    ("new fields", _batch({**ORDER, "type": "LIMIT", "position_side": "LONG"}), JSON, True),
    ("close position", _batch({**CLOSE, "close_position": True}), JSON, True),
    ("no data account", _batch({"account": "bravo-2"}, ORDER), JSON, True),
    ("denied order", _batch({**ORDER, "quantity": "100000"}), JSON, True),
    ("1000 orders", _batch(*[{"account": "alpha"}] * 1000), JSON, True),
    ("spaced JSON", b'{ "orders" : [ {"account" : "alpha"} ] }', JSON, True),
    # The FastAPI route judges these.
    ("1001 orders", _batch(*[{"account": "alpha"}] * 1001), JSON, False),
    ("no orders", _batch(), JSON, False),
    ("orders not a list", orjson.dumps({"orders": {"account": "alpha"}}), JSON, False),
    ("extra key", _batch(ORDER, colour="red"), JSON, False),
    ("not an object", orjson.dumps([ORDER]), JSON, False),
    ("not JSON", b"orders=1", JSON, False),
    ("NaN literal", b'{"orders": [{"account": "alpha", "quantity": NaN}]}', JSON, False),
    ("empty body", b"", JSON, False),
    ("unknown account", _batch(ORDER, {"account": "nobody"}), JSON, False),
    ("unknown field", _batch({**ORDER, "colour": "red"}), JSON, False),
    ("number quantity", _batch({**ORDER, "quantity": 0.01}), JSON, False),
    ("int quantity", _batch({**ORDER, "quantity": 1}), JSON, False),
    ("string boolean", _batch({**ORDER, "reduce_only": "true"}), JSON, False),
    ("null boolean", _batch({**ORDER, "reduce_only": None}), JSON, False),
    ("int boolean", _batch({**ORDER, "reduce_only": 1}), JSON, False),
    ("int close_position", _batch({**CLOSE, "close_position": 1}), JSON, False),
    ("market with price", _batch({**ORDER, "type": "MARKET"}), JSON, False),
    ("bad side", _batch({**ORDER, "side": "buy"}), JSON, False),
    ("zero price", _batch({**ORDER, "price": "0"}), JSON, False),
    ("missing account", _batch({"symbol": "X"}), JSON, False),
    ("null account", _batch({"account": None}), JSON, False),
    ("order not an object", _batch("alpha"), JSON, False),
    ("cross-field", _batch({"account": "alpha", "side": "BUY"}), JSON, False),
    ("no token", _batch(ORDER), {"Content-Type": "application/json"}, False),
    ("read scope", _batch(ORDER), {**JSON, "Authorization": f"Bearer {READER}"}, False),
    ("no content type", _batch(ORDER), HEADERS, False),
    ("charset", _batch(ORDER), {**JSON, "Content-Type": "application/json; charset=utf-8"}, False),
    ("text content type", _batch(ORDER), {**JSON, "Content-Type": "text/plain"}, False),
]


@pytest.mark.parametrize(
    ("body", "headers", "fast"), [c[1:] for c in BATCH_CASES], ids=[c[0] for c in BATCH_CASES]
)
async def test_fast_batch_answers_like_the_fastapi_route(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
    body: bytes,
    headers: dict[str, str],
    fast: bool,
) -> None:
    app, fast_client, slow_client = clients
    before = _fast_count(app)
    via_fast = await fast_client.post("/can-trade/batch", content=body, headers=headers)
    took_fast = _fast_count(app) - before
    via_route = await slow_client.post("/can-trade/batch", content=body, headers=headers)

    assert _batch_comparable(via_fast) == _batch_comparable(via_route)
    assert took_fast == (1 if fast else 0)


def _batch_comparable(response: httpx.Response) -> tuple[int, str, Any]:
    body = response.json()
    if response.status_code == 200:
        for decision in body["decisions"]:
            assert decision["decision_id"]
            for key in ("decision_id", "status_age_ms", "snapshot_age_ms"):
                decision[key] = "*"
    return response.status_code, response.headers["content-type"], body


async def test_fast_batch_records_metrics_and_unique_ids(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    app, fast_client, _ = clients
    registry = _services(app).metrics.registry
    response = await fast_client.post(
        "/can-trade/batch", content=_batch(*[ORDER] * 50), headers=JSON
    )
    ids = {d["decision_id"] for d in response.json()["decisions"]}
    assert len(ids) == 50
    labels = {"route": "/can-trade/batch", "method": "POST", "status": "200"}
    assert registry.get_sample_value("pretrade_guard_http_requests_total", labels) == 1
    assert _fast_count(app) == 1


async def test_fast_batch_replays_a_body_sent_in_chunks(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    app, fast_client, _ = clients

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"orders": [{"account": "alpha"},'
        yield b' {"account": "nobody"}]}'

    response = await fast_client.post("/can-trade/batch", content=chunks(), headers=JSON)
    assert response.status_code == 404  # read by the fast path, replayed to the route
    assert response.json()["error"]["fields"] == [
        {"field": "orders.1.account", "message": "unknown account"}
    ]
    ok = await fast_client.post("/can-trade/batch", content=_batch(ORDER), headers=JSON)
    assert ok.status_code == 200
    assert _fast_count(app) == 1


async def test_a_repeated_query_sees_every_change_of_state(tmp_path: Path) -> None:
    """Queries are kept parsed, answers never: the same query string follows the account."""
    app = _app(tmp_path)
    store = _services(app).store
    path = q(**ORDER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        first = (await c.get(path, headers=HEADERS)).json()
        store.put_status("alpha", status("RESTRICTED"), Instant.now())
        second = (await c.get(path, headers=HEADERS)).json()
        store.put_status("alpha", status(), Instant.now())
        third = (await c.get(path, headers=HEADERS)).json()
    assert [a["allowed"] for a in (first, second, third)] == [True, False, True]
    assert second["trading_status"] == "RESTRICTED"
    assert [r["code"] for r in second["reasons"]] == ["ACCOUNT_NOT_NORMAL"]
    assert len({a["decision_id"] for a in (first, second, third)}) == 3
    assert _fast_count(app) == 3


async def test_the_parsed_query_table_is_bounded(tmp_path: Path) -> None:
    app = _app(tmp_path)
    fast_path = app.fast_path  # type: ignore[attr-defined]
    fast_path._cache_size = 4
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        for i in range(1, 11):
            answer = await c.get(q(**{**ORDER, "quantity": f"0.00{i}"}), headers=HEADERS)
            assert answer.json()["allowed"] is True
            assert len(fast_path._queries) <= 4
        bad = await c.get(q(**{**ORDER, "side": "sideways"}), headers=HEADERS)
    assert bad.status_code == 422  # judged by the route, never kept
    assert all(b"sideways" not in key for key in fast_path._queries)


async def test_kept_batch_orders_never_let_a_lookalike_through(
    clients: tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Orders are kept parsed by their items; ``true == 1`` in Python, so an order equal to a
    kept one but for a number in place of its boolean must still go the long way."""
    app, fast_client, slow_client = clients
    sell = {**ORDER, "side": "SELL"}
    for kept, lookalike in ((True, 1), (False, 0), (True, 1.0)):
        warm = await fast_client.post(
            "/can-trade/batch", content=_batch({**sell, "reduce_only": kept}), headers=JSON
        )
        assert warm.status_code == 200
        body = _batch({**sell, "reduce_only": lookalike})
        before = _fast_count(app)
        via_fast = await fast_client.post("/can-trade/batch", content=body, headers=JSON)
        assert _fast_count(app) == before  # the route judged it
        via_route = await slow_client.post("/can-trade/batch", content=body, headers=JSON)
        assert _batch_comparable(via_fast) == _batch_comparable(via_route)
    # Every case again on one app, its tables warm: each still goes the same way.
    for _name, body, headers, fast in BATCH_CASES * 2:
        before = _fast_count(app)
        response = await fast_client.post("/can-trade/batch", content=body, headers=headers)
        assert _fast_count(app) - before == (1 if fast else 0)
        assert response.status_code in (200, 401, 403, 404, 415, 422)
