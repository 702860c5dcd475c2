"""Shared fixtures for every test package, and loopback-only networking for the whole run."""

from __future__ import annotations

import os

import pytest

from tests.support.docker_engine import SUMMARY

pytest_plugins = ("tests.support.guard_fixtures", "tests.support.redis_server")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pytest_configure(config: pytest.Config) -> None:
    # Tests only talk to processes on loopback. A proxy set in the environment (CI machines
    # sometimes have one) must never see that traffic: httpx, urllib and the guard and
    # simulator subprocesses all honour NO_PROXY.
    for name in ("NO_PROXY", "no_proxy"):
        present = [h for h in os.environ.get(name, "").split(",") if h]
        os.environ[name] = ",".join([*present, *(h for h in _LOOPBACK if h not in present)])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:  # the image test's size and timings
        terminalreporter.section("container image")
        for line in SUMMARY:
            terminalreporter.write_line(line)
