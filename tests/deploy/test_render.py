"""Each overlay renders with kubectl kustomize, and every object is valid for its API.

Built-in kinds validate against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
an unknown or misspelt field fails, where a cluster would drop it silently); the
prometheus-operator kinds against crd_schemas.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.crd_schemas import SCHEMAS
from tests.deploy.render import OVERLAYS, Obj, only

# The maintained Kubernetes minors at the time of writing (1.35 to 1.37): the oldest and the
# newest, so a field that is too new or already removed fails one of them.
KUBERNETES_VERSIONS = ("1.35", "1.37")

CLUSTER_WIDE_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
EVERY_OVERLAY_KINDS = {
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
}


def validate(obj: Obj, version: str) -> None:
    """Raise when `obj` is not valid for Kubernetes `version` (or its CRD schema)."""
    crd_schema = SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd_schema is not None:
        jsonschema.validate(obj, crd_schema)
        return
    # SchemaNotFoundError propagates: an object of an unknown kind must not pass unchecked.
    kubernetes_validate.validate(obj, version, strict=True)


def describe(error: Exception) -> str:
    path = ".".join(str(part) for part in getattr(error, "path", []))
    return f"{path}: {getattr(error, 'message', error)}"


@pytest.mark.kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_part_of_the_bundle(rendered: dict[str, list[Obj]], overlay: str):
    kinds = {obj["kind"] for obj in rendered[overlay]}
    expected = (
        EVERY_OVERLAY_KINDS if overlay == "namespaced" else EVERY_OVERLAY_KINDS | CLUSTER_WIDE_KINDS
    )
    assert kinds == expected


@pytest.mark.kubectl
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates(
    rendered: dict[str, list[Obj]], overlay: str, version: str
):
    failures = []
    for obj in rendered[overlay]:
        try:
            validate(obj, version)
        except (
            kubernetes_validate.ValidationError,
            kubernetes_validate.SchemaNotFoundError,
            jsonschema.ValidationError,
        ) as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {describe(error)}")
    assert not failures, "\n".join(failures)


@pytest.mark.kubectl
def test_rendered_objects_are_namespaced_into_the_service_namespace(
    rendered: dict[str, list[Obj]],
):
    for obj in rendered["dry-run"]:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_WIDE_KINDS:
            assert namespace is None, f"{obj['kind']} is cluster-scoped but has a namespace"
        else:
            assert namespace == "rollback-webhook", f"{obj['kind']} lands in {namespace}"


# The checks above must be able to fail: a misspelt field is caught, not ignored.


@pytest.mark.kubectl
def test_strict_validation_rejects_a_misspelt_security_field(rendered: dict[str, list[Obj]]):
    deployment: dict[str, Any] = copy.deepcopy(only(rendered["dry-run"], "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, KUBERNETES_VERSIONS[-1])


@pytest.mark.kubectl
def test_crd_schema_rejects_a_bad_scrape_interval(rendered: dict[str, list[Obj]]):
    monitor: dict[str, Any] = copy.deepcopy(only(rendered["dry-run"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, KUBERNETES_VERSIONS[-1])


@pytest.mark.kubectl
def test_crd_schema_rejects_a_non_string_rule_label(rendered: dict[str, list[Obj]]):
    rule: dict[str, Any] = copy.deepcopy(
        only(rendered["dry-run"], "PrometheusRule", "rollback-webhook")
    )
    alerting = next(r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r)
    alerting.setdefault("labels", {})["priority"] = 1  # YAML int: the CRD wants strings
    with pytest.raises(jsonschema.ValidationError):
        validate(rule, KUBERNETES_VERSIONS[-1])
