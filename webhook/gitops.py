"""GitOps owners: who re-applies a Deployment from Git, and what a rollback does about it.

Pure: facts in (the Deployment's own metadata, and when pausing needs it the owner object as
read), values out. The seam the policy core calls:

- `detect_owner(labels, annotations, namespace=, name=, settings=) -> Owner | None`
- `handle(owner, settings, facts=None) -> Pause | Refuse | Ignore`
- `pause_annotations(...)`, `pause_record(deployment) -> PauseRecord | None` (what resume undoes)
- `owner_pause_annotation(...)`, `owner_pause_problem(...)`: the owner's own copy of a pause,
  without which resume writes no owner

Owner detection, strongest evidence first (each tool's own markers on the object it applies):

| owner | marker on the Deployment |
|---|---|
| Argo CD | annotation `argocd.argoproj.io/tracking-id` naming this Deployment |
| Flux Kustomization | labels `kustomize.toolkit.fluxcd.io/name` and `/namespace` |
| Flux HelmRelease | labels `helm.toolkit.fluxcd.io/name` and `/namespace` |
| Helm | annotation `meta.helm.sh/release-name` (Helm 3 writes it at install) |
| Argo CD | the instance label (`gitops.argocd_instance_label`), when no Helm release annotation |
| Helm | label `app.kubernetes.io/managed-by: Helm` alone |

Charts often set `app.kubernetes.io/instance` to the release name themselves, so that label
alone counts for Argo CD only when no Helm release annotation says otherwise.

These markers choose which owner to look at, never which to write: an Application or a
HelmRelease is paused only when its own status lists the Deployment (webhook.gitops_facts), and
one that does not is refused, since anyone who may edit the Deployment may write any marker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from webhook import jsontext
from webhook.config import GitOps, GitOpsHandling
from webhook.gitops_facts import (
    ARGOCD_TRACKING_ID,
    HELM_RELEASE_NAME,
    ApplicationFacts,
    HelmReleaseFacts,
    OwnerFacts,
    split_app,
)
from webhook.gitops_steps import Target, managed_steps, refusal_steps, unproven_steps

FLUX_KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
FLUX_RECONCILE_DISABLED = "disabled"
FLUX_HELM_NAME = "helm.toolkit.fluxcd.io/name"
FLUX_HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
MANAGED_BY = "app.kubernetes.io/managed-by"
# What this service wrote when it paused an owner: resume reads it back and undoes exactly that.
ANNOTATION_GITOPS_PAUSED = "auto-rollback/gitops-paused"
# The owner's own copy of that record, written on the Application or HelmRelease in the pause's
# own write, naming the Deployment. Resume writes an owner only while it carries this copy: the
# Deployment's record is only an annotation, which whoever can edit the Deployment can write.
ANNOTATION_OWNER_PAUSE = "auto-rollback/paused-for"


class OwnerKind(StrEnum):
    ARGOCD = "argocd"
    FLUX_KUSTOMIZATION = "flux_kustomization"
    FLUX_HELMRELEASE = "flux_helmrelease"
    HELM = "helm"


class Mechanism(StrEnum):
    """How an owner is paused, least invasive first for each tool."""

    # The per-object annotation, in the rollback's own conditional write (no extra RBAC).
    FLUX_RECONCILE_ANNOTATION = "flux_reconcile_annotation"
    HELMRELEASE_SUSPEND = "helmrelease_suspend"
    # spec.syncPolicy.automated.enabled: false (Argo CD versions whose CRD has the field) ...
    ARGOCD_AUTOMATED_DISABLED = "argocd_automated_disabled"
    # ... else spec.syncPolicy.automated removed, its value recorded for resume.
    ARGOCD_AUTOMATED_REMOVED = "argocd_automated_removed"


_TITLES = {
    OwnerKind.ARGOCD: "Argo CD Application",
    OwnerKind.FLUX_KUSTOMIZATION: "Flux Kustomization",
    OwnerKind.FLUX_HELMRELEASE: "Flux HelmRelease",
    OwnerKind.HELM: "Helm release",
}


@dataclass(frozen=True)
class Owner:
    """The GitOps object (or Helm release) that re-applies the Deployment."""

    kind: OwnerKind
    name: str
    namespace: str
    evidence: str  # which marker said so, for the record

    def describe(self) -> str:
        return f"{_TITLES[self.kind]} {self.namespace}/{self.name}"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": str(self.kind),
            "name": self.name,
            "namespace": self.namespace,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Owner:
        """The owner as `as_dict` wrote it (KeyError, ValueError or TypeError when it is not)."""
        return cls(OwnerKind(data["kind"]), data["name"], data["namespace"], data["evidence"])


def detect_owner(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    namespace: str,
    name: str,
    settings: GitOps,
) -> Owner | None:
    """The owner the Deployment's own metadata names, strongest evidence first (module doc)."""
    tracking = annotations.get(ARGOCD_TRACKING_ID, "")
    if tracking:
        # "<app>:<group>/<kind>:<namespace>/<name>"; Argo CD ignores an id copied onto another
        # object (it names a different resource), and so do we.
        app, _, resource = tracking.partition(":")
        if app and resource == f"apps/Deployment:{namespace}/{name}":
            app_ns, app_name = split_app(app, settings.argocd_namespace)
            return Owner(OwnerKind.ARGOCD, app_name, app_ns, f"annotation {ARGOCD_TRACKING_ID}")
    # Owners that name themselves with a name key and a namespace key, strongest first.
    for kind, where, marks, name_key, namespace_key in (
        (
            OwnerKind.FLUX_KUSTOMIZATION,
            "label",
            labels,
            FLUX_KUSTOMIZE_NAME,
            FLUX_KUSTOMIZE_NAMESPACE,
        ),
        (OwnerKind.FLUX_HELMRELEASE, "label", labels, FLUX_HELM_NAME, FLUX_HELM_NAMESPACE),
        (OwnerKind.HELM, "annotation", annotations, HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE),
    ):
        if marks.get(name_key):
            owner_namespace = marks.get(namespace_key) or namespace
            return Owner(kind, marks[name_key], owner_namespace, f"{where} {name_key}")
    key = settings.argocd_instance_label
    instance = labels.get(key, "") if key else ""
    if instance:
        app_ns, app_name = split_app(instance, settings.argocd_namespace)
        return Owner(OwnerKind.ARGOCD, app_name, app_ns, f"label {key}")
    if labels.get(MANAGED_BY) == "Helm":
        return Owner(OwnerKind.HELM, "?", namespace, f"label {MANAGED_BY}: Helm")
    return None


def needs_facts(owner: Owner, settings: GitOps) -> bool:
    """Whether `handle` needs the owner object read first (only to pause a controller)."""
    return handling_for(owner, settings) == GitOpsHandling.PAUSE and owner.kind in (
        OwnerKind.ARGOCD,
        OwnerKind.FLUX_HELMRELEASE,
    )


# -- the verdicts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pause:
    """Pause the owner so the rollback stays; `in_rollback_write`: no write of its own."""

    owner: Owner
    mechanism: Mechanism
    detail: str
    # How the owner itself shows it applies the Deployment ('' for Flux's annotation, which
    # writes only the Deployment): said in the decision's detail.
    confirmed: str = ""

    @property
    def confirmation(self) -> str:
        """'; owner confirmed: ...' for a detail, or ''."""
        return f"; owner confirmed: {self.confirmed}" if self.confirmed else ""

    @property
    def in_rollback_write(self) -> bool:
        return self.mechanism == Mechanism.FLUX_RECONCILE_ANNOTATION


@dataclass(frozen=True)
class Refuse:
    """Do not roll back: why, and the exact steps a human takes instead."""

    owner: Owner
    why: str
    steps: tuple[str, ...]

    def text(self) -> str:
        numbered = " ".join(f"({i}) {step}" for i, step in enumerate(self.steps, 1))
        return f"{self.owner.describe()} manages this Deployment: {self.why}; steps: {numbered}"


@dataclass(frozen=True)
class Ignore:
    """Roll back as if no owner were there; `note` says why that is fine (or was configured)."""

    owner: Owner | None
    note: str = ""


Verdict = Pause | Refuse | Ignore


def handling_for(owner: Owner, settings: GitOps) -> GitOpsHandling:
    configured: GitOpsHandling = getattr(settings, str(owner.kind))
    return configured


def resume_command(namespace: str, deployment: str) -> str:
    """The command that hands control back, as it runs (resume requires a reason)."""
    return f'rollback-webhook resume {namespace}/{deployment} --reason "<what was fixed>"'


def handle(
    owner: Owner | None,
    settings: GitOps,
    *,
    target: Target,
    facts: OwnerFacts | None = None,
) -> Verdict:
    """The configured handling of `owner`, made concrete (README: GitOps owners)."""
    if owner is None:
        return Ignore(None)
    handling = handling_for(owner, settings)
    if handling == GitOpsHandling.IGNORE:
        return Ignore(owner, f"{owner.describe()}: gitops.{owner.kind} is ignore")
    if handling == GitOpsHandling.REFUSE:
        return Refuse(owner, f"gitops.{owner.kind} is refuse", refusal_steps(owner, target))
    return _pause(owner, settings, target=target, facts=facts)


def _pause(owner: Owner, settings: GitOps, *, target: Target, facts: OwnerFacts | None) -> Verdict:
    steps = refusal_steps(owner, target)
    if owner.kind == OwnerKind.FLUX_KUSTOMIZATION:
        return Pause(
            owner,
            Mechanism.FLUX_RECONCILE_ANNOTATION,
            f"{FLUX_RECONCILE}: {FLUX_RECONCILE_DISABLED} on the Deployment, in the rollback's "
            "own write",
        )
    if owner.kind == OwnerKind.HELM:
        # Nothing runs to pause: config validation refuses helm: pause; refuse if it gets here.
        return Refuse(owner, "a Helm release has no controller to pause", steps)
    if facts is not None and not facts.found and facts.membership:
        return _unproven(owner, facts, target)  # a name no object can have: nothing was read
    if owner.kind == OwnerKind.FLUX_HELMRELEASE:
        if not isinstance(facts, HelmReleaseFacts) or not facts.found:
            return Refuse(owner, "the HelmRelease was not found, so it cannot be suspended", steps)
        if not facts.listed:
            return _unproven(owner, facts, target)
        if facts.suspended:
            return Ignore(owner, f"{owner.describe()} is already suspended")
        return Pause(
            owner,
            Mechanism.HELMRELEASE_SUSPEND,
            "spec.suspend: true on the HelmRelease",
            confirmed=facts.membership,
        )
    if not isinstance(facts, ApplicationFacts) or not facts.found:
        return Refuse(
            owner,
            "the Application was not found (is gitops.argocd_namespace right?), so its automated "
            "sync cannot be disabled",
            steps,
        )
    if not facts.listed:
        return _unproven(owner, facts, target)
    if facts.managed_by and not settings.allow_managed_applications:
        return Refuse(
            owner,
            f"the Application is itself managed by {facts.managed_by}, which would re-enable its "
            "automated sync and redeploy the bad revision (gitops.allow_managed_applications is "
            "false)",
            managed_steps(owner, facts.managed_by, target),
        )
    if facts.automated is None:
        return Ignore(owner, f"{owner.describe()} has no automated sync: the rollback stays")
    if facts.automated.get("enabled") is False:
        return Ignore(owner, f"{owner.describe()} has automated sync disabled already")
    return Pause(
        owner,
        Mechanism.ARGOCD_AUTOMATED_DISABLED,
        "spec.syncPolicy.automated.enabled: false on the Application (or, where the installed "
        "Argo CD has no such field, spec.syncPolicy.automated removed and recorded)",
        confirmed=facts.membership,
    )


def _unproven(owner: Owner, facts: OwnerFacts, target: Target) -> Refuse:
    """The Deployment names an owner that does not list it: the marker is only metadata, which
    whoever may edit the Deployment may write, so the named object is not paused (nor read as
    paused already)."""
    return Refuse(
        owner,
        f"the Deployment's {owner.evidence} names it, but {facts.membership}: nothing shows that "
        "it applies this Deployment, so it is not paused",
        unproven_steps(target),
    )


# -- the pause record (what resume undoes) -----------------------------------------------------
@dataclass(frozen=True)
class PauseRecord:
    owner: Owner
    mechanism: Mechanism
    previous: dict[str, Any] | None  # spec.syncPolicy.automated before removal
    time: str
    audit_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner.as_dict(),
            "mechanism": str(self.mechanism),
            "previous": self.previous,
            "time": self.time,
            "audit_id": self.audit_id,
        }


def pause_annotations(record: PauseRecord) -> dict[str, str]:
    """The Deployment annotations the rollback's write carries for a pause."""
    annotations = {ANNOTATION_GITOPS_PAUSED: json.dumps(record.as_dict(), sort_keys=True)}
    if record.mechanism == Mechanism.FLUX_RECONCILE_ANNOTATION:
        annotations[FLUX_RECONCILE] = FLUX_RECONCILE_DISABLED
    return annotations


def pause_record(annotations: Mapping[str, str]) -> PauseRecord | None:
    """The pause this service recorded on a Deployment, or None (unreadable counts as none)."""
    raw = annotations.get(ANNOTATION_GITOPS_PAUSED)
    if not raw:
        return None
    try:
        data = jsontext.loads(raw, where=ANNOTATION_GITOPS_PAUSED)
        return PauseRecord(
            owner=Owner.from_dict(data["owner"]),
            mechanism=Mechanism(data["mechanism"]),
            previous=data.get("previous"),
            time=str(data.get("time", "")),
            audit_id=str(data.get("audit_id", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def owner_pause_annotation(
    record: PauseRecord, *, namespace: str, deployment: str
) -> dict[str, str]:
    """The annotation the owner's pause write sets: the record, and the Deployment it is for."""
    copy = {**record.as_dict(), "deployment": f"{namespace}/{deployment}"}
    return {ANNOTATION_OWNER_PAUSE: json.dumps(copy, sort_keys=True)}


def owner_pause_problem(
    owner_annotations: Mapping[str, str], record: PauseRecord, *, namespace: str, deployment: str
) -> str:
    """'' when the owner object carries this service's copy of `record` for this Deployment;
    else why it is not a pause this service made (a record only on the Deployment proves
    nothing: whoever can edit the Deployment can write one)."""
    raw = owner_annotations.get(ANNOTATION_OWNER_PAUSE)
    expected = owner_pause_annotation(record, namespace=namespace, deployment=deployment)
    if raw is not None:
        try:
            if jsontext.loads(raw) == json.loads(expected[ANNOTATION_OWNER_PAUSE]):
                return ""
        except ValueError:
            pass
    said = f"says {raw[:200]!r}" if raw else "is missing"
    return (
        f"{record.owner.describe()} does not carry the pause the Deployment's "
        f"{ANNOTATION_GITOPS_PAUSED} names (audit {record.audit_id}): its {ANNOTATION_OWNER_PAUSE} "
        f"{said}. This service writes that copy on the owner when it pauses it, so this is not "
        "its pause, and resume writes nothing to the owner; hand the owner back with its own "
        "tool if it should be, and remove the Deployment's annotation"
    )


def describe_pause(record: PauseRecord, *, namespace: str, deployment: str) -> str:
    """One line for the record, the Event and history: what, how, and the command back."""
    how = {
        Mechanism.FLUX_RECONCILE_ANNOTATION: f"{FLUX_RECONCILE}: {FLUX_RECONCILE_DISABLED} on "
        "the Deployment",
        Mechanism.HELMRELEASE_SUSPEND: "spec.suspend: true",
        Mechanism.ARGOCD_AUTOMATED_DISABLED: "spec.syncPolicy.automated.enabled: false",
        Mechanism.ARGOCD_AUTOMATED_REMOVED: "spec.syncPolicy.automated removed (was "
        f"{json.dumps(record.previous, sort_keys=True)})",
    }[record.mechanism]
    return (
        f"paused {record.owner.describe()} ({how}); hand control back once Git is fixed: "
        f"{resume_command(namespace, deployment)}"
    )


@dataclass(frozen=True)
class Ownership:
    """Who owns a Deployment and what this service does or did about it (history, console)."""

    owner: Owner | None
    handling: GitOpsHandling | None
    paused: PauseRecord | None
    namespace: str
    deployment: str

    def lines(self) -> list[str]:
        if self.owner is None:
            return ["owner: none found (no GitOps or Helm markers): rolled back directly"]
        lines = [
            f"owner: {self.owner.describe()} ({self.owner.evidence}); "
            f"handling: {self.handling} (gitops.{self.owner.kind})"
        ]
        if self.paused is not None:
            lines.append(
                describe_pause(self.paused, namespace=self.namespace, deployment=self.deployment)
                + f" [since {self.paused.time}, audit {self.paused.audit_id}]"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner.as_dict() if self.owner else None,
            "handling": str(self.handling) if self.handling else None,
            "paused": self.paused.as_dict() if self.paused else None,
            "resume": resume_command(self.namespace, self.deployment) if self.paused else None,
        }


def ownership(deployment: Mapping[str, Any], settings: GitOps) -> Ownership:
    """The Ownership of a Deployment as read."""
    meta = deployment["metadata"]
    annotations = meta.get("annotations") or {}
    owner = detect_owner(
        meta.get("labels") or {},
        annotations,
        namespace=meta["namespace"],
        name=meta["name"],
        settings=settings,
    )
    return Ownership(
        owner=owner,
        handling=handling_for(owner, settings) if owner else None,
        paused=pause_record(annotations),
        namespace=meta["namespace"],
        deployment=meta["name"],
    )


def would_pause(pause: Pause | None, *, namespace: str, deployment: str) -> str:
    """What a dry run says it would pause ('' when nothing): appended to its detail."""
    if pause is None:
        return ""
    return (
        f"; would pause {pause.owner.describe()} ({pause.detail}) so the rollback stays; "
        f"control handed back later with: {resume_command(namespace, deployment)}"
        + pause.confirmation
    )
