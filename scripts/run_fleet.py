"""Run a local fleet: Redis, the exchange simulator, one refresher and two api replicas.

    make run-fleet      (same as: .venv/bin/python scripts/run_fleet.py)

Needs ``redis-server`` on PATH (Debian: ``apt-get install redis-server``). Redis runs on
127.0.0.1:6390 with AOF (appendfsync always) in var/fleet; the simulator serves
deploy/demo/scenario.yaml on 8081; the guards use deploy/demo/guard.yaml in fleet mode:
a refresher on 8090 and api replicas on 8080 and 8082. Prints curls that engage a kill switch
on one replica and show the other denying. Ctrl-C stops everything (guards first).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "fleet"
REDIS_PORT = 6390
SIM_PORT = 8081
REFRESHER_PORT = 8090
API_PORTS = (8080, 8082)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - this script talks to a person


def answers(url: str) -> int | None:
    try:
        with _OPENER.open(url, timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait(url: str, name: str, procs: list[subprocess.Popen[bytes]], ok: set[int]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if answers(url) in ok:
            return
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"{name}: a process exited; logs in {LOG_DIR}")
        time.sleep(0.2)
    raise SystemExit(f"{name} did not answer {url} within 30 s; logs in {LOG_DIR}")


def main() -> None:
    redis = shutil.which("redis-server")
    if redis is None:
        raise SystemExit(
            "run-fleet needs redis-server on PATH (Debian/Ubuntu: sudo apt-get install "
            "redis-server; macOS: brew install redis)"
        )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (LOG_DIR / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(  # noqa: S603 - argv built here
                argv,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    try:
        start(
            "redis",
            [
                redis,
                "--port",
                str(REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(LOG_DIR),
            ],
        )
        start(
            "simulator",
            [
                sys.executable,
                "-m",
                "simulator",
                "--scenario",
                "deploy/demo/scenario.yaml",
                "--port",
                str(SIM_PORT),
            ],
        )
        wait(f"http://127.0.0.1:{SIM_PORT}/_sim/health", "simulator", procs, {200})
        fleet = {
            "PRETRADE_GUARD_CONFIG": "deploy/demo/guard.yaml",
            "PRETRADE_GUARD_FLEET__REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "PRETRADE_GUARD_FLEET__NAMESPACE": "demo",
            "PRETRADE_GUARD_SERVER__LOG_FORMAT": "console",
        }
        for role, port in (("refresher", REFRESHER_PORT), *(("api", p) for p in API_PORTS)):
            start(
                f"guard-{role}-{port}",
                [sys.executable, "-m", "app", "--role", role],
                {
                    **fleet,
                    "PRETRADE_GUARD_SERVER__PORT": str(port),
                    "PRETRADE_GUARD_SERVER__DATA_DIR": str(LOG_DIR / f"data-{port}"),
                },
            )
        for port in (REFRESHER_PORT, *API_PORTS):
            wait(f"http://127.0.0.1:{port}/readyz", f"guard on {port}", procs, {200})
        a, b = API_PORTS
        say(f"fleet up: refresher :{REFRESHER_PORT}, api replicas :{a} and :{b} (logs: {LOG_DIR})")
        say()
        say("# allowed on both replicas:")
        for port in API_PORTS:
            say(
                f"curl -s -H 'Authorization: Bearer demo-bot-token' "
                f"'http://127.0.0.1:{port}/can-trade?account=alpha'; echo"
            )
        say(f"# engage a HALT on replica :{a} ...")
        say(
            f"curl -s -X POST -H 'Authorization: Bearer demo-ops-token' "
            f"-H 'Content-Type: application/json' http://127.0.0.1:{a}/admin/kill-switches "
            '-d \'{"scope": "global", "mode": "HALT", "actor": "me", '
            '"reason": "fleet demo"}\'; echo'
        )
        say(f"# ... and replica :{b} denies with KILL_SWITCH:")
        say(
            f"curl -s -H 'Authorization: Bearer demo-bot-token' "
            f"'http://127.0.0.1:{b}/can-trade?account=alpha'; echo"
        )
        say(f"# who polls what: curl -s http://127.0.0.1:{REFRESHER_PORT}/readyz; echo")
        say()
        say("Ctrl-C stops the fleet.")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        say(f"a process exited; stopping (logs in {LOG_DIR})")
    except KeyboardInterrupt:
        say("stopping")
    finally:
        for proc in reversed(procs):  # guards first, Redis last
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
