"""Real kubectl reading what the sandbox controller writes during a bad rollout.

kubectl = kubernetes/kubectl staging/src/k8s.io/kubectl/pkg/...; controller =
kubernetes/kubernetes pkg/controller/deployment/...
"""

from __future__ import annotations

import subprocess

import pytest

from sandbox.testing import SandboxHandle
from tests.binaries import require_binary
from tests.sandbox.support import Kubectl

pytestmark = pytest.mark.kubectl

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sandbox.auto-rollback/fault: FAULT}
    spec:
      containers: [{name: app, image: "shop/web:2"}]
"""


def kubectl(sandbox: SandboxHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return Kubectl(require_binary("kubectl"), sandbox).run(*args, check=False)


def test_rollout_status_waits_on_a_crashlooping_revision(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(MANIFEST.replace("FAULT", "crashloop"))
    result = kubectl(sandbox, "rollout", "status", "deployment/web", "-n", "shop", "--timeout=2s")
    # kubectl polymorphichelpers/rollout_status.go: available < updated keeps it waiting,
    # and the timeout makes it exit non-zero.
    assert result.returncode != 0
    assert (
        'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are '
        "available..." in result.stdout
    )


def test_rollout_status_succeeds_on_a_slow_but_ready_revision(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(MANIFEST.replace("FAULT", "slow"))
    result = kubectl(sandbox, "rollout", "status", "deployment/web", "-n", "shop", "--timeout=5s")
    assert result.returncode == 0, result.stderr
    assert 'deployment "web" successfully rolled out' in result.stdout


def test_describe_shows_the_controllers_conditions_and_scaling_events(
    sandbox: SandboxHandle,
) -> None:
    sandbox.controls.apply(MANIFEST.replace("FAULT", "oomkilled"))
    out = kubectl(sandbox, "describe", "deployment/web", "-n", "shop").stdout
    rs_name = next(
        line.split()[1] for line in out.splitlines() if line.startswith("NewReplicaSet:")
    )
    # kubectl describe (pkg/describe/describe.go) prints the conditions table and events;
    # reasons come from controller util/deployment_util.go, the event from sync.go.
    assert "Available      False   MinimumReplicasUnavailable" in out
    assert "Progressing    True    ReplicaSetUpdated" in out
    assert f"Scaled up replica set {rs_name} from 0 to 2" in out
    assert "ScalingReplicaSet" in out
