"""The HTTP exchange with the guard, shared by the sync and async clients: what is sent, and
how every answer (or failure) becomes a ``Decision`` or an error. No I/O here."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pretrade_guard_client.codes import ClientReasonCode, ReasonCode, WarningCode
from pretrade_guard_client.errors import GuardRequestError, GuardUnavailable
from pretrade_guard_client.models import Decision, Order, Reason, Suggestion

CAN_TRADE_PATH = "/can-trade"
BATCH_PATH = "/can-trade/batch"
#: The guard takes at most this many orders per batch request.
MAX_BATCH = 1000
#: Largest answer read (a batch of 1000 decisions is well under 1 MiB).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: Longest error text kept from an answer that is not the guard's JSON error shape.
_MAX_TEXT = 200


class _Malformed(ValueError):
    """The answer is not the decision contract."""


def query_params(order: Order) -> dict[str, str]:
    """``GET /can-trade`` query: the set fields, booleans as ``true``/``false``."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else value
        for name, value in order.fields().items()
    }


def batch_body(orders: Sequence[Order]) -> dict[str, list[dict[str, str | bool]]]:
    if not orders:
        raise ValueError("a batch needs at least one order")
    if len(orders) > MAX_BATCH:
        raise ValueError(f"a batch takes at most {MAX_BATCH} orders, got {len(orders)}")
    return {"orders": [order.fields() for order in orders]}


def timeout_for(default: httpx.Timeout, deadline: float | None) -> httpx.Timeout:
    """The client's timeout, or the per-call deadline (seconds) on each phase: connecting,
    sending, reading (the async client also bounds the whole call by it)."""
    if deadline is None:
        return default
    if not deadline > 0:
        raise ValueError("deadline must be positive")
    return httpx.Timeout(deadline)


def unavailable(exc: Exception) -> GuardUnavailable:
    """A transport failure as ``GuardUnavailable`` (the message names no secret: httpx errors
    carry the URL, never the headers)."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        what = "timed out"
    elif isinstance(exc, httpx.TransportError):
        what = "could not be reached"
    else:
        what = "failed"
    return GuardUnavailable(f"guard {what}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the guard answered: status and the (bounded) body."""

    status_code: int
    content: bytes


class Body:
    """Collects an answer's body, refusing one larger than ``MAX_ANSWER_BYTES`` or still
    arriving after the call's deadline (so a trickling answer cannot hold a call)."""

    def __init__(self, deadline: float | None) -> None:
        self._ends_at = None if deadline is None else time.monotonic() + deadline
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_ANSWER_BYTES:
            raise GuardUnavailable(f"guard answer larger than {MAX_ANSWER_BYTES} bytes")
        if self._ends_at is not None and time.monotonic() > self._ends_at:
            raise GuardUnavailable("guard timed out: the call's deadline passed while reading")
        self._chunks.append(chunk)

    def content(self) -> bytes:
        return b"".join(self._chunks)


def parse(answer: Answer, orders: int, *, batch: bool) -> list[Decision]:
    """The decisions in an answer to ``orders`` orders (``/can-trade`` or the batch).

    Raises ``GuardRequestError`` on 4xx and ``GuardUnavailable`` on anything else that is
    not the decision contract.
    """
    body = _body(answer)
    try:
        if not batch:
            return [parse_decision(body)]
        if not isinstance(body, dict) or not isinstance(body.get("decisions"), list):
            raise _Malformed("no 'decisions' list")
        parsed = [parse_decision(item) for item in body["decisions"]]
    except _Malformed as exc:
        raise GuardUnavailable(f"guard answered something that is not a decision: {exc}") from None
    if len(parsed) != orders:
        raise GuardUnavailable(f"guard answered {len(parsed)} decisions for {orders} orders")
    return parsed


def denial(order: Order, error: GuardUnavailable) -> Decision:
    """The client-side denial returned instead of raising (``OnUnavailable.DENY``)."""
    reason = Reason(code=ClientReasonCode.GUARD_UNAVAILABLE, message=str(error))
    return Decision(
        allowed=False,
        account=order.account,
        reasons=(reason,),
        symbol=order.symbol.upper() if order.symbol else None,
        client_side=True,
    )


def _body(response: Answer) -> Any:
    status = response.status_code
    if 400 <= status < 500:
        raise _request_error(response)
    if status != 200:
        raise GuardUnavailable(f"guard answered HTTP {status}")
    try:
        return json.loads(response.content)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise GuardUnavailable("guard answered 200 with a body that is not JSON") from None


def _request_error(response: Answer) -> GuardRequestError:
    try:
        error = json.loads(response.content)["error"]
        code, message = error["code"], error["message"]
        fields = error.get("fields") or []
        if not (isinstance(code, str) and isinstance(message, str) and isinstance(fields, list)):
            raise TypeError(code)
        return GuardRequestError(
            response.status_code,
            code,
            message,
            [{str(k): str(v) for k, v in f.items()} for f in fields if isinstance(f, dict)],
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        text = response.content[:_MAX_TEXT].decode("utf-8", "replace")
        return GuardRequestError(response.status_code, None, text)


# ------------------------------------------------------------------------------ parsing


def parse_decision(body: object) -> Decision:
    """One ``DecisionOut`` object as a ``Decision``; ``_Malformed`` if it is not one.

    Fail closed: ``allowed`` must be a JSON boolean, and an allowed answer that carries
    reasons is contradictory, so it is refused rather than trusted.
    """
    obj = _object(body, "decision")
    allowed = obj.get("allowed")
    if not isinstance(allowed, bool):
        raise _Malformed("'allowed' is not a boolean")
    reasons = tuple(map(_reason, _list(obj, "reasons")))
    warnings = tuple(map(_reason, _list(obj, "warnings", required=False)))
    if allowed and reasons:
        raise _Malformed("allowed with reasons")
    return Decision(
        allowed=allowed,
        account=_text(obj, "account", required=True) or "",
        reasons=reasons,
        warnings=warnings,
        decision_id=_text(obj, "decision_id", required=True),
        symbol=_text(obj, "symbol"),
        trading_status=_text(obj, "trading_status"),
        status_age_ms=_int(obj, "status_age_ms"),
        snapshot_age_ms=_int(obj, "snapshot_age_ms"),
        raw=obj,
    )


def parse_code(raw: str) -> ReasonCode | WarningCode | str:
    """A known code as its enum member; an unknown one (a newer guard) as the raw string."""
    for enum in (ReasonCode, WarningCode):
        try:
            return enum(raw)
        except ValueError:
            continue
    return raw


def _reason(body: object) -> Reason:
    obj = _object(body, "reason")
    code = _text(obj, "code", required=True) or ""
    suggestion = obj.get("suggestion")
    return Reason(
        code=parse_code(code),
        message=_text(obj, "message") or "",
        retry_after_ms=_int(obj, "retry_after_ms"),
        limit=_decimal_text(obj, "limit"),
        observed=_decimal_text(obj, "observed"),
        suggestion=None
        if suggestion is None
        else Suggestion(suggestion if isinstance(suggestion, dict) else {"value": suggestion}),
    )


def _object(body: object, what: str) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise _Malformed(f"a {what} is not a JSON object")
    return body


def _list(obj: Mapping[str, Any], name: str, *, required: bool = True) -> list[Any]:
    value = obj.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"'{name}' is not a list")
    return value


def _text(obj: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"'{name}' is not a string")
    return value


def _decimal_text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _text(obj, name)


def _int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"'{name}' is not an integer")
    return value
