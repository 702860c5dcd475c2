"""The generation marker: a small file beside the kill-switch database that outlives it.

SQLite cannot tell "a new, empty database" from "a database whose file was deleted,
truncated, or lost its ``-wal`` file after a crash": each opens as a valid database with no
switches. The marker remembers, outside the database, how far the database had got: every
committed change bumps a generation counter inside the database, then rewrites the marker
with that generation and the number of engaged switches. At open, a database behind its
marker (or missing, or without its tables) has lost committed changes, and the guard refuses
to start rather than run without switches an operator engaged.

The marker is written atomically (a temporary file, fsynced, renamed over the old one, and
the directory fsynced), so a crash leaves either the old marker or the new one. It is
written *after* the commit: a crash in between leaves the database one generation ahead,
which is safe (nothing was lost) and accepted.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.errors import DataError

#: File name of the marker, in the data directory beside the database.
MARKER_NAME = "pretrade-guard.marker.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Marker:
    """How far the database had got: its change generation and its engaged switches."""

    generation: int
    engaged: int
    written_at_ms: int = 0


def read_marker(path: Path) -> Marker | None:
    """The marker at ``path``; ``None`` when there is none (a first start)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"cannot read the marker file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
        generation, engaged = data["generation"], data["engaged"]
        written = data.get("written_at_ms", 0)
        values = (generation, engaged, written)
        if data.get("format") != _FORMAT or not all(type(v) is int and v >= 0 for v in values):
            raise ValueError("unexpected fields")
    except (ValueError, KeyError, TypeError):
        raise DataError(
            f"the marker file {path} is damaged (not the JSON this guard writes), so the "
            "guard cannot tell whether kill switches were lost"
        ) from None
    return Marker(generation=generation, engaged=engaged, written_at_ms=written)


def write_marker(path: Path, marker: Marker) -> None:
    """Replace the marker atomically and durably (fsync of the file and of its directory)."""
    body = {
        "format": _FORMAT,
        "generation": marker.generation,
        "engaged": marker.engaged,
        "written_at_ms": marker.written_at_ms or time.time_ns() // 1_000_000,
        "about": (
            "Written by pretrade-guard after every change to its database. If the database "
            "falls behind this file, the guard refuses to start. Do not edit or delete."
        ),
    }
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(json.dumps(body, indent=2).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
