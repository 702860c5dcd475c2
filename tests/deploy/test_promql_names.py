"""The metric-name finder the rule and dashboard tests rely on: it must neither miss a name
(a rotten query would pass) nor report a label, function or keyword as one."""

from __future__ import annotations

import pytest

from tests.deploy.promql_names import exported_names, metric_names, variable_metric_names

CASES = {
    "bare selector": ("up", {"up"}),
    "label matchers with braces and commas in strings": (
        'x_total{a="{b}", c=~"d,e|$f"}',
        {"x_total"},
    ),
    "aggregation with grouping, range and Grafana interval": (
        'sum by (le, route) (rate(x_bucket{job=~"$job"}[$__rate_interval]))',
        {"x_bucket"},
    ),
    "postfix grouping": ("sum(rate(a_total[5m])) by (account)", {"a_total"}),
    "histogram_quantile with a number": (
        "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))",
        {"h_bucket"},
    ),
    "binary operator with on and group_left": (
        "a / on (job, instance) group_left (version) b_info",
        {"a", "b_info"},
    ),
    "keywords and bool": ("a > bool 1 and b unless c or d", {"a", "b", "c", "d"}),
    "time() and comparison": ("time() - ts_seconds > 300", {"ts_seconds"}),
    "absent": ('absent(up{job="pretrade-guard"})', {"up"}),
    "offset and scientific numbers": ("rate(a_total[5m] offset 1h) * 1e3", {"a_total"}),
    "subquery": ("max_over_time(rate(a_total[1m])[10m:1m])", {"a_total"}),
    "multi-line or chain": (
        'sum by (account) (\n  s{status="A"} * 1\n  or s{status="B"} * 2\n)',
        {"s"},
    ),
}


@pytest.mark.parametrize(("expr", "names"), CASES.values(), ids=CASES.keys())
def test_finds_exactly_the_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('label_values(a_info{job=~"$job"}, instance)', {"a_info"}),
        ("label_values(a, account)", {"a"}),
        ("label_values(job)", set()),
        ("query_result(topk(3, b))", {"b"}),
    ],
)
def test_variable_queries(query: str, names: set[str]) -> None:
    assert variable_metric_names(query) == names


def test_exported_names_have_the_exposition_suffixes() -> None:
    names = exported_names()
    assert {
        "pretrade_guard_build_info",
        "pretrade_guard_decisions_total",
        "pretrade_guard_decision_duration_seconds_bucket",
        "pretrade_guard_decision_duration_seconds_count",
        "pretrade_guard_http_requests_total",  # labelled, no samples in a fresh registry
        "pretrade_guard_account_data_fresh",
    } <= names
    assert "pretrade_guard_decisions" not in names
    assert not [n for n in names if n.endswith("_created")]
