"""``promtool`` for the deployment checks: skipped on a laptop without it, an error under CI."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.promtool import Promtool, running_in_ci


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    path = shutil.which("promtool")
    if path is None:
        missing = "promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus)"
        if running_in_ci():
            pytest.fail(f"{missing}; CI is set, so the Prometheus checks must run, not skip")
        pytest.skip(f"{missing}; these checks run in CI")
    return Promtool(path)
