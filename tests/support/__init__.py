"""Helpers shared by the integration tests: real processes on loopback, signing, scenarios."""
