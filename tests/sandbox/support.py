"""Helpers shared by the sandbox tests: a settable clock, a manifest, a kubectl runner."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from sandbox.objects import apply_defaults
from sandbox.store import Store
from sandbox.testing import SandboxHandle


class Clock:
    """A settable clock for the store."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# A two-replica Deployment `shop/web` for the store-level tests.
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "shop/web:1"}]
"""


def create_deployment(store: Store, text: str = DEPLOYMENT, **spec: Any) -> dict[str, Any]:
    """Store the Deployment in YAML `text` (spec fields overridden by `spec`), defaulted as
    the API server would default it."""
    obj = yaml.safe_load(text)
    obj["spec"].update(spec)
    apply_defaults("deployments", obj)
    created: dict[str, Any] = store.create("deployments", obj)
    return created


class Kubectl:
    """Runs the real kubectl with the sandbox's kubeconfig and a short request timeout."""

    def __init__(self, binary: str, handle: SandboxHandle) -> None:
        self.binary = binary
        self.handle = handle

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # A cache per sandbox: kubectl keys ~/.kube/cache by host:port, and ports come back.
        cache = self.handle.kubeconfig.parent / "kube-cache"
        command = [
            self.binary,
            "--kubeconfig",
            str(self.handle.kubeconfig),
            f"--cache-dir={cache}",
            "--request-timeout=10s",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)
