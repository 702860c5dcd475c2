"""Lean pure-ASGI paths for ``GET /can-trade`` and ``POST /can-trade/batch``, the hot routes.

Through FastAPI, a decision costs several times more in routing, dependency injection,
pydantic validation and response plumbing than in the decision itself. ``GuardApp`` (the
guard's FastAPI app) hands requests to ``FastCanTrade`` before anything of FastAPI runs; it
answers only the plain, fully valid happy path

* ``GET /can-trade`` (exact path, no root path),
* exactly one ``Authorization: Bearer <token>`` header whose token has the ``decide`` scope
  (the same ``TokenAuth``, compared in constant time),
* a query string of plain ``key=value`` pairs (unreserved characters only: no ``%``, no ``+``,
  nothing to decode), each key one of ``OrderQuery``'s fields at most once, every value
  passing the same rules as ``OrderQuery`` (a subset of what it accepts: amounts as
  ``strict.AMOUNT``, ``reduce_only`` and ``close_position`` as one of pydantic's boolean words,
  enumerations exactly as spelled; field combinations judged by the same
  ``order_fields_problem``),
* a configured account,

and hands EVERYTHING else, untouched, to the FastAPI app: a missing or bad token, a wrong
scope, anything invalid or merely unusual, an unknown account, other methods and routes. The
error answers (401/403/404/422) therefore come from one place and cannot drift; a request the
fast path is unsure about costs only the framework's usual price.

``FastBatch`` does the same for ``POST /can-trade/batch``: a body declared as plain
``application/json`` holding only ``{"orders": [...]}`` (1 to 1000 orders), each order a JSON
object that passes the same rules (text and amounts as JSON strings, ``reduce_only`` a JSON
boolean), no key twice in any object, every account configured; otherwise the body it read
is replayed to FastAPI.

Both record the same HTTP metrics as ``RequestMetrics`` (the route template), plus
``pretrade_guard_http_fast_path_requests_total`` (how many requests they answered). The
routes stay in FastAPI (and so in the OpenAPI spec, with their validation):
``tests/unit/api/test_fastpath.py`` checks that both paths give the same answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from app.api.body_gate import declares_body
from app.api.decider import EvaluationKey, evaluation_key
from app.api.order_fields import TimeInForce, order_fields_problem
from app.api.security import PLAIN_TOKEN
from app.api.security import Scope as AuthScope
from app.api.strict import AMOUNT, MAX_AMOUNT_CHARS, json_keys_are_unique
from app.domain import OrderIntent, OrderPositionSide, OrderSide
from app.markets.model import OrderType

if TYPE_CHECKING:
    from app.api.body_gate import BodyGate
    from app.api.deps import Services

PATH = "/can-trade"
BATCH_PATH = "/can-trade/batch"
#: ``BatchQuery`` takes 1 to 1000 orders; a body above this size goes the long way.
MAX_BATCH_ORDERS = 1000
MAX_BATCH_BYTES = 1 << 20
#: Distinct plainly valid query strings (or batch orders) kept parsed (a few hundred bytes
#: each).
QUERY_CACHE_SIZE = 4096

#: ``key=value(&key=value)*`` with unreserved characters only: what ``parse_qsl`` leaves as is.
_QUERY = re.compile(rb"[A-Za-z0-9._~-]+=[A-Za-z0-9._~-]+(?:&[A-Za-z0-9._~-]+=[A-Za-z0-9._~-]+)*")
_SYMBOL = re.compile(r"[A-Za-z0-9_\-]{1,40}")
_SIDES = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}
#: pydantic's lax booleans (case-insensitive), see ``tests/unit/api/test_fastpath.py``.
_BOOLS = {
    **dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
    **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False),
}
_FIELDS = frozenset(
    (
        "account",
        "symbol",
        "side",
        "quantity",
        "price",
        "reduce_only",
        "type",
        "position_side",
        "stop_price",
        "time_in_force",
        "close_position",
    )
)
_TYPES = {t.value: t for t in OrderType}
_POSITION_SIDES = {p.value: p for p in OrderPositionSide}
_TIFS = {t.value: t for t in TimeInForce}
_MAX_ACCOUNT = 64
_ZERO = Decimal(0)
_JSON = b"application/json"
#: A parsed order: the intent and the key of its reused evaluation.
_Parsed = tuple[OrderIntent, EvaluationKey]
_INTERNAL_ERROR = orjson.dumps(
    {"error": {"code": "INTERNAL_ERROR", "message": "internal error; see the guard's log"}}
)

log = structlog.get_logger("app.api")


class _NotPlain(Exception):
    """The query is not plainly valid: let the FastAPI route judge it."""


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    if len(text) > MAX_AMOUNT_CHARS or AMOUNT.fullmatch(text) is None:
        raise _NotPlain
    value = Decimal(text)
    if value <= _ZERO:
        raise _NotPlain
    return value


def parse_order_query(query_string: bytes) -> OrderIntent | None:
    """The intent ``OrderQuery`` would build from this query string, or None when the query is
    anything but plainly valid (the FastAPI route then judges it)."""
    try:
        return _parse(query_string)
    except _NotPlain:
        return None


def _parse(query_string: bytes) -> OrderIntent:
    if _QUERY.fullmatch(query_string) is None:
        raise _NotPlain
    params: dict[str, str] = {}
    for pair in query_string.decode("ascii").split("&"):
        key, _, value = pair.partition("=")
        if key in params:
            raise _NotPlain
        params[key] = value
    return _intent(params, _word(params.get("reduce_only")), _word(params.get("close_position")))


def _word(text: str | None) -> bool:
    """A query-string boolean as pydantic reads it (absent: False)."""
    if text is None:
        return False
    parsed = _BOOLS.get(text.lower())
    if parsed is None:
        raise _NotPlain
    return parsed


def parse_order_json(order: object) -> OrderIntent | None:
    """The intent ``OrderQuery`` would build from this decoded JSON object (one order of a
    batch), or None when it is anything but plainly valid: strings for the text fields and
    the amounts, a JSON boolean for ``reduce_only``."""
    if type(order) is not dict:
        return None
    try:
        reduce_only = order.get("reduce_only", False)
        close_position = order.get("close_position", False)
        if type(reduce_only) is not bool or type(close_position) is not bool:
            raise _NotPlain
        return _intent(order, reduce_only, close_position)
    except _NotPlain:
        return None


def _text(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or type(value) is str:
        return value
    raise _NotPlain


def _choice(params: dict[str, Any], key: str, choices: dict[str, Any]) -> Any:
    text = _text(params, key)
    if text is None:
        return None
    value = choices.get(text)
    if value is None:
        raise _NotPlain
    return value


def _intent(params: dict[str, Any], reduce_only: bool, close_position: bool) -> OrderIntent:
    """``params`` as ``OrderQuery`` would judge them (the booleans already parsed)."""
    if not _FIELDS.issuperset(params):
        raise _NotPlain
    account = _text(params, "account")
    if account is None or not 0 < len(account) <= _MAX_ACCOUNT:
        raise _NotPlain
    symbol = _text(params, "symbol")
    if symbol is not None and _SYMBOL.fullmatch(symbol) is None:
        raise _NotPlain
    side_text = _text(params, "side")
    side = None
    if side_text is not None:
        side = _SIDES.get(side_text)
        if side is None:
            raise _NotPlain
    quantity = _amount(_text(params, "quantity"))
    price = _amount(_text(params, "price"))
    # OrderQuery's cross-field rules.
    if (
        ((quantity is not None or side is not None) and symbol is None)
        or (quantity is not None and side is None)
        or (price is not None and quantity is None)
        or (reduce_only and (symbol is None or side is None))
    ):
        raise _NotPlain
    order_type: OrderType | None = _choice(params, "type", _TYPES)
    position_side: OrderPositionSide | None = _choice(params, "position_side", _POSITION_SIDES)
    time_in_force: TimeInForce | None = _choice(params, "time_in_force", _TIFS)
    stop_price = _amount(_text(params, "stop_price"))
    if (
        order_fields_problem(
            has_side=side is not None,
            quantity=quantity,
            price=price,
            reduce_only=reduce_only,
            order_type=order_type,
            stop_price=stop_price,
            time_in_force=time_in_force,
            close_position=close_position,
            has_position_side=position_side is not None,
        )
        is not None
    ):
        raise _NotPlain
    return OrderIntent(
        account=account,
        symbol=symbol.upper() if symbol is not None else None,
        side=side,
        quantity=quantity,
        price=price,
        reduce_only=reduce_only,
        order_type=None if order_type is None else order_type.value,
        position_side=position_side,
        stop_price=stop_price,
        time_in_force=None if time_in_force is None else time_in_force.value,
        close_position=close_position,
    )


def bearer_token(headers: list[tuple[bytes, bytes]], *, check: bool = True) -> bytes | None:
    """The token of the only ``Authorization: Bearer <token>`` header, or None. ``check``:
    only a printable-ASCII token without spaces (False when every configured token is one,
    ``TokenAuth.plain``: only such a token can then equal one of them)."""
    token = None
    for name, value in headers:
        if name == b"authorization":
            if token is not None:  # two Authorization headers: not the happy path
                return None
            if not value.startswith(b"Bearer "):
                return None
            token = value[7:]
    if token is None or (check and PLAIN_TOKEN.fullmatch(token) is None):
        return None
    return token


class _Answerer:
    """Sends a decision body and records the same HTTP metrics as the FastAPI route would (a
    last-resort 500 like the app's handler if deciding fails)."""

    def __init__(self, services: Services, path: str, method: str) -> None:
        metrics = services.metrics
        self._path = path
        self._ok = metrics.http_requests.labels(path, method, "200")
        self._failed = metrics.http_requests.labels(path, method, "500")
        self._seconds = metrics.http_seconds.labels(path, method)
        self._fast = metrics.http_fast_path.child()

    async def answer(
        self, send: Send, started: float, produce: Callable[..., bytes], *args: Any
    ) -> None:
        try:
            body = produce(*args)
        except Exception as exc:  # as the FastAPI app's last-resort handler answers
            log.error("unhandled error", path=self._path, error_type=type(exc).__name__)
            body, status = _INTERNAL_ERROR, 500
        else:
            status = 200
        # Counted before the answer leaves: with several worker processes, a scrape another
        # worker answers after the client got this answer must count it.
        (self._ok if status == 200 else self._failed).inc()
        try:
            # The two messages of a JSON answer, sent from here: one coroutine frame less
            # per request.
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-length", b"%d" % len(body)), (b"content-type", _JSON)],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            self._seconds.observe(time.perf_counter() - started)
        if status == 200:
            self._fast.inc()


class FastCanTrade:
    """Answers the happy path of ``GET /can-trade``; ``accepts`` returns None for the rest.

    Bots ask the same questions again and again, so plainly valid query strings are kept
    with what they parse to (and the key of their reused evaluation); parsing is a pure
    function of the bytes. The table is bounded: full, it starts again."""

    def __init__(self, services: Services, *, cache_size: int = QUERY_CACHE_SIZE) -> None:
        self._services = services
        #: Sends the answer of a request ``accepts`` took (``started``: the request's
        #: ``time.perf_counter()`` on arrival, for the request-time histogram).
        self.answerer = _Answerer(services, PATH, "GET")
        self.decide_json = services.decider.decide_json
        self._check_token = not services.auth.plain
        self._queries: dict[bytes, _Parsed] = {}
        self._cache_size = cache_size

    def _parsed(self, query_string: bytes) -> _Parsed | None:
        parsed = self._queries.get(query_string)
        if parsed is None:
            intent = parse_order_query(query_string)
            if intent is None:
                return None
            parsed = (intent, evaluation_key(intent))
            if len(self._queries) >= self._cache_size:
                self._queries.clear()
            self._queries[query_string] = parsed
        return parsed

    def accepts(self, scope: Scope) -> _Parsed | None:
        """The request's intent and evaluation key if it is the plain happy path (then
        ``GuardApp`` sends ``answerer.answer(send, started, decide_json, *parsed)``); None:
        not this path's to answer. Synchronous: only the answer is awaited, one coroutine
        frame per request."""
        parsed = self._parsed(scope["query_string"])
        if parsed is None:
            return None
        services = self._services
        token = bearer_token(scope["headers"], check=self._check_token)
        principal = services.auth.identify(token) if token is not None else None
        if (
            principal is None
            or AuthScope.DECIDE not in principal.scopes
            or services.store.get(parsed[0].account) is None
            or services.decider.needs_shared_rate(parsed[0])  # fleet: a Redis round trip
        ):
            return None
        return parsed


class FastBatch:
    """Answers the happy path of ``POST /can-trade/batch`` (a JSON body of plainly valid
    orders of configured accounts); ``handle`` returns False, with the body it read for the
    FastAPI route to read again, for the rest."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._answerer = _Answerer(services, BATCH_PATH, "POST")
        self._orders = _OrderTable()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when answered; otherwise the ``receive`` to hand on (it replays the body)."""
        started = time.perf_counter()
        services = self._services
        token = _json_bearer_token(scope["headers"])
        principal = services.auth.identify(token) if token is not None else None
        if principal is None or AuthScope.DECIDE not in principal.scopes:
            return receive
        chunks: list[bytes] = []
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return _replay(received, receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BATCH_BYTES:
                return _replay(received, receive)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        parsed = self._orders.parse(b"".join(chunks))
        store = services.store
        needs_shared = services.decider.needs_shared_rate
        if parsed is None or any(
            store.get(i.account) is None or needs_shared(i) for i, _key in parsed
        ):
            return _replay(received, receive)
        decide_many = services.decider.decide_json_many
        await self._answerer.answer(
            send, started, lambda: b'{"decisions":[%s]}' % b",".join(decide_many(parsed))
        )
        return None


class _OrderTable:
    """Plainly valid batch orders kept parsed, by their decoded JSON object's items.

    Sound because a kept order's values are all strings or null but ``reduce_only`` and
    ``close_position`` (JSON booleans): an equal tuple of items can differ in type only where a
    boolean equals a number (``true == 1``), so a hit also checks that both are booleans.
    Orders with lists or objects inside are not hashable and are parsed (and refused) as
    usual."""

    def __init__(self, size: int = QUERY_CACHE_SIZE) -> None:
        self._orders: dict[tuple[tuple[str, Any], ...], _Parsed] = {}
        self._size = size

    def parse(self, body: bytes) -> list[_Parsed] | None:
        """The body's orders, or None when it is anything but plainly valid."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict or len(data) != 1:
            return None
        orders = data.get("orders")
        if type(orders) is not list or not 1 <= len(orders) <= MAX_BATCH_ORDERS:
            return None
        table = self._orders
        parsed: list[_Parsed] = []
        keys = 1
        for order in orders:
            if type(order) is not dict:
                return None
            keys += len(order)
            try:
                items = tuple(order.items())
                kept = table.get(items)
            except TypeError:  # a list or an object inside: not plainly valid
                return None
            if (
                kept is None
                or type(order.get("reduce_only", False)) is not bool
                or type(order.get("close_position", False)) is not bool
            ):
                intent = parse_order_json(order)
                if intent is None:
                    return None
                kept = (intent, evaluation_key(intent))
                if len(table) >= self._size:
                    table.clear()
                table[items] = kept
            parsed.append(kept)
        # orjson keeps the last of two equal keys; the FastAPI route refuses them (422).
        if not json_keys_are_unique(body, keys):
            return None
        return parsed


def _json_bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The bearer token when the body is declared as plain ``application/json`` (once)."""
    content_types = [value for name, value in headers if name == b"content-type"]
    if content_types != [_JSON]:
        return None
    return bearer_token(headers)


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the messages already read again, then reads on."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class GuardApp(FastAPI):
    """The guard's FastAPI app with ``BodyGate`` (``app/api/body_gate.py``), then
    ``FastCanTrade`` and ``FastBatch`` in front of everything
    (even FastAPI's own ``__call__`` and middleware stack): ``GET /can-trade`` and
    ``POST /can-trade/batch`` requests they do not answer, and every other request, go
    through FastAPI unchanged."""

    fast_path: FastCanTrade | None = None
    fast_batch: FastBatch | None = None
    #: Checked first: refuses unauthenticated, too large or too slow bodies unread.
    body_gate: BodyGate | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.body_gate is not None
            and declares_body(scope["headers"])
        ):
            admitted = await self.body_gate.admit(scope, receive, send)
            if admitted is None:
                return
            receive = admitted
        if scope["type"] == "http" and not scope.get("root_path") and not self.root_path:
            path, method = scope["path"], scope["method"]
            if path == PATH and method == "GET" and self.fast_path is not None:
                fast = self.fast_path
                started = time.perf_counter()
                parsed = fast.accepts(scope)
                if parsed is not None:
                    await fast.answerer.answer(send, started, fast.decide_json, *parsed)
                    return
            elif path == BATCH_PATH and method == "POST" and self.fast_batch is not None:
                handed_on = await self.fast_batch.handle(scope, receive, send)
                if handed_on is None:
                    return
                receive = handed_on
        await super().__call__(scope, receive, send)
