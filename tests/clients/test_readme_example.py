"""The README's client quickstart runs as written against a real guard (its URL and token
swapped for the test guard's)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.support.guard import BOT_TOKEN, GuardProcess

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.integration


def quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Client for bots", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block in the README's 'Client for bots' section"
    return match.group(1)


def test_the_readme_quickstart_is_ten_lines_and_runs(guard: GuardProcess) -> None:
    code = quickstart()
    assert len(code.strip().splitlines()) <= 10
    assert "http://127.0.0.1:8080" in code
    assert "demo-bot-token" in code
    code = code.replace("http://127.0.0.1:8080", guard.base_url).replace(
        "demo-bot-token", BOT_TOKEN
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (our own README)
    alpha, charlie = out.getvalue().splitlines()
    assert alpha.startswith("alpha may send it; log ")
    assert charlie.startswith("charlie denied: (")
    assert "MARGIN_RATIO_HIGH" in charlie
