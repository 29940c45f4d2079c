"""The human steps a refusal names: each tool's own commands, in order (webhook.gitops).

Kept apart from the detection so the commands can change with the tools without touching the
policy. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webhook.gitops import Owner


@dataclass(frozen=True)
class Target:
    """What the human steps name: the Deployment and the revision to go back to."""

    namespace: str
    deployment: str
    to_revision: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


# -- human steps -------------------------------------------------------------------------------
def _undo(target: Target) -> str:
    base = f"kubectl -n {target.namespace} rollout undo deployment/{target.deployment}"
    if target.to_revision:
        return f"{base} --to-revision={target.to_revision}"
    pick = f"rollback-webhook history {target.namespace}/{target.deployment}"
    return f"{base} --to-revision=N (N: the revision `{pick}` picks)"


def refusal_steps(owner: Owner, target: Target) -> tuple[str, ...]:
    """What a person does instead of this service, in order (each tool's own commands)."""
    fix_git = "revert the bad change in Git (the image or template of the current revision)"
    if owner.kind == "argocd":
        app = f"{owner.namespace}/{owner.name}"
        return (
            f"argocd app set {app} --sync-policy none",
            f"argocd app rollback {app} (or {_undo(target)})",
            fix_git,
            f"argocd app set {app} --sync-policy automated",
        )
    if owner.kind == "flux_kustomization":
        return (
            f"flux suspend kustomization {owner.name} -n {owner.namespace}",
            _undo(target),
            fix_git,
            f"flux resume kustomization {owner.name} -n {owner.namespace}",
        )
    if owner.kind == "flux_helmrelease":
        return (
            f"flux suspend helmrelease {owner.name} -n {owner.namespace}",
            f"helm rollback {owner.name} -n {target.namespace} (or {_undo(target)})",
            fix_git + " (the HelmRelease's chart version or values)",
            f"flux resume helmrelease {owner.name} -n {owner.namespace}",
        )
    release = owner.name if owner.name != "?" else "RELEASE"
    return (
        f"helm rollback {release} -n {owner.namespace} (keeps Helm's history true; or "
        f"{_undo(target)})",
        "fix the chart or values before the next helm upgrade, which re-applies them",
    )


def unproven_steps(target: Target) -> tuple[str, ...]:
    """Steps when the owner the Deployment names does not list it (webhook.gitops)."""
    where = f"-n {target.namespace} deployment/{target.deployment}"
    return (
        f"find what applies the Deployment: `kubectl get {where} --show-managed-fields -o yaml` "
        "names its field managers; correct its owner labels or annotations if they are wrong",
        "pause that tool with its own command",
        _undo(target),
        "revert the bad change in Git, then hand the tool back",
    )


def managed_steps(owner: Owner, managed_by: str, target: Target) -> tuple[str, ...]:
    kind, _, parent = managed_by.partition(" ")
    app = f"{owner.namespace}/{owner.name}"
    if kind == "ApplicationSet":
        first = (
            f"toggling {app}'s automated sync has no effect under {managed_by}: disable it in the "
            "ApplicationSet's template (or its applicationsSync policy), or revert in Git"
        )
    else:
        first = f"argocd app set {parent} --sync-policy none (the parent re-enables its children)"
    return (first, *refusal_steps(owner, target))
