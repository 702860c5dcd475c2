"""``pip install ./clients/python`` works from a clone and installs a typed, licensed package.

pip builds the distribution the way a user's pip does (an isolated build environment with
setuptools from the configured package index) into a temporary target directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

pytestmark = pytest.mark.integration


def test_pip_install_from_the_clone(tmp_path: Path) -> None:
    # A copy, so the build leaves nothing behind in the worktree.
    source = tmp_path / "clients-python"
    shutil.copytree(
        CLIENT, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    package = target / "pretrade_guard_client"
    assert (package / "py.typed").is_file()
    assert (package / "ccxt.py").is_file()
    (dist_info,) = target.glob("pretrade_guard_client-*.dist-info")
    metadata = Parser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
    assert metadata["Name"] == "pretrade-guard-client"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("Requires-Dist") == ["httpx>=0.27", 'ccxt>=4.4; extra == "ccxt"']
    assert "Apache License" in next(dist_info.rglob("LICENSE")).read_text(encoding="utf-8")

    # The installed copy imports (ahead of the editable one of the dev venv) and works offline.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pretrade_guard_client as c; print(c.__file__); "
            "print(c.Order('alpha', 'BTCUSDT', 'BUY', '1E+1').fields()['quantity'])",
        ],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(package / "__init__.py"), "10"]
