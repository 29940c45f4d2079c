"""The Helm chart (deploy/chart/rollback-webhook) with the real helm CLI (built by
scripts/build-go.sh from lab/go/helm, a pinned release): `helm lint`, `helm template`, and the
rendered objects equal in substance to the kustomize overlays' (`kubectl kustomize`): the same
RBAC, the same hardened pod, the same configuration. Labels Helm and kustomize add for their own
bookkeeping, the ConfigMap's name hash and the image are the only differences allowed."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.binaries import require_built
from tests.deploy.render import DEPLOY, REPO, config_of, find, only, render, webhook_container
from webhook.config import settings_from_dict

CHART = DEPLOY / "chart" / "rollback-webhook"
NAMESPACE = "rollback-webhook"
# Bookkeeping labels: kustomize's `labels:` (part-of, managed-by) and Helm's; `release` is the
# monitoring selector label, a value of its own (checked apart).
BOOKKEEPING = {
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/instance",
    "helm.sh/chart",
    "release",
}
# overlay -> the chart values that mean the same
EQUIVALENT: dict[str, list[str]] = {
    "dry-run": ["mode=dry-run", "createNamespace=true"],
    "enforce": ["mode=enforce", "createNamespace=true"],
    # The namespaced overlay ships no Namespace object (an administrator makes it).
    "namespaced": ["mode=dry-run", "scope.clusterWide=false", "scope.watchNamespaces={team-a}"],
    "gitops": ["mode=enforce", "gitops.pauseOwners=true", "createNamespace=true"],
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = require_built("helm")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def template(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "rollback-webhook", str(CHART), "--namespace", NAMESPACE]
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def normal(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without what Helm and kustomize may legitimately differ in."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for key in BOOKKEEPING:
        (meta.get("labels") or {}).pop(key, None)
    meta.pop("annotations", None)
    if obj["kind"] == "ConfigMap" and meta["name"].startswith("rollback-webhook-config"):
        meta["name"] = "rollback-webhook-config"
        # configMapGenerator labels its ConfigMap with the `labels:` pairs only.
        meta.get("labels", {}).pop("app.kubernetes.io/name", None)
        if not meta.get("labels"):
            meta.pop("labels", None)
        obj["data"] = {"config.yaml": yaml.safe_load(obj["data"]["config.yaml"])}
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]
        for key in BOOKKEEPING:
            pod["metadata"]["labels"].pop(key, None)
        pod["metadata"].pop("annotations", None)
        for volume in pod["spec"]["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = re.sub(
                    r"^(rollback-webhook-config)-[a-z0-9]+$", r"\1", volume["configMap"]["name"]
                )
        for container in pod["spec"]["containers"]:
            container["image"] = "IMAGE"
    return obj


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    normalised = [normal(o) for o in objects]
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in normalised
    }


def test_helm_lint_passes_for_every_mode() -> None:
    for sets in EQUIVALENT.values():
        args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
        for value in sets:
            args += ["--set", value]
        result = helm(*args)
        assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("overlay", sorted(EQUIVALENT))
def test_chart_renders_what_the_overlay_renders(overlay: str) -> None:
    kustomized = by_key(render(DEPLOY / "overlays" / overlay))
    charted = by_key(template(*EQUIVALENT[overlay], "monitoring.dashboard.enabled=false"))
    if overlay == "namespaced":
        # The one intended difference: the chart withholds `update` on Deployments in dry-run
        # mode in a namespaced Role too, as the dry-run overlay's ClusterRole does.
        role = kustomized[("Role", "team-a", "rollback-webhook")]
        assert role["rules"][0]["verbs"] == ["get", "list", "update"]
        role["rules"][0]["verbs"] = ["get", "list"]
    assert sorted(charted) == sorted(kustomized)
    for key, obj in kustomized.items():
        assert charted[key] == obj, f"{overlay}: {key} differs"


def test_values_select_the_image_and_the_rule_selector_label() -> None:
    objects = template("image.repository=registry.example.com/platform/rollback-webhook")
    assert webhook_container(objects)["image"] == (
        "registry.example.com/platform/rollback-webhook:0.1.0"
    )
    for kind in ("PrometheusRule", "ServiceMonitor"):
        labels = only(objects, kind, "rollback-webhook")["metadata"]["labels"]
        assert labels["release"] == "kube-prometheus-stack", kind
    renamed = template("monitoring.selectorLabels.release=my-monitoring")
    bundles = {"rollback-webhook": "rollback-rules", "rollback-webhook-monitoring": None}
    for name, file in bundles.items():
        labels = only(renamed, "PrometheusRule", name)["metadata"]["labels"]
        assert labels["release"] == "my-monitoring", name
        # Each bundle is the promtool-tested file of rules/ itself: the triggers and the
        # alerts on the service.
        shipped = yaml.safe_load((REPO / "rules" / f"{file or name}.yaml").read_text())
        assert only(objects, "PrometheusRule", name)["spec"] == shipped["spec"], name
    assert len(find(objects, "PrometheusRule")) == 2


def test_monitoring_toggles() -> None:
    bare = template(
        "monitoring.prometheusRule.enabled=false", "monitoring.serviceMonitor.enabled=false"
    )
    assert not find(bare, "PrometheusRule") and not find(bare, "ServiceMonitor")
    assert not find(template(), "ConfigMap", "rollback-webhook-dashboard")
    [dashboard] = find(
        template("monitoring.dashboard.enabled=true"), "ConfigMap", "rollback-webhook-dashboard"
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["rollback-webhook.json"])
    # The same dashboard rules/dashboard ships (a copy once fell 5 panels behind).
    repo = Path(__file__).resolve().parents[2]
    assert shipped == json.loads((repo / "rules/dashboard/rollback-webhook.json").read_text())
    panels = shipped["panels"]
    assert any("rollback_webhook_decisions_total" in p["targets"][0]["expr"] for p in panels)


def test_postgresql_audit_reads_its_dsn_from_a_secret_file(tmp_path: Path) -> None:
    objects = template("audit.backend=postgresql", "audit.postgresql.dsnSecret.name=audit-dsn")
    config = config_of(objects)
    assert config["audit"]["backend"] == "postgresql"
    dsn_file = config["audit"]["dsn_file"]
    mounts = {m["name"]: m["mountPath"] for m in webhook_container(objects)["volumeMounts"]}
    assert dsn_file == mounts["audit-dsn"] + "/dsn"
    volumes = {
        v["name"]: v for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["audit-dsn"]["secret"] == {
        "secretName": "audit-dsn",
        "defaultMode": 0o440,
        "items": [{"key": "dsn", "path": "dsn"}],
    }
    assert set(config["audit"]) == {"backend", "path", "dsn_file"}  # a path, never the DSN
    settings = settings_from_dict(config)  # the keys the audit package reads
    assert settings.audit.backend == "postgresql" and settings.audit.dsn_file == dsn_file


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["mode=yolo"], 'mode: expected dry-run or enforce, got "yolo"'),
        (["scope.clusterWide=false"], "scope.watchNamespaces: list the namespaces"),
        (["gitops.pauseOwners=true"], "gitops.pauseOwners: needs mode: enforce"),
        (["audit.backend=postgresql"], "audit.postgresql.dsnSecret.name"),
    ],
)
def test_bad_values_fail_naming_the_value(sets: list[str], message: str) -> None:
    args = ["template", "rollback-webhook", str(CHART), "--namespace", NAMESPACE]
    for value in sets:
        args += ["--set", value]
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_config_follows_the_release_namespace() -> None:
    objects = [
        doc
        for doc in yaml.safe_load_all(
            helm("template", "rw", str(CHART), "--namespace", "platform-rollbacks").stdout
        )
        if doc
    ]
    assert config_of(objects)["tracker"]["lease_namespace"] == "platform-rollbacks"
    binding = only(objects, "ClusterRoleBinding", "rollback-webhook")
    assert binding["subjects"][0]["namespace"] == "platform-rollbacks"
