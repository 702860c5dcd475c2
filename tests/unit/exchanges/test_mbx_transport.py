"""The shared Binance-family transport, exercised through the generic-v2 client."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from app.errors import (
    ConfigError,
    ErrorKind,
    ExchangeAuthError,
    ExchangeClockSkew,
    ExchangeError,
    ExchangeProtocolError,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
)
from app.exchanges.generic_v2 import ACCOUNT_PATH, STATUS_PATH, GenericV2Client
from app.exchanges.mbx import API_KEY_HEADER
from tests.unit.exchanges.fakes import (
    API_KEY,
    API_SECRET,
    BASE_URL,
    CREDENTIALS,
    NOW_MS,
    FakeExchange,
    RecordingGate,
    Responder,
    fail_with,
    fixed_clock,
    fixture,
    reply,
    signature_is_valid,
    split_signed_query,
)

TIME_PATH = "/v2/time"


def ok_status() -> Responder:
    return reply(fixture("generic_v2", "api_trading_status"))


def skew() -> Responder:
    return reply(
        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, 400
    )


# --------------------------------------------------------------------------- signing & headers


async def test_signed_request_carries_key_header_and_a_valid_last_signature(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(STATUS_PATH, ok_status())
    generic.clock_offset_ms = 250
    await generic.fetch_status()
    (request,) = exchange.requests
    assert request.headers[API_KEY_HEADER] == API_KEY
    payload, _ = split_signed_query(request)
    assert payload == f"recvWindow=5000&timestamp={NOW_MS + 250}"
    assert signature_is_valid(request)
    assert str(request.url).startswith(f"{BASE_URL}{STATUS_PATH}?")


async def test_request_uses_the_configured_timeout(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(STATUS_PATH, ok_status())
    await generic.fetch_status()
    timeouts = exchange.requests[0].extensions["timeout"]
    assert timeouts["read"] == timeouts["connect"] == 3.0


# --------------------------------------------------------------------------- clock


async def test_sync_clock_uses_the_midpoint_of_the_request(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    exchange.on(TIME_PATH, reply(fixture("generic_v2", "time")))  # serverTime ...123
    generic.wall_clock_ms = fixed_clock(NOW_MS, NOW_MS + 10)  # midpoint NOW_MS + 5
    assert await generic.sync_clock() == 118
    assert generic.clock_offset_ms == 118
    (request,) = exchange.requests
    assert API_KEY_HEADER not in request.headers  # public endpoint: nothing secret sent
    assert b"signature" not in request.url.query
    assert gate.weights == [1]
    assert gate.responses == [(TIME_PATH, "ok", None)]


@pytest.mark.parametrize("body", [{}, {"serverTime": "soon"}, {"serverTime": True}, [1]])
async def test_sync_clock_rejects_bad_server_time(
    exchange: FakeExchange, generic: GenericV2Client, body: Any
) -> None:
    exchange.on(TIME_PATH, reply(body))
    with pytest.raises(ExchangeProtocolError):
        await generic.sync_clock()
    assert generic.clock_offset_ms == 0


async def test_minus_1021_resyncs_the_clock_and_retries_once(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    exchange.on(STATUS_PATH, skew(), ok_status())
    exchange.on(TIME_PATH, reply({"serverTime": NOW_MS + 4000}))
    status = await generic.fetch_status()
    assert status.can_trade
    assert exchange.paths() == [STATUS_PATH, TIME_PATH, STATUS_PATH]
    assert generic.clock_offset_ms == 4000
    payload, _ = split_signed_query(exchange.requests[2])
    assert payload.endswith(f"timestamp={NOW_MS + 4000}")  # the retry used the new offset
    assert gate.weights == [1, 1, 1]
    assert gate.outcomes() == ["clock_skew", "ok", "ok"]


async def test_second_minus_1021_is_a_clock_skew_error(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(STATUS_PATH, skew())
    exchange.on(TIME_PATH, reply({"serverTime": NOW_MS}))
    with pytest.raises(ExchangeClockSkew, match="still rejected after re-syncing") as info:
        await generic.fetch_status()
    assert info.value.kind is ErrorKind.CLOCK_SKEW
    assert info.value.code == -1021
    assert exchange.paths() == [STATUS_PATH, TIME_PATH, STATUS_PATH]


async def test_failed_resync_after_minus_1021_surfaces_the_resync_error(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(STATUS_PATH, skew())
    exchange.on(TIME_PATH, reply(status=503))
    with pytest.raises(ExchangeUnavailable):
        await generic.fetch_status()
    assert exchange.paths() == [STATUS_PATH, TIME_PATH]


# --------------------------------------------------------------------------- error mapping

#: What a generic-v2 account's auth failure says, and what only Binance accounts are told.
AUTH_CAUSE_WORDS = ("wrong API key or secret", "IP is not allowed", "permission to read")
BINANCE_ONLY_CAUSES = ("portfolio", "/papi", "futures not enabled", "whitelist")


@pytest.mark.parametrize(
    ("status", "body", "error_type", "kind", "code"),
    [
        (500, None, ExchangeUnavailable, ErrorKind.SERVER_ERROR, None),
        (502, "<html>Bad Gateway</html>", ExchangeUnavailable, ErrorKind.SERVER_ERROR, None),
        (
            503,
            {"code": -1000, "msg": "Unknown error, please check your request or try again later."},
            ExchangeUnavailable,
            ErrorKind.SERVER_ERROR,
            -1000,
        ),
        (503, {"msg": "Service Unavailable."}, ExchangeUnavailable, ErrorKind.SERVER_ERROR, None),
        (408, None, ExchangeUnavailable, ErrorKind.TIMEOUT, None),
        (
            400,
            {"code": -1001, "msg": "Internal error"},
            ExchangeUnavailable,
            ErrorKind.SERVER_ERROR,
            -1001,
        ),
        (
            400,
            {"code": -1102, "msg": "Mandatory parameter"},
            ExchangeRejected,
            ErrorKind.REJECTED,
            -1102,
        ),
        (404, "garbage", ExchangeRejected, ErrorKind.REJECTED, None),
        (400, {"code": "x", "msg": 7}, ExchangeRejected, ErrorKind.REJECTED, None),
        (
            401,
            {"code": -1022, "msg": "Signature for this request is not valid."},
            ExchangeAuthError,
            ErrorKind.AUTH,
            -1022,
        ),
        (
            401,
            {"code": -2014, "msg": "API-key format invalid."},
            ExchangeAuthError,
            ErrorKind.AUTH,
            -2014,
        ),
        (
            401,
            {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
            ExchangeAuthError,
            ErrorKind.AUTH,
            -2015,
        ),
        (400, {"code": -2015, "msg": "Invalid API-key"}, ExchangeAuthError, ErrorKind.AUTH, -2015),
        (401, None, ExchangeAuthError, ErrorKind.AUTH, None),
        (
            400,
            {"code": -2017, "msg": "API Keys are locked on this account."},
            ExchangeAuthError,
            ErrorKind.AUTH,
            -2017,
        ),
        (302, None, ExchangeProtocolError, ErrorKind.MALFORMED, None),
    ],
)
async def test_error_answers_map_to_the_exception_tree(
    exchange: FakeExchange,
    generic: GenericV2Client,
    gate: RecordingGate,
    status: int,
    body: Any,
    error_type: type[ExchangeError],
    kind: ErrorKind,
    code: int | None,
) -> None:
    responder = (
        reply(raw=body.encode(), status=status)
        if isinstance(body, str)
        else reply(body, status=status)
    )
    exchange.on(STATUS_PATH, responder)
    with pytest.raises(error_type) as info:
        await generic.fetch_status()
    assert type(info.value) is error_type
    assert info.value.kind is kind
    assert info.value.code == code
    assert info.value.endpoint == STATUS_PATH
    assert len(exchange.requests) == 1  # none of these is retried inside the client
    assert gate.outcomes() == [kind.value]


@pytest.mark.parametrize("code", [-1022, -2014, -2015])
async def test_auth_errors_name_the_likely_causes(
    exchange: FakeExchange, generic: GenericV2Client, code: int
) -> None:
    exchange.on(STATUS_PATH, reply({"code": code, "msg": "nope"}, status=401))
    with pytest.raises(ExchangeAuthError) as info:
        await generic.fetch_status()
    for words in AUTH_CAUSE_WORDS:
        assert words in str(info.value)
    # Binance's causes (portfolio margin, /papi) are not a generic-v2 account's.
    for words in BINANCE_ONLY_CAUSES:
        assert words not in str(info.value)


async def test_keys_locked_says_so(exchange: FakeExchange, generic: GenericV2Client) -> None:
    exchange.on(STATUS_PATH, reply({"code": -2017, "msg": "API Keys are locked."}, status=401))
    with pytest.raises(ExchangeAuthError, match="API keys locked"):
        await generic.fetch_status()


@pytest.mark.parametrize(
    ("status", "headers", "msg", "retry_after", "banned"),
    [
        pytest.param(429, {"Retry-After": "7"}, "Too many requests", 7.0, False, id="429-header"),
        pytest.param(429, {}, "Too many requests", 60.0, False, id="429-default"),
        pytest.param(418, {"Retry-After": "300"}, "banned", 300.0, True, id="418-header"),
        pytest.param(418, {}, "", 120.0, True, id="418-default"),
        pytest.param(429, {"Retry-After": "soon"}, "", 60.0, False, id="429-garbage-header"),
        pytest.param(429, {"Retry-After": "-5"}, "", 60.0, False, id="429-negative-header"),
        pytest.param(
            418,
            {},
            f"Way too many requests; IP banned until {NOW_MS + 90_000}. Please use websocket.",
            91.0,  # + BANNED_UNTIL_MARGIN_S
            True,
            id="418-banned-until",
        ),
        pytest.param(
            429,
            {"Retry-After": "10"},
            f"Way too many requests; IP banned until {NOW_MS + 300_000}.",
            301.0,
            True,
            id="banned-until-beats-shorter-header",
        ),
        pytest.param(
            429,
            {"Retry-After": "Fri, 21 Nov 2025 08:00:30 GMT"},  # NOW_MS is 08:00:00 that day
            "",
            30.0,
            False,
            id="http-date-header",
        ),
    ],
)
async def test_rate_limits_and_bans(
    exchange: FakeExchange,
    generic: GenericV2Client,
    gate: RecordingGate,
    status: int,
    headers: dict[str, str],
    msg: str,
    retry_after: float,
    banned: bool,
) -> None:
    headers = {**headers, "X-MBX-USED-WEIGHT-1M": "1250"}
    exchange.on(STATUS_PATH, reply({"code": -1003, "msg": msg}, status=status, headers=headers))
    with pytest.raises(ExchangeRateLimited) as info:
        await generic.fetch_status()
    assert info.value.retry_after_s == pytest.approx(retry_after)
    assert info.value.banned is banned
    assert info.value.kind is (ErrorKind.BANNED if banned else ErrorKind.RATE_LIMITED)
    assert gate.responses == [(STATUS_PATH, info.value.kind.value, 1250)]


async def test_minus_1003_on_a_400_is_still_a_rate_limit(
    exchange: FakeExchange, generic: GenericV2Client
) -> None:
    exchange.on(STATUS_PATH, reply({"code": -1003, "msg": "Too many requests."}, status=400))
    with pytest.raises(ExchangeRateLimited) as info:
        await generic.fetch_status()
    assert info.value.retry_after_s == 60.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>maintenance</html>", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'"NORMAL"', "must be a JSON object, got str"),
        (b"null", "must be a JSON object, got NoneType"),
    ],
)
async def test_unusable_success_bodies_are_protocol_errors(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate, raw: bytes, message: str
) -> None:
    exchange.on(STATUS_PATH, reply(raw=raw))
    with pytest.raises(ExchangeProtocolError, match=message):
        await generic.fetch_status()
    assert gate.outcomes() == ["malformed"]


# --------------------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    ("exc_type", "kind"),
    [
        (httpx.ReadTimeout, ErrorKind.TIMEOUT),
        (httpx.ConnectTimeout, ErrorKind.TIMEOUT),
        (httpx.PoolTimeout, ErrorKind.TIMEOUT),
        (httpx.ConnectError, ErrorKind.NETWORK),
        (httpx.RemoteProtocolError, ErrorKind.NETWORK),
        (httpx.ReadError, ErrorKind.NETWORK),
    ],
)
async def test_transport_errors_are_exchange_unavailable(
    exchange: FakeExchange,
    generic: GenericV2Client,
    gate: RecordingGate,
    exc_type: type[httpx.TransportError],
    kind: ErrorKind,
) -> None:
    exchange.on(STATUS_PATH, fail_with(exc_type, "boom"))
    with pytest.raises(ExchangeUnavailable) as info:
        await generic.fetch_status()
    assert info.value.kind is kind
    assert isinstance(info.value.__cause__, exc_type)
    assert gate.responses == [(STATUS_PATH, kind.value, None)]


# --------------------------------------------------------------------------- gate


@pytest.mark.parametrize(("header", "expected"), [("42", 42), ("lots", None), (None, None)])
async def test_used_weight_header_is_reported_to_the_gate(
    exchange: FakeExchange,
    generic: GenericV2Client,
    gate: RecordingGate,
    header: str | None,
    expected: int | None,
) -> None:
    headers = {"X-MBX-USED-WEIGHT-1M": header} if header is not None else {}
    exchange.on(ACCOUNT_PATH, reply(fixture("generic_v2", "account"), headers=headers))
    await generic.fetch_snapshot()
    assert gate.weights == [5]
    assert gate.responses == [(ACCOUNT_PATH, "ok", expected)]


async def test_a_gate_refusal_sends_nothing(
    exchange: FakeExchange, generic: GenericV2Client, gate: RecordingGate
) -> None:
    gate.refuse_with = ExchangeRateLimited("banned", retry_after_s=30, banned=True)
    exchange.on(STATUS_PATH, ok_status())
    with pytest.raises(ExchangeRateLimited):
        await generic.fetch_status()
    assert exchange.requests == []
    assert gate.responses == []


async def test_the_timestamp_is_taken_after_the_gate_lets_the_request_through(
    exchange: FakeExchange, http: httpx.AsyncClient
) -> None:
    clock = [NOW_MS]

    class SlowGate(RecordingGate):
        async def before_request(self, weight: int) -> None:
            clock[0] += 7000  # the budget made us wait 7 s
            await super().before_request(weight)

    client = GenericV2Client(base_url=BASE_URL, credentials=CREDENTIALS, http=http, gate=SlowGate())
    client.wall_clock_ms = lambda: clock[0]
    exchange.on(STATUS_PATH, ok_status())
    await client.fetch_status()
    payload, _ = split_signed_query(exchange.requests[0])
    assert payload.endswith(f"timestamp={NOW_MS + 7000}")


# --------------------------------------------------------------------------- secrets


def leaky_echo(request: httpx.Request) -> httpx.Response:
    """An exchange that echoes the whole request, key and secret into its error message."""
    text = f"bad request {request.url} key={API_KEY} secret={API_SECRET} q={request.url.query!r}"
    return httpx.Response(400, json={"code": -1102, "msg": text})


@pytest.mark.parametrize(
    "responder",
    [
        pytest.param(leaky_echo, id="error-msg-echo"),
        pytest.param(fail_with(httpx.ConnectError, "cannot reach"), id="transport-error"),
        pytest.param(fail_with(httpx.ReadTimeout, "slow"), id="timeout"),
        pytest.param(
            lambda r: httpx.Response(401, json={"code": -2015, "msg": str(r.url)}), id="auth"
        ),
        pytest.param(
            lambda r: httpx.Response(429, json={"code": -1003, "msg": str(r.url)}), id="429"
        ),
    ],
)
async def test_errors_and_logs_never_contain_secrets_or_signatures(
    exchange: FakeExchange,
    generic: GenericV2Client,
    caplog: pytest.LogCaptureFixture,
    responder: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    exchange.on(STATUS_PATH, responder)
    with pytest.raises(ExchangeError) as info:
        await generic.fetch_status()
    _, signature = split_signed_query(exchange.requests[0])
    err = info.value
    for text in (str(err), repr(err), err.message, repr(err.args), caplog.text):
        for secret in (API_KEY, API_SECRET, signature):
            assert secret not in text


def test_credentials_do_not_show_in_the_client_repr(generic: GenericV2Client) -> None:
    text = repr(generic.credentials) + repr(vars(generic))
    assert API_KEY not in text
    assert API_SECRET not in text


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"options": {"snapshot_endpoint": "v3"}}, "unknown option.*snapshot_endpoint"),
        ({"recv_window_ms": 0}, "recv_window_ms"),
        ({"recv_window_ms": 60_001}, "recv_window_ms"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"base_url": "exchange.test"}, "base_url"),
        ({"base_url": "ftp://exchange.test"}, "base_url"),
    ],
)
def test_invalid_configuration_is_refused(
    http: httpx.AsyncClient, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "base_url": BASE_URL,
        "credentials": CREDENTIALS,
        "http": http,
        "gate": RecordingGate(),
        **kwargs,
    }
    with pytest.raises(ConfigError, match=message):
        GenericV2Client(**args)


def test_base_url_trailing_slash_is_dropped(http: httpx.AsyncClient) -> None:
    client = GenericV2Client(
        base_url=BASE_URL + "/", credentials=CREDENTIALS, http=http, gate=RecordingGate()
    )
    assert client.base_url == BASE_URL


@pytest.mark.parametrize(
    ("headers", "msg", "asked"),
    [
        pytest.param({"Retry-After": "999999999999"}, "", 999999999999.0, id="header"),
        pytest.param(
            {}, f"IP banned until {NOW_MS + 86_400_000 * 365}", 31536000.0 + 1, id="banned-until"
        ),
    ],
)
async def test_retry_after_is_capped_and_the_exchanges_value_kept(
    exchange: FakeExchange,
    generic: GenericV2Client,
    headers: dict[str, str],
    msg: str,
    asked: float,
) -> None:
    # 999999999999 s used to block the budget for ~31,700 years, until a restart.
    exchange.on(STATUS_PATH, reply({"code": -1003, "msg": msg}, status=418, headers=headers))
    with pytest.raises(ExchangeRateLimited) as info:
        await generic.fetch_status()
    assert info.value.retry_after_s == 600.0  # AnswerLimits.max_retry_after_s default
    assert info.value.requested_s == pytest.approx(asked)
    assert "capped by poll.max_retry_after_s" in str(info.value)
