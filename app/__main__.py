"""``python -m app [COMMAND]``: the ``pretrade-guard`` command (serve when no command is given;
``app/server.py``)."""

from __future__ import annotations

from app.cli import build_cli
from app.server import serve


def main() -> None:
    """``pretrade-guard [COMMAND]``: serve when no command is given."""
    build_cli(serve)(prog_name="pretrade-guard")


if __name__ == "__main__":
    main()
