"""Client limits: the connection cap leaves room for the pollers, and the default body limit
fits the largest valid batch."""

from __future__ import annotations

import json

from app.api.body_gate import DEFAULT_MAX_BODY_BYTES
from app.api.schemas import BatchQuery
from app.config import ServerSettings
from app.http_server import EXCHANGE_CONNECTIONS, OWN_FILES, connection_cap


def test_the_connection_cap_stays_below_the_descriptor_limit_with_room_for_pollers() -> None:
    assert connection_cap(None, 1024) == 1024 - EXCHANGE_CONNECTIONS - OWN_FILES
    assert connection_cap(100_000, 1024) == 1024 - EXCHANGE_CONNECTIONS - OWN_FILES
    assert connection_cap(200, 1024) == 200
    assert connection_cap(None, 100) == 16  # never zero, even with a tiny limit


def test_the_largest_valid_batch_fits_the_default_body_limit() -> None:
    order = {
        "account": "a" * 64,
        "symbol": "S" * 40,
        "side": "SELL",
        "quantity": "9" * 20 + "." + "9" * 19,
        "price": "9" * 20 + "." + "9" * 19,
        "reduce_only": False,
    }
    batch = {"orders": [order] * 1000}
    BatchQuery.model_validate(batch)  # valid, at every field's longest
    body = json.dumps(batch, indent=2).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES
    assert ServerSettings().max_body_bytes == DEFAULT_MAX_BODY_BYTES
