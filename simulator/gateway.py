"""The exchange request pipeline, shared by both faces (a pure ASGI app).

For every request to an exchange path:

1. unknown path → 404 -1099, wrong method → 405 -1000 (no weight);
2. matching ``latency`` faults delay it;
3. a matching *replace* fault answers instead of the exchange (no weight spent);
4. the face's weight budget is charged: 429 / 418 -1003 when it says so;
5. signed endpoints are authenticated (``simulator.auth``);
6. the handler answers; *modify* faults alter a 200 answer;
7. ``X-MBX-USED-WEIGHT-1M`` is added, the request is logged, the answer is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from simulator import auth, errors
from simulator.delivery import deliver
from simulator.endpoint import Answer, Call, Endpoint, Face
from simulator.errors import ApiError
from simulator.faults import (
    DELIVER_KINDS,
    MODIFY_KINDS,
    REPLACE_KINDS,
    DuplicateRowsParams,
    Fault,
    FaultKind,
    Http5xxParams,
    LatencyParams,
    MissingFieldsParams,
    RetryAfterParams,
    UnknownStatusParams,
)
from simulator.state import SimulatorState
from simulator.weights import Verdict, WeightBudget

logger = logging.getLogger(__name__)

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
JSON_TYPE = "application/json"
#: The largest form body read from an exchange request (Binance orders are a few hundred bytes).
MAX_BODY_BYTES = 65536
#: Methods whose form body carries parameters.
_BODY_METHODS = frozenset({"POST", "PUT", "DELETE"})
#: What a dropped connection declares and what it actually sends before closing.
_DROP_DECLARED_LENGTH = 4096
_DROP_PARTIAL_BODY = b'{"code":'


@dataclass(slots=True)
class Reply:
    status: int
    payload: Any = None
    #: Body bytes to send instead of ``payload`` encoded as JSON.
    raw: bytes | None = None
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    code: int | None = None
    fault: FaultKind | None = None
    #: Close the connection in the middle of the body.
    drop: bool = False
    #: A deliver fault (drip, endless, huge_body, gzip_bomb) that shapes how it is sent.
    delivery: Fault | None = None

    @classmethod
    def error(cls, exc: ApiError) -> Reply:
        return cls(exc.status, exc.body(), headers=dict(exc.headers), code=exc.code)

    def body(self) -> bytes:
        return orjson.dumps(self.payload) if self.raw is None else self.raw


@dataclass(frozen=True, slots=True)
class _Incoming:
    method: str
    path: str
    query: str
    api_key: str | None
    client_ip: str
    #: The form body (latin-1 text); None when it was larger than ``MAX_BODY_BYTES``.
    body: str | None = ""

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes | None = b"") -> _Incoming:
        client = scope.get("client")
        return cls(
            method=scope["method"],
            path=scope["path"],
            # latin-1 keeps the exact bytes the client signed.
            query=scope["query_string"].decode("latin-1"),
            api_key=Headers(scope=scope).get("x-mbx-apikey"),
            client_ip=client[0] if client else "unknown",
            body=None if body is None else body.decode("latin-1"),
        )


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body of a POST/PUT/DELETE, at most ``MAX_BODY_BYTES`` (None beyond)."""
    if scope["method"] not in _BODY_METHODS:
        return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Gateway:
    """Serves every exchange endpoint of every face."""

    def __init__(self, state: SimulatorState, endpoints: Iterable[Endpoint]) -> None:
        self._state = state
        self._endpoints = {(endpoint.method, endpoint.path): endpoint for endpoint in endpoints}
        self._paths = {endpoint.path: endpoint for endpoint in endpoints}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = _Incoming.from_scope(scope, await _read_body(scope, receive))
        reply = await self._serve(incoming)
        fault = None if reply.fault is None else reply.fault.value
        self._state.requests.record(
            incoming.api_key, incoming.path, reply.status, reply.code, fault
        )
        await _send(reply, send, receive)

    async def _serve(self, incoming: _Incoming) -> Reply:
        endpoint = self._endpoints.get((incoming.method, incoming.path))
        known = self._paths.get(incoming.path)
        face = known.face if known else _face_of_path(incoming.path)
        budget, bucket = self._budget(face, incoming)
        if known is None:
            reply = Reply.error(errors.not_found())
        elif endpoint is None:
            reply = Reply.error(errors.method_not_allowed())
        elif incoming.body is None:
            reply = Reply.error(errors.malformed_param("Request body too large."))
        else:
            faults = self._state.faults.matching(incoming.api_key, incoming.path)
            delayed = await self._delay(faults)
            reply = self._replace(faults, budget, face, bucket) or self._answer(
                endpoint, incoming, budget, bucket
            )
            if reply.fault is None and delayed:
                reply.fault = FaultKind.LATENCY
            if reply.status == 200 and reply.raw is None:
                self._modify(reply, faults)
            if not reply.drop:
                self._deliver(reply, faults)
        reply.headers[USED_WEIGHT_HEADER] = str(budget.used(bucket))
        return reply

    def _budget(self, face: Face, incoming: _Incoming) -> tuple[WeightBudget, str]:
        if face is Face.BINANCE:
            return self._state.ip_budget, incoming.client_ip
        return self._state.key_budget, incoming.api_key or f"ip:{incoming.client_ip}"

    def _answer(
        self, endpoint: Endpoint, incoming: _Incoming, budget: WeightBudget, bucket: str
    ) -> Reply:
        body = incoming.body or ""
        try:
            try:
                weight = endpoint.weight_for(auth.merge_params(incoming.query, body))
            except ApiError:
                weight = endpoint.weight
            self._charge(budget, bucket, weight, endpoint.face)
            now_ms = self._state.clock.now_ms()
            if endpoint.signed:
                signed = auth.verify(
                    incoming.query, incoming.api_key, self._state.accounts, now_ms, body
                )
                call = Call(self._state, signed.account, signed.params, now_ms)
            else:
                call = Call(self._state, None, auth.merge_params(incoming.query, body), now_ms)
            answer = endpoint.handler(call)
        except ApiError as exc:
            return Reply.error(exc)
        if isinstance(answer, Answer):
            return Reply(200, answer.payload, headers=dict(answer.headers))
        return Reply(200, answer)

    def _charge(self, budget: WeightBudget, bucket: str, weight: int, face: Face) -> None:
        charge = budget.charge(bucket, weight)
        if charge.verdict is Verdict.LIMITED:
            raise errors.too_many_requests(_limit_text(budget, face, bucket), charge.retry_after_s)
        if charge.verdict is Verdict.BANNED:
            if charge.started_ban:
                logger.warning("banned %s bucket %s for %.0f s", face, bucket, charge.wait_s)
            until_ms = self._state.clock.now_ms() + round(charge.wait_s * 1000)
            raise errors.banned(until_ms, charge.retry_after_s)

    async def _delay(self, faults: list[Fault]) -> bool:
        delay_ms = 0.0
        for fault in faults:
            if isinstance(fault.params, LatencyParams) and self._state.faults.consume(fault):
                delay_ms += fault.params.latency_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        return delay_ms > 0

    def _replace(
        self, faults: list[Fault], budget: WeightBudget, face: Face, bucket: str
    ) -> Reply | None:
        for fault in faults:
            if fault.kind in REPLACE_KINDS and self._state.faults.consume(fault):
                reply = self._replacement(fault, budget, face, bucket)
                reply.fault = fault.kind
                return reply
        return None

    def _replacement(self, fault: Fault, budget: WeightBudget, face: Face, bucket: str) -> Reply:
        params = fault.params
        if isinstance(params, Http5xxParams):
            return _server_error(params)
        if isinstance(params, RetryAfterParams) and fault.kind is FaultKind.RATE_LIMIT_429:
            limit_text = _limit_text(budget, face, bucket)
            return Reply.error(errors.too_many_requests(limit_text, params.retry_after_s))
        if isinstance(params, RetryAfterParams):
            ban_s = params.retry_after_s or self._state.scenario.ban_s
            until_ms = self._state.clock.now_ms() + round(ban_s * 1000)
            return Reply.error(errors.banned(until_ms, params.retry_after_s))
        if fault.kind is FaultKind.DROP_CONNECTION:
            return Reply(200, drop=True)
        return Reply.error(errors.timestamp_outside_window())

    def _deliver(self, reply: Reply, faults: list[Fault]) -> None:
        for fault in faults:
            if fault.kind in DELIVER_KINDS and self._state.faults.consume(fault):
                reply.delivery = fault
                reply.fault = reply.fault or fault.kind
                return

    def _modify(self, reply: Reply, faults: list[Fault]) -> None:
        truncate = False
        for fault in faults:
            if fault.kind not in MODIFY_KINDS or not _can_modify(fault, reply.payload):
                continue
            if not self._state.faults.consume(fault):
                continue
            reply.fault = fault.kind
            if isinstance(fault.params, MissingFieldsParams):
                for name in fault.params.fields:
                    reply.payload.pop(name, None)
            elif isinstance(fault.params, UnknownStatusParams):
                reply.payload["tradingStatus"] = fault.params.value
            elif isinstance(fault.params, DuplicateRowsParams):
                # A new list: the payload's own may be the account's state.
                rows = reply.payload[fault.params.field]
                reply.payload[fault.params.field] = [*rows, {**rows[0], **fault.params.changes}]
            else:
                truncate = True
        if truncate:
            # Half of a JSON object or array never parses: its closing bracket is missing.
            encoded = reply.body()
            reply.raw = encoded[: max(1, len(encoded) // 2)]
            reply.fault = FaultKind.MALFORMED_JSON


def _can_modify(fault: Fault, payload: Any) -> bool:
    if fault.kind is FaultKind.MISSING_FIELDS:
        return isinstance(payload, dict)
    if fault.kind is FaultKind.UNKNOWN_STATUS:
        return isinstance(payload, dict) and "tradingStatus" in payload
    if isinstance(fault.params, DuplicateRowsParams):
        rows = payload.get(fault.params.field) if isinstance(payload, dict) else None
        return isinstance(rows, list) and bool(rows) and isinstance(rows[0], dict)
    return True


def _server_error(params: Http5xxParams) -> Reply:
    if "body" not in params.model_fields_set:
        payload = {"code": -1001, "msg": "Internal error; unable to process your request."}
        return Reply(params.status, payload, code=-1001)
    if params.body is None:
        return Reply(params.status, raw=b"", content_type="text/plain")
    if isinstance(params.body, str):
        return Reply(params.status, raw=params.body.encode(), content_type="text/plain")
    code = params.body.get("code") if isinstance(params.body, dict) else None
    return Reply(params.status, params.body, code=code if isinstance(code, int) else None)


def _face_of_path(path: str) -> Face:
    return Face.GENERIC_V2 if path.startswith("/v2/") else Face.BINANCE


def _limit_text(budget: WeightBudget, face: Face, bucket: str) -> str:
    window_s = budget.policy.window_s
    window = "minute" if window_s == 60 else f"{window_s:g} seconds"
    scope = f"API key {bucket}" if face is Face.GENERIC_V2 else f"IP({bucket})"
    return f"{budget.policy.limit} request weight per {window} for {scope}"


async def _send(reply: Reply, send: Send, receive: Receive) -> None:
    if reply.drop:
        # Declare more bytes than will ever come, send a few, and return: uvicorn then closes
        # the connection, so the client sees a protocol / read error mid-body.
        headers = [
            (b"content-type", JSON_TYPE.encode()),
            (b"content-length", str(_DROP_DECLARED_LENGTH).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _DROP_PARTIAL_BODY, "more_body": True})
        return
    body = reply.body()
    headers = [
        (b"content-type", reply.content_type.encode()),
        *((name.lower().encode(), value.encode()) for name, value in reply.headers.items()),
    ]
    if reply.delivery is not None:
        fault = reply.delivery
        await deliver(fault.kind, fault.params, reply.status, headers, body, send, receive)
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
