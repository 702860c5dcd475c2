"""A hostile or broken exchange, played by the real simulator, against the real guard.

Each case injects one simulator fault for the target account's key and shows what a user sees:
the refresh fails (counted in ``refresh_failures_total``, named in ``/readyz`` and in a
``refresh failed`` log line), decisions on that account turn to a deny instead of an
``allowed`` sized by the bad answer, and once the fault is gone the account is fresh and
allowed again. The control account on another key stays fresh throughout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.guard import (
    READ_TOKEN,
    GuardProcess,
    guard_config,
    sample_value,
    wait_until,
)
from tests.support.guard_fixtures import account_entry, codes
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY, RESTRICTED

pytestmark = pytest.mark.integration

TARGET = "alpha"  # HEALTHY: LONG 0.5 BTCUSDT at mark 60300 (30,150 USDT)
CONTROL = "bravo"  # RESTRICTED, another key: only its freshness matters here
ACCOUNT_PATH = "/v2/account"
STATUS_PATH = "/v2/private/account/apiTradingStatus"
#: The issue's limit: a position of at most 40,000 USDT per symbol and side.
POSITION_LIMIT = "40000"
#: 0.01 BTC more: 30,753 USDT after the order, inside the limit on the real position.
SMALL_BUY = {"account": TARGET, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
#: The guard's bounds on one exchange call in this module (small, so the cases run fast).
DEADLINE_S = 2.0
MAX_BYTES = 256 * 1024
MAX_RETRY_AFTER_S = 3.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    log_path = tmp_path_factory.mktemp("hostile-sim") / "simulator.log"
    with SimulatorProcess(BASIC_SCENARIO, log_path=log_path) as process:
        yield process


@pytest.fixture(scope="module")
def module_guard(
    sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    accounts = {TARGET: account_entry(sim, HEALTHY), CONTROL: account_entry(sim, RESTRICTED)}
    config = guard_config(
        accounts,
        port=free_port(),
        policy={"max_position_notional": POSITION_LIMIT},
        poll={
            "request_deadline_s": DEADLINE_S,
            "max_response_bytes": MAX_BYTES,
            "max_retry_after_s": MAX_RETRY_AFTER_S,
        },
    )
    guard = GuardProcess(config, tmp_path_factory.mktemp("hostile-guard")).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def guard(module_guard: GuardProcess, sim: SimulatorProcess) -> Iterator[GuardProcess]:
    """Both accounts fresh, the target allowed to buy, on a simulator back at its scenario."""
    sim.control.reset()
    with module_guard.client() as bot:
        decide_until(bot, lambda body: body["allowed"], "allowed before the case")
    wait_until(lambda: fresh(module_guard, CONTROL), timeout=15, what="control fresh")
    yield module_guard
    sim.control.reset()


# --------------------------------------------------------------------------- observations


def decide(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/can-trade", params=SMALL_BUY)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decide_until(client: httpx.Client, predicate: Any, what: str, timeout: float = 15) -> Any:
    seen: dict[str, Any] = {}

    def check() -> bool:
        nonlocal seen
        seen = decide(client)
        return bool(predicate(seen))

    try:
        wait_until(check, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {seen}") from None
    return seen


def readiness(guard: GuardProcess) -> dict[str, Any]:
    accounts: dict[str, Any] = httpx.get(f"{guard.base_url}/readyz", timeout=5).json()["accounts"]
    return accounts


def fresh(guard: GuardProcess, account: str) -> bool:
    return bool(readiness(guard)[account]["fresh"])


def failures(guard: GuardProcess, kind: str, error: str) -> float:
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    labels = {"account": TARGET, "kind": kind, "error": error}
    return sample_value(text, "pretrade_guard_refresh_failures_total", labels) or 0.0


def failed_log_lines(guard: GuardProcess, needle: str) -> list[dict[str, Any]]:
    lines = []
    for line in guard.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "refresh failed" and needle in str(entry.get("cause", "")):
            lines.append(entry)
    return lines


def prove_refused(
    guard: GuardProcess, *, kind: str, error: str, cause: str, what: str
) -> dict[str, Any]:
    """The target's ``kind`` refresh fails with ``error`` (counted, in /readyz, logged with
    ``cause``); its decisions end in STALE_DATA naming the error; the control stays fresh."""
    before = failures(guard, kind, error)
    wait_until(lambda: failures(guard, kind, error) > before, timeout=20, what=f"{what}: counted")
    wait_until(
        lambda: cause in str(readiness(guard)[TARGET]["last_error"]),
        timeout=20,
        what=f"{what}: /readyz names it",
    )
    assert readiness(guard)[TARGET]["last_error_kind"] == error
    with guard.client() as bot:
        body: dict[str, Any] = decide_until(
            bot, lambda b: "STALE_DATA" in codes(b), f"{what}: STALE_DATA"
        )
    assert body["allowed"] is False
    assert any(cause in r["message"] for r in body["reasons"]), body
    lines = failed_log_lines(guard, cause)
    assert lines
    assert lines[-1]["account"] == TARGET
    assert lines[-1]["error"] == error
    assert fresh(guard, CONTROL)
    return body


def prove_recovers(guard: GuardProcess, sim: SimulatorProcess) -> None:
    sim.control.clear_faults()
    with guard.client() as bot:
        decide_until(bot, lambda b: b["allowed"], "allowed again after the fault", timeout=30)


# --------------------------------------------------------------------------- duplicate rows


def test_duplicate_position_rows_fail_the_refresh_instead_of_allowing(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    # A second BTCUSDT LONG row of 10 BTC (603,000 USDT): only the first row was read, and the
    # order was allowed under a 40,000 USDT position limit.
    sim.control.add_fault(
        "duplicate_rows",
        api_key=HEALTHY.api_key,
        path=ACCOUNT_PATH,
        params={"field": "positions", "changes": {"quantity": "10", "notional": "603000"}},
    )
    prove_refused(
        guard,
        kind="snapshot",
        error="malformed",
        cause="positions[1].symbol repeats the LONG position of BTCUSDT",
        what="duplicate rows",
    )
    prove_recovers(guard, sim)


def test_hedge_mode_long_and_short_rows_are_two_positions(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    sim.control.add_fault(
        "duplicate_rows",
        api_key=HEALTHY.api_key,
        path=ACCOUNT_PATH,
        params={"field": "positions", "changes": {"side": "SHORT", "quantity": "0.2"}},
    )
    with guard.client(READ_TOKEN) as reader:

        def both_sides() -> bool:
            positions = reader.get(f"/accounts/{TARGET}").json()["snapshot"]["positions"]
            return sorted(p["side"] for p in positions) == ["LONG", "SHORT"]

        wait_until(both_sides, timeout=15, what="the SHORT row read as a second position")
    with guard.client() as bot:
        assert decide(bot)["allowed"] is True
    assert readiness(guard)[TARGET]["fresh"] is True


# --------------------------------------------------------------------------- errors per kind


def test_a_failing_status_is_reported_while_snapshots_succeed(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    # Only the status endpoint fails. Each good snapshot used to clear the error: /readyz said
    # last_error null and 0 failures while the status aged into STALE_DATA, the failure gauge
    # read 0 and the STALE_DATA message had no "last error".
    sim.control.add_fault("http_5xx", api_key=HEALTHY.api_key, path=STATUS_PATH)
    body = prove_refused(
        guard,
        kind="status",
        error="server_error",
        cause="exchange failed (HTTP 503)",
        what="status 503",
    )
    stale = next(r for r in body["reasons"] if r["code"] == "STALE_DATA")
    assert stale["message"].startswith("account status is")
    assert "last error: status: exchange failed (HTTP 503)" in stale["message"]
    view = readiness(guard)[TARGET]
    assert view["refresh_errors"]["snapshot"] is None  # snapshots kept succeeding
    assert view["refresh_errors"]["status"]["last_error_kind"] == "server_error"
    assert view["refresh_errors"]["status"]["consecutive_failures"] >= 1
    assert view["consecutive_failures"] >= 1
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    labels = {"account": TARGET, "kind": "status"}
    gauge = sample_value(text, "pretrade_guard_poller_consecutive_failures", labels)
    assert gauge is not None
    assert gauge >= 1
    snapshot_labels = {"account": TARGET, "kind": "snapshot"}
    assert sample_value(text, "pretrade_guard_poller_consecutive_failures", snapshot_labels) == 0
    prove_recovers(guard, sim)


# --------------------------------------------------------------------------- stalls and size


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        # One byte every 0.5 s: each read is within timeout_s (1 s), the call never ends.
        pytest.param("drip", {"interval_ms": 500}, id="drip"),
        # A chunked body of whitespace that never ends.
        pytest.param("endless", {"interval_ms": 50, "chunk_bytes": 16}, id="endless"),
    ],
)
def test_a_call_that_never_finishes_hits_the_total_deadline(
    guard: GuardProcess, sim: SimulatorProcess, kind: str, params: dict[str, Any]
) -> None:
    # Both wedged the poller for good: last_error null, poller alive, stale after recovery.
    sim.control.add_fault(kind, api_key=HEALTHY.api_key, path=ACCOUNT_PATH, params=params)
    prove_refused(
        guard,
        kind="snapshot",
        error="timeout",
        cause=f"no complete answer within the {DEADLINE_S:g} s deadline",
        what=kind,
    )
    prove_recovers(guard, sim)


@pytest.mark.parametrize(
    ("kind", "params", "path", "cause"),
    [
        pytest.param(
            "huge_body",
            {"size_bytes": 64 * 1024**2},
            STATUS_PATH,
            "Content-Length",
            id="huge-status",
        ),
        pytest.param(
            "huge_body",
            {"size_bytes": 64 * 1024**2, "chunked": True},
            ACCOUNT_PATH,
            "bytes received",
            id="huge-chunked-snapshot",
        ),
        pytest.param(
            "gzip_bomb",
            {"size_bytes": 128 * 1024**2},  # about 130 KB on the wire
            STATUS_PATH,
            "after decompression",
            id="gzip-bomb",
        ),
    ],
)
def test_an_answer_over_the_size_cap_fails_the_refresh(
    guard: GuardProcess,
    sim: SimulatorProcess,
    kind: str,
    params: dict[str, Any],
    path: str,
    cause: str,
) -> None:
    # A 300 MB status body was accepted (1.3 GiB peak); a 1 MB gzip of 1 GB peaked at 3.1 GiB.
    sim.control.add_fault(kind, api_key=HEALTHY.api_key, path=path, params=params)
    refresh = "status" if path == STATUS_PATH else "snapshot"
    body = prove_refused(
        guard, kind=refresh, error="malformed", cause=f"{MAX_BYTES}-byte cap", what=kind
    )
    assert any(cause in r["message"] for r in body["reasons"]), body
    prove_recovers(guard, sim)


def test_an_error_answer_over_the_size_cap_is_not_buffered_whole(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    # A 503 with a 64 MB body: it used to be read whole before it was classified.
    sim.control.add_fault("http_5xx", api_key=HEALTHY.api_key, path=STATUS_PATH)
    sim.control.add_fault(
        "huge_body",
        api_key=HEALTHY.api_key,
        path=STATUS_PATH,
        params={"size_bytes": 64 * 1024**2, "chunked": True},
    )
    prove_refused(
        guard, kind="status", error="malformed", cause=f"{MAX_BYTES}-byte cap", what="huge 503"
    )
    prove_recovers(guard, sim)


def test_retry_after_is_capped_and_the_exchanges_value_logged(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    # Retry-After: 999999999999 blocked the account's budget for ~31,700 years.
    sim.control.add_fault(
        "rate_limit_429",
        api_key=HEALTHY.api_key,
        count=1,
        params={"retry_after_s": 999999999999},
    )

    def logged() -> list[dict[str, Any]]:
        return failed_log_lines(guard, "capped by poll.max_retry_after_s")

    wait_until(lambda: bool(logged()), timeout=20, what="the capped 429 logged")
    line = logged()[-1]
    assert line["account"] == TARGET
    assert line["retry_after_s"] == MAX_RETRY_AFTER_S
    assert line["exchange_retry_after_s"] == 999999999999
    with guard.client() as bot:
        decide_until(bot, lambda b: b["allowed"], "allowed after the capped wait", timeout=30)


# --------------------------------------------------------------------------- margin disabled


def test_margin_trading_disabled_denies_opening_and_lets_exits_through(
    guard: GuardProcess, sim: SimulatorProcess
) -> None:
    # isMarginTradingEnabled: false used to have no effect at all.
    sim.control.patch_status(HEALTHY.id, {"isMarginTradingEnabled": False})
    with guard.client() as bot:
        body = decide_until(
            bot, lambda b: "MARGIN_TRADING_DISABLED" in codes(b), "MARGIN_TRADING_DISABLED"
        )
        assert body["allowed"] is False
        exit_half = {
            "account": TARGET,
            "symbol": "BTCUSDT",
            "side": "SELL",
            "quantity": "0.25",
            "reduce_only": "true",
        }
        response = bot.get("/can-trade", params=exit_half)
        assert response.status_code == 200, response.text
        assert response.json()["allowed"] is True, response.json()
    sim.control.patch_status(HEALTHY.id, {"isMarginTradingEnabled": True})
    with guard.client() as bot:
        decide_until(bot, lambda b: b["allowed"], "allowed once margin trading is back")
