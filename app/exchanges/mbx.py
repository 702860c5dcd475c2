"""HTTP transport shared by the Binance-family protocols ("MBX": ``X-MBX-APIKEY`` & co).

Every request goes through :meth:`MbxClient._send`, the one place where bytes meet the wire:
it asks the ``CallGate`` before, reports to it after, signs, and maps every failure to the
exception tree in ``app.errors``::

    httpx.TimeoutException            -> ExchangeUnavailable(kind=TIMEOUT)   (one read)
    total deadline passed             -> ExchangeUnavailable(kind=TIMEOUT)   (the whole call)
    other httpx transport errors      -> ExchangeUnavailable(kind=NETWORK)
    body over the size cap            -> ExchangeProtocolError               (app.exchanges.body)
    HTTP error answers                -> see mbx_errors.map_error
    2xx with a non-JSON / wrong shape -> ExchangeProtocolError
    a JSON array over the row cap     -> ExchangeProtocolError

Bodies over ``OFF_LOOP_BYTES`` are decoded in a worker thread, row by row
(``app.exchanges.jsondecode``), so one account's big answer does not stall the event loop that
answers every other account's decisions.

Signed requests that fail with -1021 (timestamp outside recvWindow) re-learn the clock offset
and are retried exactly once, as both protocol documents prescribe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx

from app.errors import (
    ConfigError,
    ErrorKind,
    ExchangeClockSkew,
    ExchangeError,
    ExchangeProtocolError,
    ExchangeUnavailable,
)
from app.exchanges import jsondecode
from app.exchanges.base import AnswerLimits, CallGate, Credentials, ExchangeClient
from app.exchanges.body import ACCEPT_ENCODING, read_capped
from app.exchanges.jsonfields import Fields
from app.exchanges.mbx_errors import AUTH_CAUSES, map_error, read_error_answer
from app.exchanges.redaction import install_httpx_log_redaction, redact
from app.exchanges.signing import encode_query, signed_query

logger = logging.getLogger(__name__)
# httpx logs each request URL (ours carry signatures) at INFO; see redaction.py.
install_httpx_log_redaction()

API_KEY_HEADER = "X-MBX-APIKEY"
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
#: Largest recvWindow the protocols accept (generic-v2-protocol.md; Spot documents the same).
MAX_RECV_WINDOW_MS = 60_000

Shape = Literal["object", "array"]
#: Answers larger than this are JSON-decoded in a worker thread, not on the event loop.
OFF_LOOP_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Reply:
    body: object
    sent_ms: int  # local wall clock just before / after the exchange, for sync_clock
    received_ms: int


def epoch_ms() -> int:
    """Local wall-clock time in integer epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _reject_constant(name: str) -> Any:
    # json.loads would otherwise turn NaN / Infinity into floats that look like amounts.
    raise ValueError(f"non-finite JSON constant {name}")


def _decode_json(content: bytes) -> object:
    return json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)


def _longest_array(body: object, depth: int = 2) -> tuple[str, int]:
    """The longest JSON array at the top or one level down (``indicators.<symbol>``)."""
    if isinstance(body, list):
        return "", len(body)
    best = ("", 0)
    if isinstance(body, dict) and depth > 0:
        for key, value in body.items():
            name, size = _longest_array(value, depth - 1)
            if size > best[1]:
                best = (f"{key}.{name}" if name else str(key), size)
    return best


def _used_weight(headers: httpx.Headers) -> int | None:
    value = headers.get(USED_WEIGHT_HEADER)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def check_http_url(url: str, what: str) -> str:
    """Return ``url`` without a trailing slash, or raise ``ConfigError`` if it is not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{what} must be an http:// or https:// URL")
    return url.rstrip("/")


class MbxClient(ExchangeClient):
    """Base of the Binance-family clients: signing, clock offset, gate, error mapping."""

    #: Public server-time endpoint used by :meth:`sync_clock`.
    time_path: ClassVar[str]
    #: Exchange-specific advice appended to the error message of a given error code.
    error_hints: ClassVar[Mapping[int, str]] = {}
    #: Likely causes of a rejected credential (-1022 / -2014 / -2015 / HTTP 401), worded by
    #: each exchange module for its own exchange.
    auth_hint: ClassVar[str] = AUTH_CAUSES

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        http: httpx.AsyncClient,
        gate: CallGate,
        recv_window_ms: int = 5000,
        timeout_s: float = 5.0,
        options: Mapping[str, Any] | None = None,
        limits: AnswerLimits | None = None,
    ) -> None:
        super().__init__(
            base_url=check_http_url(base_url, f"{self.name}: base_url"),
            credentials=credentials,
            http=http,
            gate=gate,
            recv_window_ms=recv_window_ms,
            timeout_s=timeout_s,
            options=options,
            limits=limits,
        )
        if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
            raise ConfigError(f"{self.name}: recv_window_ms must be in 1..{MAX_RECV_WINDOW_MS}")
        if not timeout_s > 0:
            raise ConfigError(f"{self.name}: timeout_s must be positive")
        #: Source of local wall time in epoch ms; tests replace it to pin timestamps.
        self.wall_clock_ms: Callable[[], int] = epoch_ms
        self.configure(self.options)

    def configure(self, options: Mapping[str, Any]) -> None:
        """Validate exchange-specific options; this protocol takes none."""
        if options:
            unknown = ", ".join(sorted(map(str, options)))
            raise ConfigError(f"{self.name}: unknown option(s) {unknown}; it takes no options")

    async def sync_clock(self) -> int:
        """Learn ``clock_offset_ms = serverTime - local midpoint of the request`` and return it."""
        reply = await self._send(self.time_path, weight=self.capabilities.time_weight, signed=False)
        server_ms = Fields.of(reply.body, endpoint=self.time_path).integer("serverTime")
        self.clock_offset_ms = server_ms - (reply.sent_ms + reply.received_ms) // 2
        logger.debug("%s clock offset %d ms", self.name, self.clock_offset_ms)
        return self.clock_offset_ms

    async def get_object(
        self, path: str, *, weight: int, params: Sequence[tuple[str, str]] = (), base_url: str = ""
    ) -> Fields:
        """Signed GET whose answer must be a JSON object."""
        body = await self._signed(path, weight, params, base_url, "object")
        return Fields.of(body, endpoint=path)

    async def get_array(
        self, path: str, *, weight: int, params: Sequence[tuple[str, str]] = (), base_url: str = ""
    ) -> list[Any]:
        """Signed GET whose answer must be a JSON array."""
        body = await self._signed(path, weight, params, base_url, "array")
        return body if isinstance(body, list) else []  # _send already checked the shape

    async def _signed(
        self,
        path: str,
        weight: int,
        params: Sequence[tuple[str, str]],
        base_url: str,
        shape: Shape,
    ) -> object:
        async def attempt() -> object:
            reply = await self._send(
                path, weight=weight, signed=True, params=params, base_url=base_url, shape=shape
            )
            return reply.body

        try:
            return await attempt()
        except ExchangeClockSkew:
            # -1021: our clock drifted from the server's. Re-learn the offset, retry once.
            await self.sync_clock()
            logger.info(
                "%s clock re-synced after -1021: offset %d ms", self.name, self.clock_offset_ms
            )
        try:
            return await attempt()
        except ExchangeClockSkew as exc:
            raise ExchangeClockSkew(
                f"{exc.message}; still rejected after re-syncing the clock "
                f"(offset {self.clock_offset_ms} ms)",
                endpoint=path,
                code=exc.code,
            ) from exc

    def _secrets(self) -> tuple[str, str]:
        creds = self.credentials
        return creds.api_key.get_secret_value(), creds.api_secret.get_secret_value()

    async def _send(
        self,
        path: str,
        *,
        weight: int,
        signed: bool,
        params: Sequence[tuple[str, str]] = (),
        base_url: str = "",
        shape: Shape = "object",
    ) -> _Reply:
        """One GET: gate, sign, send, classify. ``path`` is also the bounded endpoint label."""
        # Wait for the budget first: a timestamp taken before a long wait would be stale.
        await self.gate.before_request(weight)
        headers: dict[str, str] = {"Accept-Encoding": ACCEPT_ENCODING}
        sent_ms = self.wall_clock_ms()
        if signed:
            api_key, secret = self._secrets()
            headers[API_KEY_HEADER] = api_key
            query = signed_query(
                params,
                secret=secret,
                recv_window_ms=self.recv_window_ms,
                timestamp_ms=sent_ms + self.clock_offset_ms,
            )
        else:
            query = encode_query(params)
        # The query string is passed pre-encoded so httpx sends exactly the bytes we signed.
        url = httpx.URL((base_url or self.base_url) + path, query=query.encode("ascii"))
        started = time.monotonic()
        deadline_s = self.limits.deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                status, response_headers, content = await self._fetch(url, headers, path)
        except TimeoutError as exc:
            error: ExchangeError = ExchangeUnavailable(
                f"no complete answer within the {deadline_s:g} s deadline "
                "(poll.request_deadline_s)",
                endpoint=path,
                kind=ErrorKind.TIMEOUT,
            )
            self.gate.after_response(path, error.kind.value, time.monotonic() - started, None)
            raise error from exc
        except httpx.HTTPError as exc:
            error = self._transport_error(exc, path)
            self.gate.after_response(path, error.kind.value, time.monotonic() - started, None)
            raise error from exc
        except ExchangeError as exc:  # over the size cap, or an encoding we did not ask for
            self.gate.after_response(path, exc.kind.value, time.monotonic() - started, None)
            raise
        elapsed = time.monotonic() - started
        received_ms = self.wall_clock_ms()
        used = _used_weight(response_headers)
        try:
            body = await self._interpret(status, response_headers, content, path, shape)
        except ExchangeError as exc:
            self.gate.after_response(path, exc.kind.value, elapsed, used)
            raise
        self.gate.after_response(path, "ok", elapsed, used)
        return _Reply(body, sent_ms, received_ms)

    async def _fetch(
        self, url: httpx.URL, headers: Mapping[str, str], path: str
    ) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and the capped body of one GET (streamed, never buffered whole)."""
        async with self.http.stream("GET", url, headers=headers, timeout=self.timeout_s) as reply:
            content = await read_capped(reply, max_bytes=self.limits.max_bytes, endpoint=path)
            return reply.status_code, reply.headers, content

    def _transport_error(self, exc: httpx.HTTPError, path: str) -> ExchangeError:
        # httpx messages rarely carry the URL, but redact anyway: it holds the signature.
        text = str(exc)
        detail = redact(
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__, self._secrets()
        )
        if isinstance(exc, httpx.TimeoutException):
            return ExchangeUnavailable(
                f"timed out after {self.timeout_s:g} s ({detail})",
                endpoint=path,
                kind=ErrorKind.TIMEOUT,
            )
        if isinstance(exc, httpx.DecodingError):
            return ExchangeProtocolError(f"undecodable response body ({detail})", endpoint=path)
        return ExchangeUnavailable(
            f"network error ({detail})", endpoint=path, kind=ErrorKind.NETWORK
        )

    async def _interpret(
        self, status: int, headers: httpx.Headers, content: bytes, path: str, shape: Shape
    ) -> object:
        if not 200 <= status < 300:
            server_now_ms = self.wall_clock_ms() + self.clock_offset_ms
            answer = read_error_answer(
                status, headers, content, secrets=self._secrets(), now_ms=server_now_ms
            )
            raise map_error(
                answer,
                endpoint=path,
                server_now_ms=server_now_ms,
                hints=self.error_hints,
                auth_hint=self.auth_hint,
                max_retry_after_s=self.limits.max_retry_after_s,
            )
        try:
            if len(content) > OFF_LOOP_BYTES:
                # In a thread, and row by row: json.loads would hold the GIL throughout.
                body = await asyncio.to_thread(jsondecode.loads, content)
            else:
                body = _decode_json(content)
        except (ValueError, RecursionError) as exc:
            raise ExchangeProtocolError(
                f"response body is not valid JSON (HTTP {status})", endpoint=path
            ) from exc
        expected = dict if shape == "object" else list
        if not isinstance(body, expected):
            raise ExchangeProtocolError(
                f"response body must be a JSON {shape}, got {type(body).__name__}", endpoint=path
            )
        name, rows = _longest_array(body)
        if rows > self.limits.max_rows:
            where = f"field {name}" if name else "the answer"
            raise ExchangeProtocolError(
                f"{where} has {rows} rows, over the cap of {self.limits.max_rows} "
                "(poll.max_snapshot_rows)",
                endpoint=path,
            )
        return body
