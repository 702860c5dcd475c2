"""Stopping background tasks for good: cancel them, wait, and cancel again any that carried on.

A cancellation can be lost. On Python 3.11, ``asyncio.wait_for`` returns the awaited result
instead of raising ``CancelledError`` when its task is cancelled just as the awaited
operation completes (CPython gh-86296; 3.12 rewrote ``wait_for`` on ``asyncio.timeout``).
redis-py wraps every socket write in ``wait_for`` (``Connection.send_packed_command``), so a
loop cancelled while it sends a command to Redis may go on as if nothing had happened: its
``while True`` has no other way out, and a shutdown awaiting it would wait for ever (seen:
a pool worker's lifespan shutdown hung in ``FleetRuntime.stop`` until the worker was
SIGKILLed). ``cancel_and_wait`` cancels again every task still running after a short wait,
until all have ended.

Our own code uses ``asyncio.timeout`` rather than ``asyncio.wait_for`` for the same reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("app")

#: Seconds a cancelled task gets to end before it is cancelled again. Our loops' cleanup on
#: cancellation takes milliseconds; a task still running after this swallowed it.
RECANCEL_S = 0.5


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, recancel_s: float = RECANCEL_S
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again each
    ``recancel_s`` those still running. Outcomes stay on the tasks (``cancelled()``,
    ``exception()``, read here so none is reported as never retrieved); nothing is raised
    for them."""
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=recancel_s)
        for task in pending:
            log.warning(
                "task still running after its cancellation; cancelling it again",
                task=task.get_name(),
            )
            task.cancel()
    for task in every:
        if not task.cancelled():
            task.exception()
