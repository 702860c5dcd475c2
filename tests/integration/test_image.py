"""The real container image: built from the Dockerfile on a private Docker engine and run.

No registry is needed: the base is a minimal Debian with Python from Debian packages (see
tests/support/docker_engine.py), passed as ``--build-arg PYTHON_IMAGE``; the default base
(the official Python image) is what users with a registry build from. The image then runs the
guard against the simulator with host networking (loopback only) and must: report healthy
through its own HEALTHCHECK, answer ``/readyz`` and ``/can-trade``, run as the non-root user,
stop with exit 0 on SIGTERM, and hold no secret it was given and no dev dependency.

Skipped only outside CI when docker/dockerd/debootstrap are not installed; in CI (CI=true) a
missing tool or a failing engine is a failure.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.docker_engine import (
    SUMMARY,
    BuiltImage,
    PrivateDockerd,
    build_image,
    can_run_as_root,
    contains_any,
    in_ci,
    make_tempdir,
    missing_tools,
    stream_stdout,
)
from tests.support.guard import guard_config, wait_until
from tests.support.guard_fixtures import account_entry
from tests.support.processes import REPO_ROOT, SimulatorProcess, free_port
from tests.support.sim_scenarios import HEALTHY

# The first build on a machine runs debootstrap (minutes); later local runs use its cache.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SERVICE_UID = "10001"
HEALTHY_WITHIN_S = 90.0  # HEALTHCHECK --interval=10s --start-period=20s: the first probe at 10 s
READY_WITHIN_S = 30.0
STOP_WITHIN_S = 30
#: What the venv may hold besides the runtime lock: the project and venv's own installers.
ALLOWED_EXTRA = {"pretrade-guard", "pip", "setuptools", "wheel"}
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m; "
    "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
)


def normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def lock_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            names.add(normalize(line.split("==", 1)[0]))
    return names


@pytest.fixture(scope="module")
def engine() -> Iterator[PrivateDockerd]:
    missing = missing_tools()
    if missing and not in_ci():
        pytest.skip(f"not installed: {', '.join(missing)} (Debian: docker.io, debootstrap)")
    assert not missing, f"CI must have {missing} (.ci/run installs docker.io and debootstrap)"
    assert can_run_as_root(), (
        "the image test starts a private dockerd: run it as root or with passwordless sudo"
    )
    started = time.monotonic()
    dockerd = PrivateDockerd(make_tempdir())
    try:
        dockerd.start()
        yield dockerd
    finally:
        dockerd.stop()
        SUMMARY.append(
            f"image step: {time.monotonic() - started:.0f} s in all (private dockerd started,"
            " image built and tested, everything removed)"
        )
    assert not dockerd.root.exists(), f"{dockerd.root} was left behind"


@pytest.fixture(scope="module")
def reported(engine: PrivateDockerd) -> BuiltImage:
    """The image, built; its size and build times go to the run's summary (the CI log)."""
    image = build_image(engine, engine.root)
    base = "from the cache" if image.base_from_cache else "debootstrap"
    SUMMARY.append(
        f"image {image.tag}: {image.size_bytes / 1e6:.0f} MB; Debian base "
        f"{image.seconds_base:.0f} s ({base}), wheels and build {image.seconds_build:.0f} s"
    )
    return image


def inspect(engine: PrivateDockerd, name: str, template: str) -> str:
    return engine.docker("inspect", "--format", template, name)


def wait_healthy(engine: PrivateDockerd, name: str) -> str:
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while True:
        state: dict[str, Any] = json.loads(inspect(engine, name, "{{json .State}}"))
        health = (state.get("Health") or {}).get("Status", "none")
        if health in ("healthy", "unhealthy") or not state.get("Running"):
            return str(health) if state.get("Running") else f"exited {state.get('ExitCode')}"
        if time.monotonic() > deadline:
            return str(health)
        time.sleep(1)


def test_the_image_serves_the_simulator_as_non_root_and_stops_cleanly_on_sigterm(
    engine: PrivateDockerd,
    reported: BuiltImage,
    shared_simulator: SimulatorProcess,
    tmp_path: Path,
) -> None:
    api_secret = f"image-test-secret-{secrets.token_hex(16)}"
    bot_token = f"image-test-bot-{secrets.token_hex(16)}"
    admin_token = f"image-test-admin-{secrets.token_hex(16)}"
    shared_simulator.control.set_credentials(HEALTHY.id, api_secret=api_secret)
    port = free_port()
    config = guard_config(
        {"alpha": account_entry(shared_simulator, HEALTHY, api_secret=api_secret)}, port=port
    )
    config["auth"]["tokens"] = [
        {"name": "bot", "token": bot_token, "scopes": ["decide"]},
        {"name": "admin", "token": admin_token, "scopes": ["admin", "read", "decide"]},
    ]
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "guard.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    config_dir.chmod(0o755)  # the service user (uid 10001) reads the mounted config
    (config_dir / "guard.yaml").chmod(0o644)

    name = f"{engine.name}-guard"
    # The image's ENV listens on 0.0.0.0:8080; on the host's network the test keeps loopback
    # and a free port. PRETRADE_GUARD_SERVER__PORT is what the HEALTHCHECK probes too.
    engine.docker(
        "run", "--detach", "--name", name, "--network", "host",
        "--volume", f"{config_dir}:/config:ro",
        "--env", "PRETRADE_GUARD_CONFIG=/config/guard.yaml",
        "--env", "PRETRADE_GUARD_SERVER__HOST=127.0.0.1",
        "--env", f"PRETRADE_GUARD_SERVER__PORT={port}",
        reported.tag,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        health = wait_healthy(engine, name)
        assert health == "healthy", (
            f"HEALTHCHECK: {health}\n{engine.docker('logs', '--tail', '40', name)}"
        )

        def ready() -> bool:
            return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200

        wait_until(ready, timeout=READY_WITHIN_S, what="the container to be ready")
        answer = httpx.get(
            f"{base_url}/can-trade",
            params={"account": "alpha"},
            headers={"Authorization": f"Bearer {bot_token}"},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["allowed"] is True, answer.text

        assert inspect(engine, name, "{{.Config.User}}") == f"{SERVICE_UID}:{SERVICE_UID}"
        status = engine.docker("exec", name, "cat", "/proc/1/status")
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert uids == [SERVICE_UID] * 4, f"the guard (PID 1) runs as uids {uids}"

        engine.docker("kill", "--signal", "TERM", name)
        exit_code = engine.docker("wait", name, timeout=STOP_WITHIN_S)
        assert exit_code == "0", (
            f"SIGTERM ended the guard with {exit_code}\n{engine.docker('logs', name)}"
        )
        assert "Traceback" not in engine.docker("logs", name)

        # Everything the container holds now (image layers plus what the guard wrote while
        # it ran: database, caches) and the image's metadata: none of the secrets it was given,
        # and not the wheel server the build installed from.
        needles = [s.encode() for s in (api_secret, bot_token, admin_token)]
        leaked = contains_any(stream_stdout(engine.docker_argv("export", name)), needles)
        assert not leaked, f"secrets in the container's filesystem: {leaked}"
        metadata = engine.docker("image", "inspect", reported.tag) + engine.docker(
            "history", "--no-trunc", reported.tag
        )
        for needle in (api_secret, bot_token, admin_token, reported.wheel_url.rstrip("/")):
            assert needle not in metadata, f"{needle!r} is in the image's metadata"
    finally:
        engine.docker("rm", "--force", name)


def test_the_image_holds_the_runtime_lock_and_no_dev_dependency(
    engine: PrivateDockerd, reported: BuiltImage
) -> None:
    listing = engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", reported.tag, "-c",
        LIST_DISTRIBUTIONS,
    )  # fmt: skip
    installed = {normalize(line) for line in listing.splitlines() if line.strip()}
    runtime = lock_names(REPO_ROOT / "requirements" / "runtime.lock")
    dev_only = lock_names(REPO_ROOT / "requirements" / "dev.lock") - runtime - ALLOWED_EXTRA
    assert {"pytest", "mypy", "ccxt", "schemathesis", "ruff"} <= dev_only  # the check has teeth
    assert not installed & dev_only, f"dev dependencies in the image: {installed & dev_only}"
    assert installed - runtime <= ALLOWED_EXTRA, f"not in the runtime lock: {installed - runtime}"
    assert "pretrade-guard" in installed
    assert runtime <= installed, f"runtime dependencies missing: {runtime - installed}"
