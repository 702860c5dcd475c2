"""Real processes on loopback for integration tests: the exchange simulator (and free ports).

``SimulatorProcess`` runs ``python -m simulator`` exactly as an operator would, waits until
``/_sim/health`` answers, and stops it with SIGTERM (SIGKILL only if it hangs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import httpx

from tests.support.sim_control import SimControl

__all__ = ["REPO_ROOT", "SimControl", "SimulatorProcess", "StartSimulator", "free_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SimulatorProcess:
    """The exchange simulator as a subprocess; use as a context manager or start()/close()."""

    def __init__(
        self,
        scenario: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 15.0,
    ) -> None:
        self.scenario = scenario
        self.port = free_port() if port is None else port
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self._owns_log = log_path is None
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="pretrade-sim-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.control = SimControl(self.base_url)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "simulator",
            "--scenario",
            str(self.scenario),
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def start(self) -> Self:
        """Start the process and wait until it answers ``/_sim/health``."""
        if self.running:
            raise RuntimeError("simulator already running")
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(), cwd=REPO_ROOT, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    code = None if self._process is None else self._process.returncode
                    self._release()
                    raise RuntimeError(f"simulator exited with {code}:\n{self.logs()}")
                try:
                    if client.get("/_sim/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"simulator not healthy after {self.startup_timeout_s} s:\n{self.logs()}"
        )

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()
        return process.returncode

    def restart(self) -> Self:
        """Stop and start again on the same port (state back to the scenario)."""
        self.stop()
        return self.start()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Stop the process, close the control client, delete a temporary log."""
        self.stop()
        self.control.close()
        if self._owns_log:
            self.log_path.unlink(missing_ok=True)

    def _release(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class StartSimulator(Protocol):
    """The ``start_simulator`` fixture: start a simulator (stopped at teardown)."""

    def __call__(
        self, scenario: Path = ..., extra_args: Sequence[str] = ...
    ) -> SimulatorProcess: ...
