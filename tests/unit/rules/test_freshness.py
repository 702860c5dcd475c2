"""Missing or stale data denies alone: no other reason, no warning, never allowed."""

from __future__ import annotations

import dataclasses

import pytest

from app.domain import AccountState, Observed, Policy, ReasonCode, RefreshError
from app.rules import evaluate
from tests.unit.rules.builders import (
    ACCOUNT,
    NOW,
    bare,
    indicator,
    order,
    snapshot,
    state,
    status,
)

POLICY = Policy(max_status_age_s=10.0, max_snapshot_age_s=15.0)


def _state_without(*, has_status: bool, has_snapshot: bool, last_error: str | None) -> AccountState:
    return AccountState(
        account=ACCOUNT,
        exchange="generic-v2",
        status=Observed(status(), NOW.mono, 0) if has_status else None,
        snapshot=Observed(snapshot(), NOW.mono, 0) if has_snapshot else None,
        last_error=last_error,
    )


@pytest.mark.parametrize(
    ("account_state", "expected_message"),
    [
        pytest.param(None, "no state is cached for account 'acc-1'", id="no-state"),
        pytest.param(
            _state_without(has_status=False, has_snapshot=True, last_error=None),
            "no successful status refresh yet",
            id="no-status",
        ),
        pytest.param(
            _state_without(has_status=True, has_snapshot=False, last_error=None),
            "no successful snapshot refresh yet",
            id="no-snapshot",
        ),
        pytest.param(
            _state_without(has_status=False, has_snapshot=False, last_error="HTTP 401 -2015"),
            "no successful status or snapshot refresh yet; last error: HTTP 401 -2015",
            id="neither-with-last-error",
        ),
    ],
)
def test_missing_data_denies_with_no_data_only(
    account_state: AccountState | None, expected_message: str
) -> None:
    decision = evaluate(order(), account_state, POLICY, NOW)

    assert not decision.allowed
    assert [r.code for r in decision.reasons] == [ReasonCode.NO_DATA]
    assert decision.reasons[0].message == expected_message
    assert decision.warnings == ()


@pytest.mark.parametrize(
    ("status_age_s", "snapshot_age_s", "expected"),
    [
        pytest.param(10.0, 15.0, [], id="both-exactly-at-max-age"),
        pytest.param(10.5, 1.0, [("10000", "10500")], id="status-stale"),
        pytest.param(1.0, 15.001, [("15000", "15001")], id="snapshot-stale"),
        pytest.param(
            11.0, 16.0, [("10000", "11000"), ("15000", "16000")], id="both-stale-one-reason-each"
        ),
    ],
)
def test_stale_data_denies_with_limit_and_age_in_ms(
    status_age_s: float, snapshot_age_s: float, expected: list[tuple[str, str]]
) -> None:
    account_state = state(status_age_s=status_age_s, snapshot_age_s=snapshot_age_s)

    decision = evaluate(order(), account_state, POLICY, NOW)

    assert decision.allowed is (not expected)
    assert all(r.code is ReasonCode.STALE_DATA for r in decision.reasons)
    assert [(r.limit, r.observed) for r in decision.reasons] == expected


def test_stale_data_short_circuits_other_reasons_and_names_last_error() -> None:
    # A stale status that also says CLOSED and locked: only the staleness is reported,
    # since the rest may no longer be true.
    account_state = state(
        status("CLOSED", can_trade=False, indicators=(indicator(scope="ACCOUNT"),)),
        status_age_s=30.0,
        last_error="timeout after 5 s",
    )

    decision = evaluate(bare(), account_state, POLICY, NOW)

    assert [r.code for r in decision.reasons] == [ReasonCode.STALE_DATA]
    assert decision.reasons[0].message == (
        "account status is 30000 ms old (max 10000 ms); last error: timeout after 5 s"
    )
    assert decision.warnings == ()


def test_each_stale_part_names_the_error_of_its_own_refresh() -> None:
    # Status failing (stale), snapshot failing too: each message carries its own kind's error,
    # not whichever failed last.
    account_state = dataclasses.replace(
        state(status_age_s=30.0, snapshot_age_s=30.0),
        last_error="snapshot: HTTP 503",
        status_error=RefreshError("status: canTrade is missing", "malformed", 4),
        snapshot_error=RefreshError("snapshot: HTTP 503", "server_error", 1),
    )

    decision = evaluate(bare(), account_state, POLICY, NOW)

    assert [r.message.split("; last error: ")[1] for r in decision.reasons] == [
        "status: canTrade is missing",
        "snapshot: HTTP 503",
    ]


def test_a_stale_status_is_not_explained_by_a_healthy_snapshots_silence() -> None:
    # Only the status fails; snapshots succeed. The status's error stays in its message.
    account_state = dataclasses.replace(
        state(status_age_s=30.0),
        status_error=RefreshError("status: HTTP 503", "server_error", 7),
    )

    decision = evaluate(bare(), account_state, POLICY, NOW)

    assert decision.reasons[0].message.endswith("; last error: status: HTTP 503")
