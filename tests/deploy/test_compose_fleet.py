"""The compose stack runs the guard in fleet mode: every replica on the one Redis (durable
kill switches), behind the load balancer, and scraped by Prometheus.

A replica left out of the balancer gets no traffic, one left out of Prometheus hides its
metrics, one without the fleet's Redis keeps its own kill switches (a switch engaged through
the balancer would hold on one replica only). These checks read the files the stack runs
with; ``make container-lint`` validates the compose file against the compose spec.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.promtool import REPO

HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    return data


def _guards(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The guard replicas: services of the project's image that run the guard (not the
    simulator, which ships in the same image)."""
    return {
        name: svc
        for name, svc in services.items()
        if svc.get("image") == "pretrade-guard:local"
        and "pretrade-sim" not in svc.get("command", [])
    }


def test_two_guard_replicas_share_one_durable_redis() -> None:
    services = _compose()["services"]
    guards = _guards(services)
    assert len(guards) == 2, sorted(guards)
    for name, svc in guards.items():
        assert svc["environment"]["PRETRADE_GUARD_FLEET__REDIS_URL"] == "redis://redis:6379/0", name
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    command = " ".join(redis["command"])
    # An acknowledged engage must survive a crash of Redis (README: Redis settings).
    assert "--appendonly yes" in command
    assert "--appendfsync always" in command
    # Persisted on a volume, not in the container's writable layer.
    assert {v["target"] for v in redis["volumes"]} == {"/data"}


def test_the_load_balancer_sends_traffic_to_every_replica() -> None:
    services = _compose()["services"]
    guards = _guards(services)
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server\s+\S+\s+(\S+):8080\s", text, re.MULTILINE)
    assert sorted(servers) == sorted(guards)
    lb = services["lb"]
    assert lb["image"].startswith("haproxy:")
    assert lb["ports"] == ["127.0.0.1:8080:8080"]
    mounts = {v["target"]: v["source"] for v in lb["volumes"]}
    assert mounts["/usr/local/etc/haproxy"] == "./deploy/haproxy"
    assert re.search(r"^\s*bind\s+:8080\s*$", text, re.MULTILINE)


def test_prometheus_scrapes_every_replica() -> None:
    guards = _guards(_compose()["services"])
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text("utf-8"))
    (job,) = [s for s in config["scrape_configs"] if s["job_name"] == "pretrade-guard"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == sorted(f"{name}:8080" for name in guards)
