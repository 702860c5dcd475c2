"""Pure-ASGI request metrics, labelled by route template (never the raw path)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.lean_metrics import LeanCounterChild, LeanHistogramChild
from app.metrics import Metrics


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._requests = metrics.http_requests
        self._seconds = metrics.http_seconds
        # Label children are looked up once per (route, method, status), not per request.
        self._children: dict[tuple[str, str, int], tuple[LeanCounterChild, LeanHistogramChild]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (template, scope["method"], status)
            children = self._children.get(key)
            if children is None:
                children = (
                    self._requests.labels(template, scope["method"], str(status)),
                    self._seconds.labels(template, scope["method"]),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
