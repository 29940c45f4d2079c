"""What Alertmanager sees: status codes, error messages that name the problem, and retries
that are safe because the payload was stored before deciding."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import api_client_for
from webhook.app import create_app
from webhook.auth import Credentials
from webhook.runtime import build_service


@pytest.fixture
def rs(harness: Harness) -> list[str]:
    return harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])


def assert_cluster_untouched(harness: Harness) -> None:
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    writes = [r for r in harness.sandbox.controls.requests() if r["method"] != "GET"]
    assert writes == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "names"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        (
            json.dumps({"version": "4", "status": "firing"}),
            "application/json",
            400,
            "payload: must contain ['alerts']",
        ),
        (
            json.dumps(
                {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}
            ),
            "application/json",
            400,
            "alerts[0]: must contain ['startsAt'] properties",
        ),
        (
            json.dumps(
                {
                    "version": "4",
                    "status": "firing",
                    "alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}],
                }
            ),
            "application/json",
            400,
            "alerts[0].startsAt: not an RFC 3339 time",
        ),
        ("{}", "text/plain", 415, "Content-Type must be application/json"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(
    harness: Harness, rs: list[str], body: str, content_type: str, status: int, names: str
) -> None:
    harness.sandbox.controls.clear_requests()
    response = harness.post(body, content_type=content_type)
    assert response.status_code == status
    assert names in response.get_json()["error"]
    assert_cluster_untouched(harness)


def test_oversize_body_is_413(make_harness: Any) -> None:
    harness = make_harness(server={"max_body_bytes": 2048})
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    big = harness.payload(harness.alert(namespace="shop", deployment="web", padding="x" * 4096))
    response = harness.post(big)
    assert response.status_code == 413
    assert "max_body_bytes (2048 bytes)" in response.get_json()["error"]
    assert_cluster_untouched(harness)


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        (None, 401, "missing Authorization"),
        ("wrong", 401, "invalid bearer token"),
        ("oncall-secret-alice", 403, "on-call token cannot post alerts"),
    ],
)
def test_bad_or_missing_credentials(
    harness: Harness, rs: list[str], token: str | None, status: int, message: str
) -> None:
    harness.sandbox.controls.clear_requests()
    response = harness.post(
        harness.payload(harness.alert(namespace="shop", deployment="web")), token=token
    )
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert_cluster_untouched(harness)
    assert harness.service.audit.payloads() == []


def test_unknown_payload_fields_are_ignored(harness: Harness, rs: list[str]) -> None:
    payload = harness.payload(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1]),
        notification_reason="new_alerts",
        routeLabels={"team": "a"},
    )
    response = harness.post(payload)
    assert response.status_code == 200
    assert response.get_json()["decisions"][0]["outcome"] == "rolled_back"


def test_truncated_alerts_are_recorded(harness: Harness, rs: list[str]) -> None:
    payload = harness.payload(harness.alert(namespace="shop", deployment="web"), truncatedAlerts=3)
    response = harness.post(payload)
    stored = harness.service.audit.payload(response.get_json()["payload_id"])
    assert stored is not None and stored.truncated_alerts == 3
    assert "truncated 3 alerts" in response.get_json()["decisions"][0]["detail"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"method": "GET", "path": "/deployments/web$", "status": 500}, "api_error"),
        ({"method": "PUT", "path": "/deployments/web$", "status": 503}, "api_error"),
        ({"method": "GET", "path": "/deployments/web$", "action": "drop"}, "api_error"),
        ({"method": "GET", "path": "/deployments/web$", "action": "hang", "delay": 3}, "timeout"),
    ],
)
def test_kubernetes_api_failure_is_503_and_the_retry_rolls_back_once(
    harness: Harness, rs: list[str], fault: dict[str, Any], reason: str
) -> None:
    harness.sandbox.controls.fault(**fault)
    payload = harness.payload(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    first = harness.post(payload)
    assert first.status_code == 503
    body = first.get_json()
    assert "Kubernetes API failure" in body["error"]
    [failed] = body["decisions"]
    assert (failed["outcome"], failed["reason"]) == ("failed", reason)
    assert harness.service.audit.payload(body["payload_id"]) is not None
    assert harness.audit_row(failed["id"])["reason"] == reason
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    # Alertmanager retries the same payload: it rolls back, once.
    second = harness.post(payload)
    assert second.status_code == 200
    assert second.get_json()["decisions"][0]["outcome"] == "rolled_back"
    third = harness.post(payload)
    assert third.get_json()["decisions"][0]["reason"] == "not_current_revision"
    assert len(harness.service.audit.payloads()) == 3


def test_kubernetes_api_refusing_connections_is_503(harness: Harness) -> None:
    # Point the service at a loopback port nobody listens on: connection refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    harness.service = build_service(harness.settings, api_client=api_client_for(dead, "t"))
    app = create_app(harness.service, credentials=Credentials.load(harness.settings))
    harness.client = app.test_client()
    response = harness.post(harness.payload(harness.alert(namespace="shop", deployment="web")))
    assert response.status_code == 503
    assert response.get_json()["decisions"][0]["reason"] == "api_error"
    assert "connection failed" in response.get_json()["error"]
    assert len(harness.service.audit.payloads()) == 1


def test_audit_store_down_is_503(harness: Harness, rs: list[str], tmp_path: Any) -> None:
    (tmp_path / "not-a-dir").write_text("")  # the audit's directory cannot be made
    harness.service.audit.close()
    harness.service.audit.path = str(tmp_path / "not-a-dir" / "x" / "audit.sqlite")  # type: ignore[attr-defined]
    response = harness.post(harness.payload(harness.alert(namespace="shop", deployment="web")))
    assert response.status_code == 503
    assert "audit store unavailable" in response.get_json()["error"]
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


def test_health_readiness_and_metrics(harness: Harness, rs: list[str]) -> None:
    assert harness.client.get("/healthz").status_code == 200
    assert harness.client.get("/readyz").status_code == 200
    harness.post_alerts(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    # A repeat (skipped, not_current_revision) counts as a decision, not as a rollback.
    harness.post_alerts(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    metrics = harness.client.get("/metrics").get_data(as_text=True)
    assert (
        'rollback_webhook_decisions_total{outcome="rolled_back",reason="",source="alertmanager",'
        'trigger="restart_rate"} 1.0' in metrics
    )
    rollbacks = [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics)
        if family.name == "rollback_webhook_rollbacks"
        for sample in family.samples
        if sample.name == "rollback_webhook_rollbacks_total"
    ]
    # Which Deployment was rolled back, for the RollbackWebhookRolledBack alert to name it.
    labels = {"deployment_namespace": "shop", "deployment": "web", "outcome": "rolled_back"}
    assert rollbacks == [({**labels, "trigger": "restart_rate"}, 1.0)]
    harness.sandbox.controls.fault(method="GET", path="^/version$", status=500)
    ready = harness.client.get("/readyz")
    assert ready.status_code == 503 and "kubernetes" in ready.get_json()["error"]


def test_audit_retention_is_applied_as_payloads_arrive(make_harness: Any, tmp_path: Any) -> None:
    harness = make_harness(audit={"retention_days": 30, "path": str(tmp_path / "a.sqlite")})
    audit = harness.service.audit
    old = harness.service.clock() - timedelta(days=31)
    audit.store_payload("{}", received_at=old, source="alertmanager")
    harness.post(harness.payload(harness.alert(status="resolved", namespace="shop")))
    stored = audit.payloads()
    assert len(stored) == 1 and stored[0].received_at > old.isoformat()


def test_a_payload_without_alerts_and_a_refused_one_are_stored_all_the_same(
    harness: Harness,
) -> None:
    # Neither has a decision to carry its raw body into the audit: each is stored on its own
    # before the answer (a 200 for the empty one, a 400 naming the field for the other).
    empty = harness.post(harness.payload())
    assert empty.status_code == 200 and empty.get_json()["decisions"] == []
    refused = harness.post({**harness.payload(), "alerts": "not a list"})
    assert refused.status_code == 400 and "alerts" in refused.get_json()["error"]
    bodies = [json.loads(p.body)["alerts"] for p in harness.service.audit.payloads()]
    assert sorted(map(str, bodies)) == ["[]", "not a list"]
    assert harness.service.audit.payload(empty.get_json()["payload_id"]) is not None
