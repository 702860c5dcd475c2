"""Checks of the deployment artefacts: Prometheus rules and config, Grafana dashboard, compose."""
