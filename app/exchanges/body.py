"""Reading an exchange's answer body with a cap on its size, before and after decompression.

A hostile or broken exchange (or a proxy in front of it) can answer 300 MB, or a 1 MB gzip
that expands to 1 GB. The body is streamed and counted: raw bytes against the cap, and the
decompressed bytes against the same cap, 256 KiB at a time with a turn for the event loop in
between, so reading any answer holds at most about twice the cap in memory. Error answers are
read the same way.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping

import httpx

from app.errors import ExchangeProtocolError

#: What the guard asks for; an answer in any other encoding is refused.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _too_large(max_bytes: int, endpoint: str, what: str) -> ExchangeProtocolError:
    return ExchangeProtocolError(
        f"answer larger than the {max_bytes}-byte cap ({what}); see poll.max_response_bytes",
        endpoint=endpoint,
    )


def _decompressor(headers: Mapping[str, str], endpoint: str) -> zlib._Decompress | None:
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise ExchangeProtocolError(
            f"answer in an unsupported content encoding {encoding[:40]!r}", endpoint=endpoint
        )
    return zlib.decompressobj(wbits)


#: Largest piece decompressed in one go: the event loop gets a turn between pieces, so a
#: gzip bomb costs other accounts' decisions at most this much inflating at a time.
_PIECE = 256 * 1024


async def _inflate(
    decoder: zlib._Decompress, data: bytes, body: bytearray, max_bytes: int, endpoint: str
) -> None:
    """Decompress ``data`` onto ``body`` in pieces, refusing output past ``max_bytes``."""
    while data:
        piece = decoder.decompress(data, min(_PIECE, max_bytes + 1 - len(body)))
        body += piece
        if len(body) > max_bytes:
            raise _too_large(max_bytes, endpoint, "after decompression")
        data = decoder.unconsumed_tail
        if data:
            await asyncio.sleep(0)


async def read_capped(response: httpx.Response, *, max_bytes: int, endpoint: str) -> bytes:
    """The decoded body of ``response``; ``ExchangeProtocolError`` once it passes ``max_bytes``
    (declared, received or decompressed)."""
    if response.is_stream_consumed:  # built in memory (httpx.MockTransport): already whole
        if len(response.content) > max_bytes:
            raise _too_large(max_bytes, endpoint, f"{len(response.content)} bytes")
        return response.content
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, endpoint, f"Content-Length {int(declared)}")
    decoder = _decompressor(response.headers, endpoint)
    body = bytearray()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes, endpoint, f"over {max_bytes} bytes received")
            if decoder is None:
                body += chunk
                continue
            await _inflate(decoder, chunk, body, max_bytes, endpoint)
        if decoder is not None:
            body += decoder.flush(max_bytes + 1 - len(body))
            if len(body) > max_bytes:
                raise _too_large(max_bytes, endpoint, "after decompression")
    except zlib.error as exc:
        raise ExchangeProtocolError(
            f"answer body does not decompress ({exc})", endpoint=endpoint
        ) from exc
    return bytes(body)
