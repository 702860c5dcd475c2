"""Export the OpenAPI document: ``python -m app.openapi_spec write|check``.

``openapi/openapi.json`` is generated from the app itself; ``check`` exits 1 when the file
no longer matches (a test does the same), so the published contract cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings
from app.main import create_app

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def current_spec() -> dict[str, Any]:
    spec = create_app(Settings()).openapi()
    spec["info"]["version"] = "see /metrics pretrade_guard_build_info"  # stable across releases
    return spec


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    text = render(current_spec())
    if command == "write":
        SPEC_PATH.parent.mkdir(parents=True, exist_ok=True)
        SPEC_PATH.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {SPEC_PATH}\n")
        return 0
    if command == "check":
        on_disk = SPEC_PATH.read_text(encoding="utf-8") if SPEC_PATH.exists() else ""
        if on_disk != text:
            sys.stderr.write(f"{SPEC_PATH} is out of date: run 'make openapi' and commit it\n")
            return 1
        return 0
    sys.stderr.write("usage: python -m app.openapi_spec write|check\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
