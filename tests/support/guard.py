"""Run the real guard (``python -m app``) as a subprocess on loopback, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]

BOT_TOKEN = "test-bot-token-0001"
READ_TOKEN = "test-read-token-0002"
ADMIN_TOKEN = "test-admin-token-0003"

#: Poll fast and go stale fast so tests see changes within a second or two.
FAST_POLL: dict[str, Any] = {
    "status_interval_s": 0.2,
    "snapshot_interval_s": 0.3,
    "timeout_s": 1.0,
    "backoff_base_s": 0.1,
    "backoff_max_s": 1.0,
    "auth_backoff_s": 2.0,
    "jitter_fraction": 0.1,
}
FAST_POLICY: dict[str, Any] = {"max_status_age_s": 1.5, "max_snapshot_age_s": 2.0}


def guard_config(
    accounts: Mapping[str, Mapping[str, Any]],
    *,
    port: int,
    poll: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete guard config with the three test tokens."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "log_format": "json"},
        "auth": {
            "tokens": [
                {"name": "bot", "token": BOT_TOKEN, "scopes": ["decide"]},
                {"name": "reader", "token": READ_TOKEN, "scopes": ["read"]},
                {"name": "admin", "token": ADMIN_TOKEN, "scopes": ["admin", "read", "decide"]},
            ]
        },
        "poll": dict(FAST_POLL, **(poll or {})),
        "policy": dict(FAST_POLICY, **(policy or {})),
        "accounts": {name: dict(acc) for name, acc in accounts.items()},
    }
    config.update(extra or {})
    return config


class GuardProcess:
    """The guard started with ``python -m app`` and a config file written to ``workdir``."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.config = dict(config)
        # Each guard keeps its database (kill switches, audit) in the test's directory, not in
        # the repository's ./var, unless the test chose a data_dir itself.
        self.config["server"] = {"data_dir": str(workdir / "data"), **self.config["server"]}
        self.port = int(self.config["server"]["port"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / f"guard-{self.port}.yaml"
        self.log_path = workdir / f"guard-{self.port}.log"
        self.command = command or [sys.executable, "-m", "app"]
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> GuardProcess:
        self.config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        env = {**os.environ, "PRETRADE_GUARD_CONFIG": str(self.config_path), **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            try:
                wait_until(self._healthy, timeout=20, what="guard /healthz")
            except BaseException:
                self.stop()  # never leave a half-started guard running
                raise
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"guard exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, token: str | None = BOT_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=5)

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """Value of one sample in ``/metrics`` (None when absent)."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=5).text
        return sample_value(text, name, labels or {})


def sample_value(text: str, name: str, labels: Mapping[str, str]) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
