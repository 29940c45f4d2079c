"""Pausing and resuming GitOps owners: the writes behind gitops.Pause and `rollback-webhook resume`.

The seam (all keyword-only, the cluster injected):
- `read_facts(cluster, owner, settings, deployment=) -> OwnerFacts | None`: the owner object a
  pause needs, and whether it lists the Deployment.
- `pause_owner(cluster, pause, facts, clock=, audit_id=, namespace=, deployment=) -> PauseRecord`:
  writes the owner (HelmRelease suspend, Application automated sync off, with its own copy of
  the record in `auto-rollback/paused-for`) unless the mechanism rides in the rollback's own
  write (Flux's per-object annotation); the record then goes on the Deployment.
- `owner_check(cluster, record, namespace=, deployment=)`: NotOurPause when the owner is still
  paused as the record says but does not carry this service's copy of it (a record written on
  the Deployment by hand); resume checks before its intent, and again before the owner write.
- `unpause_owner(cluster, record, namespace=, deployment=)`: undoes exactly what the record
  says (also the compensation when the rollback write itself fails after the pause), dropping
  the owner's copy in the same write.
- `resume(cluster, deployment, record, audit_id=) -> str`: the owner of the pause `record`
  the Deployment (as read) carries handed back, its pause annotations removed in one
  conditional write that also sets `auto-rollback/last-resume` to the resume's audit id;
  OwnerHandedBack when the owner's own write landed and the Deployment's did not.

Every owner write is a merge patch conditional on the resourceVersion read; a 409 is raised
to the caller (the decision is taken again from a fresh read).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from webhook import names
from webhook.config import GitOps
from webhook.contract import ANNOTATION_LAST_RESUME
from webhook.gitops import (
    ANNOTATION_GITOPS_PAUSED,
    ANNOTATION_OWNER_PAUSE,
    FLUX_RECONCILE,
    Mechanism,
    Owner,
    OwnerKind,
    Pause,
    PauseRecord,
    describe_pause,
    needs_facts,
    owner_pause_annotation,
    owner_pause_problem,
    pause_record,
)
from webhook.gitops_facts import (
    ApplicationFacts,
    HelmReleaseFacts,
    OwnerFacts,
    application_facts,
    helmrelease_facts,
)
from webhook.kube import Cluster, Conflict, Invalid, KubeError, NotFound, Obj, Transient
from webhook.revisions import format_k8s_time

log = logging.getLogger(__name__)


def read_facts(
    cluster: Cluster, owner: Owner | None, settings: GitOps, *, deployment: Obj
) -> OwnerFacts | None:
    """The owner object, when the configured handling needs it (NotFound is a fact too), read
    against `deployment` (as read): whether the owner lists it."""
    if owner is None or not needs_facts(owner, settings):
        return None
    unnamable = names.dns1123_label_problem(owner.namespace) or names.dns1123_subdomain_problem(
        owner.name
    )
    if unnamable:
        # A marker may hold anything; no object is named so, and nothing is read.
        said = f"no object can be {owner.namespace}/{owner.name} ({unnamable})"
        if owner.kind == OwnerKind.ARGOCD:
            return ApplicationFacts(found=False, membership=said)
        return HelmReleaseFacts(found=False, membership=said)
    if owner.kind == OwnerKind.ARGOCD:
        try:
            app: Obj | None = cluster.get_application(owner.namespace, owner.name)
        except NotFound:
            app = None
        return application_facts(app, settings=settings, deployment=deployment)
    try:
        release: Obj | None = cluster.get_helmrelease(owner.namespace, owner.name)
    except NotFound:
        release = None
    return helmrelease_facts(release, settings=settings, deployment=deployment)


def pause_owner(
    cluster: Cluster,
    pause: Pause,
    facts: OwnerFacts | None,
    *,
    clock: Callable[[], datetime],
    audit_id: str,
    namespace: str,
    deployment: str,
    annotations: Mapping[str, str] | None = None,
) -> PauseRecord:
    """Pause the owner (nothing to write for the Flux annotation); the record of what was done.
    The owner's write also sets its own copy of the record, for `namespace/deployment`.
    `annotations`: the Deployment's as read; a Flux reconcile annotation already set there (by
    a person) is kept in the record as `previous`, so resume puts it back rather than removing
    what this service did not set."""
    owner = pause.owner
    earlier = (annotations or {}).get(FLUX_RECONCILE)
    record = PauseRecord(
        owner=owner,
        mechanism=pause.mechanism,
        previous=(
            {FLUX_RECONCILE: earlier}
            if pause.mechanism == Mechanism.FLUX_RECONCILE_ANNOTATION and earlier is not None
            else None
        ),
        time=format_k8s_time(clock()),
        audit_id=audit_id,
    )

    def marked(spec: dict[str, Any], done: PauseRecord) -> dict[str, Any]:
        copy_of = owner_pause_annotation(done, namespace=namespace, deployment=deployment)
        return {"metadata": {"annotations": copy_of}, "spec": spec}

    try:
        if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
            if not isinstance(facts, HelmReleaseFacts):
                raise ValueError(f"pausing {owner.describe()} needs the HelmRelease as read")
            cluster.patch_helmrelease(
                owner.namespace,
                owner.name,
                marked({"suspend": True}, record),
                resource_version=facts.resource_version,
            )
        elif record.mechanism == Mechanism.ARGOCD_AUTOMATED_DISABLED:
            if not isinstance(facts, ApplicationFacts):
                raise ValueError(f"pausing {owner.describe()} needs the Application as read")
            try:
                cluster.patch_application(
                    owner.namespace,
                    owner.name,
                    marked({"syncPolicy": {"automated": {"enabled": False}}}, record),
                    resource_version=facts.resource_version,
                    strict=True,
                )
            except Invalid as exc:
                # An Argo CD whose CRD has no automated.enabled: remove automated, keep its value.
                log.info("%s: no automated.enabled (%s): removing automated", owner.describe(), exc)
                record = replace(
                    record, mechanism=Mechanism.ARGOCD_AUTOMATED_REMOVED, previous=facts.automated
                )
                cluster.patch_application(
                    owner.namespace,
                    owner.name,
                    marked({"syncPolicy": {"automated": None}}, record),
                    resource_version=facts.resource_version,
                )
    except Transient as exc:
        # No answer: the pause may have landed, and the caller has no record of it to undo.
        # Undo it from what the owner shows (unpause writes only an owner carrying this copy);
        # when that fails, the decision's detail must say the owner may be left paused.
        left = undo_pause(cluster, record, namespace=namespace, deployment=deployment)
        if left:
            raise Transient(
                f"{exc}; {left}",
                status=exc.status,
                reason=exc.reason,
                timeout=exc.timeout,
                unsent=exc.unsent,
            ) from exc
        raise
    return record


class NotOurPause(Exception):
    """The owner is paused as the Deployment's record says, but without this service's own copy
    of that record on it: not a pause this service made, so nothing is written to the owner."""


# Attempts of a compensating unpause before it is left to a human (each reads the owner again).
UNPAUSE_ATTEMPTS = 3


def undo_pause(cluster: Cluster, record: PauseRecord, *, namespace: str, deployment: str) -> str:
    """Undo a pause whose rollback did not happen: unpause_owner, again on a 409 (the tool's own
    status writes move the owner's resourceVersion). '' when undone or nothing was left to undo,
    else why it was not, for the decision's record."""
    for attempt in range(1, UNPAUSE_ATTEMPTS + 1):
        try:
            unpause_owner(cluster, record, namespace=namespace, deployment=deployment)
            return ""
        except Conflict as exc:
            if attempt == UNPAUSE_ATTEMPTS:
                problem = str(exc)
        except (KubeError, NotOurPause) as exc:
            problem = str(exc)
            break
    log.error("could not undo the pause of %s: %s", record.owner.describe(), problem)
    return (
        f"{record.owner.describe()} stays paused ({problem}): hand it back with its own tool "
        f"({describe_pause(record, namespace=namespace, deployment=deployment).split(';')[0]})"
    )


def _still_paused(owner: Obj, record: PauseRecord) -> str:
    """'' when the owner object is still paused the way `record` says; else what it is now."""
    spec = owner.get("spec") or {}
    if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
        if not spec.get("suspend"):
            return f"{record.owner.describe()} is not suspended any more: left as it is"
        return ""
    current = (spec.get("syncPolicy") or {}).get("automated")
    if record.mechanism == Mechanism.ARGOCD_AUTOMATED_DISABLED:
        if not isinstance(current, dict) or current.get("enabled") is not False:
            return f"{record.owner.describe()}'s automated sync was changed since: left as it is"
        return ""
    if current is not None:
        return f"{record.owner.describe()} has automated sync again: left as it is"
    return ""


def undo_unrecorded_pause(
    cluster: Cluster, owner: Owner, *, audit_id: str, namespace: str, deployment: str
) -> str:
    """Undo the pause decision `audit_id` made of `owner` for a rollback that never landed, when
    only the owner shows it (the worker died, or its write went unanswered, before a record of
    the pause was kept): the owner's own copy of the pause is the record. '' when the owner
    carries no copy by that decision for this Deployment; else what was done, for the record."""
    if owner.kind == OwnerKind.ARGOCD:
        found = cluster.get_application(owner.namespace, owner.name)
    elif owner.kind == OwnerKind.FLUX_HELMRELEASE:
        found = cluster.get_helmrelease(owner.namespace, owner.name)
    else:
        return ""
    annotations = found.get("metadata", {}).get("annotations") or {}
    raw = annotations.get(ANNOTATION_OWNER_PAUSE) or ""
    record = pause_record({ANNOTATION_GITOPS_PAUSED: raw})
    if record is None or record.audit_id != audit_id:
        return ""
    if owner_pause_problem(annotations, record, namespace=namespace, deployment=deployment):
        return ""  # a copy of that decision, for another Deployment: not this one's to undo
    left = undo_pause(cluster, record, namespace=namespace, deployment=deployment)
    return left or f"its pause of {owner.describe()} was undone"


def _read_owner(cluster: Cluster, record: PauseRecord) -> Obj | None:
    """The owner object a record's undo writes (None for the Flux annotation: no owner write)."""
    owner = record.owner
    if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
        return cluster.get_helmrelease(owner.namespace, owner.name)
    if record.mechanism in (
        Mechanism.ARGOCD_AUTOMATED_DISABLED,
        Mechanism.ARGOCD_AUTOMATED_REMOVED,
    ):
        return cluster.get_application(owner.namespace, owner.name)
    return None


def _check(owner: Obj, record: PauseRecord, *, namespace: str, deployment: str) -> None:
    if _still_paused(owner, record):
        return  # nothing will be written to it
    annotations = owner.get("metadata", {}).get("annotations") or {}
    problem = owner_pause_problem(annotations, record, namespace=namespace, deployment=deployment)
    if problem:
        raise NotOurPause(problem)


def _drop_stale_copy(
    cluster: Cluster, found: Obj, record: PauseRecord, *, namespace: str, deployment: str
) -> None:
    """Someone handed the owner back: its copy of this pause goes too (a conditional write of
    that annotation alone), or a later pause by hand would look like this service's."""
    annotations = found.get("metadata", {}).get("annotations") or {}
    if owner_pause_problem(annotations, record, namespace=namespace, deployment=deployment):
        return  # no copy of this pause there: nothing to drop
    body = {"metadata": {"annotations": {ANNOTATION_OWNER_PAUSE: None}}}
    version = found["metadata"]["resourceVersion"]
    owner = record.owner
    try:
        if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
            cluster.patch_helmrelease(owner.namespace, owner.name, body, resource_version=version)
        else:
            cluster.patch_application(owner.namespace, owner.name, body, resource_version=version)
    except KubeError as exc:
        log.warning("could not drop %s from %s: %s", ANNOTATION_OWNER_PAUSE, owner.describe(), exc)


def owner_check(cluster: Cluster, record: PauseRecord, *, namespace: str, deployment: str) -> None:
    """NotOurPause when undoing `record` would write an owner that does not carry this
    service's copy of it (see module doc); NotFound and other KubeErrors are raised."""
    owner = _read_owner(cluster, record)
    if owner is not None:
        _check(owner, record, namespace=namespace, deployment=deployment)


def unpause_owner(cluster: Cluster, record: PauseRecord, *, namespace: str, deployment: str) -> str:
    """Hand the owner back as it was (the Flux annotation is the Deployment's: see resume).

    Returns '' when it was handed back, else why nothing was written: someone already changed
    what the pause set (re-enabled, or disabled it their own way), and that is left as it is.
    NotOurPause when the owner does not carry this service's copy of the record.
    """
    owner = record.owner
    found = _read_owner(cluster, record)
    if found is None:
        return ""
    untouched = _still_paused(found, record)
    if untouched:
        _drop_stale_copy(cluster, found, record, namespace=namespace, deployment=deployment)
        return untouched
    _check(found, record, namespace=namespace, deployment=deployment)
    if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
        spec: dict[str, Any] = {"suspend": False}
    elif record.mechanism == Mechanism.ARGOCD_AUTOMATED_DISABLED:
        spec = {"syncPolicy": {"automated": {"enabled": True}}}
    else:
        spec = {"syncPolicy": {"automated": record.previous or {}}}
    body = {"metadata": {"annotations": {ANNOTATION_OWNER_PAUSE: None}}, "spec": spec}
    version = found["metadata"]["resourceVersion"]
    if record.mechanism == Mechanism.HELMRELEASE_SUSPEND:
        cluster.patch_helmrelease(owner.namespace, owner.name, body, resource_version=version)
    else:
        cluster.patch_application(owner.namespace, owner.name, body, resource_version=version)
    return ""


class OwnerHandedBack(Exception):
    """The owner was handed back (its own write landed, or someone had already), but the
    Deployment's pause record could not be dropped: `cause` says why. Running resume again
    finishes it (the owner, already handed back, is left as it is)."""

    def __init__(self, owner: str, cause: KubeError) -> None:
        super().__init__(
            f"{owner} handed back, but the Deployment still carries the pause: {cause}"
        )
        self.owner = owner
        self.cause = cause


def without_pause(deployment: Obj, *, resumed_by: str, record: PauseRecord | None = None) -> Obj:
    """The Deployment with this service's pause annotations removed (for a conditional PUT),
    and `resumed_by`, the resume's audit id, as its last resume. A Flux reconcile annotation
    that was there before the pause (the record's `previous`) is put back as it was."""
    body = copy.deepcopy(deployment)
    annotations = body["metadata"].get("annotations") or {}
    annotations.pop(ANNOTATION_GITOPS_PAUSED, None)
    earlier = (record.previous or {}).get(FLUX_RECONCILE) if record else None
    if isinstance(earlier, str):
        annotations[FLUX_RECONCILE] = earlier
    else:
        annotations.pop(FLUX_RECONCILE, None)
    annotations[ANNOTATION_LAST_RESUME] = resumed_by
    body["metadata"]["annotations"] = annotations
    body.pop("status", None)
    return body


# Conditional writes of the Deployment's pause annotations before resume gives up on 409s.
DROP_PAUSE_ATTEMPTS = 5


def _drop_pause(
    cluster: Cluster,
    namespace: str,
    name: str,
    deployment: Obj,
    record: PauseRecord,
    resumed_by: str,
) -> None:
    """Remove the pause annotations in a write conditional on what was read. The owner is
    handed back by then and may reconcile the Deployment at once (its first sync after a
    resume), so a 409 means: read again and drop them from that copy, never overwrite it.
    A copy that no longer carries this same pause (another resume, a newer pause) is left."""
    for attempt in range(1, DROP_PAUSE_ATTEMPTS + 1):
        try:
            cluster.replace_deployment(
                without_pause(deployment, resumed_by=resumed_by, record=record)
            )
            return
        except Conflict:
            if attempt == DROP_PAUSE_ATTEMPTS:
                raise
            deployment = cluster.get_deployment(namespace, name)
            if pause_record(deployment["metadata"].get("annotations") or {}) != record:
                return


def resume(cluster: Cluster, deployment: Obj, record: PauseRecord, *, audit_id: str) -> str:
    """Undo `record`, the pause the Deployment (as just read) carries, the write naming
    `audit_id` as its last resume; returns a line for humans. Conflict only when the Deployment
    kept changing through every re-read (see _drop_pause)."""
    namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
    untouched = unpause_owner(cluster, record, namespace=namespace, deployment=name)
    try:
        _drop_pause(cluster, namespace, name, deployment, record, audit_id)
    except KubeError as exc:
        if record.mechanism == Mechanism.FLUX_RECONCILE_ANNOTATION:
            raise  # that pause is the Deployment's own annotation: nothing was handed back
        raise OwnerHandedBack(record.owner.describe(), exc) from exc
    paused = describe_pause(record, namespace=namespace, deployment=name).split(";")[0]
    return (
        f"resumed {record.owner.describe()}: undid '{paused}' (paused {record.time}, audit "
        f"{record.audit_id}); it reconciles from Git again"
        + (f" ({untouched})" if untouched else "")
    )
