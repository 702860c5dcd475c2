from __future__ import annotations

import logging

import pytest

from app.exchanges.redaction import install_httpx_log_redaction, redact

SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_redact_removes_secrets_queries_and_signatures() -> None:
    text = redact(
        f"GET https://x/p?timestamp=1&signature={SIGNATURE} key=K3Y sig={SIGNATURE}", ["K3Y"]
    )
    assert SIGNATURE not in text
    assert "K3Y" not in text
    assert "https://x/p?<redacted>" in text


def test_redact_truncates_long_text() -> None:
    assert len(redact("x" * 1000)) == 200


def test_httpx_request_log_lines_lose_their_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_httpx_log_redaction()
    install_httpx_log_redaction()  # idempotent
    caplog.set_level(logging.INFO, logger="httpx")
    url = f"https://fapi.binance.com/fapi/v1/accountConfig?timestamp=1&signature={SIGNATURE}"
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "GET", url, "HTTP/1.1 200 OK")
    assert SIGNATURE not in caplog.text
    assert "/fapi/v1/accountConfig?<redacted>" in caplog.text
    assert len(logging.getLogger("httpx").filters) == 1
