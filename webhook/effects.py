"""The effects of a decision: the rollback write, the bad-revision mark, alerted-at, the Events.

The body is kubectl's (revisions.rollback_body); the write is a PUT carrying the
resourceVersion the decision read, so a concurrent change gives 409 instead of being overwritten.
Marks and Events are best effort: a failure is logged (and, for the bad mark, said in the
decision's detail), never hidden and never a reason to undo the rollback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from webhook import contract
from webhook.contract import EventReason, Outcome
from webhook.gitops import PauseRecord, pause_annotations
from webhook.gitops_pause import pause_owner, undo_pause
from webhook.kube import Cluster, KubeError
from webhook.policy import AlertedMark, Plan
from webhook.revisions import (
    alertname_for_annotation,
    bad_mark_value,
    format_k8s_time,
    rollback_body,
)
from webhook.views import Obj, ObjectRef

log = logging.getLogger(__name__)

_EVENT_FOR = {
    Outcome.ROLLED_BACK: (EventReason.ROLLED_BACK, False),
    Outcome.DRY_RUN: (EventReason.DRY_RUN, False),
    Outcome.FAILED: (EventReason.FAILED, True),
}
_PREFIX = {EventReason.DRY_RUN: "DRY-RUN: ", EventReason.FAILED: "rollback failed: "}


class Effects:
    """Performs and announces what the decider decided."""

    def __init__(self, *, cluster: Cluster, clock: Callable[[], datetime]) -> None:
        self.cluster = cluster
        self.clock = clock

    def pause(self, plan: Plan, *, decision_id: str) -> PauseRecord | None:
        """Pause the plan's GitOps owner before the write (KubeError raised: nothing written).

        The Flux annotation has no write of its own: its record rides in the rollback's write.
        """
        fact = plan.gitops
        if fact is None or fact.pause is None:
            return None
        namespace, deployment, _ = plan.key
        return pause_owner(
            self.cluster,
            fact.pause,
            fact.pause_facts,
            clock=self.clock,
            audit_id=decision_id,
            namespace=namespace,
            deployment=deployment,
            annotations=plan.deployment["metadata"].get("annotations") or {},
        )

    def unpause(self, plan: Plan, record: PauseRecord | None) -> str:
        """Undo a pause whose rollback write failed; '' when undone (or nothing to undo), else
        why the owner stays paused, for the decision's record (also logged)."""
        if record is None:
            return ""
        namespace, deployment, _ = plan.key
        return undo_pause(self.cluster, record, namespace=namespace, deployment=deployment)

    def refused(self, involved: ObjectRef, message: str) -> None:
        """Tell humans why a GitOps-owned Deployment was left alone, and the steps instead."""
        self._event(involved, EventReason.GITOPS_REFUSED, message, warning=True)

    def write(
        self,
        plan: Plan,
        *,
        decision_id: str,
        trigger: str,
        alertname: str,
        paused: PauseRecord | None = None,
    ) -> Obj:
        """PUT the rolled-back Deployment, conditional on the resourceVersion read (Conflict).

        With `paused`, the pause's record (and the Flux annotation) go in this same write."""
        current, target = plan.current, plan.target
        alertname = alertname_for_annotation(alertname)
        cause = (
            f"rollback-webhook: rolled back from revision {current.number} to {target.number} "
            f"(alert {alertname or '?'}, trigger {trigger}, audit {decision_id})"
        )
        last_action = json.dumps(
            {
                "time": format_k8s_time(self.clock()),
                "from_revision": current.number,
                "to_revision": target.number,
                "from_replicaset": current.name,
                "to_replicaset": target.name,
                "trigger": trigger,
                "alertname": alertname,
                "audit_id": decision_id,
            },
            sort_keys=True,
        )
        body = rollback_body(
            plan.deployment,
            target,
            service_annotations={
                **plan.annotations,
                **(pause_annotations(paused) if paused is not None else {}),
                contract.ANNOTATION_CHANGE_CAUSE: cause,
                contract.ANNOTATION_LAST_ACTION: last_action,
            },
        )
        return self.cluster.replace_deployment(body)

    def mark_bad(self, plan: Plan, *, decision_id: str, trigger: str, alertname: str) -> str:
        """Mark the revision rolled back from; returns a note for the detail ('' when fine)."""
        mark = bad_mark_value(
            trigger=trigger, alertname=alertname, audit_id=decision_id, at=self.clock()
        )
        namespace, _, replicaset = plan.key
        try:
            self.cluster.annotate_replicaset(
                namespace, replicaset, {contract.ANNOTATION_BAD_REVISION: mark}
            )
        except KubeError as exc:
            # The rollback itself happened; say the mark is missing rather than hide it.
            log.error("bad-revision mark on %s/%s failed: %s", namespace, replicaset, exc)
            return f"; WARNING: marking {replicaset} bad failed: {exc}"
        return ""

    def mark_alerted(self, mark: AlertedMark) -> None:
        """Record auto-rollback/alerted-at on the alerting current revision (best effort).

        Written once per period the revision is current (a later alert finds it set), so
        repeated deliveries cost no extra request; the bad-revision mark supersedes it.
        """
        when = format_k8s_time(mark.at.astimezone(UTC))
        try:
            self.cluster.annotate_replicaset(
                mark.namespace, mark.replicaset, {contract.ANNOTATION_ALERTED_AT: when}
            )
        except KubeError as exc:
            log.warning("alerted-at mark on %s/%s failed: %s", mark.namespace, mark.replicaset, exc)

    def announce(self, involved: ObjectRef, *, outcome: Outcome, detail: str, suffix: str) -> None:
        """Post the Event for a rolled_back, dry_run or failed decision (best effort)."""
        if outcome not in _EVENT_FOR:
            return
        reason, warning = _EVENT_FOR[outcome]
        message = f"{_PREFIX.get(reason, '')}{detail} {suffix}"
        self._event(involved, reason, message, warning=warning)

    def no_target(self, involved: ObjectRef, message: str) -> None:
        """Tell humans, on the Deployment, that no revision was safe to roll back to."""
        self._event(involved, EventReason.NO_HEALTHY_REVISION, message, warning=True)

    def _event(self, involved: ObjectRef, reason: str, message: str, *, warning: bool) -> None:
        try:
            self.cluster.create_event(
                involved=dict(involved), reason=reason, message=message, warning=warning
            )
        except KubeError as exc:
            log.warning("could not post %s event: %s", reason, exc)
