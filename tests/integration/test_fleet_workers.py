"""Fleet api role with several worker processes on one port (``--workers N``).

Real processes on loopback: a real ``redis-server``, the simulator, a refresher, and an api
guard started as ``python -m app --role api --workers 2``. Which worker answered is read from
``/readyz`` (its ``worker.pid``) on a keep-alive connection, which stays with the worker that
accepted it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.fleet import fleet_extra
from tests.support.guard import (
    BOT_TOKEN,
    REPO,
    GuardProcess,
    guard_config,
    sample_value,
    wait_until,
)
from tests.support.guard_fixtures import StartGuard, account_entry
from tests.support.processes import SimulatorProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.sim_scenarios import HEALTHY, THIN_MARGIN

pytestmark = pytest.mark.integration

#: Data freshness is not the subject; a loaded machine must not turn it stale.
RELAXED = {"max_status_age_s": 10.0, "max_snapshot_age_s": 10.0}
ORDER = {"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001"}
CAN_TRADE_OK = {"route": "/can-trade", "method": "GET", "status": "200"}


def _api_pool(accounts: dict[str, Any], redis_url: str, workdir: Path) -> GuardProcess:
    """An api role guard with two workers (not started)."""
    config = guard_config(
        accounts, port=free_port(), extra=fleet_extra(redis_url, "api"), policy=RELAXED
    )
    return GuardProcess(
        config, workdir, command=[sys.executable, "-m", "app", "--role", "api", "--workers", "2"]
    )


def _accounts(sim: SimulatorProcess) -> dict[str, dict[str, Any]]:
    return {"alpha": account_entry(sim, HEALTHY), "charlie": account_entry(sim, THIN_MARGIN)}


def _parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Worker:
    """A keep-alive connection and the worker process that accepted it."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {BOT_TOKEN}"}, timeout=10
        )
        body = self.client.get("/readyz").json()
        self.pid: int = body["worker"]["pid"]
        self.index: int = body["worker"]["index"]
        assert body["worker"]["count"] == 2

    def order(self) -> dict[str, Any]:
        response = self.client.get("/can-trade", params=ORDER)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def scrape(self, name: str = "pretrade_guard_http_requests_total") -> float:
        text = self.client.get("/metrics").text
        labels = CAN_TRADE_OK if name == "pretrade_guard_http_requests_total" else {}
        value = sample_value(text, name, labels)
        assert value is not None, f"{name} missing from /metrics"
        return value


def _workers(base_url: str, wanted: int, exclude: frozenset[int] = frozenset()) -> list[Worker]:
    """Open connections until ``wanted`` different workers (pids not in ``exclude``) hold
    one each (the other connections are closed); fewer if 200 connections did not find them."""
    found: dict[int, Worker] = {}
    for _ in range(200):
        worker = Worker(base_url)
        if worker.pid in found or worker.pid in exclude:
            worker.client.close()
        else:
            found[worker.pid] = worker
        if len(found) == wanted:
            break
    return list(found.values())


@pytest.fixture
def api_pool(
    start_guard: StartGuard,
    shared_simulator: SimulatorProcess,
    redis_server: RedisServer,
    tmp_path: Path,
) -> Iterator[GuardProcess]:
    accounts = _accounts(shared_simulator)
    start_guard(accounts, extra=fleet_extra(redis_server.url, "refresher"), policy=RELAXED)
    api = _api_pool(accounts, redis_server.url, tmp_path)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def test_two_workers_answer_and_metrics_count_the_whole_host(api_pool: GuardProcess) -> None:
    api = api_pool
    assert api.proc is not None
    wait_until(
        lambda: httpx.get(f"{api.base_url}/readyz", timeout=5).status_code == 200,
        timeout=20,
        what="api /readyz 200",
    )
    workers = _workers(api.base_url, 2)
    assert len(workers) == 2, "one worker accepted 200 connections in a row"
    first, second = workers
    # Two worker processes of this guard, one per slot, both deciding.
    assert {_parent_of(first.pid), _parent_of(second.pid)} == {api.proc.pid}
    assert {first.index, second.index} == {1, 2}
    wait_until(lambda: first.order()["allowed"], timeout=20, what="worker 1 allowing")
    wait_until(lambda: second.order()["allowed"], timeout=20, what="worker 2 allowing")

    # Every scrape, whichever worker answers it, reports every request of the host.
    before = first.scrape()
    assert second.scrape() == before
    for _ in range(15):
        assert first.order()["allowed"]
        assert second.order()["allowed"]
    seen = [first.scrape(), second.scrape()]
    for _ in range(6):
        with httpx.Client(base_url=api.base_url, timeout=10) as fresh:
            seen.append(
                sample_value(
                    fresh.get("/metrics").text, "pretrade_guard_http_requests_total", CAN_TRADE_OK
                )
                or 0.0
            )
    assert seen == [before + 30] * len(seen)
    assert first.scrape("pretrade_guard_worker_restarts_total") == 0

    # SIGKILL one worker: its counts stay in the host's total, a new worker takes its slot.
    os.kill(first.pid, signal.SIGKILL)
    first.client.close()
    assert second.scrape() == before + 30
    new: list[Worker] = []

    def replaced() -> bool:
        new.extend(_workers(api.base_url, 1, exclude=frozenset({first.pid, second.pid})))
        return bool(new)

    wait_until(replaced, timeout=30, what="a new worker in the dead one's place", interval=0.2)
    (replacement,) = new
    assert replacement.index == first.index
    assert _parent_of(replacement.pid) == api.proc.pid
    wait_until(lambda: replacement.order()["allowed"], timeout=20, what="new worker deciding")
    totals = [second.scrape(), replacement.scrape()]
    assert totals[0] == totals[1] >= before + 31
    for _ in range(5):
        replacement.order()
    assert replacement.scrape() == second.scrape() == totals[0] + 5
    assert second.scrape("pretrade_guard_worker_restarts_total") == 1

    # SIGTERM to the guard stops every worker; a requested stop is a clean exit.
    pids = [second.pid, replacement.pid]
    for worker in (second, replacement):
        worker.client.close()
    assert api.stop() == 0
    assert not any(_alive(pid) for pid in pids)


def _refused(tmp_path: Path, extra: dict[str, Any], *args: str, **env: str) -> str:
    config = guard_config(
        {"alpha": {**account_entry_stub(), "exchange": "generic-v2"}},
        port=free_port(),
        extra=extra,
    )
    config["server"]["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, "PRETRADE_GUARD_CONFIG": str(path), **env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr.decode()
    return done.stderr.decode()


def account_entry_stub() -> dict[str, Any]:
    """An account whose exchange is never called (the start is refused before)."""
    return {
        "base_url": "http://127.0.0.1:9",
        "api_key": HEALTHY.api_key,
        "api_secret": HEALTHY.api_secret,
    }


def test_embedded_mode_with_two_workers_refuses_to_start(tmp_path: Path) -> None:
    stderr = _refused(tmp_path, {}, "--workers", "2")
    assert "server.workers is 2" in stderr
    assert "embedded mode (no fleet.redis_url) runs one worker process" in stderr
    # The same from the environment variable.
    stderr = _refused(tmp_path, {}, PRETRADE_GUARD_SERVER__WORKERS="3")
    assert "server.workers is 3" in stderr


@pytest.mark.parametrize("role", ["all", "refresher"])
def test_fleet_roles_that_poll_refuse_several_workers(tmp_path: Path, role: str) -> None:
    extra = fleet_extra("redis://127.0.0.1:9/0", role)
    stderr = _refused(tmp_path, extra, "--workers", "2")
    assert (
        f"server.workers is 2 (--workers, PRETRADE_GUARD_SERVER__WORKERS), but fleet.role is {role}"
        in " ".join(stderr.split())
    )
    assert "only role api runs several worker processes" in stderr


def _worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    pids = []
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            pids.append(child)
    return pids


def test_workers_that_keep_dying_stop_the_pool_with_exit_1(api_pool: GuardProcess) -> None:
    api = api_pool
    assert api.proc is not None
    supervisor = api.proc.pid
    killed: set[int] = set()

    def kill_every_worker() -> bool:
        if api.proc is None or api.proc.poll() is not None:
            return True
        for pid in _worker_pids(supervisor):
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        return False

    wait_until(kill_every_worker, timeout=90, what="the pool giving up", interval=0.1)
    assert api.proc.wait(5) == 1
    assert len(killed) > 5
    assert "workers keep dying; stopping the pool" in api.logs()
    assert not any(_alive(pid) for pid in killed)


def test_workers_stop_when_their_supervisor_is_killed(api_pool: GuardProcess) -> None:
    """No orphaned worker keeps serving on a socket nobody supervises."""
    api = api_pool
    assert api.proc is not None
    wait_until(lambda: len(_worker_pids(api.proc.pid)) == 2, timeout=30, what="two workers")  # type: ignore[union-attr]
    workers = _worker_pids(api.proc.pid)
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    (metrics_dir,) = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_")]
    api.proc.kill()
    api.proc.wait()
    try:
        wait_until(
            lambda: not any(_alive(pid) for pid in workers),
            timeout=30,
            what="the orphaned workers stopping",
            interval=0.2,
        )
    finally:  # the killed supervisor could not remove its metrics directory
        shutil.rmtree(metrics_dir.decode(), ignore_errors=True)


def test_a_pool_stopped_as_soon_as_it_answers_exits_0(
    start_guard: StartGuard,
    shared_simulator: SimulatorProcess,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """SIGTERM a pool as soon as one worker answers (the other may still be starting; its
    fleet loops are opening their Redis connections), three times: each stop is a clean
    exit 0, no worker is left, and no shutdown needed the backstop (``app/server.py``).

    A worker's shutdown used to hang for good when a fleet loop lost its cancellation inside
    redis-py (``app/tasks.py``; ``tests/integration/test_fleet_cancellation.py`` reproduces
    that reliably): the supervisor was SIGKILLed and stop() returned -9."""
    accounts = _accounts(shared_simulator)
    start_guard(accounts, extra=fleet_extra(redis_server.url, "refresher"), policy=RELAXED)
    for cycle in range(3):
        workdir = tmp_path / f"pool-{cycle}"
        workdir.mkdir()
        api = _api_pool(accounts, redis_server.url, workdir)
        api.start()
        try:
            assert api.proc is not None
            workers = _worker_pids(api.proc.pid)
        finally:
            code = api.stop()
        logs = api.logs()
        assert code == 0, f"stop {cycle + 1}: exit {code}\n{logs[-20000:]}"
        assert not any(_alive(pid) for pid in workers)
        assert "shutdown did not finish in time" not in logs
        assert "did not stop in time" not in logs
