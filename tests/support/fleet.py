"""Fleet-mode guards for tests: several real guard processes sharing one real Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tests.support.guard import ADMIN_TOKEN, GuardProcess

#: Short TTLs and graces so failover and outage tests finish in seconds.
FAST_FLEET: dict[str, Any] = {
    "lease_ttl_s": 1.0,
    "fallback_grace_s": 3.0,
    "control_poll_s": 0.5,
    "resync_s": 1.0,
    "rate_limit_timeout_s": 1.0,
    "redis_timeout_s": 1.0,
}


def fleet_extra(
    redis_url: str, role: str = "all", namespace: str = "test", **fleet: Any
) -> dict[str, Any]:
    """``extra`` for ``guard_config``: the ``fleet:`` section."""
    return {
        "fleet": {
            "redis_url": redis_url,
            "namespace": namespace,
            "role": role,
            **FAST_FLEET,
            **fleet,
        }
    }


def admin(guard: GuardProcess) -> httpx.Client:
    return guard.client(ADMIN_TOKEN)


def engage(guard: GuardProcess, **body: Any) -> httpx.Response:
    payload: Mapping[str, Any] = {"actor": "ops", "reason": "test", "mode": "HALT", **body}
    with admin(guard) as client:
        return client.post("/admin/kill-switches", json=dict(payload))


def readyz(guard: GuardProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{guard.base_url}/readyz", timeout=5).json()
    return body
