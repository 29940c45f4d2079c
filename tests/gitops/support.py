"""Deployments owned by GitOps tools, built from small YAML, on a sandbox (or any cluster)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from lab.receiver_harness import ONCALL, Harness

ONCALL_TOKEN = ONCALL.split(":", 1)[1]

# The owners' markers, as each tool writes them on what it applies.
FLUX_KUSTOMIZATION = {
    "labels": {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    },
    "annotations": {},
}
ARGOCD_TRACKED = {
    "labels": {},
    "annotations": {"argocd.argoproj.io/tracking-id": "shop-app:apps/Deployment:shop/{name}"},
}
HELMRELEASE = {
    "labels": {
        "helm.toolkit.fluxcd.io/name": "{name}",
        "helm.toolkit.fluxcd.io/namespace": "shop",
        "app.kubernetes.io/managed-by": "Helm",
    },
    "annotations": {
        "meta.helm.sh/release-name": "{name}",
        "meta.helm.sh/release-namespace": "shop",
    },
}

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {labels}
  annotations: {annotations}
spec:
  replicas: 2
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
"""


def manifest(name: str, image: str, owner: dict[str, Any], *, namespace: str = "shop") -> Any:
    """The Deployment as the owner's Git holds it (opted in), markers filled in with `name`."""
    labels = {k: v.format(name=name) for k, v in owner["labels"].items()}
    annotations = {k: v.format(name=name) for k, v in owner["annotations"].items()}
    annotations["auto-rollback/enabled"] = "true"
    return yaml.safe_load(
        MANIFEST.format(
            name=name,
            namespace=namespace,
            labels=json.dumps(labels),
            annotations=json.dumps(annotations),
            image=image,
        )
    )


def deploy_owned(
    harness: Harness,
    name: str,
    revisions: Sequence[tuple[str, timedelta]],
    owner: dict[str, Any],
) -> list[str]:
    """Roll out one image per revision at the given ages (as the owner applied them)."""
    now = datetime.now(UTC)
    for image, age in revisions:
        harness.sandbox.controls.apply(manifest(name, image, owner), as_of=now - age)
    return [rs["metadata"]["name"] for rs in harness.replicasets("shop", name)]


def events(harness: Harness, reason: str, namespace: str = "shop") -> list[dict[str, Any]]:
    return [e for e in harness.events(namespace) if e["reason"] == reason]


class FullApp:
    """The whole app (`runtime.build_app`: receiver, on-call API, console) over a harness."""

    def __init__(self, harness: Harness) -> None:
        from webhook.auth import Credentials
        from webhook.runtime import build_app

        self.h = harness
        self.client = build_app(
            harness.service, credentials=Credentials.load(harness.settings)
        ).test_client()

    def resume(self, body: object, token: str = ONCALL_TOKEN) -> Any:
        return self.client.post(
            "/api/v1/resume", json=body, headers={"Authorization": f"Bearer {token}"}
        )
