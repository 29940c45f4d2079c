"""What distinguishes the overlays, and what must stay the same across them."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.rbac import granted
from tests.deploy.render import REPO, Obj, config_of, find, only, render
from webhook.config import load_settings

pytestmark = pytest.mark.kubectl


def differing_keys(left: dict[str, Any], right: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two parsed configs."""
    keys = set()
    for key in left.keys() | right.keys():
        a, b = left.get(key), right.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys |= differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.add(f"{prefix}{key}")
    return keys


def test_the_dry_run_overlay_only_watches(rendered: dict[str, list[Obj]]):
    assert config_of(rendered["dry-run"])["dry_run"] is True


def test_the_enforce_overlay_rolls_back(rendered: dict[str, list[Obj]]):
    assert config_of(rendered["enforce"])["dry_run"] is False


def test_the_namespaced_overlay_starts_in_dry_run(rendered: dict[str, list[Obj]]):
    assert config_of(rendered["namespaced"])["dry_run"] is True


def test_overlay_configs_differ_only_where_they_must(rendered: dict[str, list[Obj]]):
    dry_run = config_of(rendered["dry-run"])
    assert differing_keys(dry_run, config_of(rendered["enforce"])) == {"dry_run"}
    assert differing_keys(dry_run, config_of(rendered["namespaced"])) == {"namespaces"}


def test_dry_run_and_enforce_differ_only_in_their_config_and_rollback_permission(
    rendered: dict[str, list[Obj]],
):
    def comparable(objects: list[Obj]) -> list[Obj]:
        # The ConfigMap's content (and so its hashed name) is meant to differ, and so is the
        # ClusterRole's one rollback permission (tests/deploy/test_rbac.py pins which).
        kept = [copy.deepcopy(o) for o in objects if o["kind"] not in ("ConfigMap", "ClusterRole")]
        for obj in kept:
            if obj["kind"] == "Deployment":
                for vol in obj["spec"]["template"]["spec"]["volumes"]:
                    vol.get("configMap", {}).pop("name", None)
        return kept

    assert comparable(rendered["dry-run"]) == comparable(rendered["enforce"])


def test_a_config_change_rolls_the_pods(tmp_path: Path):
    # A copy of deploy/ and rules/ side by side, as in the repo, with one config value changed.
    for part in ("deploy", "rules"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    overlay = tmp_path / "deploy" / "overlays" / "dry-run"
    before = render(overlay)
    config = overlay / "config.yaml"
    config.write_text(config.read_text() + "cooldown: 2h\n")
    after = render(overlay)

    def template(objects: list[Obj]) -> Obj:
        template: Obj = only(objects, "Deployment")["spec"]["template"]
        return template

    def config_map_name(objects: list[Obj]) -> str:
        name: str = only(objects, "ConfigMap")["metadata"]["name"]
        return name

    assert config_map_name(before) != config_map_name(after)
    assert template(before) != template(after), "a config change would not restart the pods"


def test_the_tracker_and_ledger_leases_live_where_the_service_may_write_them(
    rendered: dict[str, list[Obj]],
):
    objects = rendered["dry-run"]
    tracker = config_of(objects)["tracker"]
    deployment = only(objects, "Deployment")
    assert tracker["lease_namespace"] == deployment["metadata"]["namespace"]
    role = only(objects, "Role", "rollback-webhook-leader-election")
    assert role["metadata"]["namespace"] == tracker["lease_namespace"]
    ledger = config_of(objects)["circuit_ledger"]
    assert ledger["namespace"] == deployment["metadata"]["namespace"]
    named_rules = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert all(
        sorted(rule["resourceNames"]) == sorted([tracker["lease_name"], ledger["name"]])
        for rule in named_rules
    )
    assert {verb for rule in named_rules for verb in rule["verbs"]} == {"get", "update"}


def test_the_namespaced_overlay_has_no_cluster_wide_object(rendered: dict[str, list[Obj]]):
    kinds = {obj["kind"] for obj in rendered["namespaced"]}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Namespace"}


def test_the_namespaced_overlay_watches_exactly_the_namespaces_it_has_roles_in(
    rendered: dict[str, list[Obj]],
):
    objects = rendered["namespaced"]
    allowed = config_of(objects)["namespaces"]["allow"]
    assert allowed, "namespaces.allow is empty: the service would list across the cluster"
    service_namespace = only(objects, "Deployment")["metadata"]["namespace"]
    bound = {
        binding["metadata"]["namespace"]
        for binding in find(objects, "RoleBinding")
        if binding["metadata"]["namespace"] != service_namespace
    }
    assert set(allowed) == bound


def test_the_namespaced_roles_grant_what_the_cluster_role_grants(
    rendered: dict[str, list[Obj]],
):
    assert granted(rendered["namespaced"]) == granted(rendered["enforce"])


def test_only_alertmanager_and_prometheus_may_connect(rendered: dict[str, list[Obj]]):
    objects = rendered["dry-run"]
    policy = only(objects, "NetworkPolicy")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    # Both selectors in one peer: pods of those names AND in the monitoring namespace.
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert peer["namespaceSelector"] == monitoring
    [expression] = peer["podSelector"]["matchExpressions"]
    assert expression["key"] == "app.kubernetes.io/name"
    assert expression["operator"] == "In"
    assert sorted(expression["values"]) == ["alertmanager", "prometheus"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_every_overlay_ships_the_rules_bundle_from_rules_dir(rendered: dict[str, list[Obj]]):
    source = [doc for doc in render(REPO / "rules") if doc["kind"] == "PrometheusRule"]
    # The triggers and the alerts on the service itself: both installed by every overlay.
    names = [doc["metadata"]["name"] for doc in source]
    assert names == ["rollback-webhook", "rollback-webhook-monitoring"], names
    for overlay, objects in rendered.items():
        shipped = find(objects, "PrometheusRule")
        assert [rule["spec"] for rule in shipped] == [rule["spec"] for rule in source], overlay
        assert all(rule["metadata"]["namespace"] == "rollback-webhook" for rule in shipped)


@pytest.mark.parametrize(
    ("overlay", "dry_run", "allow"),
    [("dry-run", True, ()), ("enforce", False, ()), ("namespaced", True, ("team-a",))],
)
def test_the_rendered_config_loads_into_the_service(
    rendered: dict[str, list[Obj]],
    tmp_path: Path,
    overlay: str,
    dry_run: bool,
    allow: tuple[str, ...],
):
    # Through the file path, as `serve --config` reads it: unknown keys or bad values would stop
    # start-up with a ConfigError naming the key.
    path = tmp_path / "config.yaml"
    path.write_text(only(rendered[overlay], "ConfigMap")["data"]["config.yaml"])
    settings = load_settings(path)
    assert settings.dry_run is dry_run
    assert settings.namespaces.allow == allow
    assert settings.kubernetes.kubeconfig is None, "in a pod the service must use in-cluster auth"
    assert settings.auth.receiver.allow_unauthenticated is False
