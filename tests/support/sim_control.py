"""A small typed client for the simulator's control API (``/_sim``, see simulator/README.md).

Every method raises ``httpx.HTTPStatusError`` on a non-2xx answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx


class SimControl:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/_sim{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    # ------------------------------------------------------------------ accounts

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/accounts")["accounts"]
        return result

    def account(self, account_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/accounts/{account_id}")
        return result

    def patch_status(self, account_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` into the status (``None`` removes a field)."""
        result: dict[str, Any] = self._call(
            "PATCH", f"/accounts/{account_id}/status", json=dict(fields)
        )
        return result

    def patch_account(self, account_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` into the snapshot (top level; lists replaced whole)."""
        result: dict[str, Any] = self._call(
            "PATCH", f"/accounts/{account_id}/account", json=dict(fields)
        )
        return result

    def set_indicators(
        self, account_id: str, indicators: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> dict[str, Any]:
        body = {key: [dict(entry) for entry in entries] for key, entries in indicators.items()}
        result: dict[str, Any] = self._call("PUT", f"/accounts/{account_id}/indicators", json=body)
        return result

    def set_credentials(
        self, account_id: str, *, api_secret: str | None = None, api_key: str | None = None
    ) -> dict[str, Any]:
        body = {
            name: value
            for name, value in (("api_secret", api_secret), ("api_key", api_key))
            if value is not None
        }
        result: dict[str, Any] = self._call(
            "PATCH", f"/accounts/{account_id}/credentials", json=body
        )
        return result

    def patch_binance(self, account_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Position mode, multi-assets mode, leverage per symbol (``{"leverage": {S: n}}``)."""
        result: dict[str, Any] = self._call(
            "PATCH", f"/accounts/{account_id}/binance", json=dict(fields)
        )
        return result

    # ------------------------------------------------------------------ market

    def markets(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/markets")["markets"]
        return result

    def patch_market(self, symbol: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge rule fields (camelCase, e.g. ``markPrice``) over a symbol's rules."""
        result: dict[str, Any] = self._call("PATCH", f"/markets/{symbol}", json=dict(fields))
        return result

    # ------------------------------------------------------------------ faults

    def add_fault(
        self,
        kind: str,
        *,
        api_key: str | None = None,
        path: str | None = None,
        count: int | None = None,
        duration_s: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Install a fault; returns its id."""
        body: dict[str, Any] = {"kind": kind, "params": dict(params or {})}
        for name, value in (
            ("api_key", api_key),
            ("path", path),
            ("count", count),
            ("duration_s", duration_s),
        ):
            if value is not None:
                body[name] = value
        fault_id: str = self._call("POST", "/faults", json=body)["id"]
        return fault_id

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["faults"]
        return result

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> int:
        removed: int = self._call("DELETE", "/faults")["removed"]
        return removed

    # ------------------------------------------------------------------ clock, logs, reset

    def set_clock(self, offset_ms: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", "/clock", json={"offset_ms": offset_ms})
        return result

    def requests(
        self, *, api_key: str | None = None, path: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Counters since the last reset and recent entries, filtered by key and path prefix."""
        query = {
            name: str(value)
            for name, value in (("api_key", api_key), ("path", path), ("limit", limit))
            if value is not None
        }
        result: dict[str, Any] = self._call("GET", "/requests", params=query)
        return result

    def request_count(self, *, api_key: str | None = None, path: str | None = None) -> int:
        total: int = self.requests(api_key=api_key, path=path, limit=0)["total"]
        return total

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def weight(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/weight")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")
