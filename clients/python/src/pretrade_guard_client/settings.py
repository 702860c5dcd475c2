"""What both clients are built from, checked once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from pretrade_guard_client.codes import OnUnavailable
from pretrade_guard_client.hooks import Hook


@dataclass(frozen=True, slots=True)
class ClientSettings:
    #: Default bound (seconds) on connecting, sending and reading one answer. The guard answers
    #: from memory in about a millisecond; a guard that takes longer is treated as unavailable.
    DEFAULT_TIMEOUT_S = 0.5

    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    deny_when_unavailable: bool
    hooks: tuple[Hook, ...]

    def __repr__(self) -> str:  # never shows the token
        return f"ClientSettings(base_url={self.base_url!r})"

    @classmethod
    def build(
        cls,
        base_url: str,
        token: str,
        timeout: float,
        on_unavailable: OnUnavailable,
        hooks: Sequence[Hook],
    ) -> ClientSettings:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not token or token != token.strip():
            raise ValueError("token must be a non-empty string without surrounding spaces")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        return cls(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            deny_when_unavailable=OnUnavailable(on_unavailable) is OnUnavailable.DENY,
            hooks=tuple(hooks),
        )
