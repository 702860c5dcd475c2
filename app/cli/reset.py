"""``pretrade-guard reset-kill-switches``: start over with no kill switches, deliberately.

Only when the guard refuses to start because its kill-switch database is missing, damaged,
behind its marker or holds a row it cannot apply. The old files are renamed (kept for
inspection, never deleted), a new empty database is created, and its audit log starts with a
``kill_switches.reset`` entry naming who reset it, why, and what was wrong.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from app.cli.output import emit_json


@click.command("reset-kill-switches")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $PRETRADE_GUARD_CONFIG); its server.data_dir is reset.",
)
@click.option("--actor", required=True, help="Who resets (recorded in the audit log).")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reset_kill_switches(config_file: Path | None, actor: str, reason: str, as_json: bool) -> None:
    """Start with NO kill switches after the guard refused a lost or damaged database.

    Run it with the guard stopped, on the same data directory. It does nothing (exit 1)
    when the database is fine: release switches with `pretrade-guard admin release`.
    Exit 0: reset done; 1: nothing to reset; 2: invalid configuration or arguments.
    """
    from app.config import load_settings
    from app.errors import ConfigError, DataError
    from app.state.killswitch_db import reset_database

    if not actor.strip() or not reason.strip():
        raise click.BadParameter("--actor and --reason must not be blank")
    try:
        data_dir = load_settings(config_file).server.data_dir
        done = reset_database(
            data_dir, actor=actor, reason=reason, now_ms=time.time_ns() // 1_000_000
        )
    except (ConfigError, DataError) as exc:
        click.echo(f"pretrade-guard: {exc}", err=True)
        raise SystemExit(2) from None
    if done is None:
        message = (
            f"nothing to reset: the kill-switch database in {data_dir} is intact. "
            "Release switches with `pretrade-guard admin release`."
        )
        if as_json:
            emit_json({"reset": False, "data_dir": str(data_dir), "message": message})
        else:
            click.echo(message, err=True)
        raise SystemExit(1)
    if as_json:
        emit_json(
            {
                "reset": True,
                "data_dir": str(data_dir),
                "problem": done.problem,
                "kept_aside": [str(p) for p in done.kept_aside],
                "audit_id": done.audit_id,
            }
        )
        return
    click.echo(f"RESET: {data_dir} now holds an empty kill-switch database.")
    click.echo(
        "NO kill switches are engaged: once the guard runs, engage again any that must hold "
        "(pretrade-guard admin engage)."
    )
    click.echo(f"was: {done.problem.splitlines()[0]}")
    for path in done.kept_aside:
        click.echo(f"kept aside: {path}")
    click.echo(f"audited as kill_switches.reset (audit id {done.audit_id}) by {actor}")
