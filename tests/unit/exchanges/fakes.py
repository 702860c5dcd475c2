"""Test doubles for exchange clients: a scripted exchange behind httpx.MockTransport and a gate."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.exchanges.base import Credentials
from app.exchanges.signing import hmac_sha256_hex

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# Distinctive values so a leak into any message is easy to spot.
API_KEY = "KEYvmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "SECRETNhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5f"
CREDENTIALS = Credentials(api_key=SecretStr(API_KEY), api_secret=SecretStr(API_SECRET))
BASE_URL = "http://exchange.test"
NOW_MS = 1763712000000

Responder = Callable[[httpx.Request], httpx.Response]


def fixture(exchange: str, name: str) -> Any:
    """The documented example body ``tests/fixtures/<exchange>/<name>.json``, freshly parsed."""
    return json.loads((FIXTURES / exchange / f"{name}.json").read_text())


def reply(
    body: Any = None, status: int = 200, headers: dict[str, str] | None = None, raw: bytes = b""
) -> Responder:
    """A responder answering ``body`` as JSON (or ``raw`` bytes) with ``status``."""

    def respond(request: httpx.Request) -> httpx.Response:
        content = raw if body is None else json.dumps(body).encode()
        # A stream, as from the network: the client reads it through its size cap.
        return httpx.Response(status, stream=httpx.ByteStream(content), headers=headers)

    return respond


def fail_with(exc_type: type[httpx.TransportError], message: str = "") -> Responder:
    """A responder that raises a transport error, with the full (signed) URL in its message."""

    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type(f"{message} {request.url}".strip(), request=request)

    return respond


@dataclass
class FakeExchange:
    """Answers by path from per-path queues (the last answer repeats); records every request."""

    routes: dict[str, list[Responder]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, path: str, *responders: Responder) -> FakeExchange:
        self.routes[path] = list(responders)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.path)
        if not queue:
            return httpx.Response(404, json={"code": -1, "msg": f"no route {request.url.path}"})
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


@dataclass
class RecordingGate:
    """A CallGate that lets everything through and records what it was told."""

    weights: list[int] = field(default_factory=list)
    responses: list[tuple[str, str, int | None]] = field(default_factory=list)
    refuse_with: Exception | None = None

    async def before_request(self, weight: int) -> None:
        if self.refuse_with is not None:
            raise self.refuse_with
        self.weights.append(weight)

    def after_response(
        self, endpoint: str, outcome: str, elapsed_s: float, used_weight: int | None
    ) -> None:
        assert elapsed_s >= 0
        self.responses.append((endpoint, outcome, used_weight))

    def outcomes(self) -> list[str]:
        return [outcome for _, outcome, _ in self.responses]


def fixed_clock(*values: int) -> Callable[[], int]:
    """A wall clock returning ``values`` in turn, then repeating the last one."""
    it: Iterator[int] = iter(values)
    last = [values[-1]]

    def now() -> int:
        last[0] = next(it, last[0])
        return last[0]

    return now


def split_signed_query(request: httpx.Request) -> tuple[str, str]:
    """Return (payload, signature) of a signed request, asserting the signature comes last."""
    query = request.url.query.decode()
    payload, sep, signature = query.rpartition("&signature=")
    assert sep, f"no signature parameter in {query!r}"
    assert "&" not in signature, "signature is not the last parameter"
    assert "=" not in signature, "signature is not the last parameter"
    return payload, signature


def signature_is_valid(request: httpx.Request) -> bool:
    payload, signature = split_signed_query(request)
    return hmac_sha256_hex(API_SECRET, payload) == signature
