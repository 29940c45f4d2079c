"""What the apiserver does to an object before storing it: defaults, validation and the
status-versus-spec split between a resource and its /status subresource.

Defaults are the ones in pkg/apis/apps/v1/defaults.go and pkg/apis/core/v1/defaults.go that
clients observe (kubectl rollout status dereferences spec.replicas; rollout undo compares
templates that went through the same defaulting). They are idempotent, so every write can
apply them.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.discovery import ResourceInfo
from sandbox.errors import ApiError, invalid
from sandbox.selectors import SelectorError, labels_match, selector_from_label_selector

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Resources whose main endpoint ignores status changes (registry strategies' PrepareForUpdate).
STATUS_SPLIT = frozenset({"namespaces", "pods", "deployments", "replicasets"})


def default_pod_spec(spec: dict[str, Any]) -> None:
    """core/v1 PodSpec defaults that show up in `kubectl get -o yaml`."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def apply_defaults(resource: str, obj: dict[str, Any]) -> None:
    """Fill the defaults a real apiserver adds, in place."""
    spec = obj.get("spec")
    if resource == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", obj["metadata"].get("name", ""))
    elif resource == "deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        _default_template(spec)
    elif resource == "replicasets" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _default_template(spec)
    elif resource == "pods" and isinstance(spec, dict):
        default_pod_spec(spec)
        obj.setdefault("status", {"phase": "Pending"})
    if resource in {"deployments", "replicasets"}:
        obj.setdefault("status", {})


def _default_template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        template["metadata"].setdefault("creationTimestamp", None)
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])


# apimachinery's TotalAnnotationSizeLimitB: an object's annotations, keys and values, in bytes.
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid naming every field that a real apiserver would refuse."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    causes: list[tuple[str, str]] = []
    pattern = _DNS_LABEL if info.resource == "namespaces" else _DNS_SUBDOMAIN
    if name and (not pattern.match(name) or len(name) > 253):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 '
                "subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str):
            causes.append((f"metadata.labels[{key}]", "label values must be strings"))
    annotations = meta.get("annotations") or {}
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        limit = TOTAL_ANNOTATION_SIZE_LIMIT
        causes.append(("metadata.annotations", f"Too long: may not be more than {limit} bytes"))
    if info.resource in {"deployments", "replicasets"}:
        causes.extend(_workload_causes(obj.get("spec") or {}))
    elif info.resource == "pods":
        causes.extend(_pod_spec_causes(obj.get("spec") or {}, "spec"))
    if causes:
        raise invalid(info, name, causes)


def _workload_causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    else:
        try:
            requirements = selector_from_label_selector(selector)
        except (SelectorError, KeyError) as error:
            causes.append(("spec.selector", f"Invalid value: {error}"))
        else:
            if not requirements:
                causes.append(("spec.selector", "Invalid value: empty selector is invalid"))
            elif not labels_match(requirements, template):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        "Invalid value: `selector` does not match template `labels`",
                    )
                )
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas!r}: must be >= 0"))
    causes.extend(_pod_spec_causes(template.get("spec") or {}, "spec.template.spec"))
    return causes


def _pod_spec_causes(spec: dict[str, Any], where: str) -> list[tuple[str, str]]:
    containers = spec.get("containers")
    if not containers:
        return [(f"{where}.containers", "Required value")]
    causes: list[tuple[str, str]] = []
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            causes.append((f"{where}.containers[{index}].name", "Required value"))
        elif not container.get("image"):
            causes.append((f"{where}.containers[{index}].image", "Required value"))
    return causes


def validate_update(info: ResourceInfo, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Checks that only apply to updates: immutable fields."""
    if info.resource == "deployments" and info.group == "apps":
        if (old.get("spec") or {}).get("selector") != (new.get("spec") or {}).get("selector"):
            name = str((new.get("metadata") or {}).get("name", ""))
            raise invalid(info, name, [("spec.selector", "Invalid value: field is immutable")])


def prepare_update(
    info: ResourceInfo, old: dict[str, Any], new: dict[str, Any], *, subresource: str
) -> dict[str, Any]:
    """The object to store for a write to the resource ("") or its "status" subresource:
    the main endpoint keeps the stored status, /status keeps everything but status."""
    if subresource == "status":
        merged = dict(old)
        merged["status"] = new.get("status", {})
        meta = dict(old.get("metadata") or {})
        meta["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
        merged["metadata"] = meta
        return merged
    if info.resource in STATUS_SPLIT and "status" in old:
        new = dict(new)
        new["status"] = old["status"]
    return new


def check_identity(
    info: ResourceInfo, obj: dict[str, Any], *, namespace: str | None, name: str | None
) -> None:
    """A body whose namespace or name disagrees with the URL is a 400 (or 422 for name)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise ApiError(400, "BadRequest", "the object has no metadata")
    sent = (obj.get("apiVersion") or info.api_version, obj.get("kind") or info.kind)
    if sent != (info.api_version, info.kind):
        raise ApiError(
            400,
            "BadRequest",
            f"the body is a {sent[0]} {sent[1]}, but this endpoint takes "
            f"{info.api_version} {info.kind}",
        )
    if info.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and namespace and body_ns != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        meta["namespace"] = namespace or body_ns
    else:
        meta.pop("namespace", None)
    if name is not None:
        body_name = meta.get("name")
        if body_name and body_name != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        meta["name"] = name
