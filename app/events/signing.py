"""Webhook signatures: ``X-Pretrade-Signature: t=<unix_ms>,v1=<hex>``.

``v1`` is ``HMAC-SHA256(secret, f"{t}." + raw_body)`` in lowercase hex. The timestamp is
signed too, so a receiver that rejects old timestamps cannot be fed a replayed delivery
(the same scheme as Stripe's, in milliseconds). Each retry is signed afresh.

Receivers verify with ``verify_signature`` (or the same three lines in any language):
recompute the HMAC over the *raw* body bytes, compare in constant time, check the age.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Pretrade-Signature"
EVENT_ID_HEADER = "X-Pretrade-Event-Id"
EVENT_TYPE_HEADER = "X-Pretrade-Event-Type"
#: Default age a receiver accepts, either way (clock skew): five minutes.
DEFAULT_TOLERANCE_MS = 300_000


def _mac(secret: bytes, timestamp_ms: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp_ms}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp_ms: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp_ms``."""
    return f"t={timestamp_ms},v1={_mac(secret, timestamp_ms, body)}"


def verify_signature(
    secret: bytes,
    header: str | None,
    body: bytes,
    *,
    now_ms: int,
    tolerance_ms: int = DEFAULT_TOLERANCE_MS,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is within tolerance.

    Several ``v1=`` values are accepted (any may match), so a sender can sign with an old
    and a new secret while the secret rotates.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now_ms - timestamp) > tolerance_ms:
        return False
    expected = _mac(secret, timestamp, body)
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)
