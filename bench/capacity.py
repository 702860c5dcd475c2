"""How many accounts one guard process keeps fresh within an exchange weight budget.

Two answers that must agree:

* **Budget math** (``budget_math``), from the guard's own numbers: the weight of a status and
  a snapshot poll (``Capabilities``), the poll intervals, the budget a ``WeightBudget`` really
  lets through (``sustained_per_minute``: 10/11 of ``limit x weight_target_fraction``) and the
  stretch rule (intervals x ``demand / sustained`` when the accounts of one budget ask for
  more). An account stays fresh while its stretched interval (plus jitter) is shorter than the
  policy's max age, so one budget keeps ``sustained x max_stretch / demand`` accounts fresh.
* **Empirical** (``run_phase``): N generic-v2 accounts on the simulator, the guard started with
  a given ``budget.weight_target_fraction``; after the data has had time to go stale, sample
  ``/readyz`` once a second (fraction of accounts fresh), read the
  ``pretrade_guard_poll_interval_stretch_ratio`` gauge, the simulator's 429 count and the
  guard's CPU time per exchange request.

Generic-v2 budgets are per API key (one account = one key), so there a tight budget is made
with a small ``weight_target_fraction``; Binance USD-M budgets are per IP, shared by every
account of the process, which is where the per-process limit really bites.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.config import PolicySettings, PollSettings
from app.exchanges.base import ExchangeClient
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from bench import scenario
from bench.procs import (
    Pinning,
    SimulatorProcess,
    cpu_seconds,
    free_port,
    rss_kib,
    start_guard,
)


@dataclass(frozen=True, slots=True)
class BudgetMath:
    exchange: str
    scope: str
    limit_per_min: int
    target_per_min: int
    sustained_per_min: float
    #: Weight per minute one account asks for at the base intervals (status + snapshot).
    demand_per_account: float
    #: Largest interval stretch that still keeps the data within the max ages (jitter included).
    max_fresh_stretch: float
    #: Accounts one budget serves at the base intervals (stretch 1).
    accounts_unstretched: int
    #: Accounts one budget keeps fresh (intervals stretched up to the max ages).
    accounts_fresh: int

    def stretch(self, accounts: int) -> float:
        return max(1.0, accounts * self.demand_per_account / self.sustained_per_min)


def budget_math(
    client: type[ExchangeClient],
    *,
    poll: PollSettings | None = None,
    policy: PolicySettings | None = None,
    target_fraction: float = 0.8,
) -> BudgetMath:
    poll = poll or PollSettings()
    policy = policy or PolicySettings()
    caps = client.capabilities
    budget = WeightBudget(
        "math",
        caps.weight_limit_per_minute,
        target_fraction,
        Metrics(CollectorRegistry(), "bench"),
    )
    demand = (
        60 / poll.status_interval_s * caps.status_weight
        + 60 / poll.snapshot_interval_s * caps.snapshot_weight
    )
    worst = 1 + poll.jitter_fraction
    max_stretch = min(
        policy.max_status_age_s / (poll.status_interval_s * worst),
        policy.max_snapshot_age_s / (poll.snapshot_interval_s * worst),
    )
    return BudgetMath(
        exchange=client.name,
        scope=caps.weight_scope,
        limit_per_min=caps.weight_limit_per_minute,
        target_per_min=budget.target,
        sustained_per_min=budget.sustained_per_minute,
        demand_per_account=demand,
        max_fresh_stretch=max_stretch,
        accounts_unstretched=math.floor(budget.sustained_per_minute / demand),
        accounts_fresh=math.floor(budget.sustained_per_minute * max_stretch / demand),
    )


def fraction_for_stretch(client: type[ExchangeClient], stretch: float) -> float:
    """The ``weight_target_fraction`` at which ONE account per budget is stretched ``stretch``
    times at the default intervals (per-key budgets: generic-v2)."""
    demand = budget_math(client).demand_per_account
    target = round(demand / stretch * 1.1)  # sustained = target x 10/11
    return (target + 0.5) / client.capabilities.weight_limit_per_minute


def predicted_fresh(stretch: float, poll: PollSettings, policy: PolicySettings) -> float:
    """Expected share of time an account is fresh: each part is fresh for ``max_age`` out of
    every (stretched) interval once the interval is longer than the max age."""
    status = min(1.0, policy.max_status_age_s / (poll.status_interval_s * stretch))
    snapshot = min(1.0, policy.max_snapshot_age_s / (poll.snapshot_interval_s * stretch))
    return status * snapshot


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found


@dataclass
class PhaseResult:
    label: str
    exchange: str
    accounts: int
    target_fraction: float
    predicted_stretch: float
    observed_stretch_min: float
    observed_stretch_max: float
    predicted_fresh: float
    fresh_mean: float
    fresh_min: float
    samples: int
    exchange_rps: float
    guard_cpu_pct: float
    #: CPU of the simulator (on the load core): near 100 means the simulator, not the guard,
    #: limits how fast polls are answered.
    sim_cpu_pct: float
    cpu_ms_per_exchange_request: float
    rate_limited: int
    failed_refreshes: int
    #: Resident memory of the live guard process at the end of the phase.
    rss_kib: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_phase(
    label: str,
    *,
    client: type[ExchangeClient],
    accounts: int,
    target_fraction: float,
    sim: SimulatorProcess,
    workdir: Path,
    pinning: Pinning,
    settle_s: float,
    observe_s: float,
    say: Callable[[str], None] = lambda _m: None,
) -> PhaseResult:
    """Run the guard with ``accounts`` accounts of ``client``'s exchange on this budget; after
    ``settle_s``, sample ``/readyz`` once a second for ``observe_s``."""
    math_ = budget_math(client, target_fraction=target_fraction)
    # Per-key budgets (generic-v2) hold one account each; a per-host budget holds them all.
    predicted_stretch = math_.stretch(accounts if math_.scope == "host" else 1)
    predicted = predicted_fresh(predicted_stretch, PollSettings(), PolicySettings())
    config = scenario.guard_config(
        accounts,
        port=free_port(),
        sim_url=sim.base_url,
        data_dir=workdir / f"data-capacity-{client.name}-{accounts}-{target_fraction:.4f}",
        budget={"weight_target_fraction": target_fraction},
        exchange=client.name,
    )
    say(
        f"capacity [{label}]: {accounts} {client.name} accounts, "
        f"weight_target_fraction={target_fraction:.4f}, settle {settle_s:.0f} s, "
        f"observe {observe_s:.0f} s"
    )
    # Weight spent by an earlier phase stays in the simulator's rolling window for a minute
    # and would pause this guard (it honours X-MBX-USED-WEIGHT-1M): start from a clean slate.
    sim.control.reset()
    guard = start_guard(config, workdir, prefix=pinning.server(), wait_ready=False)
    try:
        assert guard.proc is not None
        pid = guard.proc.pid
        time.sleep(settle_s)
        cpu0 = cpu_seconds(pid)
        sim_pid = sim.pid or 0
        sim_cpu0 = cpu_seconds(sim_pid)
        sim_before = sim.control.requests(limit=0)
        started = time.monotonic()
        shares: list[float] = []
        with httpx.Client(base_url=guard.base_url, timeout=10) as http:
            while time.monotonic() - started < observe_s:
                views = http.get("/readyz").json()["accounts"].values()
                shares.append(sum(1 for v in views if v["fresh"]) / max(1, len(views)))
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
            elapsed = time.monotonic() - started
            cpu1 = cpu_seconds(pid)
            sim_cpu1 = cpu_seconds(sim_pid)
            sim_after = sim.control.requests(limit=0)
            metrics = http.get("/metrics").text
        stretches = [
            v
            for labels, v in _samples(metrics, "pretrade_guard_poll_interval_stretch_ratio")
            if labels
        ]
        failures = _samples(metrics, "pretrade_guard_refresh_failures_total")
        requests = sim_after["total"] - sim_before["total"]
        rate_limited = sum(
            sim_after["by_status"].get(code, 0) - sim_before["by_status"].get(code, 0)
            for code in ("429", "418")
        )
        cpu = cpu1 - cpu0
        return PhaseResult(
            label=label,
            exchange=client.name,
            accounts=accounts,
            target_fraction=target_fraction,
            predicted_stretch=predicted_stretch,
            observed_stretch_min=min(stretches) if stretches else float("nan"),
            observed_stretch_max=max(stretches) if stretches else float("nan"),
            predicted_fresh=predicted,
            fresh_mean=sum(shares) / len(shares) if shares else float("nan"),
            fresh_min=min(shares) if shares else float("nan"),
            samples=len(shares),
            exchange_rps=requests / elapsed,
            guard_cpu_pct=100 * cpu / elapsed,
            sim_cpu_pct=100 * (sim_cpu1 - sim_cpu0) / elapsed,
            cpu_ms_per_exchange_request=1000 * cpu / requests if requests else float("nan"),
            rate_limited=rate_limited,
            failed_refreshes=int(sum(v for _l, v in failures)),
            rss_kib=rss_kib(pid)["VmRSS"],
        )
    finally:
        guard.stop()
