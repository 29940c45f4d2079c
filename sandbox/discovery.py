"""What the sandbox serves, and the discovery documents that tell kubectl so.

Legacy discovery (`APIVersions`, `APIGroupList`, `APIResourceList`) is enough: kubectl asks
for aggregated discovery (apidiscovery.k8s.io/v2) first and accepts the plain JSON answer
(client-go discovery/aggregated_discovery.go falls back on the content type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource: where it lives and how it is named."""

    group: str  # "" for the core group
    version: str
    resource: str  # plural, also the Store's resource name
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """apiVersion as written in objects: "v1" or "group/version"."""
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo("", "v1", "namespaces", "Namespace", "namespace", False, ("ns",), ("status",)),
    ResourceInfo("", "v1", "pods", "Pod", "pod", True, ("po",), ("status",), ("all",)),
    ResourceInfo("", "v1", "events", "Event", "event", True, ("ev",)),
    ResourceInfo(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        "deployment",
        True,
        ("deploy",),
        ("status", "scale"),
        ("all",),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        "replicaset",
        True,
        ("rs",),
        ("status", "scale"),
        ("all",),
    ),
    ResourceInfo("coordination.k8s.io", "v1", "leases", "Lease", "lease", True),
)


def find_resource(group: str, version: str, resource: str) -> ResourceInfo | None:
    """The served resource at group/version/resource, or None."""
    for info in RESOURCES:
        if (info.group, info.version, info.resource) == (group, version, resource):
            return info
    return None


def resource_for_kind(api_version: str, kind: str) -> ResourceInfo | None:
    """The served resource for an object's apiVersion and kind, or None."""
    for info in RESOURCES:
        if info.api_version == api_version and info.kind == kind:
            return info
    return None


def version_info(kube_version: str) -> dict[str, Any]:
    """The /version answer; its minor picks the kubectl release the dispatcher runs."""
    core = kube_version.lstrip("v").split("-")[0].split("+")[0]
    major, minor = [*core.split("."), "0", "0"][:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": kube_version if kube_version.startswith("v") else f"v{kube_version}",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The /api answer."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for info in RESOURCES:
        if info.group and info.version not in groups.setdefault(info.group, []):
            groups[info.group].append(info.version)
    return groups


def api_group(name: str) -> dict[str, Any] | None:
    """The /apis/{group} answer (APIGroup), or None for an unknown group."""
    versions = _group_versions().get(name)
    if versions is None:
        return None
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list() -> dict[str, Any]:
    """The /apis answer."""
    groups = []
    for name in _group_versions():
        group = api_group(name)
        if group is not None:
            group.pop("kind")
            group.pop("apiVersion")
            groups.append(group)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The /api/v1 or /apis/{group}/{version} answer (APIResourceList), or None."""
    served = [info for info in RESOURCES if (info.group, info.version) == (group, version)]
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for info in served:
        entry: dict[str, Any] = {
            "name": info.resource,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": list(ALL_VERBS),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        resources.append(entry)
        for sub in info.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{info.resource}/{sub}",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
