"""The poller survives whatever a refresh brings: absurd amounts, a crash while storing, and
logs a clock offset that the client re-learnt after a -1021 answer, naming the account."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import ClassVar

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from app.domain import AccountSnapshot, AccountState, AccountStatus, Position, PositionSide
from app.exchanges.base import Capabilities, Credentials, ExchangeClient
from app.metrics import Metrics
from app.refresher.budget import WeightBudget
from app.refresher.poller import AccountPoller, PollTiming
from app.state.store import StateStore

ACCOUNT = "acc-1"


class _Gate:
    async def before_request(self, weight: int) -> None:
        return None

    def after_response(
        self, endpoint: str, outcome: str, elapsed_s: float, used_weight: int | None
    ) -> None:
        return None


class FakeClient(ExchangeClient):
    """Answers with whatever the test put in ``status`` / ``snapshot``."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        has_trading_status=True,
        has_quant_rules=False,
        status_weight=1,
        snapshot_weight=1,
        time_weight=1,
        weight_limit_per_minute=1200,
        weight_scope="key",
    )

    def __init__(self, snapshot: AccountSnapshot) -> None:
        super().__init__(
            base_url="http://exchange.invalid",
            credentials=Credentials(SecretStr("k"), SecretStr("s")),
            http=httpx.AsyncClient(),
            gate=_Gate(),
        )
        self.snapshot = snapshot
        self.status = AccountStatus(trading_status="NORMAL", reason="", can_trade=True)

    async def fetch_status(self) -> AccountStatus:
        return self.status

    async def fetch_snapshot(self) -> AccountSnapshot:
        return self.snapshot

    async def sync_clock(self) -> int:
        return self.clock_offset_ms


def _snapshot(available: str, maintenance: str = "1", margin: str = "100") -> AccountSnapshot:
    position = Position(
        symbol="BTCUSDT", side=PositionSide.LONG, quantity=Decimal(1), mark_price=Decimal(10)
    )
    return AccountSnapshot(
        available_balance=Decimal(available),
        margin_balance=Decimal(margin),
        maintenance_margin=Decimal(maintenance),
        positions=(position,),
    )


def _poller(client: FakeClient) -> tuple[AccountPoller, StateStore, Metrics]:
    metrics = Metrics(CollectorRegistry(), "test")
    store = StateStore([(ACCOUNT, "fake")])
    metrics.register_account(ACCOUNT)
    budget = WeightBudget("fake@h", 1200, 0.8, metrics)
    # Short waits so each ``_step`` finds the next refresh due at once.
    timing = PollTiming(
        status_interval_s=0.001,
        snapshot_interval_s=0.001,
        backoff_base_s=0.001,
        backoff_max_s=0.001,
    )
    return AccountPoller(ACCOUNT, client, store, metrics, budget, timing), store, metrics


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


async def test_absurd_amounts_are_stored_and_exported_without_raising() -> None:
    # 1e30 cannot be quantized to 8 places in the default context; 1e999999 / 1e-999999
    # overflows. Neither may end the poller: the data is stored and the rules deny on it.
    client = FakeClient(_snapshot("1e30", maintenance="1e999999", margin="1e-999999"))
    poller, store, metrics = _poller(client)
    await poller._step()  # clock sync, then the first due refresh
    await poller._step()
    state = store.get(ACCOUNT)
    assert state is not None
    assert state.snapshot is not None
    assert state.last_error is None
    assert state.snapshot.value.margin_ratio == Decimal("Infinity")
    assert _sample(metrics, "pretrade_guard_account_available_balance") == 1e30
    ratio = _sample(metrics, "pretrade_guard_account_margin_ratio")
    assert ratio is not None
    assert math.isinf(ratio)


async def test_a_crash_while_storing_is_a_failed_refresh_not_a_dead_poller() -> None:
    client = FakeClient(_snapshot("100"))
    poller, store, metrics = _poller(client)

    def broken_listener(old: AccountState, new: AccountState) -> None:
        if new.snapshot is not None and old.snapshot is None:
            raise RuntimeError("a listener bug")

    store.subscribe(broken_listener)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            await poller._step()  # returns: the exception did not escape the loop boundary
    crashed = [e for e in logs if e["event"] == "refresh crashed"]
    assert [e["kind"] for e in crashed] == ["snapshot"]
    assert _sample(
        metrics, "pretrade_guard_refresh_failures_total", kind="snapshot", error="internal"
    ) == pytest.approx(1)
    failed = [e for e in logs if e["event"] == "refresh failed"]
    assert failed[0]["cause"] == "internal error: RuntimeError"  # no free text from the bug


async def test_a_clock_offset_relearnt_by_the_client_is_logged_with_the_account() -> None:
    client = FakeClient(_snapshot("100"))
    poller, _, metrics = _poller(client)
    with structlog.testing.capture_logs() as logs:
        await poller._step()  # clock sync: offset 0, nothing to say
        client.clock_offset_ms = 30_000  # what a -1021 re-sync inside the client does
        await poller._step()
        await poller._step()  # unchanged since: no second line
    lines = [e for e in logs if e["event"] == "exchange clock offset"]
    assert [(e["clock_offset_ms"], e["previous_offset_ms"]) for e in lines] == [(30_000, 0)]
    assert _sample(metrics, "pretrade_guard_exchange_clock_offset_seconds") == 30
