"""The shipped RBAC, and the helpers that compare it with the service's real requests.

The proof is test_rbac_traffic.py (the set derived from the receiver and tracker suites'
requests); SPECIFIED below is the same set written out, a fast check that reads as documentation.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.rbac import granted, used
from tests.deploy.render import Obj

SPECIFIED = {
    *{(verb, "apps", "deployments") for verb in ("get", "list", "update")},
    *{(verb, "apps", "replicasets") for verb in ("get", "list", "patch")},
    ("get", "", "pods"),
    ("get", "", "namespaces"),
    ("create", "", "events"),
    *{(verb, "coordination.k8s.io", "leases") for verb in ("get", "create", "update")},
}
# The permission only a real rollback uses: the dry-run overlay leaves it out, so a watch-only
# install cannot roll back even with a wrong configuration.
WRITES_ROLLBACKS = {("update", "apps", "deployments")}


@pytest.mark.kubectl
@pytest.mark.parametrize("overlay", ["dry-run", "enforce", "namespaced"])
def test_shipped_rbac_grants_exactly_what_the_service_does(
    rendered: dict[str, list[Obj]], overlay: str
):
    expected = SPECIFIED - WRITES_ROLLBACKS if overlay == "dry-run" else SPECIFIED
    assert granted(rendered[overlay]) == expected


@pytest.mark.kubectl
def test_shipped_rbac_never_touches_secrets_or_deletes(rendered: dict[str, list[Obj]]):
    for overlay, objects in rendered.items():
        permissions = granted(objects)
        assert not {p for p in permissions if p[2] == "secrets"}, overlay
        assert not {p for p in permissions if p[0] in {"delete", "deletecollection", "*"}}, overlay


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> Obj:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "rules": rules,
    }


def binding(kind: str, role_kind: str, role_name: str, namespace: str | None = None) -> Obj:
    metadata: dict[str, Any] = {"name": f"bind-{role_name}"}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "rollback-webhook", "namespace": "x"}],
    }


READ_PODS = [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]


def test_granted_expands_every_verb_group_and_resource():
    objects = [
        role("ClusterRole", "r", READ_PODS),
        binding("ClusterRoleBinding", "ClusterRole", "r"),
    ]
    assert granted(objects) == {
        ("get", "", "pods"),
        ("list", "", "pods"),
        ("get", "", "pods/log"),
        ("list", "", "pods/log"),
    }


def test_an_unbound_role_grants_nothing():
    assert granted([role("ClusterRole", "r", READ_PODS)]) == set()


def test_a_role_binding_finds_the_role_of_its_own_namespace():
    objects = [
        role("Role", "r", READ_PODS, namespace="a"),
        role(
            "Role",
            "r",
            [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}],
            namespace="b",
        ),
        binding("RoleBinding", "Role", "r", namespace="b"),
    ]
    assert granted(objects) == {("create", "", "events")}


def test_a_role_binding_may_bind_a_cluster_role():
    objects = [role("ClusterRole", "r", READ_PODS), binding("RoleBinding", "ClusterRole", "r", "a")]
    assert ("get", "", "pods") in granted(objects)


def test_a_binding_to_an_undefined_role_is_an_error_naming_it():
    with pytest.raises(ValueError, match="ClusterRole missing"):
        granted([binding("ClusterRoleBinding", "ClusterRole", "missing")])


def test_wildcards_stay_wildcards():
    objects = [
        role("ClusterRole", "r", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        binding("ClusterRoleBinding", "ClusterRole", "r"),
    ]
    assert granted(objects) == {("*", "*", "*")}


def test_used_spells_subresources_as_rbac_does():
    record: list[dict[str, str | None]] = [
        {"verb": "get", "group": "apps", "resource": "deployments", "subresource": ""},
        {"verb": "patch", "group": "apps", "resource": "deployments", "subresource": "status"},
        {"verb": "list", "group": None, "resource": "pods", "subresource": None},
        {"verb": "get", "group": "apps", "resource": "deployments", "subresource": ""},
    ]
    assert used(record) == {
        ("get", "apps", "deployments"),
        ("patch", "apps", "deployments/status"),
        ("list", "", "pods"),
    }


def test_used_rejects_http_methods_naming_the_row():
    with pytest.raises(ValueError, match=r"row 0: verb 'GET' is not an RBAC verb"):
        used([{"verb": "GET", "group": "", "resource": "pods", "subresource": ""}])


def test_used_rejects_rows_without_a_resource():
    with pytest.raises(ValueError, match="row 1: missing resource"):
        record: list[dict[str, str]] = [
            {"verb": "get", "group": "", "resource": "pods"},
            {"verb": "get", "group": ""},
        ]
        used(record)


def test_granted_equals_used_when_the_service_uses_everything_it_may():
    record = [
        {"verb": verb, "group": group, "resource": resource, "subresource": ""}
        for verb, group, resource in SPECIFIED
    ]
    assert used(record) == SPECIFIED
