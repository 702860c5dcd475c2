"""The ``pretrade-guard`` command line (click): serve, and the operator's sub-commands.

::

    pretrade-guard                      serve (the container's CMD; same as `serve`)
    pretrade-guard --role api           serve one fleet role (fleet mode; overrides fleet.role)
    pretrade-guard --role api --workers 4   that role in 4 worker processes (api role only)
    pretrade-guard check-config [FILE]  validate a config as a start would; print what it holds
    pretrade-guard reset-kill-switches  start over with no kill switches after a lost database
    pretrade-guard admin ...            talk to a running guard's admin API

Output goes through ``click.echo`` (``print`` stays out of ``app/``). Exit codes are listed
in ``--help`` of each command and in docs/operator-guide.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import click

from app.cli.admin import admin
from app.cli.check_config import check_config
from app.cli.reset import reset_kill_switches
from app.fleet.model import FleetRole

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _version() -> str:
    try:
        return package_version("pretrade-guard")
    except PackageNotFoundError:  # a source tree without an install
        return "0.0.0+source"


_role_option = click.option(
    "--role",
    type=click.Choice([role.value for role in FleetRole]),
    default=None,
    help="Fleet mode (fleet.redis_url set): all (poll and answer), api (answer only) or "
    "refresher (poll and publish only). Overrides fleet.role.",
)


_workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Worker processes answering on the port (fleet mode, role api only; embedded mode "
    "and the roles that poll run one). Overrides server.workers.",
)


def _set_role(role: str | None, workers: int | None = None) -> None:
    # Through the environment, the highest-priority settings source: the one place that
    # reads settings (app.main) sees it like any other override.
    if role is not None:
        os.environ["PRETRADE_GUARD_FLEET__ROLE"] = role
    if workers is not None:
        os.environ["PRETRADE_GUARD_SERVER__WORKERS"] = str(workers)


def build_cli(serve: Callable[[], None]) -> click.Group:
    """The command group; ``serve`` runs when no sub-command is given."""

    @click.group(invoke_without_command=True, context_settings=CONTEXT)
    @click.version_option(_version(), prog_name="pretrade-guard")
    @_role_option
    @_workers_option
    @click.pass_context
    def cli(ctx: click.Context, role: str | None, workers: int | None) -> None:
        """Pre-trade guard: answers "may this account place this order now, and if not, why?".

        With no command, serve: read the configuration (the YAML file named by
        PRETRADE_GUARD_CONFIG, then PRETRADE_GUARD_<SECTION>__<FIELD> variables) and run
        until SIGTERM. A configuration error, no accounts, or a kill-switch database that
        lost switches stop the start with exit 2 and a message saying why.
        """
        _set_role(role, workers)
        if ctx.invoked_subcommand is None:
            serve()

    @cli.command("serve", context_settings=CONTEXT)
    @_role_option
    @_workers_option
    def serve_command(role: str | None, workers: int | None) -> None:
        """Serve (what `pretrade-guard` with no command does)."""
        _set_role(role, workers)
        serve()

    cli.add_command(check_config)
    cli.add_command(reset_kill_switches)
    cli.add_command(admin)
    return cli


def _serve() -> None:
    # The server and the whole app load only when serving.
    from app.server import serve

    serve()


def main() -> None:
    """The ``pretrade-guard`` console script."""
    build_cli(_serve)(prog_name="pretrade-guard")
