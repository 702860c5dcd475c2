"""``python -m simulator --scenario FILE``: serve the exchange simulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from simulator.app import create_app
from simulator.scenario import Scenario, ScenarioError, load_scenario

logger = logging.getLogger("simulator")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: A latency fault may hold a request for minutes; shutdown must not wait for it.
GRACEFUL_SHUTDOWN_S = 3


class _DroppedConnectionFilter(logging.Filter):
    """Silence uvicorn's error line for responses the ``drop_connection`` fault cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # uvicorn handles SIGTERM/SIGINT while serving (graceful shutdown), then restores this
    # handler and re-raises the signal; exiting with 0 marks that shutdown as a clean one.
    raise SystemExit(0)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pretrade-sim", description="Exchange simulator for pretrade-guard."
    )
    parser.add_argument("--scenario", required=True, type=Path, help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", default=8081, type=int, help="bind port (default 8081, 0: any)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    parser.add_argument(
        "--weight-window-s", type=float, help="override the scenario's weight_window_s"
    )
    parser.add_argument("--ban-s", type=float, help="override the scenario's ban_s")
    return parser.parse_args(argv)


def _with_overrides(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    overrides = {
        name: value
        for name, value in (("weight_window_s", args.weight_window_s), ("ban_s", args.ban_s))
        if value is not None
    }
    if any(value <= 0 for value in overrides.values()):
        raise ScenarioError("--weight-window-s and --ban-s must be positive")
    return scenario.model_copy(update=overrides)


class _SimulatorServer(uvicorn.Server):
    """A uvicorn server that logs one "ready" line once its socket is listening."""

    def __init__(self, config: uvicorn.Config, scenario_path: Path, accounts: int) -> None:
        super().__init__(config)
        self._scenario_path = scenario_path
        self._accounts = accounts

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            logger.info(
                "simulator ready on http://%s:%d (%d accounts from %s)",
                host,
                port,
                self._accounts,
                self._scenario_path,
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("uvicorn.error").addFilter(_DroppedConnectionFilter())
    try:
        scenario = _with_overrides(load_scenario(args.scenario), args)
    except ScenarioError as exc:
        logger.error("%s", exc)
        return 2
    config = uvicorn.Config(
        create_app(scenario),
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    try:
        _SimulatorServer(config, args.scenario, len(scenario.accounts)).run()
    finally:
        logger.info("simulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
