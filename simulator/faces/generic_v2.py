"""Face 1: the generic ``/v2`` futures account API (``generic-v2-protocol.md``, a contract).

Both private answers are the account model's fields exactly as stored, plus the simulator's
``updateTime``; weights are per API key: time 1, apiTradingStatus 1, account 5.
"""

from __future__ import annotations

from typing import Any

from simulator.endpoint import Call, Endpoint, Face


def server_time(call: Call) -> dict[str, Any]:
    return {"serverTime": call.server_time_ms}


def api_trading_status(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    return {**account.status, "updateTime": account.status_update_time}


def account_snapshot(call: Call) -> dict[str, Any]:
    account = call.signed_account()
    return {
        "accountId": account.id,
        **account.account,
        "updateTime": account.account_update_time,
    }


ENDPOINTS = (
    Endpoint("/v2/time", Face.GENERIC_V2, signed=False, weight=1, handler=server_time),
    Endpoint(
        "/v2/private/account/apiTradingStatus",
        Face.GENERIC_V2,
        signed=True,
        weight=1,
        handler=api_trading_status,
    ),
    Endpoint("/v2/account", Face.GENERIC_V2, signed=True, weight=5, handler=account_snapshot),
)
