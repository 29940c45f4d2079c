"""The self-monitoring bundle (rules/rollback-webhook-monitoring.yaml) on promtool 2.42 and 3.x.

The service's own counters as its /metrics exports them (rollback_webhook_decisions_total,
rollback_webhook_payloads_total, up) and Alertmanager's failed-notification counter, at 30 s
scrapes; the suite asks ALERTS which alerts fire, with their labels (cluster kept).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rules.extract import write_rule_file
from tests.binaries import require_built
from tests.rules.scenario import Scenario, Values, const, steps
from tests.rules.support import DASHBOARD, REPO, dashboard_queries, run

pytestmark = pytest.mark.promtool

MONITORING = REPO / "rules" / "rollback-webhook-monitoring.yaml"
M = 60
SERVICE = {"namespace": "rollback-webhook", "cluster": "eu-1"}


def _decisions(s: Scenario, outcome: str, reason: str, trigger: str, counts: Values) -> None:
    labels = {
        **SERVICE,
        "outcome": outcome,
        "reason": reason,
        "trigger": trigger,
        "source": "alertmanager",
    }
    s.series("rollback_webhook_decisions_total", labels, counts, job="rollback-webhook")


def _rollbacks(s: Scenario, namespace: str, deployment: str, trigger: str, counts: Values) -> None:
    labels = {
        **SERVICE,
        "deployment_namespace": namespace,
        "deployment": deployment,
        "outcome": "rolled_back",
        "trigger": trigger,
    }
    s.series("rollback_webhook_rollbacks_total", labels, counts, job="rollback-webhook")


def _scenario() -> Scenario:
    s = Scenario(minutes=40)
    s.series("up", SERVICE, steps((0, 1), (20 * M, 0)), job="rollback-webhook")
    # A rollback at 5m; a failed decision (forbidden) at 8m; circuit_open skips at 12m.
    # prometheus_client exports a labelled counter only once it counts: it appears at 1.
    _decisions(s, "rolled_back", "", "restart_rate", steps((5 * M, 1)))
    _rollbacks(s, "shop", "web", "restart_rate", steps((5 * M, 1)))
    # shop/api: rolled back at 2m, and again at 30m (its series already there, at 1).
    _rollbacks(s, "shop", "api", "oomkilled", steps((2 * M, 1), (30 * M, 2)))
    _decisions(s, "failed", "forbidden", "oomkilled", steps((8 * M, 1)))
    _decisions(s, "skipped", "circuit_open", "oomkilled", steps((0, 0), (12 * M, 2)))
    _decisions(s, "skipped", "not_opted_in", "p99_latency", steps((0, 0), (3 * M, 5)))
    payloads = {**SERVICE, "endpoint": "alerts"}
    s.series(
        "rollback_webhook_payloads_total",
        {**payloads, "code": "200"},
        const(10),
        job="rollback-webhook",
    )
    s.series(
        "rollback_webhook_payloads_total",
        {**payloads, "code": "401"},
        steps((10 * M, 1)),
        job="rollback-webhook",
    )
    s.series(
        "alertmanager_notifications_failed_total",
        {
            "cluster": "eu-1",
            "namespace": "monitoring",
            "integration": "webhook",
            "receiver": "rollback-webhook",
        },
        steps(
            (0, 0),
            (25 * M, 1),
            (26 * M, 2),
            (27 * M, 3),
            (28 * M, 4),
            (29 * M, 5),
            (30 * M, 6),
            (31 * M, 7),
        ),
        job="alertmanager",
    )

    def fires(at: float, alert: str, selector: str = "", *, yes: bool = True) -> None:
        query = (
            f'count(ALERTS{{alertname="{alert}", alertstate="firing", cluster="eu-1"{selector}}})'
        )
        s.expect(at, query, 1 if yes else None)

    # One alert per Deployment rolled back, naming it, for 15 minutes.
    web = ', deployment_namespace="shop", deployment="web"'
    api = ', deployment_namespace="shop", deployment="api"'
    fires(4 * M, "RollbackWebhookRolledBack", web, yes=False)
    fires(
        6 * M, "RollbackWebhookRolledBack", web + ', outcome="rolled_back", trigger="restart_rate"'
    )
    fires(19 * M, "RollbackWebhookRolledBack", web + ', outcome="rolled_back"')
    fires(22 * M, "RollbackWebhookRolledBack", web, yes=False)
    fires(3 * M, "RollbackWebhookRolledBack", api + ', trigger="oomkilled"')
    fires(18 * M, "RollbackWebhookRolledBack", api, yes=False)
    fires(31 * M, "RollbackWebhookRolledBack", api)
    s.expect(10 * M, 'count(ALERTS{alertname="RollbackWebhookRolledBack", alertstate="firing"})', 2)
    s.expect(
        22 * M, 'count(ALERTS{alertname="RollbackWebhookRolledBack", alertstate="firing"})', None
    )
    runbook = "https://github.com/rollback-webhook/rollback-webhook/blob/main/docs/runbook.md"
    s.alert_rule_test(
        6 * M,
        "RollbackWebhookRolledBack",
        [
            {
                "exp_labels": {
                    "severity": "info",
                    "cluster": "eu-1",
                    "deployment_namespace": "shop",
                    "deployment": name,
                    "outcome": "rolled_back",
                    "trigger": trigger,
                },
                "exp_annotations": {
                    "summary": f"rollback-webhook: rolled_back shop/{name} on a {trigger} alert",
                    "description": (
                        f"Deployment shop/{name}: 1 automatic rollback decision(s) (rolled_back,"
                        f" trigger {trigger}) in the last 15 minutes. Its revisions and marks:"
                        f" `rollback-webhook history shop/{name}`; the decision: `rollback-webhook"
                        f" audit --namespace shop --deployment {name}`."
                    ),
                    "runbook_url": f"{runbook}#rollbackwebhookrolledback",
                },
            }
            for name, trigger in (("api", "oomkilled"), ("web", "restart_rate"))
        ],
    )
    fires(7 * M, "RollbackWebhookDecisionFailed", yes=False)
    fires(9 * M, "RollbackWebhookDecisionFailed", ', reason="forbidden", trigger="oomkilled"')
    fires(13 * M, "RollbackWebhookCircuitOpen")
    fires(11 * M, "RollbackWebhookDeliveriesRefused", ', code="401"')
    # Skips for ordinary reasons alert nobody.
    s.expect(10 * M, 'count(ALERTS{alertstate="firing", trigger="p99_latency"})', None)
    fires(26 * M, "RollbackWebhookDown", ', namespace="rollback-webhook"')
    fires(18 * M, "RollbackWebhookDown", yes=False)
    fires(32 * M, "RollbackWebhookDeliveriesFailing", ', receiver="rollback-webhook"')
    fires(24 * M, "RollbackWebhookDeliveriesFailing", yes=False)
    return s


def test_monitoring_bundle_passes_promtool_check_with_every_lint(promtool: str, tmp_path: Path):
    rule_file = write_rule_file(tmp_path / "monitoring.yaml", MONITORING)
    result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout + result.stderr


def test_self_monitoring_alerts_fire_for_rollbacks_failures_and_an_unreachable_service(
    promtool: str, tmp_path: Path
):
    write_rule_file(tmp_path / "monitoring.yaml", MONITORING)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(_scenario().suite("monitoring.yaml"), width=10**6))
    result = run([promtool, "test", "rules", suite.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _paused_scenario() -> Scenario:
    # A pause at 5m (both replicas export the same count from the Deployments), a second
    # Deployment paused at 30m, both resumed at 80m; a short pause (10m to 40m) elsewhere.
    s = Scenario(minutes=100)
    count = steps((0, 0), (5 * M, 1), (30 * M, 2), (80 * M, 0))
    for pod in ("rollback-webhook-a", "rollback-webhook-b"):
        labels = {**SERVICE, "pod": pod}
        s.series("rollback_webhook_gitops_owners_paused", labels, count, job="rollback-webhook")
    s.series(
        "rollback_webhook_gitops_owners_paused",
        {"cluster": "us-1", "namespace": "rollback-webhook", "pod": "rollback-webhook-c"},
        steps((0, 0), (10 * M, 1), (40 * M, 0)),
        job="rollback-webhook",
    )
    alert = 'ALERTS{alertname="RollbackWebhookGitOpsOwnerPaused", alertstate="firing"'
    s.expect(64 * M, f"count({alert}}})", None)  # paused 59 minutes: not yet
    s.expect(66 * M, f'count({alert}, cluster="eu-1", namespace="rollback-webhook"}})', 1)
    s.expect(66 * M, f"count({alert}}})", 1)  # one alert for both replicas, none for us-1
    s.expect(79 * M, f"count({alert}}})", 1)
    s.expect(82 * M, f"count({alert}}})", None)  # resumed
    return s


def test_an_owner_left_paused_for_an_hour_warns_once_per_cluster(promtool: str, tmp_path: Path):
    write_rule_file(tmp_path / "monitoring.yaml", MONITORING)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(_paused_scenario().suite("monitoring.yaml"), width=10**6))
    result = run([promtool, "test", "rules", suite.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_no_monitoring_alert_is_routed_to_the_receiver():
    document = yaml.safe_load(MONITORING.read_text())
    for rule in document["spec"]["groups"][0]["rules"]:
        assert "rollback_trigger" not in rule.get("labels", {}), rule["alert"]


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path):
    rules = [
        {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_labelled_for_the_kube_prometheus_stack_sidecar():
    kustomization = yaml.safe_load((DASHBOARD.parent / "kustomization.yaml").read_text())
    [generator] = kustomization["configMapGenerator"]
    assert generator["files"] == [DASHBOARD.name]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
    assert generator["options"]["disableNameSuffixHash"] is True
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Decisions by outcome", "Decision latency", "Rollbacks by trigger"} <= titles
    assert any(title.startswith("Circuit breaker") for title in titles)


NATIVE_SUITE = """
rule_files: [monitoring.yaml]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'http_request_duration_seconds{job="checkout",namespace="shop",pod="checkout-1"}'
        values: '{{schema:0 sum:5 count:10 buckets:[10]}}x40'
      - series: 'http_request_duration_seconds{job="cart",namespace="shop",pod="cart-1"}'
        values: '{{schema:0 sum:5 count:10 buckets:[10]}}x40'
      - series: >-
          http_request_duration_seconds_bucket{job="cart",namespace="shop",pod="cart-1",le="+Inf"}
        values: '10x40'
    promql_expr_test:
      - expr: >-
          count(ALERTS{alertname="RollbackWebhookLatencyHistogramNative",
          alertstate="firing", job="checkout"})
        eval_time: 15m
        exp_samples: [{labels: '{}', value: 1}]
      - expr: count(ALERTS{alertname="RollbackWebhookLatencyHistogramNative", job="cart"})
        eval_time: 15m
        exp_samples: []
"""


def test_native_only_latency_histogram_warns(tmp_path: Path):
    # Native-histogram input series need promtool 3 (2.42's test format has no notation for
    # them); the rule itself loads on both (test_monitoring_bundle_passes_promtool_check...).
    promtool3 = require_built("promtool3")
    write_rule_file(tmp_path / "monitoring.yaml", MONITORING)
    (tmp_path / "native.yaml").write_text(NATIVE_SUITE)
    result = run([promtool3, "test", "rules", "native.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
