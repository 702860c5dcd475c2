"""``pretrade-guard check-config [FILE]``: validate a configuration as a start would.

The same loader (``load_settings``) and the same checks as a real start
(``create_checked_app``: every validator, the exchange clients' options, at least one
account, and a read-only look at the kill-switch database); nothing is served and nothing
is called. Prints what the guard would run with; names and scopes only, never a secret.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.output import emit_json, safe_url, table

if TYPE_CHECKING:
    from app.config import Settings

# The configuration and the app are imported when the command runs: `pretrade-guard admin`
# should not pay for loading them.


def summary(settings: Settings, source: str) -> dict[str, Any]:
    """What the guard would run with. Only names, scopes, URLs without credentials, numbers."""
    from app.api.admin_schemas import limits_dict

    accounts = {}
    for name, account in settings.accounts.items():
        poll = settings.poll_for(name)
        policy = settings.policy_for(name)
        accounts[name] = {
            "exchange": account.exchange,
            "base_url": safe_url(account.base_url),
            "status_interval_s": poll.status_interval_s,
            "snapshot_interval_s": poll.snapshot_interval_s,
            "policy": {
                "max_status_age_s": policy.max_status_age_s,
                "max_snapshot_age_s": policy.max_snapshot_age_s,
                "reduce_only_statuses": sorted(policy.reduce_only_statuses),
                **limits_dict(policy),
            },
        }
    return {
        "valid": True,
        "config": source,
        "server": {
            "listen": f"{settings.server.host}:{settings.server.port}",
            "data_dir": str(settings.server.data_dir),
        },
        "accounts": accounts,
        "tokens": [
            {"name": token.name, "scopes": sorted(token.scopes)} for token in settings.auth.tokens
        ],
        "public_health": settings.auth.public_health,
        "public_metrics": settings.auth.public_metrics,
        "webhooks": [
            {
                "name": hook.name,
                "url": safe_url(hook.url),
                "event_types": None if hook.event_types is None else sorted(hook.event_types),
                "accounts": None if hook.accounts is None else sorted(hook.accounts),
            }
            for hook in settings.webhooks
        ],
    }


def _rate(value: dict[str, Any] | None) -> str | None:
    return None if value is None else f"{value['max_orders']}/{value['window_s']}s"


def _show(found: dict[str, Any]) -> None:
    click.echo(f"OK: {found['config']} is a valid configuration")
    click.echo(f"listens on {found['server']['listen']}, data in {found['server']['data_dir']}")
    accounts = found["accounts"]
    click.echo(f"\naccounts ({len(accounts)}):")
    click.echo(
        table(
            ["ACCOUNT", "EXCHANGE", "BASE_URL", "STATUS_POLL", "SNAPSHOT_POLL"],
            [
                [
                    name,
                    a["exchange"],
                    a["base_url"],
                    f"{a['status_interval_s']}s",
                    f"{a['snapshot_interval_s']}s",
                ]
                for name, a in accounts.items()
            ],
        )
    )
    click.echo("\npolicies (- = no limit):")
    click.echo(
        table(
            [
                "ACCOUNT",
                "MAX_AGE(STATUS/SNAPSHOT)",
                "MAX_ORDER",
                "MAX_POSITION",
                "MIN_AVAILABLE",
                "MARGIN_RATIO",
                "LEVERAGE",
                "ORDER_RATE",
                "SYMBOL_RATE",
                "REDUCE_ONLY_IN",
            ],
            [
                [
                    name,
                    f"{p['max_status_age_s']}s/{p['max_snapshot_age_s']}s",
                    p["max_order_notional"],
                    p["max_position_notional"],
                    p["min_available_after_order"],
                    p["max_margin_ratio"],
                    p["default_leverage"],
                    _rate(p["order_rate"]),
                    _rate(p["symbol_order_rate"]),
                    ",".join(p["reduce_only_statuses"]) or None,
                ]
                for name, p in ((n, a["policy"]) for n, a in accounts.items())
            ],
        )
    )
    tokens = found["tokens"]
    click.echo(f"\ntokens ({len(tokens)}; secrets not shown):")
    click.echo(table(["NAME", "SCOPES"], [[t["name"], ",".join(t["scopes"])] for t in tokens]))
    public = [n for n in ("health", "metrics") if found[f"public_{n}"]]
    click.echo(f"without a token: {', '.join(public) or 'nothing'}")
    if found["webhooks"]:
        click.echo(f"\nwebhooks ({len(found['webhooks'])}):")
        click.echo(
            table(
                ["NAME", "URL", "EVENTS", "ACCOUNTS"],
                [
                    [
                        w["name"],
                        w["url"],
                        ",".join(w["event_types"]) if w["event_types"] else "all",
                        ",".join(w["accounts"]) if w["accounts"] else "all",
                    ]
                    for w in found["webhooks"]
                ],
            )
        )


@click.command("check-config")
@click.argument(
    "file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=False)
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_config(file: Path | None, as_json: bool) -> None:
    """Validate a configuration exactly as a start would, without starting the guard.

    FILE defaults to $PRETRADE_GUARD_CONFIG; PRETRADE_GUARD_<SECTION>__<FIELD> variables
    apply as at a start. Prints the accounts, exchanges, policies, and the tokens' names and
    scopes (never a secret). Exit 0: valid; 2: invalid (the error says why).
    """
    from app.config import load_settings
    from app.errors import ConfigError, DataError
    from app.logs import configure_logging
    from app.main import create_checked_app

    # Warnings (a world-readable secret file) go to stderr as readable lines.
    configure_logging("console", "warning")
    logging.getLogger("app").setLevel(logging.WARNING)

    source = str(file) if file is not None else f"${CONFIG_ENV} (not set)"
    if file is None and _env_file() is not None:
        source = str(_env_file())
    try:
        settings = load_settings(file)
        create_checked_app(settings)
    except (ConfigError, DataError) as exc:
        if as_json:
            emit_json({"valid": False, "config": source, "error": str(exc)})
        else:
            click.echo(f"INVALID: {source}\n{exc}", err=True)
        raise SystemExit(2) from None
    found = summary(settings, source)
    if as_json:
        emit_json(found)
    else:
        _show(found)


CONFIG_ENV = "PRETRADE_GUARD_CONFIG"  # app.config.CONFIG_ENV, without importing it


def _env_file() -> Path | None:
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None
