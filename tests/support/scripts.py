"""A long-running script (``make run``, ``make run-fleet``) started as a user starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.processes import REPO_ROOT


@contextmanager
def running_script(
    argv: list[str], env: dict[str, str], ready_line: str, timeout_s: float
) -> Iterator[tuple[list[str], subprocess.Popen[str]]]:
    """Start argv in its own session and yield the lines it printed up to ``ready_line``
    (the lines go on growing) and the process; SIGTERM (SIGKILL to its group after 60 s) on
    exit. Fails when the script exits or does not print ``ready_line`` within timeout_s."""
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(ready_line):
                done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done.wait(timeout_s)
        assert proc.poll() is None, "\n".join(lines)
        assert lines, "the script printed nothing"
        assert lines[-1].startswith(ready_line), "\n".join(lines)
        yield lines, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the scripts stop their children in order
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
