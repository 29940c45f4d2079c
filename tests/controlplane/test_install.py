"""docs/install.md, steps 2 and 3, on the real control plane: the page's commands create the
namespace and the two Secrets, `kubectl apply -k site/` (the page's site overlay) is accepted by
a real kube-apiserver, and the service account it creates can do what the dry-run overlay
promises and no more (`kubectl auth can-i`, answered by the apiserver's own authorizer)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.controlplane import ControlPlane
from tests.binaries import require_binary
from tests.controlplane.support import SERVICE_ACCOUNT, can_i, kubectl, wait_until
from tests.deploy.test_install_walkthrough import INSTALL, site_overlay

pytestmark = pytest.mark.controlplane

# prometheus-operator's kinds the bundle ships, as open CRDs (the real ones only add a schema;
# tests/deploy/test_overlays.py checks the objects against that schema).
MONITORING_CRDS = [
    ("servicemonitors", "ServiceMonitor"),
    ("prometheusrules", "PrometheusRule"),
]


def _crd(plural: str, kind: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def step(number: int) -> str:
    """The `sh` blocks of install.md's step `number`."""
    section = INSTALL.read_text().split(f"### {number}.")[1].split("\n### ")[0]
    return "\n".join(re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE))


def test_steps_two_and_three_on_a_real_api_server(controlplane: ControlPlane, tmp_path: Path):
    kubectl(
        controlplane,
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump_all([_crd(p, k) for p, k in MONITORING_CRDS]),
    )
    kubectl(controlplane, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    site_overlay(tmp_path)
    # Step 3 waits for the pods' rollout: only its apply runs here (the image is not built).
    apply_line = next(line for line in step(3).splitlines() if "apply -k site/" in line)
    script = f"{step(2)}\n{apply_line}\n"
    binary = Path(require_binary("kubectl"))
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "kubectl").write_text(
        f'#!/bin/sh\nexec {binary} --cache-dir {tmp_path / "kcache"} "$@"\n'
    )
    (shims / "kubectl").chmod(0o755)
    env = {
        **os.environ,
        "KUBECONFIG": str(controlplane.kubeconfig),
        "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
    }
    try:
        result = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "deployment.apps/rollback-webhook created" in result.stdout, result.stdout
        # Step 2 made the Namespace the apply then takes over, without kubectl's warning.
        assert "last-applied-configuration" not in result.stderr, result.stderr
        secrets = kubectl(controlplane, "get", "secrets", "-n", "rollback-webhook", "-o", "name")
        assert {"secret/rollback-webhook-receiver", "secret/rollback-webhook-oncall"} <= set(
            secrets.stdout.split()
        )

        def can(verb: str, resource: str, *extra: str) -> bool:
            return can_i(controlplane, SERVICE_ACCOUNT, verb, resource, *extra)

        # The apiserver's authorizer reads RBAC from its informers: bindings just created take
        # effect a moment later (each kind of binding on its own watch).
        wait_until(
            "the RBAC to take effect",
            lambda: (
                can("get", "deployments.apps", "-n", "shop")
                and can("create", "leases.coordination.k8s.io", "-n", "rollback-webhook")
            ),
        )
        # The dry-run overlay: reads everywhere, writes no rollback, stamps and marks only.
        assert can("get", "deployments.apps", "-n", "shop")
        assert not can("update", "deployments.apps", "-n", "shop")
        assert can("patch", "replicasets.apps", "-n", "shop")
        assert can("create", "leases.coordination.k8s.io", "-n", "rollback-webhook")
        assert not can("create", "leases.coordination.k8s.io", "-n", "shop")
        assert not can("get", "secrets", "-n", "rollback-webhook")
    finally:
        kubectl(controlplane, "delete", "-k", str(tmp_path / "site"), "--wait=false", check=False)
        kubectl(
            controlplane,
            "delete",
            "crd",
            *(f"{p}.monitoring.coreos.com" for p, _ in MONITORING_CRDS),
            "--wait=false",
            check=False,
        )


def test_the_helm_chart_on_a_real_api_server(controlplane: ControlPlane) -> None:
    """`helm template` of the chart in enforce mode, applied to kube-apiserver as is: accepted,
    and its service account may roll back (update Deployments) where the dry-run one may not."""
    from tests.deploy.test_chart import CHART, helm

    namespace = "rw-helm"
    rendered = helm(
        "template",
        "rollback-webhook",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "mode=enforce",
        "--set",
        "createNamespace=true",
        "--set",
        "monitoring.prometheusRule.enabled=false",
        "--set",
        "monitoring.serviceMonitor.enabled=false",
    ).stdout
    account = f"system:serviceaccount:{namespace}:rollback-webhook"
    try:
        applied = kubectl(controlplane, "apply", "-f", "-", stdin=rendered)
        assert "deployment.apps/rollback-webhook created" in applied.stdout, applied.stdout

        def can(verb: str, resource: str, *extra: str) -> bool:
            return can_i(controlplane, account, verb, resource, *extra)

        # As above: the new bindings reach the authorizer a moment after the apply.
        wait_until(
            "the RBAC to take effect",
            lambda: (
                can("update", "deployments.apps", "-n", "shop")
                and can("create", "leases.coordination.k8s.io", "-n", namespace)
            ),
        )
        assert can("update", "deployments.apps", "-n", "shop")
        assert can("create", "leases.coordination.k8s.io", "-n", namespace)
        assert not can("get", "secrets", "-n", namespace)
        labels = kubectl(
            controlplane,
            "get",
            "namespace",
            namespace,
            "-o",
            "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}",
        ).stdout
        assert labels == "restricted"
    finally:
        kubectl(controlplane, "delete", "-f", "-", "--wait=false", stdin=rendered, check=False)
