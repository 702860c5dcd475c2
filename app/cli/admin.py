"""``pretrade-guard admin ...``: kill switches, the audit log, limits and account state of a
running guard, through its HTTP API (``/admin/*`` needs the ``admin`` scope, ``/accounts``
the ``read`` scope).

Built for an incident: short commands, the scope of a switch always spelled out, and after
every change the full list of what is now in force. Tables for people, ``--json`` for
scripts; exit codes in ``guard_client.py`` (and ``--help``).
"""

from __future__ import annotations

import functools
import getpass
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from app.cli.guard_client import (
    DEFAULT_URL,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    URL_ENV,
    GuardCallError,
    GuardClient,
    read_token,
)
from app.cli.output import NONE, age, emit_json, table, when

ACTOR_ENV = "PRETRADE_GUARD_ACTOR"
_MODES = {"halt": "HALT", "reduce-only": "REDUCE_ONLY"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


@dataclass(frozen=True)
class Session:
    guard: GuardClient
    as_json: bool

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self.guard.call(method, path, **kwargs)
        except GuardCallError as exc:
            if self.as_json:
                emit_json({"error": exc.error})
            raise


def guard_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Adds the connection options every admin command takes and opens the session."""

    @click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        help=f"The guard's base URL (or ${URL_ENV}).",
    )
    @click.option(
        "--token-file",
        envvar=TOKEN_FILE_ENV,
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"File holding the bearer token (or ${TOKEN_FILE_ENV}; else ${TOKEN_ENV}).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
    @click.option(
        "--timeout",
        type=click.FloatRange(0.1, 120),
        default=5.0,
        show_default=True,
        help="Seconds to wait for the guard.",
    )
    @functools.wraps(fn)
    def wrapper(
        url: str, token_file: Path | None, as_json: bool, timeout: float, **kwargs: Any
    ) -> None:
        with GuardClient(url, read_token(token_file), timeout) as guard:
            fn(Session(guard, as_json), **kwargs)

    return wrapper


@click.group("admin")
def admin() -> None:
    """Operate a running guard: kill switches, audit log, limits, account state.

    \b
    Token: --token-file FILE, $PRETRADE_GUARD_TOKEN_FILE or $PRETRADE_GUARD_TOKEN (never an
    argument: arguments end up in shell history). URL: --url or $PRETRADE_GUARD_URL.
    Actor recorded in the audit log: --actor, $PRETRADE_GUARD_ACTOR or your login name.

    \b
    Exit codes: 0 done; 2 wrong usage or no token; 3 guard unreachable;
    4 token refused (401/403); 5 request refused (other 4xx); 6 guard failed (5xx).
    """


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER and no passwd entry (some containers)
        return None


def _actor_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--actor",
        envvar=ACTOR_ENV,
        default=_login_name,
        required=True,
        show_default="$PRETRADE_GUARD_ACTOR or your login name",
        help="Who does this (audit log).",
    )(fn)


def _reason_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--reason", "-r", required=True, help="Why (shown to bots and in the audit log)."
    )(fn)


# --------------------------------------------------------------------------- kill switches


def _target(switch: dict[str, Any]) -> str:
    scope = switch["scope"]
    if scope == "global":
        return "ALL ACCOUNTS"
    if scope == "account":
        return f"account {switch['account']} (all symbols)"
    return f"account {switch['account']}, symbol {switch['symbol']} only"


def _switch_rows(switches: list[dict[str, Any]]) -> str:
    return table(
        ["ID", "MODE", "APPLIES TO", "BY", "REASON", "SINCE (UTC)", "EXPIRES (UTC)"],
        [
            [
                s["id"],
                s["mode"],
                _target(s),
                s["actor"],
                s["reason"],
                when(s["created_at_ms"]),
                when(s["expires_at_ms"]) if s["expires_at_ms"] else "never",
            ]
            for s in switches
        ],
    )


def _in_force(session: Session) -> list[dict[str, Any]]:
    switches: list[dict[str, Any]] = session.call("GET", "/admin/kill-switches")["kill_switches"]
    return switches


def _show_in_force(switches: list[dict[str, Any]]) -> None:
    if not switches:
        click.echo("now in force: NO kill switch is engaged")
        return
    click.echo(f"now in force ({len(switches)} kill switch(es)):")
    click.echo(_switch_rows(switches))


@admin.command("switches")
@click.option("--account", help="Only those covering this account (global ones included).")
@guard_command
def list_switches(session: Session, account: str | None) -> None:
    """List the engaged kill switches."""
    params = {"account": account} if account else None
    switches = session.call("GET", "/admin/kill-switches", params=params)["kill_switches"]
    if session.as_json:
        emit_json({"kill_switches": switches})
        return
    _show_in_force(switches)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` as seconds."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None:
        raise click.BadParameter(f"{text!r}: use e.g. 90s, 15m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = match.groups()
    total = (
        int(days or 0) * 86400
        + int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + float(seconds or 0)
    )
    if total < 1:
        raise click.BadParameter(f"{text!r}: at least 1 s")
    return total


@admin.command("engage")
@click.argument("scope", type=click.Choice(["global", "account", "symbol"]))
@click.argument("target", nargs=-1)
@click.option(
    "--mode",
    "-m",
    required=True,
    type=click.Choice(sorted(_MODES), case_sensitive=False),
    help="halt: deny every order. reduce-only: only orders that really shrink a position.",
)
@_reason_option
@_actor_option
@click.option(
    "--expires-in", "expires_in", help="Release by itself after this long (90s, 15m, 2h, 1d)."
)
@guard_command
def engage(
    session: Session,
    scope: str,
    target: tuple[str, ...],
    mode: str,
    reason: str,
    actor: str,
    expires_in: str | None,
) -> None:
    """Engage a kill switch. The scope is always spelled out:

    \b
      engage global                   --mode halt --reason "..."
      engage account ACCOUNT          --mode reduce-only --reason "..."
      engage symbol ACCOUNT SYMBOL    --mode halt --reason "..." --expires-in 30m
    """
    wanted = {"global": 0, "account": 1, "symbol": 2}[scope]
    if len(target) != wanted:
        usage = {
            "global": "global",
            "account": "account ACCOUNT",
            "symbol": "symbol ACCOUNT SYMBOL",
        }
        raise click.UsageError(f"scope {scope} takes: engage {usage[scope]}")
    body: dict[str, Any] = {
        "scope": scope,
        "mode": _MODES[mode.lower()],
        "actor": actor,
        "reason": reason,
    }
    if target:
        body["account"] = target[0]
    if len(target) == 2:
        body["symbol"] = target[1]
    if expires_in is not None:
        body["expires_in_s"] = parse_duration(expires_in)
    switch = session.call("POST", "/admin/kill-switches", json=body)
    in_force = _in_force(session)
    if session.as_json:
        emit_json({"engaged": switch, "kill_switches": in_force})
        return
    expiry = f"until {when(switch['expires_at_ms'])}" if switch["expires_at_ms"] else "no expiry"
    click.echo(
        f"ENGAGED {switch['mode']} on {_target(switch)}: {switch['id']}, by {switch['actor']}, "
        f"{expiry}"
    )
    _show_in_force(in_force)


@admin.command("release")
@click.argument("switch_id")
@_reason_option
@_actor_option
@guard_command
def release(session: Session, switch_id: str, reason: str, actor: str) -> None:
    """Release an engaged kill switch by its id (see `switches`)."""
    released = session.call(
        "DELETE", f"/admin/kill-switches/{switch_id}", json={"actor": actor, "reason": reason}
    )
    in_force = _in_force(session)
    if session.as_json:
        emit_json({"released": released, "kill_switches": in_force})
        return
    switch = released["kill_switch"]
    click.echo(
        f"RELEASED {switch['mode']} on {_target(switch)}: {switch['id']}, by "
        f"{released['released_by']}"
    )
    _show_in_force(in_force)


# --------------------------------------------------------------------------- audit


@admin.command("audit")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--before-id", type=click.IntRange(1), help="Older than this entry (paging).")
@guard_command
def audit(session: Session, limit: int, before_id: int | None) -> None:
    """The audit log, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if before_id is not None:
        params["before_id"] = before_id
    entries = session.call("GET", "/admin/audit", params=params)["entries"]
    if session.as_json:
        emit_json({"entries": entries})
        return
    if not entries:
        click.echo("the audit log is empty")
        return
    click.echo(
        table(
            [
                "ID",
                "TIME (UTC)",
                "ACTION",
                "ACTOR",
                "TOKEN",
                "ACCOUNT",
                "SYMBOL",
                "TARGET",
                "REASON",
            ],
            [
                [
                    e["id"],
                    when(e["time_ms"]),
                    e["action"],
                    e["actor"],
                    e["principal"],
                    e["account"],
                    e["symbol"],
                    e["target"],
                    e["reason"],
                ]
                for e in entries
            ],
        )
    )


# --------------------------------------------------------------------------- limits


_LIMIT_NAMES = (
    "max_order_notional",
    "max_position_notional",
    "min_available_after_order",
    "max_margin_ratio",
    "default_leverage",
    "order_rate",
    "symbol_order_rate",
)
_RATE = re.compile(r"^(\d+)/(\d+(?:\.\d+)?)s?$")


def _limit_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return f"{value['max_orders']} per {value['window_s']}s"
    return str(value)


def _show_limits(view: dict[str, Any]) -> None:
    overridden = (
        "CHANGED AT RUN TIME (the configured limits return at reset or restart)"
        if view["overridden"]
        else "limits as configured"
    )
    click.echo(f"account {view['account']}: {overridden}")
    click.echo(
        table(
            ["LIMIT", "IN FORCE", "CONFIGURED"],
            [
                [
                    name,
                    _limit_text(view["limits"][name]),
                    _limit_text(view["configured"][name]),
                ]
                for name in _LIMIT_NAMES
            ],
        )
    )


@admin.group("limits")
def limits() -> None:
    """Show and change an account's limits at run time (they hold until reset or restart)."""


@limits.command("show")
@click.argument("account")
@guard_command
def show_limits(session: Session, account: str) -> None:
    """The limits in force and the configured ones."""
    view = session.call("GET", f"/admin/accounts/{account}/limits")
    if session.as_json:
        emit_json(view)
        return
    _show_limits(view)


def _amount(text: str) -> str | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not a number (or 'none')") from None
    if not value.is_finite():
        raise click.BadParameter(f"{text!r} is not a finite number")
    return text.strip()


def _rate(text: str) -> dict[str, Any] | None:
    if text.strip().lower() == "none":
        return None
    match = _RATE.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: use ORDERS/SECONDS, e.g. 10/1 or 100/60s (or none)")
    return {"max_orders": int(match.group(1)), "window_s": float(match.group(2))}


@limits.command("set")
@click.argument("account")
@click.option("--max-order-notional", help="Largest order notional, or none.")
@click.option("--max-position-notional", help="Largest position notional, or none.")
@click.option("--min-available-after-order", help="Balance left after the order, or none.")
@click.option("--max-margin-ratio", help="0 < ratio <= 1.")
@click.option("--default-leverage", help="Leverage assumed when the exchange gives none.")
@click.option("--order-rate", help="ORDERS/SECONDS for the account (e.g. 10/1), or none.")
@click.option("--symbol-order-rate", help="ORDERS/SECONDS per symbol, or none.")
@_reason_option
@_actor_option
@guard_command
def set_limits(
    session: Session, account: str, reason: str, actor: str, **values: str | None
) -> None:
    """Change some limits; the others keep their value. `none` removes a limit."""
    changes: dict[str, Any] = {}
    for name, text in values.items():
        if text is None:
            continue
        changes[name] = _rate(text) if name.endswith("order_rate") else _amount(text)
    if not changes:
        raise click.UsageError("give at least one limit to change (see --help)")
    view = session.call(
        "PATCH",
        f"/admin/accounts/{account}/limits",
        json={"actor": actor, "reason": reason, "limits": changes},
    )
    if session.as_json:
        emit_json(view)
        return
    click.echo(f"CHANGED {', '.join(sorted(changes))} of account {account}")
    _show_limits(view)


@limits.command("reset")
@click.argument("account")
@_reason_option
@_actor_option
@guard_command
def reset_limits(session: Session, account: str, reason: str, actor: str) -> None:
    """Go back to the configured limits."""
    view = session.call(
        "DELETE", f"/admin/accounts/{account}/limits", json={"actor": actor, "reason": reason}
    )
    if session.as_json:
        emit_json(view)
        return
    click.echo(f"RESET the limits of account {account} to the configured values")
    _show_limits(view)


# --------------------------------------------------------------------------- accounts


def _fresh(view: dict[str, Any]) -> str:
    return "FRESH" if view["fresh"] else "STALE"


@admin.command("accounts")
@guard_command
def accounts(session: Session) -> None:
    """Every account's freshness and exchange status (needs the read scope)."""
    found = session.call("GET", "/accounts")["accounts"]
    if session.as_json:
        emit_json({"accounts": found})
        return
    click.echo(
        table(
            [
                "ACCOUNT",
                "DATA",
                "STATUS AGE",
                "SNAPSHOT AGE",
                "TRADING STATUS",
                "CAN TRADE",
                "AVAILABLE",
                "MARGIN RATIO",
                "FAILURES",
                "LAST ERROR",
            ],
            [
                [
                    a["account"],
                    _fresh(a),
                    age(a["status_age_ms"]),
                    age(a["snapshot_age_ms"]),
                    a["trading_status"],
                    a["can_trade"],
                    a.get("available_balance"),
                    a.get("margin_ratio"),
                    a["consecutive_failures"],
                    a["last_error"],
                ]
                for a in found
            ],
        )
    )


@admin.command("account")
@click.argument("account")
@guard_command
def account(session: Session, account: str) -> None:
    """One account's state: freshness, exchange status, balances, positions."""
    view = session.call("GET", f"/accounts/{account}")
    if session.as_json:
        emit_json(view)
        return
    click.echo(f"account {view['account']} ({view['exchange']})")
    click.echo(
        f"data: {_fresh(view)}; status {age(view['status_age_ms'])} old, snapshot "
        f"{age(view['snapshot_age_ms'])} old; consecutive failures "
        f"{view['consecutive_failures']}; last error: {view['last_error'] or NONE}"
    )
    status = view.get("status")
    if status:
        click.echo(
            f"exchange status: {status['trading_status']}"
            + (f" ({status['reason']})" if status.get("reason") else "")
            + f"; can trade: {status['can_trade']}"
        )
        locked = [i for i in status["indicators"] if i["is_locked"]]
        for indicator in locked:
            click.echo(
                f"LOCKED by {indicator['indicator']} ({indicator['scope']}) until "
                f"{when(indicator['planned_recover_time_ms'])}"
            )
    else:
        click.echo("exchange status: no data yet")
    snapshot = view.get("snapshot")
    if not snapshot:
        click.echo("balances and positions: no data yet")
        return
    click.echo(
        f"{snapshot['asset']}: available {snapshot['available_balance']}, margin balance "
        f"{snapshot['margin_balance']}, margin ratio {snapshot['margin_ratio']}"
    )
    positions = snapshot["positions"]
    if not positions:
        click.echo("positions: none")
        return
    click.echo(
        table(
            ["SYMBOL", "SIDE", "QUANTITY", "ENTRY", "MARK", "NOTIONAL", "LEVERAGE", "PNL"],
            [
                [
                    p["symbol"],
                    p["side"],
                    p["quantity"],
                    p["entry_price"],
                    p["mark_price"],
                    p["notional"],
                    p["leverage"],
                    p["unrealized_pnl"],
                ]
                for p in positions
            ],
        )
    )
