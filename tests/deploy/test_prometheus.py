"""Prometheus artefacts: the rules, their unit tests and the config pass promtool; every alert is
labelled, documented in docs/runbook.md and tested both ways; the real guard's /metrics passes
promtool's lint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.promql_names import PROMETHEUS_NAMES, exported_names, metric_names
from tests.deploy.promtool import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS_CONFIG,
    REPO,
    Promtool,
    report,
)
from tests.support.guard import ADMIN_TOKEN, GuardProcess, guard_config, wait_until
from tests.support.guard_fixtures import BASIC_GUARD_ACCOUNTS, account_entry
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import BASIC_SCENARIO, HEALTHY, QUANT_LOCKED

RUNBOOK = REPO / "docs" / "runbook.md"
SEVERITIES = {"critical", "warning", "info"}


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule
    ]


ALERT_RULES = alert_rules()
ALERT_NAMES = [rule["alert"] for rule in ALERT_RULES]
by_name = pytest.mark.parametrize("rule", ALERT_RULES, ids=ALERT_NAMES)


def runbook_sections() -> set[str]:
    return set(re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE))


# ----------------------------------------------------------------------------- promtool


def test_alert_rules_pass_promtool_check(promtool: Promtool) -> None:
    result = promtool.run("check", "rules", ALERTS)
    assert result.returncode == 0, report(result)


def test_alert_rule_unit_tests_pass(promtool: Promtool) -> None:
    result = promtool.run("test", "rules", ALERT_TESTS)
    assert result.returncode == 0, report(result)


def test_prometheus_config_is_valid_and_loads_the_alerts(promtool: Promtool) -> None:
    result = promtool.run("check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, report(result)
    # check config also checks every rule file it names.
    assert "alerts.yml" in result.stdout + result.stderr, report(result)


# ----------------------------------------------------------------------------- rules as data


def test_every_alert_has_a_unique_name() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@by_name
def test_alert_has_severity_and_runbook_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    for field in ("Bots:", "Check:", "Fix:"):
        assert field in annotations["description"], f"description lacks {field!r}"
    assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


@by_name
def test_alert_has_a_runbook_section(rule: dict[str, Any]) -> None:
    # GitHub's anchor for "## PretradeGuardDown" is "#pretradeguarddown".
    assert rule["alert"] in runbook_sections()


def test_runbook_has_no_section_for_an_alert_that_does_not_exist() -> None:
    alert_like = {s for s in runbook_sections() if s.startswith("PretradeGuard")}
    assert alert_like <= set(ALERT_NAMES)


def alert_test_cases() -> dict[str, list[bool]]:
    """Alert name -> for each promtool test case, whether it expects the alert to fire."""
    cases: dict[str, list[bool]] = {}
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    return cases


@by_name
def test_alert_is_unit_tested_firing_and_quiet(rule: dict[str, Any]) -> None:
    expectations = alert_test_cases().get(rule["alert"], [])
    assert True in expectations, "no promtool case where it fires"
    assert False in expectations, "no promtool case where it must stay quiet"


def test_unit_tests_name_only_existing_alerts() -> None:
    assert set(alert_test_cases()) <= set(ALERT_NAMES)


@by_name
def test_alert_reads_only_metrics_the_guard_exports(rule: dict[str, Any]) -> None:
    unknown = metric_names(rule["expr"]) - exported_names() - PROMETHEUS_NAMES
    assert not unknown, f"not exported by app.metrics.Metrics: {sorted(unknown)}"


def test_alerts_select_the_job_prometheus_scrapes() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert "alerts.yml" in config["rule_files"]
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    selected = set(re.findall(r'job="([^"]+)"', (REPO / ALERTS).read_text(encoding="utf-8")))
    assert selected
    assert selected <= jobs


# ----------------------------------------------------------------------------- the real guard


@pytest.fixture(scope="module")
def real_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of the real guard after it refreshed, failed, and decided a few orders.

    Accounts: basic.yaml's four generic-v2 ones, the quant-locked one on the binance-usdm face
    (lock and trigger-ratio series), and one with a wrong secret (auth failures).
    """
    workdir = tmp_path_factory.mktemp("metrics")
    with SimulatorProcess(BASIC_SCENARIO, log_path=workdir / "simulator.log") as sim:
        accounts = {name: account_entry(sim, acc) for name, acc in BASIC_GUARD_ACCOUNTS.items()}
        accounts["echo"] = account_entry(
            sim, QUANT_LOCKED, exchange="binance-usdm", options={"sapi_base_url": sim.base_url}
        )
        accounts["foxtrot"] = account_entry(sim, HEALTHY, api_secret="wrong-secret-0000")
        guard = GuardProcess(guard_config(accounts, port=free_port()), workdir)

        def quant_data_fresh() -> bool:
            return guard.metric("pretrade_guard_account_data_fresh", {"account": "echo"}) == 1

        def auth_failed() -> bool:
            labels = {"account": "foxtrot", "error": "auth"}
            return (guard.metric("pretrade_guard_refresh_failures_total", labels) or 0) > 0

        try:
            guard.start()
            wait_until(quant_data_fresh, timeout=15, what="fresh data of the binance-usdm account")
            wait_until(auth_failed, timeout=15, what="an auth failure of the wrong secret")
            with guard.client(ADMIN_TOKEN) as client:
                for account in ("alpha", "bravo", "no-such-account"):
                    client.get("/can-trade", params={"account": account})
            yield httpx.get(f"{guard.base_url}/metrics", timeout=5).text
        finally:
            guard.stop()


@pytest.mark.integration
def test_real_metrics_pass_promtool_lint(promtool: Promtool, real_metrics: str) -> None:
    # The exposition really holds labelled series of every area, or the lint proves little.
    for needle in (
        'pretrade_guard_decisions_total{outcome="denied"}',
        'pretrade_guard_quant_rule_locked{account="echo"',
        'error="auth"',
        "pretrade_guard_exchange_request_duration_seconds_bucket{",
    ):
        assert needle in real_metrics
    result = promtool.run("check", "metrics", stdin=real_metrics)
    assert result.returncode == 0, report(result)
    assert result.stdout.strip() == "", report(result)


@pytest.mark.integration
def test_real_metrics_are_all_declared_in_app_metrics(real_metrics: str) -> None:
    # The dashboard and rule tests check names against app.metrics.Metrics; that only holds
    # if nothing else in the guard registers metrics.
    exported = exported_names()
    for family in text_string_to_metric_families(real_metrics):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                assert sample.name in exported, sample.name
