"""Which metric names a PromQL expression reads, and which names the guard exports.

Enough of PromQL to find metric names in our own rules and dashboard panels, not a parser:
strings, label matchers, ranges, grouping clauses and function calls are removed, and what is
left that looks like an identifier is a metric name. ``promtool`` checks the syntax itself.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from app.metrics import Metrics

#: Names every Prometheus has for a scraped target.
PROMETHEUS_NAMES = frozenset({"up"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_OFFSET = re.compile(r"\boffset\s+-?[\w$]+", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression (Grafana ``$variables`` allowed)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def variable_metric_names(query: str) -> set[str]:
    """Metric names read by a Grafana Prometheus variable query."""
    if (label_values := _LABEL_VALUES.match(query)) is not None:
        selector, _, _label = label_values.group("args").rpartition(",")
        return metric_names(selector) if selector else set()
    if (query_result := _QUERY_RESULT.match(query)) is not None:
        return metric_names(query_result.group("expr"))
    if query.strip().startswith(("label_names(", "metrics(")):
        return set()
    return metric_names(query)


def exported_names() -> set[str]:
    """Every series name a fresh ``Metrics`` registry can expose, with the type suffixes.

    Derived from each family's type, not only from its samples: a labelled metric has no
    samples until a child is created, yet its name is part of the guard's contract.
    """
    registry = CollectorRegistry()
    Metrics(registry, "x")
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples if not s.name.endswith("_created"))
    return names
