"""The rollback's writes: the conditional Deployment replace, the bad-revision mark, the Events.

The body is kubectl's (revisions.rollback_body); the write is a PUT carrying the
resourceVersion the decision read, so a concurrent change gives 409 instead of being overwritten.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from webhook import contract
from webhook.decision import Decision
from webhook.evidence import TargetChoice
from webhook.kube import Cluster, KubeError, Obj
from webhook.revisions import Revision, format_k8s_time, rollback_body

log = logging.getLogger(__name__)

_EVENT_FOR = {
    contract.ROLLED_BACK: (contract.EVENT_ROLLED_BACK, False),
    contract.DRY_RUN: (contract.EVENT_DRY_RUN, False),
    contract.FAILED: (contract.EVENT_FAILED, True),
}
EVENT_NO_HEALTHY = contract.EventReason.NO_HEALTHY_REVISION
_PREFIX = {
    contract.EventReason.DRY_RUN: "DRY-RUN: ",
    contract.EventReason.FAILED: "rollback failed: ",
}


class Rollback:
    """Performs and announces rollbacks decided by the Decider."""

    def __init__(self, *, cluster: Cluster, clock: Callable[[], datetime]) -> None:
        self.cluster = cluster
        self.clock = clock

    def last_action(self, *, current: Revision, target: Revision, decision: Decision) -> str:
        """The `auto-rollback/last-action` JSON recorded on the Deployment."""
        return json.dumps(
            {
                "time": format_k8s_time(self.clock()),
                "from_revision": current.number,
                "to_revision": target.number,
                "from_replicaset": current.name,
                "to_replicaset": target.name,
                "trigger": decision.trigger,
                "alertname": decision.alertname,
                "audit_id": decision.id,
            },
            sort_keys=True,
        )

    def write(
        self, deployment: Obj, *, current: Revision, target: Revision, decision: Decision
    ) -> Obj:
        """PUT the rolled-back Deployment, conditional on the resourceVersion read (Conflict)."""
        cause = (
            f"rollback-webhook: rolled back from revision {current.number} to {target.number} "
            f"(alert {decision.alertname or '?'}, trigger {decision.trigger}, audit {decision.id})"
        )
        body = rollback_body(
            deployment,
            target,
            service_annotations={
                contract.ANNOTATION_CHANGE_CAUSE: cause,
                contract.ANNOTATION_LAST_ACTION: self.last_action(
                    current=current, target=target, decision=decision
                ),
            },
        )
        return self.cluster.replace_deployment(body)

    def mark_bad(self, deployment: Obj, *, current: Revision, decision: Decision) -> str:
        """Mark the revision rolled back from; returns a note for the detail ('' when fine)."""
        mark = json.dumps(
            {
                "reason": decision.reason or decision.trigger,
                "trigger": decision.trigger,
                "alertname": decision.alertname,
                "audit_id": decision.id,
                "time": format_k8s_time(self.clock()),
            },
            sort_keys=True,
        )
        namespace = deployment["metadata"]["namespace"]
        try:
            self.cluster.annotate_replicaset(
                namespace, current.name, {contract.ANNOTATION_BAD_REVISION: mark}
            )
        except KubeError as exc:
            # The rollback itself happened; say the mark is missing rather than hide it.
            log.error("bad-revision mark on %s/%s failed: %s", namespace, current.name, exc)
            return f"; WARNING: marking {current.name} bad failed: {exc}"
        return ""

    def mark_alerted(self, decision: Decision) -> None:
        """Record auto-rollback/alerted-at on the alerting current revision (best effort).

        Written once per period the revision is current (a later alert finds it set), so
        repeated deliveries cost no extra request; the bad-revision mark supersedes it.
        """
        if decision.alerted_mark is None:
            return
        namespace, replicaset, when = decision.alerted_mark
        try:
            self.cluster.annotate_replicaset(
                namespace, replicaset, {contract.ANNOTATION_ALERTED_AT: when}
            )
        except KubeError as exc:
            log.warning("alerted-at mark on %s/%s failed: %s", namespace, replicaset, exc)

    def announce(self, decision: Decision) -> None:
        """Post the Event for a rolled_back, dry_run or failed decision (best effort)."""
        if decision.outcome not in _EVENT_FOR or decision.involved is None:
            return
        reason, warning = _EVENT_FOR[decision.outcome]
        message = (
            f"{_PREFIX.get(reason, '')}{decision.detail} "
            f"[alert {decision.alertname}, trigger {decision.trigger}, audit {decision.id}]"
        )
        self._event(decision.involved, reason, message, warning=warning)

    def no_target(self, deployment: Obj, decision: Decision, choice: TargetChoice) -> None:
        """Tell humans, on the Deployment, that no revision was safe to roll back to."""
        message = (
            f"alert {decision.alertname} ({decision.trigger}) implicates revision "
            f"{decision.from_revision}, but no older revision has health evidence: "
            f"{choice.explain() or 'no older revision'} [audit {decision.id}]"
        )
        self._event(deployment, EVENT_NO_HEALTHY, message, warning=True)

    def _event(self, involved: Obj, reason: str, message: str, *, warning: bool) -> None:
        try:
            self.cluster.create_event(
                involved=involved, reason=reason, message=message, warning=warning
            )
        except KubeError as exc:
            log.warning("could not post %s event: %s", reason, exc)
