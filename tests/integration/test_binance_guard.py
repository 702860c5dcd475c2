"""The guard end to end on Binance USDⓈ-M: real simulator, real guard, real HTTP on loopback.

Accounts are configured with ``exchange: binance-usdm``; the simulator serves both the
``/fapi`` host and the SAPI host (``options.sapi_base_url``). Every Binance condition of the
issue is produced from exchange state and read back from ``/can-trade`` and ``/metrics``:
quantitative-rule locks (symbol and ``ACCOUNT``), near-trigger warnings, ``canTrade: false``,
clock skew, 429 / 418 and the per-IP weight budget shared by 50 accounts.

Binance polls are heavy (status = accountConfig 5 + apiTradingStatus 10, snapshot = v3
account 5 + symbolConfig 5), so the guards here poll more slowly than the generic-v2 tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.guard import GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import StartGuard, codes, decide_until, ready
from tests.support.processes import SimulatorProcess, StartSimulator, free_port
from tests.support.signing import now_ms
from tests.support.sim_control import SimControl
from tests.support.sim_scenarios import SIM_FIXTURES, SimAccount

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

BINANCE_SCENARIO = SIM_FIXTURES / "binance.yaml"
#: binance.yaml: a LONG 0.5 BTCUSDT position behind a read-only key.
LONG = SimAccount("B-2001", "sim-key-bn-long", "sim-secret-bn-long")
#: binance.yaml: canTrade false; its key may trade futures and withdraw.
BLOCKED = SimAccount("B-2002", "sim-key-bn-blocked", "sim-secret-bn-blocked")

#: Two accounts at these intervals need 2 x (40 x 15 + 20 x 10) = 1600 weight/min, under the
#: default budget's sustained 1745/min: no stretch, and the module's simulator never sees the
#: guard's used-weight pause.
BINANCE_POLL: dict[str, Any] = {"status_interval_s": 1.5, "snapshot_interval_s": 3.0}
BINANCE_POLICY: dict[str, Any] = {"max_status_age_s": 4.0, "max_snapshot_age_s": 7.0}

USED_WEIGHT = "pretrade_guard_exchange_used_weight"
WEIGHT_TARGET = "pretrade_guard_exchange_weight_target"
STRETCH = "pretrade_guard_poll_interval_stretch_ratio"
BLOCKED_UNTIL = "pretrade_guard_exchange_blocked_until_timestamp_seconds"
CLOCK_OFFSET = "pretrade_guard_exchange_clock_offset_seconds"
LOCKED = "pretrade_guard_quant_rule_locked"
TRIGGER_RATIO = "pretrade_guard_quant_rule_trigger_ratio"

BTC_BUY = {
    "account": "long",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quantity": "0.01",
    "price": "60000",
}
ETH_BUY = {"account": "long", "symbol": "ETHUSDT", "side": "BUY", "quantity": "1", "price": "3000"}
SOL_BUY = {"account": "long", "symbol": "SOLUSDT", "side": "BUY", "quantity": "1", "price": "150"}
CLOSE_LONG = {
    "account": "long",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "quantity": "0.5",
    "reduce_only": "true",
}


def binance_entry(sim: SimulatorProcess, acc: SimAccount, **extra: Any) -> dict[str, Any]:
    """A guard account on the simulator's Binance face (fapi and sapi on the same host)."""
    return {
        "exchange": "binance-usdm",
        "base_url": sim.base_url,
        "api_key": acc.api_key,
        "api_secret": acc.api_secret,
        "options": {"sapi_base_url": sim.base_url},
        **extra,
    }


def budget_name(sim: SimulatorProcess) -> str:
    return f"binance-usdm@127.0.0.1:{sim.port}"


def indicator(
    name: str, value: float, trigger: float, *, locked: bool, recover_at_ms: int = 0
) -> dict[str, Any]:
    return {
        "indicator": name,
        "value": value,
        "triggerValue": trigger,
        "isLocked": locked,
        "plannedRecoverTime": recover_at_ms,
    }


def allowed(body: Mapping[str, Any]) -> bool:
    return bool(body["allowed"])


def stale(body: Mapping[str, Any]) -> bool:
    return "STALE_DATA" in codes(body)


def metric(guard: GuardProcess, name: str, **labels: str) -> float | None:
    return guard.metric(name, labels)


def recent_requests(control: SimControl) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = control.requests(limit=1000)["recent"]
    return entries


# ---------------------------------------------------------------------------- module guard


@pytest.fixture(scope="module")
def binance_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """A simulator of binance.yaml for this module (its IP budget is not shared)."""
    log_path = tmp_path_factory.mktemp("binance-sim") / "simulator.log"
    with SimulatorProcess(BINANCE_SCENARIO, log_path=log_path) as process:
        yield process


@pytest.fixture(scope="module")
def module_guard(
    binance_sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuardProcess]:
    accounts = {
        "long": binance_entry(binance_sim, LONG),
        "blocked": binance_entry(binance_sim, BLOCKED),
    }
    config = guard_config(accounts, port=free_port(), poll=BINANCE_POLL, policy=BINANCE_POLICY)
    guard = GuardProcess(config, tmp_path_factory.mktemp("binance-guard")).start()
    try:
        yield guard
    finally:
        guard.stop()


@pytest.fixture
def sim(binance_sim: SimulatorProcess) -> SimControl:
    """The module's simulator, back to binance.yaml (locks cleared, clock at 0 offset)."""
    binance_sim.control.reset()
    return binance_sim.control


@pytest.fixture
def bot(module_guard: GuardProcess, sim: SimControl) -> Iterator[httpx.Client]:
    with module_guard.client() as client:
        decide_until(client, BTC_BUY, allowed, timeout=10)  # the guard has seen the reset
        yield client


def test_healthy_binance_account_is_allowed_and_read_only_key_is_not_flagged(
    module_guard: GuardProcess, bot: httpx.Client
) -> None:
    body = decide_until(bot, BTC_BUY, allowed)
    assert body["reasons"] == []
    assert body["warnings"] == []
    assert body["trading_status"] is None  # USD-M has no account trading-status string
    with module_guard.client(None) as anonymous:
        readiness = anonymous.get("/readyz").json()
    assert readiness["accounts"]["long"]["fresh"] is True
    # The start-up key check read /sapi/v1/account/apiRestrictions from the simulator: the
    # read-only key passes, the key that may trade and withdraw is flagged.
    logs = module_guard.logs()
    assert "API key can withdraw funds (enableWithdrawals=true)" in logs
    assert "API key can trade futures (enableFutures=true)" in logs
    assert logs.count('"event": "exchange key permissions"') == 2
    assert metric(module_guard, "pretrade_guard_account_can_trade", account="long") == 1


def test_symbol_lock_denies_until_planned_recovery_but_lets_reduce_only_through(
    module_guard: GuardProcess, bot: httpx.Client, sim: SimControl
) -> None:
    recover_at = now_ms() + 4_500
    sim.set_indicators(
        LONG.id, {"BTCUSDT": [indicator("DR", 0.95, 0.9, locked=True, recover_at_ms=recover_at)]}
    )
    asked_from = now_ms()
    body = decide_until(bot, BTC_BUY, lambda b: codes(b) == ["SYMBOL_LOCKED"], timeout=4)
    asked_until = now_ms()
    (reason,) = body["reasons"]
    # retry_after_ms is "until plannedRecoverTime" as of the decision (same host, same clock).
    # Within 100 ms: the guard converts exchange time with its measured clock offset, which is
    # only known to within half a round trip.
    retry_after = reason["retry_after_ms"]
    assert recover_at - asked_until - 100 <= retry_after <= recover_at - asked_from + 100
    assert reason["retry_after_ms"] > 0
    assert (reason["limit"], reason["observed"]) == ("0.9", "0.95")
    assert "DR" in reason["message"]
    # Only that symbol is locked; a reduce-only SELL that closes the LONG passes (as on
    # Binance), one that would flip the position does not.
    assert bot.get("/can-trade", params=ETH_BUY).json()["allowed"] is True
    assert bot.get("/can-trade", params=CLOSE_LONG).json()["allowed"] is True
    flip = bot.get("/can-trade", params={**CLOSE_LONG, "quantity": "0.6"}).json()
    assert codes(flip)[0] == "SYMBOL_LOCKED"
    assert metric(module_guard, LOCKED, account="long", scope="BTCUSDT") == 1
    assert now_ms() < recover_at, "the assertions above must run while the lock holds"

    # The lock expires on the exchange; the next status refresh lets the order through.
    body = decide_until(bot, BTC_BUY, allowed, timeout=10)
    assert now_ms() >= recover_at
    assert body["reasons"] == []
    assert metric(module_guard, LOCKED, account="long", scope="BTCUSDT") is None


def test_account_tmv_lock_denies_every_symbol_but_not_reduce_only(
    module_guard: GuardProcess, bot: httpx.Client, sim: SimControl
) -> None:
    recover_at = now_ms() + 600_000
    sim.set_indicators(
        LONG.id, {"ACCOUNT": [indicator("TMV", 10, 1, locked=True, recover_at_ms=recover_at)]}
    )
    body = decide_until(bot, ETH_BUY, lambda b: codes(b) == ["ACCOUNT_LOCKED"])
    (reason,) = body["reasons"]
    assert 590_000 <= reason["retry_after_ms"] <= 600_000
    assert "TMV" in reason["message"]
    assert codes(bot.get("/can-trade", params=BTC_BUY).json()) == ["ACCOUNT_LOCKED"]
    assert codes(bot.get("/can-trade", params={"account": "long"}).json()) == ["ACCOUNT_LOCKED"]
    assert bot.get("/can-trade", params=CLOSE_LONG).json()["allowed"] is True
    assert metric(module_guard, LOCKED, account="long", scope="ACCOUNT") == 1

    # A symbol lock on top: both reasons, each with its own recovery time.
    sim.set_indicators(
        LONG.id,
        {
            "ACCOUNT": [indicator("TMV", 10, 1, locked=True, recover_at_ms=recover_at)],
            "BTCUSDT": [indicator("UFR", 1.0, 0.99, locked=True, recover_at_ms=recover_at)],
        },
    )
    body = decide_until(bot, BTC_BUY, lambda b: len(codes(b)) == 2)
    assert codes(body) == ["ACCOUNT_LOCKED", "SYMBOL_LOCKED"]


def test_can_trade_false_denies_every_order(
    module_guard: GuardProcess, bot: httpx.Client, sim: SimControl
) -> None:
    blocked = decide_until(bot, {"account": "blocked"}, lambda b: not b["allowed"])
    assert codes(blocked) == ["TRADING_DISABLED"]
    assert metric(module_guard, "pretrade_guard_account_can_trade", account="blocked") == 0

    sim.patch_status(LONG.id, {"canTrade": False})
    body = decide_until(bot, BTC_BUY, lambda b: codes(b) == ["TRADING_DISABLED"])
    assert "canTrade" in body["reasons"][0]["message"]
    # Unlike a quant lock, canTrade false stops reduce-only orders too.
    assert codes(bot.get("/can-trade", params=CLOSE_LONG).json()) == ["TRADING_DISABLED"]
    sim.patch_status(LONG.id, {"canTrade": True})
    decide_until(bot, BTC_BUY, allowed)


def test_indicator_near_its_trigger_warns_without_denying(
    module_guard: GuardProcess, bot: httpx.Client, sim: SimControl
) -> None:
    sim.set_indicators(
        LONG.id,
        {
            "SOLUSDT": [indicator("UFR", 0.85, 1.0, locked=False)],  # 0.85 >= default 0.8
            "ETHUSDT": [indicator("GCR", 0.5, 0.99, locked=False)],  # far from its trigger
        },
    )
    body = decide_until(bot, SOL_BUY, lambda b: bool(b["warnings"]))
    assert body["allowed"] is True
    assert body["reasons"] == []
    (warning,) = body["warnings"]
    assert warning["code"] == "QUANT_RULE_NEAR_TRIGGER"
    assert (warning["limit"], warning["observed"]) == ("1.0", "0.85")
    eth = bot.get("/can-trade", params=ETH_BUY).json()
    assert (eth["allowed"], eth["warnings"]) == (True, [])
    ratio = metric(module_guard, TRIGGER_RATIO, account="long", scope="SOLUSDT", indicator="UFR")
    assert ratio == pytest.approx(0.85)
    assert metric(
        module_guard, TRIGGER_RATIO, account="long", scope="ETHUSDT", indicator="GCR"
    ) == pytest.approx(0.5 / 0.99)


def test_rejected_key_is_no_data_naming_the_binance_causes(
    start_simulator: StartSimulator, start_guard: StartGuard
) -> None:
    sim = start_simulator(BINANCE_SCENARIO)
    guard = start_guard(
        {
            "wrong-secret": binance_entry(sim, LONG, api_secret="not-the-right-secret"),
            "unknown-key": binance_entry(sim, SimAccount("x", "sim-key-nobody", "whatever-1")),
        },
        poll=BINANCE_POLL,
        policy=BINANCE_POLICY,
    )
    with guard.client() as bot:
        wrong = decide_until(
            bot, {"account": "wrong-secret"}, lambda b: "-1022" in b["reasons"][0]["message"]
        )
        unknown = decide_until(
            bot, {"account": "unknown-key"}, lambda b: "-2015" in b["reasons"][0]["message"]
        )
    for body in (wrong, unknown):
        assert codes(body) == ["NO_DATA"]
        message = body["reasons"][0]["message"]
        assert "IP whitelist" in message
        assert "portfolio-margin" in message
    readiness = httpx.get(f"{guard.base_url}/readyz", timeout=5).json()
    assert readiness["accounts"]["unknown-key"]["last_error_kind"] == "auth"


# ---------------------------------------------------------------------------- clock


def test_clock_offset_of_3s_is_measured_corrected_and_followed(
    start_simulator: StartSimulator, start_guard: StartGuard
) -> None:
    sim = start_simulator(BINANCE_SCENARIO)
    control = sim.control
    control.set_clock(3_000)  # the exchange runs 3 s ahead of this host
    # recvWindow 1000 ms: a request signed with the local clock would be 3 s "old" and refused
    # (-1021), so fresh data proves every signed request carried the corrected timestamp.
    guard = start_guard(
        {"long": binance_entry(sim, LONG)},
        poll={**BINANCE_POLL, "recv_window_ms": 1000},
        policy=BINANCE_POLICY,
        wait_ready=True,
    )
    with guard.client() as bot:
        body = decide_until(bot, BTC_BUY, allowed)
        assert body["status_age_ms"] < 4000
        offset = metric(guard, CLOCK_OFFSET, account="long")
        log.info("clock offset measured by the guard: %s s", offset)
        assert offset == pytest.approx(3.0, abs=0.25)
        statuses = control.requests(path="/fapi")["by_status"]
        assert statuses.get("400", 0) == 0, statuses  # no -1021 at all on /fapi

        # plannedRecoverTime is exchange time: retry_after_ms must use the measured offset.
        server_now = control.set_clock(3_000)["server_time"]
        control.set_indicators(
            LONG.id,
            {"BTCUSDT": [indicator("DR", 1, 0.9, locked=True, recover_at_ms=server_now + 20_000)]},
        )
        locked = decide_until(bot, BTC_BUY, lambda b: codes(b) == ["SYMBOL_LOCKED"])
        elapsed_ms = now_ms() + 3_000 - server_now
        retry_after = locked["reasons"][0]["retry_after_ms"]
        log.info("lock 20 s ahead in exchange time, seen %d ms later: %d", elapsed_ms, retry_after)
        assert 20_000 - elapsed_ms - 300 <= retry_after <= 20_000 + 300, retry_after
        control.set_indicators(LONG.id, {})

        # The exchange clock jumps to 3 s *behind*: timestamps now run ahead of the server,
        # -1021 answers come back, the client re-syncs and retries once, and carries on.
        control.set_clock(-3_000)
        wait_until(
            lambda: (metric(guard, CLOCK_OFFSET, account="long") or 0) < -2.5,
            timeout=8,
            what="clock offset metric to follow the jump",
        )
        assert metric(guard, CLOCK_OFFSET, account="long") == pytest.approx(-3.0, abs=0.25)
        decide_until(bot, BTC_BUY, allowed)
        skews = [e for e in recent_requests(control) if e["code"] == -1021]
        log.info("-1021 answers after the jump: %d", len(skews))
        assert skews, "the jump should have produced at least one -1021"
        time.sleep(2.0)  # more than one status interval
        assert [e for e in recent_requests(control) if e["code"] == -1021] == skews
        body = bot.get("/can-trade", params=BTC_BUY).json()
        assert body["allowed"] is True, body


# ---------------------------------------------------------------------------- 429 / 418


Rig = tuple[SimulatorProcess, GuardProcess]


def _start_rig(workdir: Path) -> Rig:
    """A fresh simulator (bans last 4 s) and a guard with two accounts on its IP budget."""
    sim = SimulatorProcess(
        BINANCE_SCENARIO, log_path=workdir / "simulator.log", extra_args=["--ban-s", "4"]
    ).start()
    accounts = {"long": binance_entry(sim, LONG), "blocked": binance_entry(sim, BLOCKED)}
    config = guard_config(
        accounts,
        port=free_port(),
        poll={"status_interval_s": 1.0, "snapshot_interval_s": 2.0},
        policy={"max_status_age_s": 2.0, "max_snapshot_age_s": 4.0},
    )
    try:
        guard = GuardProcess(config, workdir).start()
    except BaseException:
        sim.close()
        raise
    return sim, guard


@pytest.fixture(scope="module")
def _shared_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    sim, guard = _start_rig(tmp_path_factory.mktemp("rate-limit-rig"))
    try:
        yield sim, guard
    finally:
        guard.stop()
        sim.close()


@pytest.fixture
def rig(_shared_rig: Rig) -> Rig:
    """The shared rig, once the previous pause is over; request log and faults cleared.

    Pauses of a few seconds end within the test that caused them, so the rig is reused.
    """
    sim, guard = _shared_rig
    sim.control.clear_faults()
    wait_until(lambda: ready(guard), timeout=15, what="rate-limit rig ready")
    sim.control.clear_requests()
    return sim, guard


@pytest.fixture
def fresh_rig(tmp_path: Path) -> Iterator[Rig]:
    """A rig of its own, for a test whose pause outlives it."""
    sim, guard = _start_rig(tmp_path)
    try:
        wait_until(lambda: ready(guard), timeout=15, what="rate-limit rig ready")
        yield sim, guard
    finally:
        guard.stop()
        sim.close()


def _fault_time(control: SimControl, kind: str) -> int:
    hits = [e["time_ms"] for e in recent_requests(control) if e["fault"] == kind]
    assert len(hits) == 1, hits
    return int(hits[0])


@pytest.mark.parametrize(
    ("kind", "retry_after_s", "required_s", "guard_wait_s", "what"),
    [
        pytest.param("rate_limit_429", 3, 3, 3, "rate limit", id="429-with-retry-after-3s"),
        # The simulator's bans last 4 s: "IP banned until <now + 4 s>" (+ Retry-After: 4). The
        # guard waits until then plus a 1 s margin for its clock-offset error.
        pytest.param("ban_418", 4, 4, 5, "banned", id="418-with-retry-after-4s"),
        pytest.param("ban_418", None, 4, 5, "banned", id="418-banned-until-in-message-only"),
    ],
)
def test_429_and_418_pause_every_account_of_the_budget(
    rig: Rig,
    kind: str,
    retry_after_s: int | None,
    required_s: float,
    guard_wait_s: float,
    what: str,
) -> None:
    sim, guard = rig
    control = sim.control
    with guard.client() as bot:
        decide_until(bot, BTC_BUY, allowed)
        control.add_fault(kind, count=1, params={"retry_after_s": retry_after_s})
        wait_until(
            lambda: any(e["fault"] == kind for e in recent_requests(control)),
            timeout=5,
            what=f"the {kind} fault to hit",
        )
        hit_ms = _fault_time(control, kind)
        # Never allowed on stale data: both accounts of the budget go STALE during the pause.
        body = decide_until(bot, BTC_BUY, stale, timeout=guard_wait_s + 1)
        assert what in body["reasons"][0]["message"]
        decide_until(bot, {"account": "blocked"}, stale, timeout=guard_wait_s + 1)
        blocked_until = metric(guard, BLOCKED_UNTIL, budget=budget_name(sim))
        assert blocked_until is not None
        assert blocked_until == pytest.approx(hit_ms / 1000 + guard_wait_s, abs=0.5)

        body = decide_until(bot, BTC_BUY, allowed, timeout=guard_wait_s + 6)
        assert now_ms() >= hit_ms + guard_wait_s * 1000

    later = [e for e in recent_requests(control) if e["time_ms"] > hit_ms]
    # Requests already on the wire when the answer came (the other account's) are forgiven;
    # after that, nothing until the wait is over.
    in_flight = [e for e in later if e["time_ms"] <= hit_ms + 200]
    resumed = [e for e in later if e["time_ms"] > hit_ms + 200]
    assert len(in_flight) <= 1, in_flight
    assert resumed, "the guard never called again"
    log.info(
        "%s: blocked until +%.3f s, first call +%d ms, %d in flight",
        kind,
        (blocked_until or 0) - hit_ms / 1000,
        resumed[0]["time_ms"] - hit_ms,
        len(in_flight),
    )
    assert resumed[0]["time_ms"] >= hit_ms + required_s * 1000, (hit_ms, resumed[0])
    statuses = control.requests(limit=0)["by_status"]
    assert set(statuses) <= {"200", "429", "418"}
    assert statuses.get("429", 0) + statuses.get("418", 0) == 1, statuses  # no escalation


def test_429_without_retry_after_waits_a_safe_default(fresh_rig: Rig) -> None:
    sim, guard = fresh_rig
    control = sim.control
    with guard.client() as bot:
        decide_until(bot, BTC_BUY, allowed)
        control.add_fault("rate_limit_429", count=1)  # no Retry-After header at all
        wait_until(
            lambda: any(e["fault"] == "rate_limit_429" for e in recent_requests(control)),
            timeout=5,
            what="the 429 to hit",
        )
        hit_ms = _fault_time(control, "rate_limit_429")
        decide_until(bot, BTC_BUY, stale, timeout=4)
        # USD-M does not document Retry-After: the guard waits a whole minute.
        blocked_until = metric(guard, BLOCKED_UNTIL, budget=budget_name(sim))
        assert blocked_until is not None
        log.info("429 without Retry-After: blocked for %.3f s", blocked_until - hit_ms / 1000)
        assert blocked_until == pytest.approx(hit_ms / 1000 + 60, abs=1)
        time.sleep(max(0.0, hit_ms / 1000 + 5 - time.time()))
        assert bot.get("/can-trade", params=BTC_BUY).json()["allowed"] is False
    later = [e for e in recent_requests(control) if e["time_ms"] > hit_ms + 200]
    assert later == [], later  # five seconds and not a single call


def test_real_429s_from_a_full_ip_budget_never_escalate_to_a_ban(
    start_simulator: StartSimulator, start_guard: StartGuard, tmp_path: Path
) -> None:
    """The simulator's budget is below the guard's: real 429s come, and a client that called
    again before ``Retry-After`` (after 1 s of grace for requests in flight) would be banned
    (418). Five accounts on a tight guard budget keep callers queued in the guard's bucket
    when a 429 arrives; they must not go out before ``Retry-After`` either."""
    base = yaml.safe_load(BINANCE_SCENARIO.read_text(encoding="utf-8"))
    accounts = [
        {**base["accounts"][0], "id": f"B-{i}", "api_key": f"sim-key-{i}", "api_secret": f"s-{i}"}
        for i in range(5)
    ]
    scenario = tmp_path / "tiny-budget.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                # 30 weight per 4 s (450/min), under what the guard allows itself (545/min).
                "binance_weight_limit_per_minute": 30,
                "weight_window_s": 4,
                "ban_s": 60,
                # Requests already on the wire when the 429 went out are forgiven; a loaded
                # CI box can take a while to deliver them.
                "ban_grace_s": 1.0,
                "accounts": accounts,
            }
        ),
        encoding="utf-8",
    )
    sim = start_simulator(scenario)
    guard = start_guard(
        {
            f"acc{i}": binance_entry(sim, SimAccount(a["id"], a["api_key"], a["api_secret"]))
            for i, a in enumerate(accounts)
        },
        poll={"status_interval_s": 0.5, "snapshot_interval_s": 1.0},
        extra={"budget": {"weight_target_fraction": 0.25}},  # target 600/min
    )
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        statuses = sim.control.requests(limit=0)["by_status"]
        assert "418" not in statuses, statuses
        time.sleep(0.25)
    statuses = sim.control.requests(limit=0)["by_status"]
    log.info("answers with a full IP budget: %s", statuses)
    assert statuses.get("429", 0) >= 1, statuses  # the budget really was exceeded
    assert "418" not in statuses, statuses
    assert guard.proc is not None
    assert guard.proc.poll() is None


# ---------------------------------------------------------------------------- weight budget


def _many_accounts_scenario(path: Path, count: int) -> list[SimAccount]:
    accounts = [
        SimAccount(f"M-{i:03d}", f"sim-key-m{i:03d}", f"sim-secret-m{i:03d}") for i in range(count)
    ]
    path.write_text(
        yaml.safe_dump(
            {
                # Binance's real limit and window: the guard budgets per rolling minute, and
                # X-MBX-USED-WEIGHT-1M must mean the same thing on both sides.
                "binance_weight_limit_per_minute": 2400,
                "weight_window_s": 60,
                "accounts": [
                    {
                        "id": acc.id,
                        "api_key": acc.api_key,
                        "api_secret": acc.api_secret,
                        "key_permissions": {"enableReading": True, "enableFutures": False},
                        "account": {
                            "walletBalance": "1000.00",
                            "marginBalance": "1000.00",
                            "availableBalance": "1000.00",
                        },
                    }
                    for acc in accounts
                ],
            }
        ),
        encoding="utf-8",
    )
    return accounts


def test_weight_budget_holds_with_50_accounts_on_one_ip(
    start_simulator: StartSimulator, start_guard: StartGuard, tmp_path: Path
) -> None:
    """50 accounts behind one IP, budget target 600/min (fraction 0.25 of 2400).

    Unshaped, the 50 pollers would send 50 x (1 + 15 + 10 + 1) = 1350 weight in their first
    second and 60 000/min after (status every 1 s, snapshot every 2 s). The budget must keep
    every rolling minute at or under 600: it lets ``C = 600/11`` through at once and ``C``
    per 6 s after (545/min), and stretches every poll interval by demand / 545 = 110 (a bit
    more with the host's market poller, whose 200 weight/min are shared by all 50 accounts,
    and each account's openAlgoOrders sweep, 40/min).

    The simulator keeps Binance's 60 s window so that its ``X-MBX-USED-WEIGHT-1M`` is the
    quantity the guard budgets. A shorter window would not be comparable: the guard compares
    the header with its per-minute target, and the bucket bounds a W-second window by
    ``C x (1 + W/6)``, not by ``target x W/60``. The test observes the first ~15 s of the
    window, where the used weight is everything sent since start; it checks (a) never over
    the target, (b) never over the bucket's bound ``C + C x t/6`` (+ one request), and (c) a
    slope that fits the target when extrapolated to a minute. No 429 or 418 may happen.
    """
    scenario = tmp_path / "fifty.yaml"
    accounts = _many_accounts_scenario(scenario, 50)
    sim = start_simulator(scenario)
    control = sim.control
    started = time.monotonic()
    guard = start_guard(
        {f"bot{i:02d}": binance_entry(sim, acc) for i, acc in enumerate(accounts)},
        poll={"status_interval_s": 1.0, "snapshot_interval_s": 2.0},
        extra={"budget": {"weight_target_fraction": 0.25}},
    )
    budget = budget_name(sim)
    target = metric(guard, WEIGHT_TARGET, budget=budget)
    assert target == 600
    capacity = target / 11
    # The host's market poller adds its own demand: exchangeInfo (1 per 300 s) and
    # premiumIndex (10 per 3 s) = 200.2 weight/min, once for all 50 accounts.
    market = 60 / 300 * 1 + 60 / 3 * 10
    # Each account's all-symbols openAlgoOrders sweep: 40 per 60 s.
    algo_sweeps = 50 * 40
    assert metric(guard, STRETCH, budget=budget) == pytest.approx(
        (60_000 + algo_sweeps + market) / (capacity * 10)
    )

    series: list[tuple[float, int, float | None]] = []  # (s since start, simulator, guard)
    while time.monotonic() - started < 16:
        used = control.weight()["per_ip"]["used"].get("127.0.0.1", 0)
        seen = metric(guard, USED_WEIGHT, budget=budget)
        series.append((time.monotonic() - started, used, seen))
        time.sleep(0.5)
    log.info("used weight (t, simulator, guard): %s", series)

    statuses = control.requests(limit=0)["by_status"]
    assert set(statuses) == {"200"}, statuses  # no 429, no 418
    peak = max(used for _, used, _ in series)
    assert peak <= target, series
    for elapsed, used, _ in series:
        assert used <= capacity + capacity * elapsed / 6 + 15, (elapsed, used)
    guard_seen = [seen for _, _, seen in series if seen is not None]
    assert guard_seen, "the guard never reported the exchange's used weight"
    assert max(guard_seen) <= target
    # Steady state: weight per second after the first burst, as weight per minute.
    (t0, w0, _), (t1, w1, _) = series[4], series[-1]
    per_minute = (w1 - w0) / (t1 - t0) * 60
    log.info("peak %s, steady rate %.0f/min, target %s", peak, per_minute, target)
    assert per_minute <= target, per_minute
    assert peak > capacity, "the budget was never used: the test proves nothing"


def test_readiness_names_missing_market_rules_and_why(
    start_simulator: StartSimulator, start_guard: StartGuard, tmp_path: Path
) -> None:
    """``exchangeInfo`` failing while ``premiumIndex`` works: ``/readyz`` is 503 and its
    ``markets`` entry for the host says the symbol rules are missing and the exchange's error
    (a good mark-price refresh every 3 s used to wipe the one shared error), orders are denied
    with the same words; once the rules arrive the host is ready."""
    scenario = tmp_path / "one.yaml"
    [acc] = _many_accounts_scenario(scenario, 1)
    sim = start_simulator(scenario)
    fault = sim.control.add_fault("http_5xx", path="/fapi/v1/exchangeInfo", params={"status": 503})
    guard = start_guard({"main": binance_entry(sim, acc)})
    host = budget_name(sim)

    def readiness() -> tuple[int, dict[str, Any]]:
        answer = httpx.get(f"{guard.base_url}/readyz", timeout=5)
        return answer.status_code, answer.json()

    def rules_missing_with_cause() -> bool:
        status, body = readiness()
        market = body["markets"].get(host, {})
        return (
            status == 503
            and body["accounts"]["main"]["fresh"]
            and market.get("marks_age_ms") is not None
            and "last error" in (market.get("reason") or "")
        )

    wait_until(rules_missing_with_cause, timeout=20, what="readyz naming the missing rules")
    _, body = readiness()
    market = body["markets"][host]
    assert market["ready"] is False
    assert market["accounts"] == ["main"]
    assert market["symbols"] == 0
    assert market["rules_age_ms"] is None
    assert market["reason"].startswith(
        "no symbol rules received yet (exchangeInfo); last error: market_rules: "
    )
    assert "503" in market["rules_error"]
    assert market["marks_error"] is None
    with guard.client() as client:
        denied = client.get("/can-trade", params=BTC_BUY | {"account": "main"}).json()
    assert codes(denied) == ["MARKET_RULES_UNAVAILABLE"]
    assert "last error: market_rules: " in denied["reasons"][0]["message"]

    sim.control.remove_fault(fault)
    wait_until(lambda: ready(guard), timeout=45, what="readyz 200 once the rules arrive")
    _, body = readiness()
    market = body["markets"][host]
    assert (market["ready"], market["reason"], market["rules_error"]) == (True, None, None)
    assert market["symbols"] > 0
