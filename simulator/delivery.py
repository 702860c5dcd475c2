"""Hostile ways of sending an answer (the *deliver* faults of ``simulator.faults``).

Each one streams: a 300 MB body or a gzip bomb from 1 GB never sits in the simulator's memory.
Every loop also watches for the client going away (``http.disconnect``), so a guard that gives
up on an endless body does not leave the simulator sending to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive, Send

from simulator.faults import DripParams, EndlessParams, FaultKind, PaddingParams

_CHUNK = 1024**2
_SPACES = b" " * _CHUNK

Headers = list[tuple[bytes, bytes]]


@functools.lru_cache(maxsize=2)
def _deflated_padding(size_bytes: int) -> tuple[bytes, int]:
    """Raw deflate of ``size_bytes`` spaces, not final, and their CRC-32.

    One MiB of spaces is compressed once, ending with a full flush (byte-aligned, no reference
    to earlier data), so that block repeated is a valid stream: 1 GB costs a few ms, not the
    half minute that compressing it would.
    """
    whole, rest = divmod(size_bytes, _CHUNK)
    parts: list[bytes] = []
    crc = 0
    if whole:
        block = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = block.compress(_SPACES) + block.flush(zlib.Z_FULL_FLUSH)
        parts.append(deflated * whole)
        for _ in range(whole):
            crc = zlib.crc32(_SPACES, crc)
    if rest:
        block = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        parts.append(block.compress(_SPACES[:rest]) + block.flush(zlib.Z_FULL_FLUSH))
        crc = zlib.crc32(_SPACES[:rest], crc)
    return b"".join(parts), crc


async def gzip_bomb_body(size_bytes: int, body: bytes) -> bytes:
    """``size_bytes`` of spaces then ``body``, as one gzip member (about 1 KB per MB)."""
    padding, crc = await asyncio.to_thread(_deflated_padding, size_bytes)
    last = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    tail: bytes = last.compress(body) + last.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(body, crc), (size_bytes + len(body)) & 0xFFFFFFFF)
    return header + padding + tail + trailer


class _Disconnect:
    """Set once the client has gone away."""

    def __init__(self, receive: Receive) -> None:
        self.gone = asyncio.Event()
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    def close(self) -> None:
        self._task.cancel()


async def _pause(gone: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gone.wait(), seconds)


async def _chunks(
    kind: FaultKind, params: Any, body: bytes, gone: asyncio.Event
) -> AsyncIterator[bytes]:
    if isinstance(params, DripParams):
        for i in range(len(body)):
            if gone.is_set():
                return
            yield body[i : i + 1]
            await _pause(gone, params.interval_ms / 1000)
    elif isinstance(params, EndlessParams):
        loop = asyncio.get_running_loop()
        until = loop.time() + params.max_s
        chunk = b" " * params.chunk_bytes
        while not gone.is_set() and loop.time() < until:
            yield chunk
            await _pause(gone, params.interval_ms / 1000)
    elif isinstance(params, PaddingParams) and kind is FaultKind.HUGE_BODY:
        left = params.size_bytes
        while left > 0 and not gone.is_set():
            take = min(left, _CHUNK)
            yield _SPACES[:take]
            left -= take
        yield body
    else:
        yield body


async def deliver(
    kind: FaultKind,
    params: Any,
    status: int,
    headers: Headers,
    body: bytes,
    send: Send,
    receive: Receive,
) -> None:
    """Send ``status``, ``headers`` (without Content-Length) and ``body`` the ``kind`` way."""
    if isinstance(params, PaddingParams) and kind is FaultKind.GZIP_BOMB:
        body = await gzip_bomb_body(params.size_bytes, body)
        headers = [*headers, (b"content-encoding", b"gzip")]
        length: int | None = len(body)
    elif isinstance(params, PaddingParams):
        length = None if params.chunked else params.size_bytes + len(body)
    elif isinstance(params, DripParams):
        length = len(body)
    else:  # endless: chunked, no length
        length = None
    if length is not None:
        headers = [*headers, (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    watcher = _Disconnect(receive)
    try:
        async for chunk in _chunks(kind, params, body, watcher.gone):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not watcher.gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:  # the client went away mid-send
        pass
    finally:
        watcher.close()
