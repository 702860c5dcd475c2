"""The Grafana dashboard and its provisioning: importable JSON, every query reads only metrics
the guard exports (and every metric has a panel), valid PromQL, and the compose wiring."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from app.metrics import STATUS_LABELS, Metrics
from tests.deploy.promql_names import (
    PROMETHEUS_NAMES,
    exported_names,
    metric_names,
    variable_metric_names,
)
from tests.deploy.promtool import REPO, Promtool, report

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "pretrade-guard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


DASHBOARD = load_dashboard()
PANELS = [p for p in all_panels(DASHBOARD["panels"]) if p["type"] != "row"]
QUERIES = [(p, t) for p in PANELS for t in p["targets"]]
by_query = pytest.mark.parametrize(
    ("panel", "target"), QUERIES, ids=[f"{p['title']}:{t['refId']}" for p, t in QUERIES]
)
VARIABLES = DASHBOARD["templating"]["list"]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


# ----------------------------------------------------------------------------- the JSON model


def test_dashboard_is_a_provisionable_model() -> None:
    assert DASHBOARD["uid"] == "pretrade-guard"
    assert DASHBOARD["title"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    # A provisioned or imported dashboard must not carry a database id.
    assert DASHBOARD.get("id") is None
    assert PANELS


def test_data_source_is_a_variable_so_any_prometheus_works() -> None:
    datasource_vars = [v for v in VARIABLES if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in datasource_vars] == [("datasource", "prometheus")]
    for variable in VARIABLES:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_panel_queries_the_datasource_variable(panel: dict[str, Any]) -> None:
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"], "a panel without queries"
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE
        assert target["expr"].strip()


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in all_panels(DASHBOARD["panels"])]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(DASHBOARD["panels"]):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


# ----------------------------------------------------------------------------- metric names


@by_query
def test_query_reads_only_metrics_the_guard_exports(
    panel: dict[str, Any], target: dict[str, Any]
) -> None:
    unknown = metric_names(target["expr"]) - exported_names() - PROMETHEUS_NAMES
    assert not unknown, f"not exported by app.metrics.Metrics: {sorted(unknown)}"


@pytest.mark.parametrize(
    "variable", [v for v in VARIABLES if v["type"] == "query"], ids=lambda v: v["name"]
)
def test_variable_reads_only_metrics_the_guard_exports(variable: dict[str, Any]) -> None:
    names = variable_metric_names(variable_query(variable))
    assert names, "a variable that reads no metric"
    assert not names - exported_names(), sorted(names - exported_names())


def test_every_guard_metric_has_a_panel() -> None:
    shown = set().union(*(metric_names(t["expr"]) for _, t in QUERIES))
    registry = CollectorRegistry()
    Metrics(registry, "x")
    missing = [
        family.name
        for family in registry.collect()
        if not any(name.startswith(family.name) for name in shown)
    ]
    assert not missing, f"add a panel to {DASHBOARD_FILE.name} for: {missing}"


def test_trading_status_panel_names_every_status_the_guard_exports() -> None:
    (panel,) = [p for p in PANELS if p["title"] == "Trading status"]
    expr = panel["targets"][0]["expr"]
    assert set(re.findall(r'status="([A-Z_]+)"', expr)) == set(STATUS_LABELS)
    names = {
        option["text"]
        for mapping in panel["fieldConfig"]["defaults"]["mappings"]
        for option in mapping["options"].values()
    }
    assert names >= set(STATUS_LABELS)


def test_queries_are_valid_promql(promtool: Promtool, tmp_path: Any) -> None:
    # promtool has no "check expression"; a recording rule per query makes it parse them.
    rules = []
    for panel, target in QUERIES:
        expr = re.sub(r"\$__(?:rate_)?interval|\$__range", "1m", target["expr"])
        expr = re.sub(r"\$\{\w+\}|\$\w+", ".*", expr)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool.run("check", "rules", str(path))
    assert result.returncode == 0, report(result)


# ----------------------------------------------------------------------------- provisioning


def compose_service(name: str) -> dict[str, Any]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    service: dict[str, Any] = compose["services"][name]
    return service


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of a service's bind mounts."""
    return {
        v["target"]: v["source"].removeprefix("./")
        for v in service["volumes"]
        if isinstance(v, dict) and v["type"] == "bind"
    }


def test_compose_grafana_is_pinned_and_open_to_viewers_on_loopback() -> None:
    grafana = compose_service("grafana")
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a release, not {tag!r}"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]


def test_compose_provisions_the_datasource_and_the_dashboard() -> None:
    grafana = compose_service("grafana")
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"

    provider_file = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
    (provider,) = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == "deploy/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD_FILE.name}"

    datasource_file = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(datasource_file.read_text(encoding="utf-8"))["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in grafana["depends_on"]


def test_compose_prometheus_mounts_the_rules_it_loads() -> None:
    mounts = bind_mounts(compose_service("prometheus"))
    assert mounts["/etc/prometheus"] == "deploy/prometheus"
    assert (REPO / "deploy" / "prometheus" / "alerts.yml").is_file()
