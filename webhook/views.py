"""Typed views of the Kubernetes objects the product reads, and `Obj`, their raw JSON form.

Objects travel as the plain JSON dicts the API server sent (a PUT sends back every field it
read, known to us or not); these helpers read the few fields the policy needs, once, with their
defaults, instead of `obj["metadata"].get("annotations") or {}` at every use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

Obj = dict[str, Any]


class ObjectRef(TypedDict):
    """What an Event's involvedObject needs of the object it is about."""

    apiVersion: str
    kind: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Meta:
    """An object's metadata, with Kubernetes' defaults for what is absent."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    generation: int
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Meta:
        meta = obj.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            generation=int(meta.get("generation") or 0),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )


@dataclass(frozen=True)
class DeploymentView:
    """The fields of a Deployment the decision reads; `raw` is the object as read."""

    meta: Meta
    paused: bool
    observed_generation: int
    raw: Obj

    @classmethod
    def of(cls, deployment: Obj) -> DeploymentView:
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        return cls(
            meta=Meta.of(deployment),
            paused=bool(spec.get("paused")),
            observed_generation=int(status.get("observedGeneration") or 0),
            raw=deployment,
        )

    @property
    def controller_behind(self) -> bool:
        """The Deployment controller has not yet seen the latest spec."""
        return self.observed_generation < self.meta.generation

    def ref(self) -> ObjectRef:
        """The Deployment as an Event's involvedObject (the resourceVersion read)."""
        meta = self.raw.get("metadata") or {}
        return ObjectRef(
            apiVersion="apps/v1",
            kind="Deployment",
            metadata={
                k: str(meta.get(k) or "") for k in ("name", "namespace", "uid", "resourceVersion")
            },
        )


def condition(obj: Mapping[str, Any], kind: str) -> Obj | None:
    """A copy of the object's status condition of type `kind` (Progressing, Available...)."""
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def label_selector(deployment: Mapping[str, Any]) -> str:
    """The Deployment's spec.selector as a label selector string (how kubectl lists RSs)."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
