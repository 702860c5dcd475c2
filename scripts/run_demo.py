"""Run the local demo: the bundled exchange simulator and the guard, on loopback.

    make run            (same as: .venv/bin/python scripts/run_demo.py)

Starts the simulator with deploy/demo/scenario.yaml and waits until it is
healthy, starts the guard with deploy/demo/guard.yaml and waits until it is
alive and (for at most READY_TIMEOUT_S) ready, prints curl commands to try,
then waits. Ctrl-C or SIGTERM stops both children (guard first). If either
child dies, the other is stopped and the exit status is 1.

Environment:
  GUARD_PORT    the guard's port (default: server.port in guard.yaml, else 8080);
                passed to the guard as PRETRADE_GUARD_SERVER__PORT.
  SIM_PORT      the simulator's port (default 8081). guard.yaml points its
                accounts at 127.0.0.1:8081; for another port the demo writes a
                copy of guard.yaml with those base_urls rewritten into the log
                directory and runs the guard with that copy.
  DEMO_LOG_DIR  where the children's logs go (default var/demo).

The children run in their own sessions so a terminal Ctrl-C reaches only this
script, which then stops them in order; only a SIGKILL of this script can
leave them behind.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path("deploy/demo/scenario.yaml")
GUARD_CONFIG = Path("deploy/demo/guard.yaml")
DEFAULT_LOG_DIR = Path("var/demo")

LOOPBACK = "127.0.0.1"
DEFAULT_SIM_PORT = 8081
DEFAULT_GUARD_PORT = 8080

SIM_START_TIMEOUT_S = 30.0
GUARD_START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.25
LOG_TAIL_LINES = 30

# The simulator's id of the account the guard calls "alpha" (deploy/demo/scenario.yaml).
ALPHA_SIM_ID = "A-1001"
# A readable slice of /metrics for the demo (the full page has hundreds of series).
METRICS_OF_INTEREST = (
    "pretrade_guard_(decisions_total|decision_reasons_total|account_data_fresh|account_can_trade)"
)

# Loopback only: never send demo traffic through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DemoError(Exception):
    """A problem the user has to look at; printed, and the demo exits 1."""


class StopRequested(Exception):
    """Ctrl-C / SIGTERM arrived while the demo was still starting."""


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - this script talks to a person


@dataclass
class Child:
    """One child process, its output sent to a log file or to this terminal."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.log_path is not None:
            self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - argv built here from sys.executable
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            start_new_session=True,
        )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        """Terminate, wait, kill on timeout. Safe to call more than once."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(f"  | {line}" for line in lines)


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """Status and body of GET url, or None when nothing answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except OSError:  # URLError, connection refused/reset, timeout
        return None


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DemoError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


def ensure_port_free(host: str, port: int, env_name: str) -> None:
    """Fail early: a health probe could otherwise succeed against a stale process."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"{host}:{port} is already in use ({exc.strerror}); stop what holds it "
                f"or choose another port with {env_name}=..."
            ) from exc


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    if not (ROOT / path).is_file():
        raise DemoError(f"{path} is missing")
    with (ROOT / path).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise DemoError(f"{path} is not a YAML mapping")
    return data


def with_sim_port(config: dict[str, Any], sim_port: int) -> dict[str, Any]:
    """A copy of the guard config whose loopback :8081 base_urls use sim_port."""
    rewritten = copy.deepcopy(config)
    accounts = rewritten.get("accounts")
    for account in accounts.values() if isinstance(accounts, dict) else ():
        base_url = account.get("base_url") if isinstance(account, dict) else None
        if not isinstance(base_url, str):
            continue
        parts = urlsplit(base_url)
        if parts.hostname in (LOOPBACK, "localhost") and parts.port == DEFAULT_SIM_PORT:
            account["base_url"] = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{sim_port}"))
    return rewritten


def pick_token(config: dict[str, Any], scope: str) -> str:
    """The least-privileged configured token that has `scope`."""
    auth = config.get("auth")
    tokens = auth.get("tokens") if isinstance(auth, dict) else None
    candidates = [
        entry
        for entry in (tokens if isinstance(tokens, list) else [])
        if isinstance(entry, dict) and scope in (entry.get("scopes") or []) and entry.get("token")
    ]
    if not candidates:
        return f"<a token with the {scope} scope>"
    return str(min(candidates, key=lambda entry: len(entry.get("scopes") or []))["token"])


def check_children(children: list[Child]) -> None:
    for child in children:
        code = child.exit_code()
        if code is not None:
            tail = child.log_tail()
            where = f"; last lines of {child.log_path}:\n{tail}" if tail else ""
            raise DemoError(f"{child.name} exited unexpectedly with code {code}{where}")


def wait_until_ok(
    url: str, timeout_s: float, children: list[Child], stop: threading.Event
) -> tuple[int, bytes] | None:
    """Poll url until it answers 200; the last answer (None if none) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    answer: tuple[int, bytes] | None = None
    while True:
        if stop.is_set():
            raise StopRequested
        check_children(children)
        answer = http_get(url)
        if answer is not None and answer[0] == 200:
            return answer
        if time.monotonic() >= deadline:
            return answer
        stop.wait(POLL_INTERVAL_S)


def start_and_wait_ok(
    child: Child,
    url: str,
    timeout_s: float,
    children: list[Child],
    stop: threading.Event,
    what: str,
) -> None:
    """Start child (recorded in children for the final stop), then wait until url answers 200.

    Raises DemoError naming ``what`` when it does not within timeout_s.
    """
    children.append(child)
    child.start()
    answer = wait_until_ok(url, timeout_s, children, stop)
    if answer is None or answer[0] != 200:
        raise DemoError(f"{what} within {timeout_s:.0f} s")


def simulator_child(sim_port: int, env: dict[str, str], log_path: Path | None) -> Child:
    """The bundled simulator with the demo scenario, on loopback at sim_port."""
    return Child(
        name="simulator",
        argv=[
            sys.executable,
            "-m",
            "simulator",
            "--scenario",
            str(SCENARIO),
            "--host",
            LOOPBACK,
            "--port",
            str(sim_port),
        ],
        env=env,
        log_path=log_path,
    )


def supervise(run: Callable[[threading.Event, list[Child]], int]) -> int:
    """Run ``run`` with SIGINT/SIGTERM/SIGHUP mapped to its stop event; stop every child after.

    Children are stopped in reverse start order (the guards before what they depend on).
    Returns run's status, 0 on a stop request, 1 on a DemoError (printed).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    children: list[Child] = []
    status = 0
    try:
        status = run(stop, children)
    except StopRequested:
        status = 0
    except DemoError as exc:
        say(f"error: {exc}")
        status = 1
    finally:
        if any(child.exit_code() is None for child in children):
            say("stopping ...")
        for child in reversed(children):
            child.stop()
    return status


def curl_examples(guard_url: str, sim_url: str, bot_token: str, ops_token: str) -> str:
    """Copy-pasteable requests against deploy/demo/scenario.yaml's accounts."""

    def can_trade(account: str, order: str, reduce_only: bool = False) -> str:
        side, quantity, symbol, price = order.split()
        query = {"account": account, "symbol": symbol, "side": side, "quantity": quantity}
        query |= {"price": price} | ({"reduce_only": "true"} if reduce_only else {})
        return (
            f"curl -sS -w '\\n' -H {shlex.quote(f'Authorization: Bearer {bot_token}')} "
            f"{shlex.quote(f'{guard_url}/can-trade?{urlencode(query)}')}"
        )

    def set_alpha_status(body: dict[str, str]) -> str:
        return (
            "curl -sS -w '\\n' -X PATCH -H 'Content-Type: application/json' "
            f"-d {shlex.quote(json.dumps(body, separators=(',', ':')))} "
            f"{shlex.quote(f'{sim_url}/_sim/accounts/{ALPHA_SIM_ID}/status')}"
        )

    alpha = can_trade("alpha", "BUY 0.01 BTCUSDT 60000")
    return "\n".join(
        [
            "# alpha: NORMAL account, small order -> allowed",
            alpha,
            "# bravo: the exchange says RESTRICTED (pending KYC) -> denied, with the reason",
            can_trade("bravo", "BUY 0.01 BTCUSDT 60000"),
            "# ... but bravo may still buy back part of its ETH short (reduce-only)",
            can_trade("bravo", "BUY 1 ETHUSDT 3000", reduce_only=True),
            "# charlie: almost no margin left, big order -> denied for insufficient margin",
            can_trade("charlie", "BUY 1 BTCUSDT 60000"),
            "# delta: the exchange withdrew trading permission (canTrade=false) -> denied",
            can_trade("delta", "BUY 0.01 BTCUSDT 60000"),
            "# every account's state and data age (ops token, read scope)",
            f"curl -sS -w '\\n' -H {shlex.quote(f'Authorization: Bearer {ops_token}')} "
            f"{guard_url}/accounts",
            "# readiness and Prometheus metrics",
            f"curl -sS -w '\\n' {guard_url}/readyz",
            f"curl -sS {guard_url}/metrics | grep -E '^{METRICS_OF_INTEREST}'",
            "# the exchange restricts alpha; the guard sees it at its next poll (every second",
            "# here), so wait a moment: then it denies alpha ...",
            set_alpha_status({"tradingStatus": "RESTRICTED", "reason": "Pending KYC review"}),
            "sleep 2",
            alpha,
            "# ... and lifts the restriction again (allowed after the next poll)",
            set_alpha_status({"tradingStatus": "NORMAL"}),
            "sleep 2",
            alpha,
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the exchange simulator and the guard locally, print curl examples.",
        epilog="Environment: GUARD_PORT, SIM_PORT, DEMO_LOG_DIR (see the module docstring).",
    )
    parser.add_argument(
        "--console-logs",
        action="store_true",
        help="let both children log to this terminal instead of files in DEMO_LOG_DIR",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, stop: threading.Event, children: list[Child]) -> int:
    sim_port = port_from_env("SIM_PORT", DEFAULT_SIM_PORT)
    guard_config = load_yaml_mapping(GUARD_CONFIG)
    load_yaml_mapping(SCENARIO)  # fail early and clearly if it is missing or broken
    server = guard_config.get("server")
    server = server if isinstance(server, dict) else {}
    guard_port = port_from_env("GUARD_PORT", int(server.get("port") or DEFAULT_GUARD_PORT))
    guard_host = str(server.get("host") or LOOPBACK)
    probe_host = LOOPBACK if guard_host in ("0.0.0.0", "") else guard_host  # noqa: S104

    ensure_port_free(LOOPBACK, sim_port, "SIM_PORT")
    ensure_port_free(guard_host, guard_port, "GUARD_PORT")

    log_dir = Path(os.environ.get("DEMO_LOG_DIR") or DEFAULT_LOG_DIR)
    log_dir = log_dir if log_dir.is_absolute() else ROOT / log_dir
    log_dir.mkdir(parents=True, exist_ok=True)

    config_path = ROOT / GUARD_CONFIG
    if sim_port != DEFAULT_SIM_PORT:
        config_path = log_dir / "guard.yaml"
        config_path.write_text(yaml.safe_dump(with_sim_port(guard_config, sim_port)))
        say(f"SIM_PORT={sim_port}: running the guard with {config_path}")

    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim_url = f"http://{LOOPBACK}:{sim_port}"
    guard_url = f"http://{probe_host}:{guard_port}"

    def log_file(name: str) -> Path | None:
        return None if args.console_logs else log_dir / f"{name}.log"

    say(f"starting the simulator on {sim_url} ...")
    start_and_wait_ok(
        simulator_child(sim_port, base_env, log_file("simulator")),
        f"{sim_url}/_sim/health",
        SIM_START_TIMEOUT_S,
        children,
        stop,
        "the simulator did not become healthy",
    )

    guard = Child(
        name="guard",
        argv=[sys.executable, "-m", "app"],
        env={
            **base_env,
            "PRETRADE_GUARD_CONFIG": str(config_path),
            "PRETRADE_GUARD_SERVER__PORT": str(guard_port),
        },
        log_path=log_file("guard"),
    )
    say(f"starting the guard on {guard_url} ...")
    start_and_wait_ok(
        guard,
        f"{guard_url}/healthz",
        GUARD_START_TIMEOUT_S,
        children,
        stop,
        "the guard did not answer /healthz",
    )
    answer = wait_until_ok(f"{guard_url}/readyz", READY_TIMEOUT_S, children, stop)
    if answer is not None and answer[0] == 200:
        say("the guard is ready: every account has fresh data")
    else:
        body = answer[1].decode(errors="replace")[:500] if answer else "no answer"
        say(f"warning: the guard is alive but not ready after {READY_TIMEOUT_S:.0f} s: {body}")

    bot_token = pick_token(guard_config, "decide")
    ops_token = pick_token(guard_config, "read")
    say()
    say("Try it (copy-paste):")
    say()
    say(curl_examples(guard_url, sim_url, bot_token, ops_token))
    say()
    if not args.console_logs:
        logs = " ".join(shlex.quote(str(log_dir / f"{n}.log")) for n in ("guard", "simulator"))
        say(f"logs: tail -f {logs}")
    say("Ctrl-C stops both.")

    while not stop.wait(POLL_INTERVAL_S):
        check_children(children)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return supervise(lambda stop, children: run(args, stop, children))


if __name__ == "__main__":
    sys.exit(main())
