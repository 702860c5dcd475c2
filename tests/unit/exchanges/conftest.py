from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.exchanges.generic_v2 import GenericV2Client
from tests.unit.exchanges.fakes import (
    BASE_URL,
    CREDENTIALS,
    NOW_MS,
    FakeExchange,
    RecordingGate,
    fixed_clock,
)


@pytest.fixture
def exchange() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
async def http(exchange: FakeExchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(exchange.handle)) as client:
        yield client


@pytest.fixture
def generic(http: httpx.AsyncClient, gate: RecordingGate) -> GenericV2Client:
    client = GenericV2Client(
        base_url=BASE_URL, credentials=CREDENTIALS, http=http, gate=gate, timeout_s=3.0
    )
    client.wall_clock_ms = fixed_clock(NOW_MS)
    return client
