"""Alert -> Decision: the pure policy (webhook.policy) run over gathered facts, then its effects.

`Decider.decide` returns exactly one Decision per alert, built once from the result. Each
attempt gathers facts (webhook.gather), asks the policy, and when it says Act, asks the gate
(webhook.gate) to reserve the breaker and duplicate slot; the write happens outside the gate's
lock. A 409, or reads that disagree, mean the world changed: the decision is taken again from a
fresh read, in a plain bounded loop with a small backoff (a longer one when the Deployment
controller is behind), never retried blindly. Only the final attempt's effects happen: an
attempt that is decided again leaves no mark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from webhook import contract, names
from webhook.alerts import Alert
from webhook.ask import Overrides, Request
from webhook.config import Settings
from webhook.contract import FailReason, Outcome, SkipReason
from webhook.decision import Decision, new_id
from webhook.durable_gate import Written, after_failed_write, draft_record
from webhook.effects import Effects
from webhook.evidence import Confirmer, ConfirmResult, EvidenceSource
from webhook.gate import Claim, Gate, Kept
from webhook.gather import ClusterFacts, GitOpsCheck
from webhook.gitops import describe_pause, would_pause
from webhook.kube import Cluster, Conflict, Forbidden, KubeError, Transient
from webhook.policy import AlertedMark, Found, GateState, Redecide, Result, Skip, decide
from webhook.views import DeploymentView

__all__ = ["ConfirmResult", "Confirmer", "Decider", "Overrides", "Request"]

log = logging.getLogger(__name__)

# Pauses before the re-decisions that follow controller lag (bounded by max_conflict_retries).
LAG_BACKOFF_SECONDS = (0.2, 0.4, 0.8, 1.6)
# Pauses before the re-decisions that follow a 409: enough to let the other writer finish.
CONFLICT_BACKOFF_SECONDS = (0.01, 0.02, 0.04, 0.08)


@dataclass(frozen=True)
class _Concluded:
    """The final result of one decision, whatever produced it."""

    outcome: Outcome
    reason: SkipReason | FailReason | None
    detail: str
    found: Found
    alerted: AlertedMark | None = None
    transient: bool = False
    no_target_event: str = ""
    unsettled: bool = False  # the write may or may not have landed: the reconciler settles it
    mark_pending: bool = False  # rolled back, the bad-revision mark failed: reconciler retries


class Decider:
    """Turns alerts into decisions against one cluster."""

    def __init__(
        self,
        *,
        settings: Settings,
        cluster: Cluster,
        evidence: Sequence[EvidenceSource],
        clock: Callable[[], datetime],
        gate: Gate,
        confirmer: Confirmer | None = None,
        gitops: GitOpsCheck | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.evidence = tuple(evidence)
        self.clock = clock
        self.confirmer = confirmer
        self.gitops = gitops
        self.sleep = sleep
        self.effects = Effects(cluster=cluster, clock=clock)
        self.gate = gate

    def decide(self, alert: Alert, request: Request) -> Decision:
        """Exactly one Decision for `alert`; cluster trouble is an outcome, never raised."""
        started = time.monotonic()
        now = self.clock()
        decision_id = new_id(now)
        dry_run = self.settings.dry_run if request.dry_run is None else request.dry_run
        concluded = self._conclude(
            alert, request, now=now, decision_id=decision_id, dry_run=dry_run
        )
        suffix = f"[alert {alert.alertname}, trigger {_trigger(alert)}, audit {decision_id}]"
        involved = concluded.found.involved
        if concluded.no_target_event and involved is not None:
            self.effects.no_target(involved, f"{concluded.no_target_event} [audit {decision_id}]")
        if concluded.outcome != Outcome.ROLLED_BACK and not dry_run and concluded.alerted:
            self.effects.mark_alerted(concluded.alerted)
        detail = concluded.detail
        if request.note:
            detail = f"{request.note} | {detail}"
        if request.truncated_alerts:
            detail += f" (payload truncated {request.truncated_alerts} alerts)"
        if involved is not None:
            self.effects.announce(
                involved, outcome=concluded.outcome, detail=concluded.detail, suffix=suffix
            )
            if concluded.reason == SkipReason.GITOPS_MANAGED:
                self.effects.refused(involved, f"{concluded.detail} {suffix}")
        labels = alert.labels
        return Decision(
            id=decision_id,
            time=now,
            source=request.source,
            outcome=concluded.outcome,
            reason=concluded.reason,
            detail=detail,
            actor=request.actor,
            payload_id=request.payload_id,
            group_key=request.group_key,
            fingerprint=alert.fingerprint,
            alertname=alert.alertname,
            trigger=_trigger(alert),
            labels=dict(labels),
            starts_at=alert.starts_at,
            namespace=_name_or_blank(labels.get(contract.LABEL_NAMESPACE, ""), namespace=True),
            deployment=concluded.found.deployment
            or _name_or_blank(labels.get(contract.LABEL_DEPLOYMENT, "")),
            from_revision=concluded.found.from_revision,
            to_revision=concluded.found.to_revision,
            from_replicaset=concluded.found.from_replicaset,
            to_replicaset=concluded.found.to_replicaset,
            dry_run=dry_run,
            overrides=request.overrides.as_dict(),
            replay_of=request.replay_of,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            transient=concluded.transient,
            unsettled=concluded.unsettled,
            mark_pending=concluded.mark_pending,
        )

    # -- the bounded loop ---------------------------------------------------------------------
    def _conclude(
        self, alert: Alert, request: Request, *, now: datetime, decision_id: str, dry_run: bool
    ) -> _Concluded:
        retries = self.settings.max_conflict_retries
        shared: dict[str, Any] = {}
        lagged = conflicts = 0
        found = Found()
        for attempt in range(retries + 1):
            facts = ClusterFacts.first(
                shared=shared,
                cluster=self.cluster,
                alert=alert,
                settings=self.settings,
                request=request,
                now=now,
                dry_run=dry_run,
                # The last attempt decides on what it reads, controller caught up or not.
                patient=attempt < retries,
                evidence=self.evidence,
                confirmer=self.confirmer,
                gitops_check=self.gitops,
            )
            try:
                result = self._attempt(facts, decision_id=decision_id)
            except KubeError as exc:
                return failure_for(exc, _found_read(facts, found))
            if isinstance(result, _Concluded):
                return result
            if isinstance(result, Skip):
                return _Concluded(
                    Outcome.SKIPPED,
                    result.reason,
                    result.detail,
                    result.found,
                    result.alerted,
                    no_target_event=result.no_target_event,
                )
            found = result.found if result.found.involved else _found_read(facts, found)
            namespace, name = facts.namespace, facts.resolution().deployment
            if result.lagging:
                pause = LAG_BACKOFF_SECONDS[min(lagged, len(LAG_BACKOFF_SECONDS) - 1)]
                lagged += 1
                log.info(
                    "%s/%s: controller has not caught up: deciding again in %ss",
                    namespace,
                    name,
                    pause,
                )
            else:
                pause = CONFLICT_BACKOFF_SECONDS[min(conflicts, len(CONFLICT_BACKOFF_SECONDS) - 1)]
                conflicts += 1
                log.info("conflict on %s/%s (%s): deciding again", namespace, name, result.why)
            if attempt < retries:
                self.sleep(pause)
        lag_note = f" ({lagged} found the controller behind the Deployment)" if lagged else ""
        return _Concluded(
            Outcome.FAILED,
            FailReason.CONFLICT,
            f"Deployment kept changing: {retries + 1} attempts met a 409 Conflict or a newer "
            f"revision than the Deployment read{lag_note}",
            found,
        )

    def _attempt(self, facts: ClusterFacts, *, decision_id: str) -> Skip | Redecide | _Concluded:
        """One attempt: policy, gate, write. Redecide when the world changed meanwhile."""
        result = decide(facts)
        if isinstance(result, Skip | Redecide):
            return result
        plan = result.plan
        namespace, deployment, from_replicaset = plan.key
        claim = Claim(
            namespace=namespace,
            deployment=deployment,
            from_replicaset=from_replicaset,
            decision_id=decision_id,
            at=facts.now,
            dry_run=plan.dry_run,
            counts_dry_run=plan.counts_dry_run,
            record=draft_record(facts.alert, facts.request, decision_id=decision_id),
        )

        def judge(state: GateState) -> Result:
            return decide(facts.with_gate(state))

        admitted, held = self.gate.admit(claim, judge)
        if isinstance(admitted, Skip | Redecide):
            return admitted
        reservation = held or Kept()
        plan, found = admitted.plan, admitted.found
        notes = "; " + "; ".join(found.notes) if found.notes else ""
        if plan.dry_run:
            reservation.commit()
            pausing = plan.gitops.pause if plan.gitops else None
            detail = (
                "would roll back "
                + plan.summary
                + would_pause(pausing, namespace=namespace, deployment=deployment)
                + notes
            )
            return _Concluded(Outcome.DRY_RUN, None, detail, found)
        trigger, alertname = _trigger(facts.alert), facts.alert.alertname
        paused = None
        try:
            # A GitOps owner is paused first, so it cannot undo the rollback in between.
            paused = self.effects.pause(plan, decision_id=decision_id)
            self.effects.write(
                plan, decision_id=decision_id, trigger=trigger, alertname=alertname, paused=paused
            )
        except Conflict:
            left = self.effects.unpause(plan, paused)
            reservation.release()
            if left:  # taken again, the owner would look paused by someone else: say so now
                detail = f"409 Conflict on the rollback write; {left}"
                return _Concluded(
                    Outcome.FAILED, FailReason.CONFLICT, detail, found, admitted.alerted
                )
            return Redecide("409 Conflict on the rollback write", found=found)
        except Transient as exc:
            # The write may have landed: read the Deployment again, never assume failure.
            written = after_failed_write(self.cluster, plan, decision_id, exc)
            if written is Written.UNKNOWN:  # its intent stays open for the reconciler
                failed = failure_for(exc, found)
                if paused is not None:  # kept: the write may have landed
                    failed = replace(
                        failed,
                        detail=f"{failed.detail}; {paused.owner.describe()} stays paused until "
                        "the reconciler knows whether the write landed (it hands the owner back "
                        "if it never did)",
                    )
                return replace(failed, alerted=admitted.alerted, unsettled=True)
            if written is Written.NO:
                left = self.effects.unpause(plan, paused)
                reservation.release()
                return replace(_left_paused(exc, found, left), alerted=admitted.alerted)
        except KubeError as exc:
            left = self.effects.unpause(plan, paused)
            reservation.release()
            return replace(_left_paused(exc, found, left), alerted=admitted.alerted)
        except BaseException:
            self.effects.unpause(plan, paused)
            reservation.release()
            raise
        reservation.commit()
        mark_note = self.effects.mark_bad(
            plan, decision_id=decision_id, trigger=trigger, alertname=alertname
        )
        pause_note = (
            "; "
            + describe_pause(paused, namespace=namespace, deployment=deployment)
            + (plan.gitops.pause.confirmation if plan.gitops and plan.gitops.pause else "")
            if paused
            else ""
        )
        detail = "rolled back " + plan.summary + mark_note + pause_note + notes
        return _Concluded(
            Outcome.ROLLED_BACK,
            None,
            detail,
            found,
            admitted.alerted,
            mark_pending=bool(mark_note),
        )


def _trigger(alert: Alert) -> str:
    return alert.labels.get(contract.LABEL_TRIGGER, "")


def _found_read(facts: ClusterFacts, fallback: Found) -> Found:
    """What an attempt that ended early had learned: the Deployment it read, for the Event."""
    raw = facts.read_deployment
    if raw is None:
        return fallback
    return Found(deployment=facts.resolution().deployment, involved=DeploymentView.of(raw).ref())


def _left_paused(exc: KubeError, found: Found, left: str) -> _Concluded:
    """failure_for, saying in its detail that the pause made before the write stays."""
    failed = failure_for(exc, found)
    return replace(failed, detail=f"{failed.detail}; {left}") if left else failed


def failure_for(exc: KubeError, found: Found) -> _Concluded:
    """The failed outcome a cluster error means (README: forbidden, api_error, timeout)."""
    if isinstance(exc, Transient):
        reason = FailReason.TIMEOUT if exc.timeout else FailReason.API_ERROR
        return _Concluded(Outcome.FAILED, reason, str(exc), found, transient=True)
    if isinstance(exc, Forbidden):
        return _Concluded(Outcome.FAILED, FailReason.FORBIDDEN, str(exc), found)
    return _Concluded(Outcome.FAILED, FailReason.API_ERROR, str(exc), found)


def _name_or_blank(value: str, *, namespace: bool = False) -> str:
    """A workload label as the decision's namespace or deployment: the columns the audit is
    queried and indexed by hold names only. A label that is no Kubernetes name (any length a
    sender likes: PostgreSQL refuses an index entry over about 2.7 kB) leaves them blank; the
    decision's labels and detail keep it as sent."""
    ok = names.is_namespace_name(value) if namespace else names.is_object_name(value)
    return value if ok else ""
