"""The GitOps owner objects, as far as pausing needs them: an Argo CD Application's automated
policy and who manages it, a HelmRelease's suspend flag (webhook.gitops reads them). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.config import GitOps

ARGOCD_TRACKING_ID = "argocd.argoproj.io/tracking-id"


def split_app(value: str, default_namespace: str) -> tuple[str, str]:
    # Applications outside Argo CD's own namespace are tracked as "<namespace>_<name>" ("_" is
    # never part of a Kubernetes name, so the split is unambiguous).
    namespace, sep, name = value.partition("_")
    return (namespace, name) if sep and name else (default_namespace, value)


@dataclass(frozen=True)
class ApplicationFacts:
    """An Argo CD Application as read (None fields: not found)."""

    found: bool
    automated: dict[str, Any] | None = None  # spec.syncPolicy.automated
    managed_by: str | None = None  # "ApplicationSet argocd/x" or "Application argocd/parent"
    resource_version: str = ""


@dataclass(frozen=True)
class HelmReleaseFacts:
    found: bool
    suspended: bool = False
    resource_version: str = ""


OwnerFacts = ApplicationFacts | HelmReleaseFacts


def application_facts(app: Mapping[str, Any] | None, *, settings: GitOps) -> ApplicationFacts:
    """What pausing needs from an Application: its automated policy and who manages it."""
    if app is None:
        return ApplicationFacts(found=False)
    meta = app.get("metadata") or {}
    managed_by = None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ApplicationSet":
            managed_by = f"ApplicationSet {meta.get('namespace', '')}/{ref.get('name', '')}"
    if managed_by is None:
        # An app-of-apps parent tracks its children like any resource it applies.
        tracking = (meta.get("annotations") or {}).get(ARGOCD_TRACKING_ID, "")
        key = settings.argocd_instance_label
        parent = tracking.partition(":")[0] or (
            (meta.get("labels") or {}).get(key, "") if key else ""
        )
        if parent:
            parent_ns, parent_name = split_app(parent, settings.argocd_namespace)
            managed_by = f"Application {parent_ns}/{parent_name}"
    automated = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    return ApplicationFacts(
        found=True,
        automated=dict(automated) if isinstance(automated, dict) else None,
        managed_by=managed_by,
        resource_version=str(meta.get("resourceVersion", "")),
    )


def helmrelease_facts(release: Mapping[str, Any] | None) -> HelmReleaseFacts:
    if release is None:
        return HelmReleaseFacts(found=False)
    return HelmReleaseFacts(
        found=True,
        suspended=bool((release.get("spec") or {}).get("suspend")),
        resource_version=str((release.get("metadata") or {}).get("resourceVersion", "")),
    )
