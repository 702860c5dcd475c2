"""Resident memory of the guard's objects for N accounts of realistic state (one JSON line).

    python -m bench.memory --accounts 10000

In this (fresh) process: import everything the guard imports, then ``create_app(settings)``
with N generic-v2 accounts (store, decider, policies, metrics series, exchange clients and
pollers, event bus: everything but the running poller tasks and the sockets), then put a
realistic status and snapshot (parsed by the real generic-v2 parser from the same JSON the
simulator serves: three positions, four open orders, 20 history rows) into the store for every
account, through ``StateStore.put_*`` so the listeners (events, metrics) run as in production.
``VmRSS`` from ``/proc/self/status`` is read after each stage (after ``gc.collect()``).

Why not 10,000 running pollers: that needs a simulator answering ~7,000 signed requests/s at
the default intervals, far beyond one core; ``bench.run`` measures the live guard process at
1,000 accounts instead (``--memory-live``) and reports both.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from app.api.deps import Services
from app.config import Settings
from app.domain import Instant
from app.logs import configure_logging
from app.main import create_app
from bench import scenario
from bench.procs import rss_kib


def measure(accounts: int) -> dict[str, Any]:
    gc.collect()
    stages: dict[str, Any] = {"accounts": accounts, "imports_kib": rss_kib()["VmRSS"]}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        config = scenario.guard_config(
            accounts, port=8080, sim_url="http://127.0.0.1:9", data_dir=Path(tmp)
        )
        started = time.perf_counter()
        settings = Settings(**config)
        app = create_app(settings, registry=CollectorRegistry())
        stages["create_app_s"] = time.perf_counter() - started
        gc.collect()
        stages["app_kib"] = rss_kib()["VmRSS"]
        services: Services = app.state.services
        started = time.perf_counter()
        for i in range(accounts):
            name = scenario.account_name(i)
            now = Instant.now()
            services.store.put_status(name, scenario.parsed_status(i), now)
            services.store.put_snapshot(name, scenario.parsed_snapshot(i), now)
        stages["fill_s"] = time.perf_counter() - started
        gc.collect()
        rss = rss_kib()
        stages["state_kib"] = rss["VmRSS"]
        stages["peak_kib"] = rss["VmHWM"]
    stages["app_per_account_kib"] = (stages["app_kib"] - stages["imports_kib"]) / accounts
    stages["state_per_account_kib"] = (stages["state_kib"] - stages["app_kib"]) / accounts
    stages["total_per_account_kib"] = (stages["state_kib"] - stages["imports_kib"]) / accounts
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description="guard RSS for N accounts (JSON out)")
    parser.add_argument("--accounts", type=int, required=True)
    args = parser.parse_args()
    configure_logging("json", "warning")  # keep the per-account event lines out of the way
    sys.stdout.write(json.dumps(measure(args.accounts)) + "\n")


if __name__ == "__main__":
    main()
