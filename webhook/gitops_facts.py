"""The GitOps owner objects, as far as pausing needs them: an Argo CD Application's automated
policy and who manages it, a HelmRelease's suspend flag, and whether the owner itself lists the
Deployment (webhook.gitops reads them). Pure.

The Deployment's metadata names its owner, but whoever may edit the Deployment may write any
name there. So a pause writes an owner only when the owner, in the status its own controller
writes, says it applies that Deployment:
- an Application's `status.resources` lists `apps/Deployment <namespace>/<name>`, and its
  `spec.destination` is this cluster (`gitops.argocd_destinations`): an Application that deploys
  to another cluster lists that cluster's objects, which may share this one's names;
- a HelmRelease releases into this cluster (no `spec.kubeConfig`), and its
  `status.inventory.entries` holds the id `<namespace>_<name>_apps_Deployment`. A
  helm-controller that keeps no inventory (those before it had one) lists nothing, unless
  `gitops.helmrelease_latest_release` accepts its latest release (`status.history[0]`):
  released into the Deployment's namespace, under the name the Deployment's
  `meta.helm.sh/release-name` gives. That is weaker: a forged marker can then pick any
  release into the Deployment's namespace, whatever else that release installs.

An Application's listing counts only objects its Git source applies: Argo CD also lists live
objects that merely carry its tracking marker (to prune, or without a sync status), and whoever
may edit the Deployment may write that marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.config import GitOps

ARGOCD_TRACKING_ID = "argocd.argoproj.io/tracking-id"
HELM_RELEASE_NAME = "meta.helm.sh/release-name"


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
    listed: bool = False  # the Application lists the Deployment among its resources
    membership: str = ""  # how it does, or why it does not (for the record)


@dataclass(frozen=True)
class HelmReleaseFacts:
    found: bool
    suspended: bool = False
    resource_version: str = ""
    listed: bool = False  # the HelmRelease lists (or released) the Deployment
    membership: str = ""


OwnerFacts = ApplicationFacts | HelmReleaseFacts


def application_facts(
    app: Mapping[str, Any] | None, *, settings: GitOps, deployment: Mapping[str, Any]
) -> ApplicationFacts:
    """What pausing needs from an Application: its automated policy, who manages it, and
    whether it lists `deployment` (the Deployment as read)."""
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
    listed, membership = _application_lists(app, settings=settings, deployment=deployment)
    return ApplicationFacts(
        found=True,
        automated=dict(automated) if isinstance(automated, dict) else None,
        managed_by=managed_by,
        resource_version=str(meta.get("resourceVersion", "")),
        listed=listed,
        membership=membership,
    )


def _application_lists(
    app: Mapping[str, Any], *, settings: GitOps, deployment: Mapping[str, Any]
) -> tuple[bool, str]:
    namespace, name = _where(deployment)
    spec = app.get("spec")
    destination = spec.get("destination") if isinstance(spec, Mapping) else None
    named = (
        [str(destination[key]) for key in ("server", "name") if destination.get(key)]
        if isinstance(destination, Mapping)
        else []
    )
    ours = set(settings.argocd_destinations)
    if not named:
        return False, "its spec.destination names no cluster"
    if any(value.rstrip("/") not in ours for value in named):
        return False, (
            f"its spec.destination names {' and '.join(repr(value) for value in named)}, not "
            f"this cluster (gitops.argocd_destinations: "
            f"{', '.join(settings.argocd_destinations) or 'none'})"
        )
    status = app.get("status")
    resources = status.get("resources") if isinstance(status, Mapping) else None
    entries = [
        r
        for r in (resources if isinstance(resources, list) else [])
        if isinstance(r, Mapping)
        and (r.get("group"), r.get("kind"), r.get("namespace"), r.get("name"))
        == ("apps", "Deployment", namespace, name)
    ]
    what = f"apps/Deployment {namespace}/{name}"
    if not entries:
        return False, f"its status.resources does not list {what}"
    how = [_from_git(entry) for entry in entries]
    if None in how:
        return True, f"its status.resources lists {what}"
    return False, f"its status.resources lists {what} only {how[0]}"


def _from_git(entry: Mapping[str, Any]) -> str | None:
    """None when a status.resources entry is an object the Application's Git source applies;
    else how Argo CD lists it. Argo CD lists every live object whose tracking marker names the
    Application, so a marker written on the Deployment puts it there too: as one to prune
    (`requiresPruning`, not in Git), or with no sync status (a tracking id naming another
    object); neither shows that the Application applies it."""
    if entry.get("requiresPruning") is True:
        return "as an object to prune (requiresPruning: not in its Git source)"
    if entry.get("hook") is True:
        return "as a sync hook"
    if entry.get("status") not in ("Synced", "OutOfSync"):
        return f"with sync status {entry.get('status')!r}, not Synced or OutOfSync"
    return None


def helmrelease_facts(
    release: Mapping[str, Any] | None, *, settings: GitOps, deployment: Mapping[str, Any]
) -> HelmReleaseFacts:
    """What pausing needs from a HelmRelease: its suspend flag and whether it applies
    `deployment` (the Deployment as read; module doc)."""
    if release is None:
        return HelmReleaseFacts(found=False)
    spec = release.get("spec") or {}
    status = release.get("status")
    if isinstance(spec, Mapping) and spec.get("kubeConfig"):
        # Its inventory and history are another cluster's, whose names may match this one's.
        listed, membership = False, "it releases into the cluster its spec.kubeConfig names"
    else:
        listed, membership = _release_lists(
            status if isinstance(status, Mapping) else {},
            deployment,
            latest_release=settings.helmrelease_latest_release,
        )
    return HelmReleaseFacts(
        found=True,
        suspended=bool(spec.get("suspend")) if isinstance(spec, Mapping) else False,
        resource_version=str((release.get("metadata") or {}).get("resourceVersion", "")),
        listed=listed,
        membership=membership,
    )


def _where(deployment: Mapping[str, Any]) -> tuple[str, str]:
    meta = deployment.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _release_lists(
    status: Mapping[str, Any], deployment: Mapping[str, Any], *, latest_release: bool
) -> tuple[bool, str]:
    namespace, name = _where(deployment)
    inventory = status.get("inventory")
    if isinstance(inventory, Mapping):
        wanted = f"{namespace}_{name}_apps_Deployment"
        entries = inventory.get("entries")
        listed = isinstance(entries, list) and any(
            isinstance(e, Mapping) and e.get("id") == wanted for e in entries
        )
        return listed, f"its status.inventory {'lists' if listed else 'does not list'} {wanted}"
    if not latest_release:
        return False, (
            "it keeps no status.inventory (a helm-controller older than the HelmRelease "
            "inventory), and gitops.helmrelease_latest_release is false"
        )
    history = status.get("history")
    latest = history[0] if isinstance(history, list) and history else None
    if not isinstance(latest, Mapping):
        return False, "it keeps no status.inventory and records no release in status.history"
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    named = annotations.get(HELM_RELEASE_NAME, "") if isinstance(annotations, Mapping) else ""
    released = f"{latest.get('namespace', '')}/{latest.get('name', '')}"
    listed = bool(named) and released == f"{namespace}/{named}"
    said = "is" if listed else "is not"
    return listed, (
        f"it keeps no status.inventory, and its latest release {released} {said} the release "
        f"{namespace}/{named or '(none)'} the Deployment's {HELM_RELEASE_NAME} names"
    )
