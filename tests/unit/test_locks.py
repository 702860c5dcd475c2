"""The lock files: `make run` installs runtime.lock, `make check` installs dev.lock over it.

The Makefile counts a dev install as a runtime install too (it does not reinstall
runtime.lock after dev.lock), which holds only if dev.lock pins every runtime package at the
same version. `make lock` regenerates both from pyproject.toml; this catches a hand edit or a
one-sided regeneration.
"""

from __future__ import annotations

from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"


def pins(path: Path) -> dict[str, str]:
    """name -> version of each `name==version` line (continuation and comment lines skipped)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: not pinned: {line}"
            found[name.strip().lower().replace("_", "-")] = version.split(";")[0].strip()
    return found


def test_dev_lock_pins_every_runtime_package_at_the_same_version() -> None:
    runtime = pins(REQUIREMENTS / "runtime.lock")
    dev = pins(REQUIREMENTS / "dev.lock")
    assert runtime, "runtime.lock pins nothing"
    differing = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differing, f"runtime.lock vs dev.lock: {differing}"


def test_the_runtime_lock_has_no_dev_tool() -> None:
    runtime = pins(REQUIREMENTS / "runtime.lock")
    assert not {"pytest", "mypy", "ruff", "ccxt", "schemathesis", "hypothesis"} & runtime.keys()
