"""A Deployment's revisions with their evidence and verdicts, and the revision a rollback picks.

Shared by `rollback-webhook history` and the on-call console: one row per revision, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhook import contract
from webhook.config import Settings
from webhook.contract import SkipReason
from webhook.evidence import (
    HEALTHY,
    UNHEALTHY,
    EvidenceSource,
    alerted_while_current,
    choose_target,
    judge_revision,
)
from webhook.gitops import Ownership, ownership
from webhook.kube import Cluster, KubeError, Obj
from webhook.optin import opt_in
from webhook.overrides import policy_for
from webhook.revisions import (
    Revision,
    activation_time,
    current_revision,
    equal_ignore_hash,
    revisions_of,
)
from webhook.scope import namespace_refusal
from webhook.views import label_selector


@dataclass(frozen=True)
class Row:
    number: int
    replicaset: str
    images: tuple[str, ...]
    created: datetime
    # When it became current: known for the current revision (activation_time) and for one
    # never re-adopted (its creation); None for an earlier revision re-adopted at some point
    # and since replaced (the cluster keeps no record of when that was).
    active_since: datetime | None
    marks: tuple[str, ...]
    evidence: str
    verdict: str  # current | healthy | bad | unproven | same_as_current

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.number,
            "replicaset": self.replicaset,
            "images": list(self.images),
            "created": self.created.isoformat(),
            "active_since": self.active_since.isoformat() if self.active_since else None,
            "marks": list(self.marks),
            "evidence": self.evidence,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class History:
    namespace: str
    deployment: str
    rows: tuple[Row, ...]
    pick: Row | None
    note: str
    # Who owns the Deployment (GitOps, Helm) and what this service paused (webhook.gitops).
    ownership: Ownership | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "revisions": [r.as_dict() for r in self.rows],
            "rollback_target": self.pick.as_dict() if self.pick else None,
            "note": self.note,
            "gitops": self.ownership.as_dict() if self.ownership else None,
        }


def _marks(revision: Revision) -> tuple[str, ...]:
    marks = []
    if revision.bad_mark is not None:
        marks.append("bad-revision")
    if revision.healthy_since is not None:
        marks.append(f"healthy-since {revision.healthy_since.isoformat()}")
    if revision.readopted:
        marks.append("re-adopted from " + ",".join(str(h) for h in revision.history))
    return tuple(marks)


def _active_since(revision: Revision, current: Revision | None, deployment: Obj) -> datetime | None:
    if current is not None and revision.name == current.name:
        return activation_time(revision, deployment)
    # activation_time reads the Deployment's template and last-action: the current revision's
    # story. An earlier re-adopted revision's own re-adoption time is not recorded anywhere.
    return None if revision.readopted else revision.created


def first_skip(cluster: Cluster, settings: Settings, deployment: Obj) -> tuple[str, str] | None:
    """The first skip an alert on this Deployment would meet before a revision is even looked
    at, in the receiver's order (policy.decide): namespace scope, opt-in, paused."""
    meta = deployment["metadata"]
    namespace = str(meta["namespace"])
    refusal = namespace_refusal(namespace, settings.namespaces)
    if refusal:
        return SkipReason.NAMESPACE_DENIED, refusal

    def namespace_label() -> str | None:
        try:
            labels = cluster.get_namespace(namespace)["metadata"].get("labels") or {}
        except KubeError:
            return None  # as the receiver: no namespace label known
        value = labels.get(contract.ANNOTATION_ENABLED)
        return str(value) if value is not None else None

    acts, why = opt_in(
        dict(meta.get("annotations") or {}),
        namespace_label,
        namespace=namespace,
        require_opt_in=settings.require_opt_in,
    )
    if not acts:
        return SkipReason.NOT_OPTED_IN, why
    if (deployment.get("spec") or {}).get("paused"):
        return SkipReason.PAUSED, "the Deployment is paused"
    return None


def build_history(
    *,
    cluster: Cluster,
    settings: Settings,
    namespace: str,
    name: str,
    sources: Sequence[EvidenceSource],
) -> History:
    """Read the Deployment and its ReplicaSets and judge every revision (KubeError on failure)."""
    deployment = cluster.get_deployment(namespace, name)
    replicasets = cluster.list_replicasets(namespace, label_selector=label_selector(deployment))
    revisions = revisions_of(deployment, replicasets)
    current = current_revision(deployment, revisions)
    policy = policy_for(settings, deployment)
    rows: dict[str, Row] = {}
    for revision in sorted(revisions, key=lambda r: r.number, reverse=True):
        if current is not None and revision.name == current.name:
            verdict, evidence = "current", "the Deployment's template"
        elif revision.bad_mark is not None:
            verdict, evidence = "bad", f"marked: {revision.bad_mark.get('reason', '?')}"
        elif current is not None and equal_ignore_hash(revision.template, current.template):
            verdict, evidence = "same_as_current", "template equals the current one"
        elif (alerted := alerted_while_current(revision)) is not None:
            verdict = "bad"  # as the target choice sees it (evidence.choose_target)
            evidence = f"a trigger alert at {alerted.isoformat()} while it was current"
        else:
            judged, evidence, _ = judge_revision(
                revision,
                revisions=revisions,
                deployment=deployment,
                sources=sources,
                min_healthy_seconds=policy.min_healthy_seconds,
                current_since=activation_time(current, deployment) if current else None,
            )
            verdicts: dict[str, str] = {HEALTHY: "healthy", UNHEALTHY: "bad"}
            verdict = verdicts.get(judged, "unproven")
        rows[revision.name] = Row(
            number=revision.number,
            replicaset=revision.name,
            images=revision.images,
            created=revision.created,
            active_since=_active_since(revision, current, deployment),
            marks=_marks(revision),
            evidence=evidence,
            verdict=verdict,
        )
    pick, note = None, ""
    skipped = first_skip(cluster, settings, deployment)
    if skipped is not None:
        reason, why = skipped
        note = f"a rollback now would be skipped: {reason} ({why})"
    elif current is None:
        note = "no ReplicaSet runs the Deployment's template yet"
    else:
        choice = choose_target(
            deployment=deployment,
            current=current,
            revisions=revisions,
            sources=sources,
            min_healthy_seconds=policy.min_healthy_seconds,
        )
        if choice.target is not None:
            pick = rows[choice.target.name]
            note = f"a rollback now would pick revision {pick.number} ({pick.replicaset})"
        else:
            note = f"a rollback now would be skipped: {SkipReason.NO_HEALTHY_REVISION}"
    return History(
        namespace,
        name,
        tuple(rows.values()),
        pick,
        note,
        ownership=ownership(deployment, settings.gitops),
    )


def render_table(history: History) -> str:
    """A fixed-width table for people."""
    header = ("REV", "REPLICASET", "IMAGES", "CREATED", "ACTIVE SINCE", "VERDICT", "EVIDENCE")
    lines = [header]
    for row in history.rows:
        lines.append(
            (
                str(row.number),
                row.replicaset,
                ",".join(row.images),
                row.created.strftime("%Y-%m-%d %H:%M:%S"),
                row.active_since.strftime("%Y-%m-%d %H:%M:%S") if row.active_since else "-",
                row.verdict + (" [" + "; ".join(row.marks) + "]" if row.marks else ""),
                row.evidence,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = [f"{history.namespace}/{history.deployment}"]
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    if any(row.active_since is None for row in history.rows):
        out.append("(ACTIVE SINCE -: re-adopted once and replaced since; when is not recorded)")
    out.append(history.note)
    if history.ownership is not None and history.ownership.owner is not None:
        # Only for owned Deployments: a plain one's table stays as it was.
        out.extend(history.ownership.lines())
    return "\n".join(out)
