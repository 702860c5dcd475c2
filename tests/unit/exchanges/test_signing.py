from __future__ import annotations

from app.exchanges.signing import hmac_sha256_hex, signed_query

# Binance's documented example (exchanges.md §1.2).
BINANCE_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
BINANCE_PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)
BINANCE_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_hmac_reproduces_binance_documented_example() -> None:
    assert hmac_sha256_hex(BINANCE_SECRET, BINANCE_PAYLOAD) == BINANCE_SIGNATURE


def test_signed_query_matches_binance_example_byte_for_byte() -> None:
    params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("quantity", "1"),
        ("price", "9000"),
        ("timeInForce", "GTC"),
    ]
    query = signed_query(
        params, secret=BINANCE_SECRET, recv_window_ms=5000, timestamp_ms=1591702613943
    )
    assert query == f"{BINANCE_PAYLOAD}&signature={BINANCE_SIGNATURE}"


def test_signed_query_without_params_puts_recv_window_timestamp_then_signature() -> None:
    query = signed_query([], secret="s", recv_window_ms=5000, timestamp_ms=1763712000000)
    payload = "recvWindow=5000&timestamp=1763712000000"
    assert query == f"{payload}&signature={hmac_sha256_hex('s', payload)}"


def test_signature_is_lowercase_hex() -> None:
    signature = hmac_sha256_hex("secret", "a=1")
    assert len(signature) == 64
    assert signature == signature.lower()
    int(signature, 16)
