"""Shared fixtures for every test package."""

pytest_plugins = ("tests.support.guard_fixtures",)
