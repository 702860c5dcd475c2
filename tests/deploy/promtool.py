"""Running Debian's ``promtool`` from the repository root, as ``make alerts-check`` does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALERTS = "deploy/prometheus/alerts.yml"
ALERT_TESTS = "deploy/prometheus/alerts.test.yml"
PROMETHEUS_CONFIG = "deploy/prometheus/prometheus.yml"


def running_in_ci() -> bool:
    """CI systems set ``CI`` (``.ci/run`` exports ``CI=true``); "false"/"0" count as unset."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


class Promtool:
    """One promtool binary; each call runs it from the repository root and captures text."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *args],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def report(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code and both streams of a finished run, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
