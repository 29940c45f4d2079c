"""Stay-put watch: a rolled-back Deployment whose template came back to a bad-marked revision.

Whoever did it (Argo CD self-heal, a Flux interval, a person re-applying the old manifest),
the service notices, says so and steps back; it never rolls back again in a loop:

- `detect_revert(deployment, current) -> Revert | None` (pure): the current revision is the one
  the last rollback left (`last-action` from_replicaset) or carries a bad mark, and this period
  (its activation) was not reported yet (`auto-rollback/reverted-at` on its ReplicaSet).
- `webhook.stayput_report.report_revert(...)` (the health tracker calls it once per revert, as
  leader): the `auto-rollback/reverted-at` mark (every replica sees it), an
  `AutoRollbackReverted` Warning Event naming the owner, and an audit record (source `watch`,
  outcome `reverted`) that the decisions metric counts.
- `revert_note(deployment, implicated)` (pure): the decision's side. An alert for a reverted
  revision is skipped `cooldown` (the table's own semantics), and the detail says it was a revert;
  the revert holds that cooldown until a human acts (replay with ignore_cooldown).

Pure: no I/O module is imported here, so the policy core may call `revert_note`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhook.config import GitOps
from webhook.gitops import Owner, detect_owner, pause_record
from webhook.revisions import (
    Revision,
    activation_time,
    format_k8s_time,
    last_action,
    parse_k8s_time,
)

Obj = dict[str, Any]

ANNOTATION_REVERTED_AT = "auto-rollback/reverted-at"


@dataclass(frozen=True)
class Revert:
    """A bad-marked revision made current again after a rollback."""

    namespace: str
    deployment: str
    replicaset: str
    revision: int
    activated: datetime
    rollback_audit_id: str
    owner: Owner | None
    paused: bool  # whether this service had paused the owner (someone resumed or went around it)

    def message(self) -> str:
        who = self.owner.describe() if self.owner else "someone (no GitOps owner on it)"
        paused = " although it was paused" if self.paused else ""
        return (
            f"revision {self.revision} ({self.replicaset}), rolled back from by audit "
            f"{self.rollback_audit_id or '?'}, is current again since "
            f"{format_k8s_time(self.activated)}: reverted by {who}{paused}. rollback-webhook will "
            "not roll it back again (alerts for it are skipped as cooldown); fix the source of "
            "the template, or replay with ignore_cooldown"
        )


def _is_reverted(deployment: Obj, current: Revision) -> tuple[bool, str]:
    action = last_action(deployment) or {}
    if action.get("from_replicaset") == current.name:
        return True, str(action.get("audit_id", ""))
    mark = current.bad_mark
    if mark is not None:
        return True, str(mark.get("audit_id", ""))
    return False, ""


def detect_revert(deployment: Obj, current: Revision, *, settings: GitOps) -> Revert | None:
    """The revert to report, or None (not reverted, or this period was already reported)."""
    reverted, audit_id = _is_reverted(deployment, current)
    if not reverted:
        return None
    activated = activation_time(current, deployment).replace(microsecond=0)
    reported = parse_k8s_time(current.annotations.get(ANNOTATION_REVERTED_AT))
    if reported is not None and reported >= activated:
        return None
    meta = deployment["metadata"]
    owner = detect_owner(
        meta.get("labels") or {},
        meta.get("annotations") or {},
        namespace=meta["namespace"],
        name=meta["name"],
        settings=settings,
    )
    return Revert(
        namespace=meta["namespace"],
        deployment=meta["name"],
        replicaset=current.name,
        revision=current.number,
        activated=activated,
        rollback_audit_id=audit_id,
        owner=owner,
        paused=pause_record(meta.get("annotations") or {}) is not None,
    )


def revert_note(deployment: Obj, implicated: Revision) -> str | None:
    """For the decision: why an alert for this current revision is a revert's, or None."""
    reverted, audit_id = _is_reverted(deployment, implicated)
    if not reverted:
        return None
    return (
        f"revision {implicated.number} ({implicated.name}) was rolled back from (audit "
        f"{audit_id or '?'}) and has been reverted to since (AutoRollbackReverted): never rolled "
        "back again in a loop"
    )
