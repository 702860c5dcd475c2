"""Webhook signatures: what a receiver checks, and what it must refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.events.signing import signature_header, verify_signature

SECRET = b"whsec-test-0123456789"
BODY = b'{"id":"abc-1","type":"DATA_STALE"}'
T = 1_763_712_000_000


def test_header_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"%d." % T + BODY, hashlib.sha256).hexdigest()
    assert signature_header(SECRET, T, BODY) == f"t={T},v1={expected}"


@pytest.mark.parametrize(
    ("header", "body", "now_ms", "valid"),
    [
        pytest.param(signature_header(SECRET, T, BODY), BODY, T, True, id="fresh-and-intact"),
        pytest.param(
            signature_header(SECRET, T, BODY), BODY, T + 300_000, True, id="at-the-tolerance"
        ),
        pytest.param(
            signature_header(SECRET, T, BODY), BODY, T + 300_001, False, id="replayed-too-late"
        ),
        pytest.param(signature_header(SECRET, T, BODY), BODY + b" ", T, False, id="body-tampered"),
        pytest.param(
            signature_header(b"another-secret-xxxx", T, BODY), BODY, T, False, id="wrong-secret"
        ),
        pytest.param(
            signature_header(SECRET, T, BODY).replace(f"t={T}", f"t={T + 1}"),
            BODY,
            T,
            False,
            id="timestamp-changed",
        ),
        pytest.param(
            f"t={T},v1=00,{signature_header(SECRET, T, BODY).split(',')[1]}",
            BODY,
            T,
            True,
            id="one-of-several-signatures-matches",
        ),
        pytest.param(None, BODY, T, False, id="missing-header"),
        pytest.param("garbage", BODY, T, False, id="garbage-header"),
        pytest.param(f"v1={'0' * 64}", BODY, T, False, id="no-timestamp"),
    ],
)
def test_verify(header: str | None, body: bytes, now_ms: int, valid: bool) -> None:
    assert verify_signature(SECRET, header, body, now_ms=now_ms) is valid
