"""The container's start-up contract, checked without a Docker engine.

The Dockerfile's final ``CMD`` and its ``HEALTHCHECK`` are read from the file and run exactly as
written, with the virtualenv's bin directory first on PATH (the image puts /opt/venv/bin there).
The guard they start must answer ``/healthz``, the healthcheck must pass against it and fail once
it is gone, and SIGTERM (``docker stop``) must end it cleanly. The image's
``PRETRADE_GUARD_SERVER__HOST=0.0.0.0`` is left out on purpose: tests bind loopback only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from tests.support.guard import GuardProcess, guard_config
from tests.support.guard_fixtures import account_entry
from tests.support.processes import REPO_ROOT, SimulatorProcess, free_port
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

Instruction = tuple[str, str]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: continuations joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from + 1 :]


def last_arguments(keyword: str) -> str:
    found = [arguments for kw, arguments in final_stage() if kw == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def exec_form(arguments: str, what: str) -> list[str]:
    """The argv of an exec-form (JSON array) instruction; shell form would not get signals."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        argv = None
    assert isinstance(argv, list), f"{what} must use the exec (JSON array) form: {arguments}"
    assert argv, f"{what} is empty"
    assert all(isinstance(arg, str) for arg in argv), f"{what} must be a list of strings"
    return argv


def container_cmd() -> list[str]:
    return exec_form(last_arguments("CMD"), "CMD")


def container_healthcheck() -> list[str]:
    arguments = last_arguments("HEALTHCHECK")
    match = re.fullmatch(r"(?:--[a-z-]+=\S+\s+)*CMD\s+(.+)", arguments, re.DOTALL)
    assert match, f"HEALTHCHECK must be [OPTIONS] CMD [...]: {arguments}"
    return exec_form(match.group(1), "HEALTHCHECK CMD")


def run_healthcheck(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=15, check=False
    )


def test_container_cmd_serves_healthz_and_its_healthcheck_follows_it(
    shared_simulator: SimulatorProcess, tmp_path: Path
) -> None:
    cmd, healthcheck = container_cmd(), container_healthcheck()
    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    assert shutil.which(cmd[0], path=path), f"{cmd[0]!r} is not installed in {bin_dir}"
    port = free_port()
    # In the image the port comes from the environment (ENV PRETRADE_GUARD_SERVER__PORT); the
    # HEALTHCHECK reads the same variable, so a re-ported container stays healthy.
    env = {"PATH": path, "PRETRADE_GUARD_SERVER__PORT": str(port)}
    config = guard_config({"alpha": account_entry(shared_simulator, HEALTHY)}, port=port)
    guard = GuardProcess(config, tmp_path, env=env, command=cmd)

    try:
        guard.start()
        assert httpx.get(f"{guard.base_url}/healthz", timeout=5).status_code == 200
        probe = run_healthcheck(healthcheck, env)
        assert probe.returncode == 0, f"HEALTHCHECK failed against a live guard:\n{probe.stderr}"
    finally:
        exit_code = guard.stop()

    assert exit_code == 0, f"SIGTERM (docker stop) did not end the guard cleanly:\n{guard.logs()}"
    probe = run_healthcheck(healthcheck, env)
    assert probe.returncode != 0, "HEALTHCHECK passed with no guard listening"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (last match wins)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # a dir hides its files
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        globs = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch(candidate, glob) for candidate in candidates for glob in globs):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_everything_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    copies = [args for keyword, args in instructions if keyword == "COPY" and "--from" not in args]
    sources = [
        source for args in copies for source in args.split()[:-1] if not source.startswith("--")
    ]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        matches = sorted(REPO_ROOT.glob(source))
        assert matches or any(c in source for c in "*?["), f"COPY source {source} is missing"
        for match in matches:
            relative = match.relative_to(REPO_ROOT).as_posix()
            assert not dockerignored(relative, patterns), f".dockerignore excludes {relative}"
