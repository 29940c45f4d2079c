"""Reporting a revert the stay-put watch found (webhook.stayput): mark, Event, audit record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from webhook.contract import EventReason, Outcome, Source
from webhook.decision import Decision, new_id
from webhook.kube import Cluster, KubeError, Obj
from webhook.revisions import format_k8s_time
from webhook.stayput import ANNOTATION_REVERTED_AT, Revert

log = logging.getLogger(__name__)


def report_revert(
    cluster: Cluster,
    revert: Revert,
    *,
    deployment: Obj,
    clock: Callable[[], datetime],
    record: Callable[[Decision], None],
) -> Decision:
    """Mark, announce and record one revert; the record is returned (and passed to `record`)."""
    now = clock()
    decision = Decision(
        id=new_id(now),
        time=now,
        source=Source.WATCH,
        outcome=Outcome.REVERTED,
        reason=None,
        detail=revert.message(),
        namespace=revert.namespace,
        deployment=revert.deployment,
        from_revision=revert.revision,
        from_replicaset=revert.replicaset,
        labels={"owner": revert.owner.describe()} if revert.owner else {},
    )
    try:
        # The mark first: once it is there no replica reports this period again.
        cluster.annotate_replicaset(
            revert.namespace, revert.replicaset, {ANNOTATION_REVERTED_AT: format_k8s_time(now)}
        )
    except KubeError as exc:
        log.warning("stay-put: reverted-at mark on %s failed: %s", revert.replicaset, exc)
        decision.detail += f"; WARNING: reverted-at mark failed: {exc}"
    try:
        cluster.create_event(
            involved=deployment,
            reason=EventReason.REVERTED,
            message=f"{revert.message()} [audit {decision.id}]",
            warning=True,
        )
    except KubeError as exc:
        log.warning("stay-put: could not post %s: %s", EventReason.REVERTED, exc)
    record(decision)
    log.warning("stay-put: %s/%s: %s", revert.namespace, revert.deployment, revert.message())
    return decision
