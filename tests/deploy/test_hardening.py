"""The Deployment every overlay ships runs as a hardened pod, wired to its config and secrets.

Checks the pod an operator gets from `kubectl apply -k`: non-root, read-only root, no
capabilities, RuntimeDefault seccomp, bounded resources, probes on the service's own endpoints,
writable volumes only where the service writes, and every file the config names mounted.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from tests.deploy.render import OVERLAYS, Obj, config_of, only, pod_spec, webhook_container
from webhook.config import settings_from_dict

pytestmark = [pytest.mark.kubectl, pytest.mark.parametrize("overlay", OVERLAYS)]


def mount_for(container: Obj, path: str) -> Obj:
    """The volume mount that contains file `path` (the longest matching mount path)."""
    matches = [
        mount
        for mount in container.get("volumeMounts", [])
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/")
    ]
    assert matches, f"{path} is on no volume mount of {container['name']}"
    return max(matches, key=lambda mount: len(mount["mountPath"]))


def volume(spec: dict[str, Any], name: str) -> Obj:
    return next(v for v in spec["volumes"] if v["name"] == name)


def test_two_replicas_with_a_disruption_budget(rendered: dict[str, list[Obj]], overlay: str):
    objects = rendered[overlay]
    deployment = only(objects, "Deployment", "rollback-webhook")
    assert deployment["spec"]["replicas"] == 2
    budget = only(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_pod_runs_as_non_root_with_runtime_default_seccomp(
    rendered: dict[str, list[Obj]], overlay: str
):
    spec = pod_spec(rendered[overlay])
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] > 0 and context["runAsGroup"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for host_access in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host_access), f"{host_access} is set"
    assert not [v["name"] for v in spec["volumes"] if "hostPath" in v]


def test_every_container_is_read_only_without_capabilities(
    rendered: dict[str, list[Obj]], overlay: str
):
    spec = pod_spec(rendered[overlay])
    for container in spec["containers"] + spec.get("initContainers", []):
        context = container["securityContext"]
        name = container["name"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context.get("privileged", False) is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert not context["capabilities"].get("add"), name
        assert context.get("seccompProfile", {"type": "RuntimeDefault"}) == {
            "type": "RuntimeDefault"
        }, name


def test_resources_are_requested_and_memory_is_limited(
    rendered: dict[str, list[Obj]], overlay: str
):
    for container in pod_spec(rendered[overlay])["containers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys(), container["name"]
        assert "memory" in resources["limits"], container["name"]


def test_probes_hit_readyz_and_healthz_on_the_served_port(
    rendered: dict[str, list[Obj]], overlay: str
):
    objects = rendered[overlay]
    container = webhook_container(objects)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    served_port = settings_from_dict(config_of(objects)).server.port
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, probe
        assert ports[http_get["port"]] == served_port, probe


def test_service_and_servicemonitor_reach_the_pods(rendered: dict[str, list[Obj]], overlay: str):
    objects = rendered[overlay]
    deployment = only(objects, "Deployment", "rollback-webhook")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = only(objects, "Service", "rollback-webhook")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = only(objects, "ServiceMonitor")
    service_labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= service_ports
    assert [endpoint["path"] for endpoint in monitor["spec"]["endpoints"]] == ["/metrics"]


def test_the_command_reads_the_mounted_rendered_config(
    rendered: dict[str, list[Obj]], overlay: str
):
    objects = rendered[overlay]
    container = webhook_container(objects)
    assert container["args"][:2] == ["serve", "--config"]
    config_path = container["args"][2]
    mount = mount_for(container, config_path)
    config_volume = volume(pod_spec(objects), mount["name"])
    # The hashed name kustomize generated, so a config change rolls the pods.
    assert config_volume["configMap"]["name"] == only(objects, "ConfigMap")["metadata"]["name"]
    key = mount.get("subPath") or posixpath.relpath(config_path, mount["mountPath"])
    assert key in only(objects, "ConfigMap")["data"]


def test_only_the_audit_store_and_tmp_are_writable(rendered: dict[str, list[Obj]], overlay: str):
    objects = rendered[overlay]
    spec = pod_spec(objects)
    container = webhook_container(objects)
    audit_path = settings_from_dict(config_of(objects)).audit.path
    audit_mount = mount_for(container, audit_path)
    assert not audit_mount.get("readOnly", False)
    # SQLite writes its -wal and -shm files beside the database: the whole directory is writable.
    assert audit_mount["mountPath"] == posixpath.dirname(audit_path)
    assert "emptyDir" in volume(spec, audit_mount["name"])
    writable = sorted(m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly"))
    assert writable == sorted([audit_mount["mountPath"], "/tmp"])


def test_every_secret_file_the_config_names_is_mounted_from_a_secret(
    rendered: dict[str, list[Obj]], overlay: str
):
    objects = rendered[overlay]
    config = config_of(objects)
    secret_files = [
        config["auth"]["receiver"]["bearer_token_file"],
        config["auth"]["oncall_tokens_file"],
    ]
    spec = pod_spec(objects)
    container = webhook_container(objects)
    for path in secret_files:
        mount = mount_for(container, path)
        assert mount.get("readOnly") is True, path
        secret = volume(spec, mount["name"])["secret"]
        file_name = posixpath.relpath(path, mount["mountPath"])
        assert file_name in [item["path"] for item in secret["items"]], path
        # Readable by the pod's group only (fsGroup), never world-readable.
        assert secret["defaultMode"] & 0o007 == 0, path
    assert config["auth"]["receiver"].get("allow_unauthenticated", False) is False
