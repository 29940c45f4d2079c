"""The gate (webhook.gate's `Gate`) backed by the audit store: exact for every replica that
shares the store, and write-ahead.

`admit` runs in the store's gate transaction (SQLite: BEGIN IMMEDIATE on the shared file;
PostgreSQL: a transaction-scoped advisory lock): it reads the circuit breaker's count (recorded
decisions plus open intents, of every replica) and the dry-run duplicate, runs the pure policy
again with them, and when the answer is still Act records the decision's intent in the same
transaction: its id, from and to, the resourceVersion the write is conditional on, the write's
annotations and the bad-revision mark it plans, and the record it will store. So the next
decision anywhere already counts it, and a crash after this point leaves a record to settle
(webhook.reconcile), never a rollback nobody wrote down.

Replicas that share no store (SQLite, a file per pod) also book each admitted rollback in the
circuit ledger (webhook.ledger: one Lease every replica writes conditionally), after the intent
is stored and before anything is written: a booking refused because the window is full turns
the decision into circuit_open and removes the intent. The store's own count still runs first,
so a pod whose own rollbacks fill the window asks the ledger nothing.

The reservation's `commit` keeps the intent open until the decision's record closes it
(AuditStore.record_many); `release` (a 409 or a definite failure) removes it, and frees the
decision's ledger slot.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from webhook import contract
from webhook.alerts import Alert
from webhook.ask import Request
from webhook.audit import AuditStore, GateRule, IntentKind, IntentRow, IntentState
from webhook.audit.rows import iso
from webhook.config import Settings
from webhook.gate import Claim, Kept, Reservation
from webhook.kube import Cluster, KubeError, Transient
from webhook.ledger import Book, Ledger, slot_key
from webhook.policy import Act, GateState, Plan, Redecide, Result, Skip
from webhook.revisions import bad_mark_value, last_action

log = logging.getLogger(__name__)


class DurableGate:
    def __init__(
        self,
        *,
        settings: Settings,
        audit: AuditStore,
        elsewhere: Callable[[datetime], int] = lambda since: 0,
        ledger: Ledger | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.ledger = ledger
        # Rollbacks seen in the cluster's last-action annotations: replicas with their own
        # SQLite file are not in this store (docs/audit.md says what that costs).
        self.elsewhere = elsewhere

    def admit(
        self, claim: Claim, judge: Callable[[GateState], Result]
    ) -> tuple[Result, Reservation | None]:
        window_start = claim.at - timedelta(seconds=int(self.settings.circuit_window))
        counted = [contract.ROLLED_BACK]
        if claim.counts_dry_run:
            counted.append(contract.DRY_RUN)
        rule = GateRule(
            window_start=window_start,
            max_rollbacks=self.settings.max_rollbacks,
            counted=tuple(counted),
            duplicate_since=(
                claim.at - timedelta(seconds=int(self.settings.cooldown))
                if claim.counts_dry_run
                else None
            ),
        )
        key = (claim.namespace, claim.deployment, claim.from_replicaset)
        elsewhere = self.elsewhere(window_start)
        with self.audit.gate(rule, key) as ticket:
            rollbacks = max(ticket.counted, elsewhere)
            state = GateState(
                rollbacks=rollbacks,
                duplicate_of=ticket.duplicate_of if rollbacks < rule.max_rollbacks else None,
            )
            result = judge(state)
            if not isinstance(result, Act):
                return result, None
            if claim.dry_run and not claim.counts_dry_run:
                return result, Kept()  # a replay's preview: nothing to claim
            intent = intent_for(claim, result.plan)
            if not claim.dry_run:
                # Read before another decision's rollback of this Deployment landed: this
                # write would only meet a 409, and its slot would count a rollback twice
                # meanwhile (a false circuit_open for others). Decide again from fresh reads.
                earlier = ticket.landed_from(
                    claim.namespace, claim.deployment, intent.resource_version
                )
                if earlier:
                    why = f"decision {earlier} rolled this Deployment back from the same read"
                    return Redecide(why), None
            ticket.claim(intent)
        if claim.dry_run:
            return result, Kept()  # closed when its dry_run record is stored
        if self.ledger is None:
            return result, _Intent(self.audit, claim.decision_id)
        return self._book(claim, judge, result, intent, window_start)

    def _book(
        self,
        claim: Claim,
        judge: Callable[[GateState], Result],
        result: Result,
        intent: IntentRow,
        window_start: datetime,
    ) -> tuple[Result, Reservation | None]:
        """The ledger's word on an admitted rollback: its slot booked, or circuit_open."""
        assert self.ledger is not None
        key = slot_key(claim.namespace, claim.deployment, intent.resource_version)
        booking = Book(
            key=key,
            decision_id=claim.decision_id,
            at=claim.at,
            since=ledger_since(self.settings, claim.at),
            limit=self.settings.max_rollbacks,
        )
        try:
            verdict = self.ledger.book(booking)
        except BaseException:  # nothing booked for certain: nothing is written
            try:
                self.audit.cancel_intent(claim.decision_id)
            except Exception:  # the reconciler settles it; the booking's error is the answer
                log.exception("could not remove the intent of %s", claim.decision_id)
            raise
        if verdict.admitted:
            return result, _Intent(self.audit, claim.decision_id, ledger=self.ledger, key=key)
        self.audit.cancel_intent(claim.decision_id)
        refused = judge(GateState(rollbacks=verdict.counted))
        if isinstance(refused, Skip):
            where = (
                f" (counted in {self.ledger.what}, where every replica books its rollbacks, "
                f"over circuit_window plus max_clock_skew: replicas' clocks may differ)"
            )
            refused = dataclasses.replace(refused, detail=refused.detail + where)
        return refused, None


class _Intent:
    def __init__(
        self, audit: AuditStore, intent_id: str, *, ledger: Ledger | None = None, key: str = ""
    ) -> None:
        self.audit, self.intent_id = audit, intent_id
        self.ledger, self.key = ledger, key

    def commit(self) -> None:
        """Written: the intent stays open until the decision's record closes it."""

    def release(self) -> None:
        self.audit.cancel_intent(self.intent_id)
        if self.ledger is not None:
            self.ledger.release(self.intent_id, self.key)


def ledger_since(settings: Settings, now: datetime) -> datetime:
    """From when the ledger counts: circuit_window plus max_clock_skew back. Each replica
    books and prunes by its own clock; a clock up to max_clock_skew ahead or behind then
    still counts every other replica's rollback for a whole circuit_window of true time (and
    counts it up to that much longer: never fewer)."""
    return now - timedelta(seconds=int(settings.circuit_window) + int(settings.max_clock_skew))


def intent_for(claim: Claim, plan: Plan) -> IntentRow:
    """The write-ahead record of a claim the gate admitted."""
    meta = plan.deployment["metadata"]
    record = dict(claim.record)
    record.update(
        id=claim.decision_id,
        time=iso(claim.at),
        namespace=claim.namespace,
        deployment=claim.deployment,
        from_revision=plan.current.number,
        to_revision=plan.target.number,
        from_replicaset=plan.current.name,
        to_replicaset=plan.target.name,
        dry_run=plan.dry_run,
        outcome=contract.DRY_RUN if plan.dry_run else contract.ROLLED_BACK,
        detail=("would roll back " if plan.dry_run else "rolled back ") + plan.summary,
    )
    note = record.pop("note", "")
    if note:
        record["detail"] = f"{note} | {record['detail']}"
    return IntentRow(
        id=claim.decision_id,
        time=iso(claim.at),
        kind=IntentKind.DRY_RUN if plan.dry_run else IntentKind.ROLLBACK,
        state=IntentState.OPEN,
        namespace=claim.namespace,
        deployment=claim.deployment,
        from_replicaset=plan.current.name,
        to_replicaset=plan.target.name,
        source=str(record.get("source", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        planned={
            "annotations": dict(plan.annotations),
            "bad_mark": bad_mark_value(
                trigger=str(record.get("trigger", "")),
                alertname=str(record.get("alertname", "")),
                audit_id=claim.decision_id,
                at=claim.at,
            ),
            # The spec's generation the write is conditional on: while the Deployment still
            # has it, no spec write has landed since, this one included (webhook.reconcile).
            "generation": meta.get("generation"),
            # The GitOps owner paused before the write, if any: a write that never lands has
            # its pause undone by the reconciler, from the owner's own copy of it.
            "gitops_owner": (
                plan.gitops.pause.owner.as_dict() if plan.gitops and plan.gitops.pause else None
            ),
        },
        decision=record,
    )


def draft_record(alert: Alert, request: Request, *, decision_id: str) -> dict[str, Any]:
    """The alert's and the request's fields of the decision's record (the rest comes from the
    plan in `intent_for`), as the decider will build them."""
    labels = alert.labels
    return {
        "id": decision_id,
        "source": str(request.source),
        "actor": request.actor,
        "payload_id": request.payload_id,
        "group_key": request.group_key,
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "trigger": labels.get(contract.LABEL_TRIGGER, ""),
        "labels": dict(labels),
        "starts_at": iso(alert.starts_at) if alert.starts_at else None,
        "overrides": request.overrides.as_dict(),
        "replay_of": request.replay_of,
        "note": request.note,
    }


class Written(StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


def after_failed_write(cluster: Cluster, plan: Plan, decision_id: str, exc: Transient) -> Written:
    """Whether a write that failed transiently landed: the Deployment is read again, and its
    last-action names this decision when it did. Without an answer (a timeout, a reset) and
    without that proof, the write may still land: UNKNOWN, and the reconciler settles it."""
    over = exc.ended
    meta = plan.deployment["metadata"]
    try:
        deployment = cluster.get_deployment(str(meta["namespace"]), str(meta["name"]))
    except KubeError:
        return Written.NO if over else Written.UNKNOWN
    if (last_action(deployment) or {}).get("audit_id") == decision_id:
        return Written.YES
    return Written.NO if over else Written.UNKNOWN
