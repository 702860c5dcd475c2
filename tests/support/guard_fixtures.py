"""Fixtures that run the real guard against the real simulator over loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.guard import GuardProcess, guard_config, wait_until
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import (
    CANNOT_TRADE,
    HEALTHY,
    RESTRICTED,
    THIN_MARGIN,
    SimAccount,
)

#: Guard account name -> simulator account of basic.yaml.
BASIC_GUARD_ACCOUNTS: dict[str, SimAccount] = {
    "alpha": HEALTHY,
    "bravo": RESTRICTED,
    "charlie": THIN_MARGIN,
    "delta": CANNOT_TRADE,
}


def account_entry(sim: SimulatorProcess, acc: SimAccount, **extra: Any) -> dict[str, Any]:
    return {
        "exchange": "generic-v2",
        "base_url": sim.base_url,
        "api_key": acc.api_key,
        "api_secret": acc.api_secret,
        **extra,
    }


StartGuard = Callable[..., GuardProcess]


@pytest.fixture
def start_guard(tmp_path: Path) -> Iterator[StartGuard]:
    """Start guards from account dicts; every one is stopped at teardown."""
    started: list[GuardProcess] = []

    def start(
        accounts: Mapping[str, Mapping[str, Any]], *, wait_ready: bool = False, **kwargs: Any
    ) -> GuardProcess:
        guard = GuardProcess(guard_config(accounts, port=free_port(), **kwargs), tmp_path)
        started.append(guard)
        guard.start()
        if wait_ready:
            wait_until(lambda: ready(guard), timeout=15, what="guard /readyz 200")
        return guard

    yield start
    for guard in started:
        guard.stop()


def ready(guard: GuardProcess) -> bool:
    return httpx.get(f"{guard.base_url}/readyz", timeout=2).status_code == 200


def codes(body: Mapping[str, Any]) -> list[str]:
    return [r["code"] for r in body["reasons"]]


def decide_until(
    client: httpx.Client,
    params: Mapping[str, Any],
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 10,
) -> dict[str, Any]:
    """GET /can-trade until ``predicate(body)`` holds; return that body."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        nonlocal seen
        response = client.get("/can-trade", params=dict(params))
        assert response.status_code == 200, response.text
        seen = response.json()
        return predicate(seen)

    try:
        wait_until(check, timeout=timeout, what=f"decision for {dict(params)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {seen}") from None
    return seen
