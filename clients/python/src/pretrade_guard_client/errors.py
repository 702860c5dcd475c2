"""What the client raises. Every error is a ``GuardError``: catch it and do not send the order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pretrade_guard_client.models import Decision, Reason, Suggestion


class GuardError(Exception):
    """Base of every error of this client."""


class GuardUnavailable(GuardError):
    """The guard could not give an answer: timeout, connection error, 5xx, unparseable body.

    Fail closed: an order must not be sent on this error.
    """


class GuardRequestError(GuardError):
    """The guard refused the request itself (4xx): bad token, missing scope, unknown account,
    invalid fields. A bug or a configuration error on the caller's side, not a denial.

    ``code``, ``detail`` and ``fields`` are the guard's JSON error (``{"error": {"code",
    "message", "fields"?}}``); ``code`` is ``None`` when the body was not that shape.
    """

    def __init__(
        self,
        status_code: int,
        code: str | None,
        detail: str,
        fields: Sequence[Mapping[str, str]] = (),
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.fields: tuple[Mapping[str, str], ...] = tuple(fields)
        where = "; ".join(f"{f.get('field')}: {f.get('message')}" for f in self.fields)
        text = f"guard answered {status_code} {code or 'without an error code'}: {detail}"
        super().__init__(f"{text} ({where})" if where else text)


class OrderDenied(GuardError):
    """The guard denied the order; ``reasons`` says why, ``suggestions`` how to fix it."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        described = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons)
        where = decision.account + (f" {decision.symbol}" if decision.symbol else "")
        ident = f" (decision {decision.decision_id})" if decision.decision_id else ""
        super().__init__(f"order denied for {where}{ident}: {described or 'no reason given'}")

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self.decision.reasons

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(str(r.code) for r in self.decision.reasons)

    @property
    def suggestions(self) -> tuple[Suggestion, ...]:
        """The guard's suggested fixes (a valid price, quantity...), one per reason that has one."""
        return tuple(r.suggestion for r in self.decision.reasons if r.suggestion is not None)
