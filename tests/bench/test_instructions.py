"""``bench.instructions``'s in-memory driver, without valgrind: what it counts must be the real
answer of the guard (and of the baseline) to the bench's GET, through uvicorn's protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import uvloop

from bench import instructions, scenario
from tests.support.processes import REPO_ROOT

PATH_0 = next(scenario.order_paths(1))


def _split(response: bytes) -> tuple[bytes, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], orjson.loads(body)


def test_guard_answers_the_bench_get_and_refuses_it_without_the_token(tmp_path: Path) -> None:
    async def scenario_() -> tuple[bytes, int, bytes, bytes]:
        target = instructions.guard_target(tmp_path)
        conn = instructions.Connection(target.app, target.options)
        allowed = await conn.exchange(instructions.bench_request(PATH_0, scenario.BOT_TOKEN))
        chunks = len(conn.transport.chunks)
        refused = await conn.exchange(instructions.bench_request(PATH_0, None))
        conn.close()
        # The measured loop: 250 requests over the 100 accounts, refreshes and flushes.
        last = await instructions.drive(target, 250)
        assert target.close is not None
        target.close()
        return allowed, chunks, refused, last

    allowed, chunks, refused, last = uvloop.run(scenario_())
    status, body = _split(allowed)
    assert status == b"HTTP/1.1 200 OK"
    assert body["allowed"] is True
    assert body["account"] == scenario.account_name(0)
    assert chunks == instructions.WRITES_PER_RESPONSE  # what drive() waits for
    status, body = _split(refused)
    assert status == b"HTTP/1.1 401 Unauthorized"
    assert "error" in body
    status, body = _split(last)
    assert status == b"HTTP/1.1 200 OK"
    assert body["allowed"] is True
    assert body["account"] == scenario.account_name(249 % instructions.ACCOUNTS)


def test_baseline_answers_a_decision_sized_body() -> None:
    async def scenario_() -> tuple[bytes, int]:
        target = instructions.baseline_target()
        conn = instructions.Connection(target.app, target.options)
        response = await conn.exchange(instructions.bench_request(PATH_0, scenario.BOT_TOKEN))
        return response, len(conn.transport.chunks)

    response, chunks = uvloop.run(scenario_())
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert len(body) == instructions.BASELINE_BODY_BYTES
    assert chunks == instructions.WRITES_PER_RESPONSE


def test_says_so_when_valgrind_is_missing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--requests", "1"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # an empty directory: no valgrind
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "valgrind is not installed" in done.stderr
