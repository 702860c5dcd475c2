"""Run the local fleet demo: Redis, the simulator, a refresher and two api replicas, on loopback.

    make run-fleet      (same as: .venv/bin/python -m scripts.run_fleet)

Starts ``redis-server`` from PATH (a private one: loopback, AOF with ``appendfsync always`` in
the log directory), the simulator with deploy/demo/scenario.yaml, then three guards with
deploy/demo/guard.yaml plus a ``fleet:`` section: one ``--role refresher`` (polls the
exchange, publishes through Redis) and two ``--role api`` replicas (answer from memory), waits
until both replicas are ready, prints curl commands that engage a kill switch on replica A and
show replica B denying, then waits. Ctrl-C or SIGTERM stops everything (replicas first, Redis
last). If a child dies, the others are stopped and the exit status is 1.

Environment (ports on 127.0.0.1):
  GUARD_PORT      replica A (default 8080)        GUARD_B_PORT    replica B (default 8082)
  REFRESHER_PORT  the refresher (default 8083)    REDIS_PORT      Redis (default 6380)
  SIM_PORT        the simulator (default 8081)    DEMO_LOG_DIR    logs (default var/demo-fleet)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from scripts.run_demo import (
    GUARD_CONFIG,
    LOOPBACK,
    POLL_INTERVAL_S,
    ROOT,
    SCENARIO,
    Child,
    DemoError,
    StopRequested,
    check_children,
    ensure_port_free,
    load_yaml_mapping,
    pick_token,
    port_from_env,
    say,
    simulator_child,
    start_and_wait_ok,
    supervise,
    wait_until_ok,
    with_sim_port,
)

DEFAULT_LOG_DIR = Path("var/demo-fleet")
DEFAULT_PORTS = {
    "SIM_PORT": 8081,
    "GUARD_PORT": 8080,
    "GUARD_B_PORT": 8082,
    "REFRESHER_PORT": 8083,
    "REDIS_PORT": 6380,
}
REDIS_START_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
NAMESPACE = "demo"
#: What the printed example waits after the engage before asking replica B: the fleet's bound
#: on switch propagation is 1 s (every replica re-reads the switches at least that often).
PROPAGATION_WAIT_S = 1
REDIS_MISSING = (
    "redis-server is not on PATH. Fleet mode needs Redis: on Debian/Ubuntu "
    "`sudo apt-get install redis-server` (no service needs to run: this demo starts its own), "
    "or run the whole fleet in containers with `make up`."
)


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def fleet_config(base: dict[str, Any], redis_port: int, sim_port: int) -> dict[str, Any]:
    """deploy/demo/guard.yaml (accounts pointed at ``sim_port``) in fleet mode on this Redis."""
    config = with_sim_port(base, sim_port)
    config["fleet"] = {"redis_url": f"redis://{LOOPBACK}:{redis_port}/0", "namespace": NAMESPACE}
    return config


def curl_examples(a_url: str, b_url: str, bot_token: str, ops_token: str) -> str:
    """Copy-pasteable: engage on replica A, replica B denies; release on B, A allows."""

    def auth(token: str) -> str:
        return f"-H {shlex.quote(f'Authorization: Bearer {token}')}"

    query = urlencode(
        {
            "account": "alpha",
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "0.01",
            "price": "60000",
        }
    )

    def can_trade(url: str) -> str:
        return f"curl -sS -w '\\n' {auth(bot_token)} {shlex.quote(f'{url}/can-trade?{query}')}"

    engage = {"actor": "you", "reason": "fleet demo", "mode": "HALT", "scope": "account"}
    engage["account"] = "alpha"
    release = urlencode({"actor": "you", "reason": "fleet demo over"})
    return "\n".join(
        [
            "# alpha's order on replica B (port of GUARD_B_PORT) -> allowed",
            can_trade(b_url),
            "# engage a HALT kill switch for alpha on replica A; keep its id",
            "ID=$(curl -sS -X POST -H 'Content-Type: application/json' "
            f"{auth(ops_token)} -d {shlex.quote(json.dumps(engage, separators=(',', ':')))} "
            f"{a_url}/admin/kill-switches "
            '| python3 -c \'import json, sys; print(json.load(sys.stdin)["id"])\'); echo "$ID"',
            f"# replica B has it within {PROPAGATION_WAIT_S} s (Redis): the same order is denied "
            "there, KILL_SWITCH",
            f"sleep {PROPAGATION_WAIT_S}",
            can_trade(b_url),
            "# release it on replica B; replica A allows again",
            f"curl -sS -w '\\n' -X DELETE {auth(ops_token)} "
            f'"{b_url}/admin/kill-switches/$ID?{release}"',
            f"sleep {PROPAGATION_WAIT_S}",
            can_trade(a_url),
            "# each replica's view of the fleet (role, Redis, what it waits for)",
            f"curl -sS -w '\\n' {a_url}/readyz",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run Redis, the simulator, a refresher and two api replicas locally; "
        "print curl examples of a kill switch shared by the fleet.",
        epilog="Environment: GUARD_PORT, GUARD_B_PORT, REFRESHER_PORT, REDIS_PORT, SIM_PORT, "
        "DEMO_LOG_DIR (see the module docstring).",
    )
    return parser.parse_args(argv)


def run(stop: threading.Event, children: list[Child]) -> int:
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise DemoError(REDIS_MISSING)
    ports = {name: port_from_env(name, default) for name, default in DEFAULT_PORTS.items()}
    for name, port in ports.items():
        ensure_port_free(LOOPBACK, port, name)
    base = load_yaml_mapping(GUARD_CONFIG)
    load_yaml_mapping(SCENARIO)
    log_dir = Path(os.environ.get("DEMO_LOG_DIR") or DEFAULT_LOG_DIR)
    log_dir = log_dir if log_dir.is_absolute() else ROOT / log_dir
    (log_dir / "redis").mkdir(parents=True, exist_ok=True)
    config_path = log_dir / "guard-fleet.yaml"
    config_path.write_text(
        yaml.safe_dump(fleet_config(base, ports["REDIS_PORT"], ports["SIM_PORT"])),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    redis = Child(
        name="redis-server",
        argv=[
            redis_binary,
            "--port",
            str(ports["REDIS_PORT"]),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(log_dir / "redis"),
        ],
        env=env,
        log_path=log_dir / "redis.log",
    )
    say(f"starting redis-server on {LOOPBACK}:{ports['REDIS_PORT']} ({redis_binary}) ...")
    children.append(redis)
    redis.start()
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while not redis_ping(ports["REDIS_PORT"]):
        check_children(children)
        if stop.is_set():
            raise StopRequested
        if time.monotonic() > deadline:
            raise DemoError(f"redis-server did not answer PING within {REDIS_START_TIMEOUT_S} s")
        stop.wait(0.05)

    sim_url = f"http://{LOOPBACK}:{ports['SIM_PORT']}"
    say(f"starting the simulator on {sim_url} ...")
    start_and_wait_ok(
        simulator_child(ports["SIM_PORT"], env, log_dir / "simulator.log"),
        f"{sim_url}/_sim/health",
        START_TIMEOUT_S,
        children,
        stop,
        "the simulator did not become healthy",
    )

    urls = {}
    for name, role, port_name in (
        ("refresher", "refresher", "REFRESHER_PORT"),
        ("replica A", "api", "GUARD_PORT"),
        ("replica B", "api", "GUARD_B_PORT"),
    ):
        url = urls[name] = f"http://{LOOPBACK}:{ports[port_name]}"
        guard = Child(
            name=name,
            argv=[sys.executable, "-m", "app", "--role", role],
            env={
                **env,
                "PRETRADE_GUARD_CONFIG": str(config_path),
                "PRETRADE_GUARD_SERVER__PORT": str(ports[port_name]),
                "PRETRADE_GUARD_SERVER__DATA_DIR": str(log_dir / f"data-{role}-{ports[port_name]}"),
            },
            log_path=log_dir / f"{name.replace(' ', '-')}.log",
        )
        say(f"starting the {name} (--role {role}) on {url} ...")
        start_and_wait_ok(
            guard,
            f"{url}/healthz",
            START_TIMEOUT_S,
            children,
            stop,
            f"the {name} did not answer /healthz",
        )
    for name in ("replica A", "replica B"):
        answer = wait_until_ok(f"{urls[name]}/readyz", READY_TIMEOUT_S, children, stop)
        if answer is None or answer[0] != 200:
            body = answer[1].decode(errors="replace")[:500] if answer else "no answer"
            say(f"warning: the {name} is alive but not ready after {READY_TIMEOUT_S:.0f} s: {body}")
    say("the fleet is ready: both api replicas answer every account from the refresher's data")

    say()
    say("Try it (copy-paste):")
    say()
    say(
        curl_examples(
            urls["replica A"],
            urls["replica B"],
            pick_token(base, "decide"),
            pick_token(base, "admin"),
        )
    )
    say()
    logs = " ".join(shlex.quote(str(c.log_path)) for c in children if c.log_path is not None)
    say(f"logs: tail -f {logs}")
    say("Ctrl-C stops them all.")
    while not stop.wait(POLL_INTERVAL_S):
        check_children(children)
    return 0


def main(argv: list[str] | None = None) -> int:
    parse_args(argv)
    return supervise(run)  # replicas, refresher, simulator, then Redis


if __name__ == "__main__":
    sys.exit(main())
