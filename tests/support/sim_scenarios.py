"""Scenario files for the simulator and what tests need to know about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SIM_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sim"
BASIC_SCENARIO = SIM_FIXTURES / "basic.yaml"


@dataclass(frozen=True, slots=True)
class SimAccount:
    id: str
    api_key: str
    api_secret: str


# The accounts of basic.yaml.
HEALTHY = SimAccount("A-1001", "sim-key-alpha", "sim-secret-alpha")
RESTRICTED = SimAccount("A-1002", "sim-key-bravo", "sim-secret-bravo")
THIN_MARGIN = SimAccount("A-1003", "sim-key-charlie", "sim-secret-charlie")
CANNOT_TRADE = SimAccount("A-1004", "sim-key-delta", "sim-secret-delta")
QUANT_LOCKED = SimAccount("A-1005", "sim-key-echo", "sim-secret-echo")
BASIC_ACCOUNTS = (HEALTHY, RESTRICTED, THIN_MARGIN, CANNOT_TRADE, QUANT_LOCKED)
