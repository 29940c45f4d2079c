"""A receiver wired to a sandbox cluster, driven through POST /api/v1/alerts.

Clusters are built from small YAML: `deploy(name, [("web:1", hours(2)), ("web:2", minutes(3))])`
makes revision 1 two hours old and revision 2 three minutes old (the sandbox's as-of writes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml
from werkzeug.test import TestResponse

from sandbox.testing import SandboxHandle
from webhook.app import create_app
from webhook.auth import Credentials
from webhook.config import settings_from_dict
from webhook.runtime import build_service

TOKEN = "receiver-secret-token"
# The service talks to the sandbox with its own bearer token, so the sandbox's request record
# tells the service's requests (RBAC is derived from them) from the test's own reads.
SERVICE_TOKEN = "service-account-rollback-webhook"
ONCALL = "alice:oncall-secret-alice"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  annotations: {annotations}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 10
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 8080}}]
"""


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def now() -> datetime:
    return datetime.now(UTC)


class Harness:
    """One receiver (service + Flask app) against one sandbox."""

    def __init__(self, sandbox: SandboxHandle, tmp_path: Path, **settings: Any) -> None:
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "oncall").write_text(ONCALL + "\n")
        config: dict[str, Any] = {
            "audit": {"path": str(tmp_path / "audit.sqlite")},
            "auth": {
                "receiver": {"bearer_token_file": str(tmp_path / "token")},
                "oncall_tokens_file": str(tmp_path / "oncall"),
            },
            "kubernetes": {"timeout_seconds": 2},
        }
        config.update(settings)
        self.settings = settings_from_dict(config)
        self.api = sandbox.api_client()
        self.service = build_service(self.settings, api_client=sandbox.api_client(SERVICE_TOKEN))
        self.app = create_app(self.service, credentials=Credentials.load(self.settings))
        self.client = self.app.test_client()

    # -- cluster building ------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        revisions: Sequence[tuple[str, timedelta]],
        *,
        namespace: str = "shop",
        annotations: dict[str, str] | None = None,
        replicas: int = 2,
    ) -> list[str]:
        """Roll out one image per revision at the given ages; ReplicaSet names by revision."""
        chosen = {"auto-rollback/enabled": "true"} if annotations is None else annotations
        for image, age in revisions:
            manifest = DEPLOYMENT.format(
                name=name,
                namespace=namespace,
                annotations=json.dumps(chosen),
                replicas=replicas,
                image=image,
            )
            self.sandbox.controls.apply(yaml.safe_load(manifest), as_of=now() - age)
        return [rs["metadata"]["name"] for rs in self.replicasets(namespace, name)]

    def replicasets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Deployment's ReplicaSets ordered by revision number."""
        items = self.read("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")["items"]
        owned = [
            rs
            for rs in items
            if any(ref.get("name") == name for ref in rs["metadata"].get("ownerReferences", []))
        ]
        return sorted(owned, key=lambda rs: int(rs["metadata"]["annotations"][REV]))

    def read(self, method: str, path: str) -> dict[str, Any]:
        """A raw GET through the official client, as JSON (what any API user would see)."""
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params)
        data: dict[str, Any] = json.loads(response.read())
        return data

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.read("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def events(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.read("GET", f"/api/v1/namespaces/{namespace}/events")[
            "items"
        ]
        return items

    def event_reasons(self, namespace: str) -> list[str]:
        return [e["reason"] for e in self.events(namespace)]

    def official(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    # -- alerts -------------------------------------------------------------------------------
    @staticmethod
    def alert(
        *,
        started_ago: timedelta = timedelta(minutes=1),
        status: str = "firing",
        trigger: str | None = "restart_rate",
        **labels: str,
    ) -> dict[str, Any]:
        all_labels = {"alertname": "RollbackRestartRate", "severity": "critical", **labels}
        if trigger is not None:
            all_labels["rollback_trigger"] = trigger
        return {
            "status": status,
            "labels": all_labels,
            "annotations": {"summary": "test"},
            "startsAt": (now() - started_ago).isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            "fingerprint": "f" + str(abs(hash(json.dumps(all_labels, sort_keys=True))))[:15],
        }

    @staticmethod
    def payload(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
        statuses = {a["status"] for a in alerts}
        return {
            "version": "4",
            "groupKey": '{}:{alertname="RollbackRestartRate"}',
            "truncatedAlerts": 0,
            "status": "firing" if "firing" in statuses else "resolved",
            "receiver": "rollback-webhook",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
            **extra,
        }

    def post(
        self, body: Any, *, token: str | None = TOKEN, content_type: str = "application/json"
    ) -> TestResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(
            "/api/v1/alerts", data=data, headers=headers, content_type=content_type
        )

    def post_alerts(self, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post(self.payload(*alerts))
        assert response.status_code == 200, response.get_json()
        decisions: list[dict[str, Any]] = response.get_json()["decisions"]
        return decisions

    def audit_row(self, decision_id: str) -> dict[str, Any]:
        row = self.service.audit.get(decision_id)
        assert row is not None, f"decision {decision_id} not in the audit"
        return row


REV = "deployment.kubernetes.io/revision"


def template_images(deployment: dict[str, Any]) -> list[str]:
    return [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]


def pods_of(harness: Harness, replicaset: str, namespace: str = "shop") -> list[str]:
    items = harness.read("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    return sorted(
        p["metadata"]["name"]
        for p in items
        if any(r.get("name") == replicaset for r in p["metadata"].get("ownerReferences", []))
    )
