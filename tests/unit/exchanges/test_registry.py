from __future__ import annotations

import pytest

from app.exchanges import EXCHANGES, client_class
from app.exchanges.generic_v2 import GenericV2Client


def test_registry_is_keyed_by_each_client_name() -> None:
    assert EXCHANGES["generic-v2"] is GenericV2Client
    for name, cls in EXCHANGES.items():
        assert cls.name == name


def test_client_class_returns_the_registered_class() -> None:
    assert client_class("generic-v2") is GenericV2Client


def test_unknown_exchange_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown exchange 'kraken'.*generic-v2"):
        client_class("kraken")
