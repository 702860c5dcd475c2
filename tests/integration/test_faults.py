"""The fault matrix: every way the simulator can misbehave, against the real guard on loopback.

For each fault one shared check (``prove_fault``) shows, for the faulted account:

1. the guard keeps answering: every ``/can-trade`` is a 200 with a decision, also under a
   concurrent burst;
2. fail closed: an ``allowed: true`` only ever rests on data within the policy's max ages, and
   once the fault bites the answer is a deny naming why (``STALE_DATA`` with the last error;
   ``ACCOUNT_NOT_NORMAL`` for a status the guard does not know; ``NO_DATA``, for a fault
   present from the start, is in test_guard_decisions.py);
3. the failure is visible: a metric moves, ``/readyz`` shows it for that account, and each
   failed refresh has exactly one ``refresh failed`` log line naming the account and the cause;
4. after the fault clears, fresh data and normal decisions return within the backoff step
   (or ``Retry-After`` / ban / auth pause) plus one poll interval;
5. the exchange is never hammered: the simulator's request count for the account's key during
   the fault stays within what the backoff schedule allows.

Faults target one API key; a second account on another key is the control group and must stay
fresh and allowed throughout. One simulator and one guard serve the whole module.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.guard import (
    FAST_POLICY,
    FAST_POLL,
    GuardProcess,
    guard_config,
    sample_value,
    wait_until,
)
from tests.support.guard_fixtures import account_entry, codes
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY, QUANT_LOCKED, SimAccount

pytestmark = pytest.mark.integration
#: Each case logs its figures (requests during the fault vs the bound, recovery time); see them
#: with ``pytest -o log_cli=true --log-cli-level=INFO``.
log = logging.getLogger(__name__)

TARGET = "alpha"  # the faulted account (HEALTHY's key)
CONTROL = "echo"  # same simulator, another key: must stay fresh and allowed
MAX_STATUS_AGE_MS = float(FAST_POLICY["max_status_age_s"]) * 1000
MAX_SNAPSHOT_AGE_MS = float(FAST_POLICY["max_snapshot_age_s"]) * 1000
STATUS_INTERVAL_S = float(FAST_POLL["status_interval_s"])
SNAPSHOT_INTERVAL_S = float(FAST_POLL["snapshot_interval_s"])
JITTER = float(FAST_POLL["jitter_fraction"])
BACKOFF_BASE_S = float(FAST_POLL["backoff_base_s"])
BACKOFF_MAX_S = float(FAST_POLL["backoff_max_s"])
AUTH_BACKOFF_S = float(FAST_POLL["auth_backoff_s"])
#: Longest wait for the next successful poll of both parts once the exchange is healthy:
#: the snapshot interval stretched by the weight budget (x1.5 for one generic-v2 account at
#: these intervals) plus jitter.
POLL_S = SNAPSHOT_INTERVAL_S * 1.5 * (1 + JITTER)
#: Slack for a busy CI machine on top of every computed time bound.
SLACK_S = 1.5
#: Ban length the module's simulator announces in a 418 without Retry-After.
BAN_S = 3.0
#: The guard's wait after a 429 that carries no Retry-After (exchanges.md §1.4: 60 s).
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
#: Extra seconds a recovery may take when CI runs this suite on a busy 2-core machine.
LOADED_MACHINE_GRACE_S = 10.0


# --------------------------------------------------------------------------- request bounds


def backoff_bound(window_s: float, *, requests_per_failure: int = 1) -> int:
    """Most requests two schedules (status, snapshot) may send in ``window_s`` of failures.

    Full-jitter backoff waits uniform(0, min(max, base * 2**(n-1))) after the n-th failure in a
    row. The bound credits each wait with only a quarter of its ceiling (half its mean), so a
    poller that follows the schedule stays well inside it, while one that retries without
    waiting (or at 100 req/s) is far over it.
    """
    per_schedule = 0
    elapsed = 0.0
    while elapsed <= window_s:
        per_schedule += 1
        elapsed += min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (per_schedule - 1)) / 4
    return 2 * per_schedule * requests_per_failure + 2


def pause_bound(window_s: float, pause_s: float) -> int:
    """Most requests when every failure pauses ``pause_s`` (auth backoff, Retry-After, ban):
    per pause each schedule may try once, plus one poll each sent as the fault began."""
    return 2 * (math.floor(window_s / pause_s) + 2) + 1


def polling_bound(window_s: float, *, requests_per_poll: int = 1) -> int:
    """Most requests of healthy polling (the fault causes no failed refresh): both schedules at
    their shortest jittered interval, unstretched."""
    shortest = 1 - JITTER
    per_second = 1 / (STATUS_INTERVAL_S * shortest) + 1 / (SNAPSHOT_INTERVAL_S * shortest)
    return math.ceil(window_s * per_second * requests_per_poll) + 3


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Visible:
    """How a fault shows up: a log event with fields for the account, and a metric check."""

    event: str
    fields: Mapping[str, Any]
    cause: str | None = None  # substring of the log line's ``cause`` field


@dataclass(frozen=True)
class FaultCase:
    id: str
    #: Install the fault for the account (by its API key); ``undo`` and a simulator reset
    #: after each case take it away again.
    inject: Callable[[SimControl, SimAccount], None]
    #: Reason code once the fault bites; None: the guard absorbs it, decisions stay allowed.
    deny: str | None
    #: Refresh-failure kind (metric label, readyz ``last_error_kind``); None: no failed refresh.
    error: str | None
    visible: Visible
    #: Requests the exchange may see during a fault window of the given length.
    bound: Callable[[float], int]
    #: Pause after a failure before the next try (auth backoff, Retry-After): recovery allowance.
    pause_s: float = BACKOFF_MAX_S
    undo: Callable[[SimControl, SimAccount], None] = lambda _sim, _acc: None
    #: More checks on the faulted account's metrics while the fault holds.
    extra_checks: Callable[[Mapping[str, float | None]], None] = lambda _metrics: None


def _fault(kind: str, **params: Any) -> Callable[[SimControl, SimAccount], None]:
    def inject(sim: SimControl, acc: SimAccount) -> None:
        sim.add_fault(kind, api_key=acc.api_key, params=params)

    return inject


def _failed(error: str, cause: str) -> Visible:
    return Visible("refresh failed", {"error": error}, cause)


def _rotate_key(sim: SimControl, acc: SimAccount) -> None:
    sim.set_credentials(acc.id, api_key=f"{acc.api_key}-rotated")


def _restore_key(sim: SimControl, acc: SimAccount) -> None:
    sim.set_credentials(acc.id, api_key=acc.api_key)


def _rotate_secret(sim: SimControl, acc: SimAccount) -> None:
    sim.set_credentials(acc.id, api_secret=f"{acc.api_secret}-rotated")


def _restore_secret(sim: SimControl, acc: SimAccount) -> None:
    sim.set_credentials(acc.id, api_secret=acc.api_secret)


def _skew_clock(sim: SimControl, _acc: SimAccount) -> None:
    sim.set_clock(30_000)  # the exchange runs 30 s ahead: every signed request is -1021


def _unskew_clock(sim: SimControl, _acc: SimAccount) -> None:
    sim.set_clock(0)


def _offset_learnt(metrics: Mapping[str, float | None]) -> None:
    offset = metrics["clock_offset"]
    assert offset is not None
    assert 29 < offset < 31, offset


def _status_other(metrics: Mapping[str, float | None]) -> None:
    # The unknown value is exported in the bounded OTHER bucket; NORMAL is no longer 1.
    assert metrics["status_other"] == 1
    assert metrics["status_normal"] == 0


CASES = [
    FaultCase(
        "latency-beyond-timeout",
        _fault("latency", latency_ms=1500),  # the guard's timeout_s is 1.0
        deny="STALE_DATA",
        error="timeout",
        visible=_failed("timeout", "timed out after 1 s"),
        bound=backoff_bound,
    ),
    FaultCase(
        "http-503-burst",
        _fault("http_5xx", status=503),
        deny="STALE_DATA",
        error="server_error",
        visible=_failed("server_error", "HTTP 503"),
        bound=backoff_bound,
    ),
    FaultCase(
        "http-502-html-body",
        _fault("http_5xx", status=502, body="<html><body>Bad Gateway</body></html>"),
        deny="STALE_DATA",
        error="server_error",
        visible=_failed("server_error", "HTTP 502"),
        bound=backoff_bound,
    ),
    FaultCase(
        "malformed-json",
        _fault("malformed_json"),
        deny="STALE_DATA",
        error="malformed",
        visible=_failed("malformed", "not valid JSON"),
        bound=backoff_bound,
    ),
    FaultCase(
        "missing-required-fields",
        _fault("missing_fields", fields=["tradingStatus", "availableBalance"]),
        deny="STALE_DATA",
        error="malformed",
        visible=_failed("malformed", "malformed response: field"),
        bound=backoff_bound,
    ),
    FaultCase(
        "unknown-trading-status",
        _fault("unknown_status", value="SUSPENDED_BY_SIMULATOR"),
        deny="ACCOUNT_NOT_NORMAL",  # fresh data, but a status the guard does not know
        error=None,
        visible=Visible("account status changed", {"trading_status": "SUSPENDED_BY_SIMULATOR"}),
        bound=polling_bound,
        extra_checks=_status_other,
    ),
    FaultCase(
        "429-with-retry-after",
        _fault("rate_limit_429", retry_after_s=2),
        deny="STALE_DATA",
        error="rate_limited",
        visible=_failed("rate_limited", "retry after 2 s"),
        bound=lambda window: pause_bound(window, 2.0),
        pause_s=2.0 + 1.0,  # Retry-After plus the poller's up-to-1 s spread
    ),
    FaultCase(
        "418-ban-with-retry-after",
        _fault("ban_418", retry_after_s=3),
        deny="STALE_DATA",
        error="banned",
        visible=_failed("banned", "IP banned by the exchange"),
        bound=lambda window: pause_bound(window, 3.0),
        pause_s=3.0 + 1.0,
    ),
    FaultCase(
        # No header: the wait comes from "IP banned until <epoch ms>" in the message, which
        # this module's simulator sets 3 s ahead (--ban-s 3).
        "418-ban-until-in-message",
        _fault("ban_418"),
        deny="STALE_DATA",
        error="banned",
        visible=_failed("banned", "IP banned until"),
        bound=lambda window: pause_bound(window, BAN_S),
        pause_s=BAN_S + 1.0,
    ),
    FaultCase(
        "connection-dropped-mid-response",
        _fault("drop_connection"),
        deny="STALE_DATA",
        error="network",
        visible=_failed("network", "network error"),
        bound=backoff_bound,
    ),
    FaultCase(
        "timestamp-always-rejected",
        _fault("invalid_timestamp"),
        deny="STALE_DATA",
        error="clock_skew",
        visible=_failed("clock_skew", "still rejected after re-syncing the clock"),
        # -1021: the client re-syncs and retries once, so each failure is two signed requests.
        bound=lambda window: backoff_bound(window, requests_per_failure=2),
    ),
    FaultCase(
        "clock-skew-30s",
        _skew_clock,
        deny=None,  # -1021, re-sync, retry: the guard absorbs it and data stays fresh
        error=None,
        visible=Visible("exchange clock offset", {}),
        bound=lambda window: polling_bound(window) + 4,  # one -1021 retry per kind
        undo=_unskew_clock,
        extra_checks=_offset_learnt,
    ),
    FaultCase(
        "invalid-api-key",
        _rotate_key,  # the exchange no longer knows the guard's key: 401 -2015
        deny="STALE_DATA",
        error="auth",
        visible=_failed("auth", "code -2015"),
        bound=lambda window: pause_bound(window, AUTH_BACKOFF_S),
        pause_s=AUTH_BACKOFF_S,
        undo=_restore_key,
    ),
    FaultCase(
        "rotated-secret",
        _rotate_secret,  # the guard's signatures no longer verify: 401 -1022
        deny="STALE_DATA",
        error="auth",
        visible=_failed("auth", "code -1022"),
        bound=lambda window: pause_bound(window, AUTH_BACKOFF_S),
        pause_s=AUTH_BACKOFF_S,
        undo=_restore_secret,
    ),
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fault_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """This module's own simulator: one case kills and restarts it."""
    log_path = tmp_path_factory.mktemp("fault-sim") / "simulator.log"
    with SimulatorProcess(
        BASIC_SCENARIO, log_path=log_path, extra_args=["--ban-s", str(int(BAN_S))]
    ) as sim:
        yield sim


def _start_guard(
    sim: SimulatorProcess, accounts: Mapping[str, SimAccount], workdir: Path
) -> GuardProcess:
    config = guard_config(
        {name: account_entry(sim, acc) for name, acc in accounts.items()}, port=free_port()
    )
    return GuardProcess(config, workdir).start()


@pytest.fixture(scope="module")
def fault_guard(
    fault_sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    guard = _start_guard(
        fault_sim, {TARGET: HEALTHY, CONTROL: QUANT_LOCKED}, tmp_path_factory.mktemp("guard")
    )
    try:
        yield guard
    finally:
        guard.stop()


@dataclass(frozen=True)
class UnpacedRateLimit:
    """A guard that got one 429 without ``Retry-After`` at the start of the module."""

    guard: GuardProcess
    sim: SimulatorProcess


@pytest.fixture(scope="module", autouse=True)
def unpaced_429(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpacedRateLimit]:
    """Its own simulator and guard, so the minute-long wait runs alongside the other cases:
    the first test of the module checks the pause, the last one the recovery."""
    workdir = tmp_path_factory.mktemp("unpaced-429")
    with SimulatorProcess(BASIC_SCENARIO, log_path=workdir / "simulator.log") as sim:
        guard = _start_guard(sim, {TARGET: HEALTHY}, workdir)
        try:
            with guard.client() as bot:
                until(bot, TARGET, _fresh_allowed, timeout=15, what="allowed before the 429")
            # One 429, no header: the next request would be served, so only the guard's own
            # wait keeps it from asking again.
            sim.control.add_fault("rate_limit_429", api_key=HEALTHY.api_key, count=1)
            wait_until(
                lambda: readiness(guard)[1][TARGET]["last_error_kind"] == "rate_limited",
                timeout=5,
                what="the 429",
            )
            yield UnpacedRateLimit(guard, sim)
        finally:
            guard.stop()


def _first_429_and_next(sim: SimulatorProcess) -> tuple[int, int | None]:
    """Wall ms of the 429 and of the first request after it (None while there is none)."""
    recent = sim.control.requests(api_key=HEALTHY.api_key, limit=1000)["recent"]
    hit = next(i for i, entry in enumerate(recent) if entry["status"] == 429)
    later = recent[hit + 1 :]
    return recent[hit]["time_ms"], later[0]["time_ms"] if later else None


@pytest.fixture
def guard(fault_guard: GuardProcess, fault_sim: SimulatorProcess) -> Iterator[GuardProcess]:
    """The module's guard with both accounts fresh and allowed on a simulator back at its
    scenario; whatever a case changed is undone after it."""
    if not fault_sim.running:
        fault_sim.start()
    fault_sim.control.reset()
    with fault_guard.client() as bot:
        for account in (TARGET, CONTROL):
            until(bot, account, _fresh_allowed, timeout=15, what="allowed before the case")
    yield fault_guard
    if fault_sim.running:
        fault_sim.control.reset()


# --------------------------------------------------------------------------- observations


def decide(client: httpx.Client, account: str) -> dict[str, Any]:
    """One bare ``/can-trade``: must be a 200 with a decision, and fail closed."""
    response = client.get("/can-trade", params={"account": account})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_fail_closed(body)
    return body


def until(
    client: httpx.Client,
    account: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    what: str,
) -> None:
    """Ask ``/can-trade`` (checking every answer) until ``predicate`` holds."""
    wait_until(
        lambda: predicate(decide(client, account)), timeout=timeout, what=f"{account} {what}"
    )


def assert_fail_closed(body: Mapping[str, Any]) -> None:
    """``allowed: true`` only on data within the policy's max ages (never missing or stale)."""
    assert isinstance(body["allowed"], bool)
    if body["allowed"]:
        assert body["reasons"] == [], body
        assert body["status_age_ms"] is not None, body
        assert body["snapshot_age_ms"] is not None, body
        assert body["status_age_ms"] <= MAX_STATUS_AGE_MS, body
        assert body["snapshot_age_ms"] <= MAX_SNAPSHOT_AGE_MS, body
        assert body["trading_status"] == "NORMAL", body
    else:
        assert body["reasons"], body


#: No decision may take longer than this, even under a concurrent burst: the decision path
#: does no I/O, so a slow answer means something blocks the event loop.
MAX_ANSWER_S = 2.0


def burst(guard: GuardProcess, account: str, *, requests: int = 200) -> list[dict[str, Any]]:
    """``requests`` concurrent ``/can-trade`` calls (16 threads): all must answer 200, fast."""

    def timed(client: httpx.Client) -> dict[str, Any]:
        started = time.monotonic()
        body = decide(client, account)
        assert time.monotonic() - started < MAX_ANSWER_S
        return body

    with guard.client() as client, ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda _: timed(client), range(requests)))


def metrics_of(guard: GuardProcess, account: str) -> dict[str, float | None]:
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    failures = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "pretrade_guard_refresh_failures_total"
                and sample.labels.get("account") == account
            ):
                failures += sample.value
    return {
        "failures": failures,
        "clock_offset": sample_value(
            text, "pretrade_guard_exchange_clock_offset_seconds", {"account": account}
        ),
        "status_other": sample_value(
            text, "pretrade_guard_account_trading_status", {"account": account, "status": "OTHER"}
        ),
        "status_normal": sample_value(
            text, "pretrade_guard_account_trading_status", {"account": account, "status": "NORMAL"}
        ),
        "data_fresh": sample_value(text, "pretrade_guard_account_data_fresh", {"account": account}),
    }


def failures_by_kind(guard: GuardProcess, account: str, error: str) -> float:
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    return sum(
        sample_value(
            text,
            "pretrade_guard_refresh_failures_total",
            {"account": account, "kind": kind, "error": error},
        )
        or 0.0
        for kind in ("status", "snapshot")
    )


def readiness(guard: GuardProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{guard.base_url}/readyz", timeout=5)
    accounts: dict[str, Any] = response.json()["accounts"]
    return response.status_code, accounts


def log_events(guard: GuardProcess, since: int) -> list[dict[str, Any]]:
    """JSON log lines written after byte offset ``since``."""
    with guard.log_path.open("rb") as handle:
        handle.seek(since)
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def log_size(guard: GuardProcess) -> int:
    return guard.log_path.stat().st_size


# --------------------------------------------------------------------------- the shared proof


@dataclass
class FaultReport:
    requests_during_fault: int
    bound: int
    window_s: float
    recovery_s: float


def prove_fault(
    guard: GuardProcess,
    sim: SimControl,
    case: FaultCase,
    *,
    count_requests: Callable[[], int],
    hold_s: float = 0.5,
) -> FaultReport:
    """Run one fault through the five checks of the module docstring."""
    with guard.client() as bot:
        before = metrics_of(guard, TARGET)
        log_start = log_size(guard)
        requests_before = count_requests()
        injected = time.monotonic()
        case.inject(sim, HEALTHY)

        # 1+2: answers keep coming and fail closed until the fault bites.
        def bitten() -> bool:
            body = decide(bot, TARGET)
            control = decide(bot, CONTROL)
            assert control["allowed"], f"control account affected: {control}"
            if case.deny is None:
                return bool(body["allowed"])
            return case.deny in codes(body)

        wait_until(bitten, timeout=10, what=f"{case.id}: {case.deny or 'absorbed'}")
        if case.deny is None:
            # Absorbed faults: show the guard has really seen the fault before judging it.
            wait_until(
                lambda: any(_matches(e, case.visible) for e in log_events(guard, log_start)),
                timeout=10,
                what=f"{case.id}: log line",
            )
        time.sleep(hold_s)
        answers = burst(guard, TARGET)
        if case.deny is None:
            assert all(a["allowed"] for a in answers)
        else:
            assert not any(a["allowed"] for a in answers)
            assert all(case.deny in codes(a) for a in answers)
            if case.deny == "STALE_DATA":
                # The last refresh error explains the stale data.
                assert all("last error" in a["reasons"][0]["message"] for a in answers)

        # 3: visible in metrics, /readyz and the log.
        after = metrics_of(guard, TARGET)
        status, accounts = readiness(guard)
        events = log_events(guard, log_start)
        after_logs = metrics_of(guard, TARGET)
        case.extra_checks(after)
        assert accounts[CONTROL]["fresh"] is True
        if case.error is not None:
            assert (after["failures"] or 0) > (before["failures"] or 0)
            assert failures_by_kind(guard, TARGET, case.error) > 0
            assert status == 503
            assert accounts[TARGET]["fresh"] is False
            assert accounts[TARGET]["last_error_kind"] == case.error
            assert accounts[TARGET]["consecutive_failures"] >= 1
            assert after["data_fresh"] == 0
            failed = [e for e in events if e.get("event") == "refresh failed"]
            ours = [e for e in failed if e.get("account") == TARGET]
            assert all(e.get("account") != CONTROL for e in failed)
            # One line per failed refresh, each naming the account, its kind and the cause.
            low = (after["failures"] or 0) - (before["failures"] or 0)
            high = (after_logs["failures"] or 0) - (before["failures"] or 0)
            assert low <= len(ours) <= high, (low, len(ours), high)
        else:
            assert accounts[TARGET]["fresh"] is True
        matching = [e for e in events if _matches(e, case.visible)]
        assert matching, f"no {case.visible.event!r} log line for {TARGET}: {events[-5:]}"
        assert all(e.get("level") in ("warning", "info") for e in matching)
        assert not [e for e in events if e.get("event") in ("refresh crashed", "unhandled error")]

        # 5: the exchange was not hammered while the fault held.
        cleared = time.monotonic()
        requests_during = count_requests() - requests_before
        case.undo(sim, HEALTHY)
        sim.clear_faults()
        window = cleared - injected
        bound = case.bound(window)
        assert requests_during <= bound, (
            f"{case.id}: {requests_during} requests in {window:.1f} s, backoff allows {bound}"
        )

        # 4: fresh data and normal decisions return within the pause plus one poll.
        wait_until(
            lambda: _fresh_allowed(decide(bot, TARGET)),
            timeout=case.pause_s + POLL_S + SLACK_S,
            what=f"{case.id}: recovery",
        )
        recovered = time.monotonic()
        status, accounts = readiness(guard)
        assert status == 200, accounts
        assert accounts[TARGET]["last_error"] is None
        return FaultReport(requests_during, bound, window, recovered - cleared)


def _fresh_allowed(body: Mapping[str, Any]) -> bool:
    return bool(body["allowed"]) and body["status_age_ms"] < MAX_STATUS_AGE_MS


def _stale(body: Mapping[str, Any]) -> bool:
    return "STALE_DATA" in codes(body)


def _matches(event: Mapping[str, Any], visible: Visible) -> bool:
    if event.get("event") != visible.event or event.get("account") != TARGET:
        return False
    if any(event.get(name) != value for name, value in visible.fields.items()):
        return False
    return visible.cause is None or visible.cause in str(event.get("cause", ""))


# --------------------------------------------------------------------------- tests


def test_429_without_retry_after_pauses_the_default_minute(unpaced_429: UnpacedRateLimit) -> None:
    """No ``Retry-After``: the guard waits its documented default (60 s), asks nothing
    meanwhile, and says so: stale data naming the wait, a log line, the budget's block."""
    guard = unpaced_429.guard
    with guard.client() as bot:
        until(bot, TARGET, _stale, timeout=5, what="stale after the 429")
        body = decide(bot, TARGET)
    # The last error is the 429 itself, or the other schedule finding the budget paused.
    assert "rate limit" in body["reasons"][0]["message"]
    text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
    blocked_until = sample_value(
        text, "pretrade_guard_exchange_blocked_until_timestamp_seconds", {}
    )
    hit_ms, after_ms = _first_429_and_next(unpaced_429.sim)
    assert after_ms is None  # nothing asked since the 429
    assert blocked_until is not None
    assert blocked_until == pytest.approx(hit_ms / 1000 + DEFAULT_RATE_LIMIT_WAIT_S, abs=2)
    events = [
        e
        for e in log_events(guard, 0)
        if e.get("event") == "refresh failed" and e.get("account") == TARGET
    ]
    assert [e["error"] for e in events] == ["rate_limited"] * len(events)
    assert "retry after 60 s" in events[0]["cause"]
    assert events[0]["retry_after_s"] == DEFAULT_RATE_LIMIT_WAIT_S


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_fault(
    guard: GuardProcess,
    fault_sim: SimulatorProcess,
    case: FaultCase,
) -> None:
    control = fault_sim.control
    report = prove_fault(
        guard,
        control,
        case,
        count_requests=lambda: control.request_count(api_key=HEALTHY.api_key),
    )
    log.info("%s: %s", case.id, report)


def test_simulator_killed_and_restarted(
    guard: GuardProcess,
    fault_sim: SimulatorProcess,
) -> None:
    """Both accounts lose their exchange; the guard keeps answering, denies with STALE_DATA,
    counts network failures, and recovers when the exchange is back."""

    def sent() -> int:  # the simulator is gone: count on the guard's side
        text = httpx.get(f"{guard.base_url}/metrics", timeout=5).text
        return int(
            sum(
                sample_value(
                    text,
                    "pretrade_guard_exchange_requests_total",
                    {"endpoint": endpoint, "outcome": outcome},
                )
                or 0
                for endpoint in ("/v2/private/account/apiTradingStatus", "/v2/account")
                for outcome in ("ok", "network", "timeout")
            )
        )

    with guard.client() as bot:
        log_start = log_size(guard)
        requests_before = sent()
        killed = time.monotonic()
        assert fault_sim.pid is not None
        os.kill(fault_sim.pid, signal.SIGKILL)
        fault_sim.stop()  # reaps the killed process
        for account in (TARGET, CONTROL):
            until(bot, account, _stale, timeout=10, what="stale after the kill")
        answers = burst(guard, TARGET)
        assert not any(a["allowed"] for a in answers)
        assert all("network error" in a["reasons"][0]["message"] for a in answers)
        status, accounts = readiness(guard)
        assert status == 503
        assert {accounts[a]["last_error_kind"] for a in (TARGET, CONTROL)} == {"network"}
        assert failures_by_kind(guard, TARGET, "network") > 0
        events = log_events(guard, log_start)
        for account in (TARGET, CONTROL):
            assert any(
                e.get("event") == "refresh failed"
                and e.get("account") == account
                and e.get("error") == "network"
                and "network error" in e.get("cause", "")
                for e in events
            )
        restarted = time.monotonic()
        window = restarted - killed
        requests_during = sent() - requests_before
        bound = 2 * backoff_bound(window)  # two accounts
        assert requests_during <= bound, (requests_during, bound)
        fault_sim.start()
        for account in (TARGET, CONTROL):
            until(
                bot,
                account,
                _fresh_allowed,
                timeout=BACKOFF_MAX_S + POLL_S + SLACK_S,
                what="recovered after the restart",
            )
        recovery = time.monotonic() - restarted
    log.info("simulator-killed: %s", FaultReport(requests_during, bound, window, recovery))


def test_concurrent_requests_during_a_fault_never_allow_the_stale_account(
    guard: GuardProcess, fault_sim: SimulatorProcess
) -> None:
    """GET, POST and batch calls for both accounts at once, while the target's exchange
    answers 503: every answer is a 200 with decisions, the target is never allowed once stale,
    the control always is."""
    fault_sim.control.add_fault("http_5xx", api_key=HEALTHY.api_key)
    with guard.client() as bot:
        until(bot, TARGET, _stale, timeout=10, what="stale")

        def call(i: int) -> list[dict[str, Any]]:
            account = (TARGET, CONTROL)[i % 2]
            if i % 3 == 0:
                response = bot.get("/can-trade", params={"account": account})
            elif i % 3 == 1:
                response = bot.post("/can-trade", json={"account": account})
            else:
                orders = [{"account": TARGET}, {"account": CONTROL}] * 10
                response = bot.post("/can-trade/batch", json={"orders": orders})
            assert response.status_code == 200, response.text
            body = response.json()
            return list(body["decisions"]) if "decisions" in body else [body]

        with ThreadPoolExecutor(max_workers=32) as pool:
            decisions = [d for batch in pool.map(call, range(600)) for d in batch]
    assert len(decisions) > 4000
    for body in decisions:
        assert_fail_closed(body)
        if body["account"] == TARGET:
            assert set(codes(body)) == {"STALE_DATA"}
        else:
            assert body["allowed"] is True


def test_429_without_retry_after_recovers_after_the_default_minute(
    unpaced_429: UnpacedRateLimit,
) -> None:
    """Last in the module: by now most of the minute has passed. The first request after the
    429 comes 60-61 s later (the wait plus the poller's spread), and data is fresh again."""
    hit_ms, _ = _first_429_and_next(unpaced_429.sim)
    resume_by = hit_ms / 1000 + DEFAULT_RATE_LIMIT_WAIT_S + 1.0 + POLL_S + SLACK_S
    # On a loaded CI machine the module may reach this test late: never a negative timeout,
    # and a few seconds' grace (the assertion that matters, no call before 60 s, is below).
    timeout = max(resume_by - time.time(), 0.0) + LOADED_MACHINE_GRACE_S
    with unpaced_429.guard.client() as bot:
        until(bot, TARGET, _fresh_allowed, timeout=timeout, what="recovered")
    _, after_ms = _first_429_and_next(unpaced_429.sim)
    assert after_ms is not None
    waited_s = (after_ms - hit_ms) / 1000
    log.info("429 without Retry-After: next request after %.2f s", waited_s)
    assert waited_s >= DEFAULT_RATE_LIMIT_WAIT_S - 0.01
    assert waited_s <= DEFAULT_RATE_LIMIT_WAIT_S + 1.0 + SLACK_S + LOADED_MACHINE_GRACE_S
