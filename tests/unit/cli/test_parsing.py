"""What an operator types into the CLI, and what it shows back."""

from __future__ import annotations

import click
import pytest

from app.cli.admin import parse_duration
from app.cli.output import safe_url, table


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90", 90, id="bare-seconds"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("15m", 900, id="minutes"),
        pytest.param("2h", 7200, id="hours"),
        pytest.param("1d", 86400, id="days"),
        pytest.param("1h30m", 5400, id="combined"),
        pytest.param("1.5s", 1.5, id="fraction"),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0.5s", "soon", "1e-300", "5 min", "-1m", "m"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_duration(text)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "http://ops:pw@10.0.0.1:8081/api?key=abc#x", "http://10.0.0.1:8081/api", id="creds"
        ),
        pytest.param("https://fapi.binance.com", "https://fapi.binance.com", id="plain"),
        pytest.param("http://[::1]:9/", "http://[::1]:9/", id="ipv6"),
    ],
)
def test_urls_lose_credentials(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_tables_align_and_show_missing_values() -> None:
    assert table(["A", "LONG"], [["x", None], ["yyy", 1]]).splitlines() == [
        "A    LONG",
        "x    -",
        "yyy  1",
    ]
