"""Handing a paused GitOps owner back: `rollback-webhook resume NS/DEPLOY`, POST /api/v1/resume.

`run_resume(service, namespace=, deployment=, actor=, reason=) -> Decision` reads the
Deployment, writes a write-ahead intent of the resume into the audit (nothing is written to the
cluster without it: a store that cannot take it is AuditUnavailable, a 503), undoes the pause
recorded on the Deployment (webhook.gitops_pause.resume), then records it like any decision
(source `resume`, outcome `resumed`, the on-call actor and reason; the record closes the intent)
and posts an `AutoRollbackResumed` Event. A Kubernetes failure is recorded as `failed` with its
reason; a Deployment with nothing paused is a ResumeError (409), not a record. A pause record
the owner itself does not carry (an Application or HelmRelease paused by this service carries
its own copy, `auto-rollback/paused-for`; a record written on the Deployment by hand) is refused
before anything is written: a ResumeError (409), recorded as `failed` / `conflict`. A record that
cannot be stored after the writes is a ResumeError (503) saying the resume was written, and a
write without an answer (a timeout, a reset) one saying it may have landed: the intent stays
open and the reconciler records the resume when the Deployment's `auto-rollback/last-resume`
names its id (the write that drops the pause sets it), else `failed`. One resume of a
Deployment runs at a time: another while its intent is open is a ResumeError (409).
"""

from __future__ import annotations

import logging
from typing import Any

from webhook.audit import AuditUnavailable, IntentKind, IntentRow, IntentState
from webhook.audit.rows import iso
from webhook.contract import EventReason, FailReason, Outcome, Source
from webhook.decision import Decision, new_id
from webhook.gitops import pause_record
from webhook.gitops_pause import NotOurPause, OwnerHandedBack, owner_check, resume
from webhook.kube import Conflict, Forbidden, InvalidName, KubeError, NotFound, Transient
from webhook.names import dns1123_label_problem, dns1123_subdomain_problem
from webhook.replay import MAX_REASON_CHARS
from webhook.scope import namespace_refusal
from webhook.service import Service

# Checked before either reaches an API path: a namespace is a DNS-1123 label, a Deployment's
# name a DNS-1123 subdomain (what the API server itself accepts).
log = logging.getLogger(__name__)

_NAME_PROBLEMS = {"namespace": dns1123_label_problem, "deployment": dns1123_subdomain_problem}


class ResumeError(Exception):
    """The request cannot be carried out; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NothingPaused(ResumeError):
    """The Deployment carries no pause record (409): resumed already, or never paused."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


def parse_target(body: Any) -> tuple[str, str, str]:
    """(namespace, deployment, reason) from a POST /api/v1/resume body; ResumeError 400."""
    if not isinstance(body, dict):
        raise ResumeError(400, "expected a JSON object with namespace, deployment and reason")
    values = {}
    for key in ("namespace", "deployment", "reason"):
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ResumeError(400, f"{key}: required, a non-empty string")
        values[key] = value.strip()
    for key, problem_of in _NAME_PROBLEMS.items():
        problem = problem_of(values[key])
        if problem:
            raise ResumeError(400, f"{key}: {values[key]!r} is {problem}")
    if len(values["reason"]) > MAX_REASON_CHARS:
        raise ResumeError(400, f"reason: longer than {MAX_REASON_CHARS} characters")
    unknown = sorted(set(body) - {"namespace", "deployment", "reason"})
    if unknown:
        raise ResumeError(400, f"{unknown[0]}: unknown key")
    return values["namespace"], values["deployment"], values["reason"]


def run_resume(
    service: Service, *, namespace: str, deployment: str, actor: str, reason: str
) -> Decision:
    """Undo the recorded pause, record the outcome and announce it (see module doc)."""
    # The same scope as every alert: a Deployment the policy keeps out of reach is never
    # written, whatever its annotations say (a pause record is only an annotation).
    refusal = namespace_refusal(namespace, service.settings.namespaces)
    if refusal:
        raise ResumeError(403, f"namespace: {refusal}")
    now = service.clock()
    decision = Decision(
        id=new_id(now),
        time=now,
        source=Source.RESUME,
        outcome=Outcome.RESUMED,
        actor=actor,
        namespace=namespace,
        deployment=deployment,
    )
    try:
        current = service.cluster.get_deployment(namespace, deployment)
    except NotFound as exc:
        raise ResumeError(404, f"Deployment {namespace}/{deployment}: {exc}") from None
    except InvalidName as exc:  # a name no Deployment can have (a dotted namespace): none there
        raise ResumeError(404, str(exc)) from None
    except KubeError as exc:
        return _failed(service, decision, exc, detail=f"{actor}: {reason} | resume failed: {exc}")
    paused = pause_record(current["metadata"].get("annotations") or {})
    if paused is None:
        raise NothingPaused(f"Deployment {namespace}/{deployment} has no pause by rollback-webhook")
    decision.labels = {"owner": paused.owner.describe()}
    try:
        # Read only: a record hand-written on the Deployment never steers an owner write.
        owner_check(service.cluster, paused, namespace=namespace, deployment=deployment)
    except NotOurPause as exc:
        # Nothing is written. The attempt is recorded (failed / conflict, as when the owner
        # changes between this check and the write), for it says someone wrote a pause record
        # by hand or handed the owner back outside resume; the answer stays the refusal.
        log.warning("resume of %s/%s by %s refused: %s", namespace, deployment, actor, exc)
        decision.outcome, decision.reason = Outcome.FAILED, FailReason.CONFLICT
        decision.detail = f"{actor}: {reason} | resume refused, nothing written: {exc}"
        try:
            service.record(decision)
            recorded = f" (recorded as audit id {decision.id})"
        except AuditUnavailable as unavailable:
            recorded = f" (not recorded: {unavailable})"
        raise ResumeError(409, f"{exc}{recorded}") from None
    except KubeError as exc:
        return _failed(service, decision, exc, detail=f"{actor}: {reason} | resume failed: {exc}")
    decision.detail = (
        f"{actor}: {reason} | resumed {paused.owner.describe()} (the pause of audit "
        f"{paused.audit_id})"
    )
    # Before any write; one resume of a Deployment at a time (every replica on the store).
    running = service.audit.open_intent(_intent(decision, current, paused.audit_id))
    if running is not None:
        raise ResumeError(
            409,
            f"a resume of {namespace}/{deployment} is in progress (audit id {running}); "
            "a stalled one is settled by the reconciler within minutes",
        )
    try:
        done = resume(service.cluster, current, paused, audit_id=decision.id)
    except NotOurPause as exc:  # the owner changed since the check: nothing written
        decision.outcome, decision.reason = Outcome.FAILED, FailReason.CONFLICT
        decision.detail = f"{actor}: {reason} | resume failed: {exc}"
        service.record(decision)
        return decision
    except (KubeError, OwnerHandedBack) as exc:
        cause = exc.cause if isinstance(exc, OwnerHandedBack) else exc
        if isinstance(cause, Transient) and not cause.ended:
            # No answer: the write may still land. The intent stays open and the reconciler
            # records the resume from the Deployment (its last-resume names this id), or not.
            raise ResumeError(
                503,
                f"resuming {paused.owner.describe()}: no answer from the API server ({cause}); "
                f"the write may have landed: the reconciler records the outcome (audit id "
                f"{decision.id})",
            ) from None
        what = f"{exc}; run resume again to finish" if cause is not exc else f"resume failed: {exc}"
        return _failed(service, decision, cause, detail=f"{actor}: {reason} | {what}")
    decision.detail = f"{actor}: {reason} | {done}"
    try:
        service.record(decision)
    except AuditUnavailable as exc:
        raise ResumeError(
            503,
            f"resumed {paused.owner.describe()}, but its record could not be stored ({exc}): "
            f"the reconciler stores it from the Deployment (audit id {decision.id})",
        ) from None
    try:
        involved = service.cluster.get_deployment(namespace, deployment)
        service.cluster.create_event(
            involved=involved,
            reason=EventReason.RESUMED,
            message=f"{done} [by {actor}: {reason}; audit {decision.id}]",
        )
    except KubeError:
        pass  # the record stands; the Event is best effort
    return decision


def _failed(service: Service, decision: Decision, exc: KubeError, *, detail: str) -> Decision:
    decision.outcome = Outcome.FAILED
    decision.reason = _fail_reason(exc)
    decision.detail = detail
    service.record(decision)
    return decision


def _intent(decision: Decision, deployment: dict[str, Any], pause_audit_id: str) -> IntentRow:
    """The resume's write-ahead record: what the reconciler stores if the writes land."""
    meta = deployment["metadata"]
    return IntentRow(
        id=decision.id,
        time=iso(decision.time),
        kind=IntentKind.RESUME,
        state=IntentState.OPEN,
        namespace=decision.namespace,
        deployment=decision.deployment,
        source=Source.RESUME,
        resource_version=str(meta.get("resourceVersion", "")),
        planned={"pause_audit_id": pause_audit_id},
        decision=decision.as_dict(),
    )


def _fail_reason(exc: KubeError) -> FailReason:
    if isinstance(exc, Conflict):
        return FailReason.CONFLICT
    if isinstance(exc, Forbidden):
        return FailReason.FORBIDDEN
    if isinstance(exc, Transient) and exc.timeout:
        return FailReason.TIMEOUT
    return FailReason.API_ERROR
