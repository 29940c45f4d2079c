"""Paths and the subprocess runner shared by the rules tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "rules" / "rollback-rules.yaml"
ALERTMANAGER_FRAGMENT = REPO / "rules" / "alertmanager.yaml"
ALERTMANAGER_CONFIG_CRD = REPO / "rules" / "alertmanagerconfig.yaml"
RUNBOOK = REPO / "docs" / "runbook.md"
SUITES = Path(__file__).resolve().parent / "promtool"
# Suites for the rules as rules/extract.py render() shortens them for pipeline tests.
RENDERED_SUITES = Path(__file__).resolve().parent / "promtool_rendered"
DASHBOARD = REPO / "rules" / "dashboard" / "rollback-webhook.json"
# What Grafana substitutes for its interval variable; a fixed window for checking the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "2m"}
# The name the suites' `rule_files:` refer to.
RULE_FILE_NAME = "rules.yaml"


def run(argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a binary with a timeout; the caller asserts on returncode and output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def dashboard_queries() -> list[str]:
    """Every panel query of the dashboard, with Grafana's variables filled in."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries
