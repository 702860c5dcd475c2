"""Bearer tokens with scopes, compared in constant time.

Every configured token is compared on every request (``hmac.compare_digest``), so the time
taken does not reveal which token, if any, nearly matched.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

#: A token as the fast paths take it: printable ASCII, no spaces.
PLAIN_TOKEN = re.compile(rb"[!-~]+")


class Scope(StrEnum):
    DECIDE = "decide"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[Scope]


class AuthError(Exception):
    """401 (no or unknown token) or 403 (token lacks the scope)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


class TokenAuth:
    def __init__(self, tokens: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """``tokens``: ``(name, secret, scopes)`` triples."""
        self._tokens = [
            (secret.encode(), Principal(name, frozenset(Scope(s) for s in scopes)))
            for name, secret, scopes in tokens
        ]

    @property
    def plain(self) -> bool:
        """Every configured token is printable ASCII without spaces (``!`` to ``~``): then a
        presented token that equals one of them is such a token too, and a fast path needs no
        charset check of its own before ``identify``."""
        return all(PLAIN_TOKEN.fullmatch(secret) for secret, _ in self._tokens)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError(401, "UNAUTHORIZED", "missing bearer token")
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise AuthError(401, "UNAUTHORIZED", "expected 'Authorization: Bearer <token>'")
        found = self.identify(presented.strip().encode())
        if found is None:
            raise AuthError(401, "UNAUTHORIZED", "invalid bearer token")
        return found

    def identify(self, candidate: bytes) -> Principal | None:
        """The principal whose token is ``candidate``, or None; compares every token."""
        found: Principal | None = None
        for secret, principal in self._tokens:
            if hmac.compare_digest(secret, candidate) and found is None:
                found = principal
        return found

    def require(self, authorization: str | None, scope: Scope) -> Principal:
        principal = self.authenticate(authorization)
        if scope not in principal.scopes:
            raise AuthError(403, "FORBIDDEN", f"token lacks the '{scope.value}' scope")
        return principal
