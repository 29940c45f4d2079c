"""The reconciler: settles write-ahead intents against what the cluster shows.

An intent is open from just before a decision's write until its record is stored. One left
open (the worker was killed, the write timed out, the response was lost) is settled here once
it is older than `audit.settle_after_seconds` (longer than any write can still be in flight):

- the Deployment's `auto-rollback/last-action` names the intent's id: the rollback happened.
  Its bad-revision mark is written if missing, and its record stored (settled_by reconciler);
- otherwise the write never landed: a `failed` record says so (the delivery was not answered
  2xx, so Alertmanager sends it again and a new decision is taken);
- a dry-run claim is stored as its dry_run record (it was decided, just not recorded);
- a rollback recorded with its mark missing (the mark's PATCH failed) gets the mark;
- a resume (webhook.resume) is recorded `resumed` when the Deployment's last-resume annotation
  names it, else `failed`.

Each settlement is conditional on the intent's state in the store (UPDATE ... WHERE state =),
so two reconcilers (workers, replicas) never both store a record; a mark already on the
ReplicaSet is not written again. The loop runs in each worker's thread, never in the master:
at start and every `audit.reconcile_seconds`, with the store's integrity check now and then.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webhook import contract
from webhook.audit import (
    AuditStore,
    AuditUnavailable,
    DecisionRow,
    IntentKind,
    IntentRow,
    IntentState,
)
from webhook.audit.rows import DECISION_FIELDS
from webhook.config import Namespaces
from webhook.contract import REVISION
from webhook.gitops import Owner, pause_record
from webhook.gitops_pause import undo_unrecorded_pause
from webhook.inventory import deployments_in_scope
from webhook.kube import Cluster, KubeError, NotFound
from webhook.ledger import Ledger, slot_key
from webhook.revisions import last_action, last_action_time, parse_k8s_time, parse_revision

log = logging.getLogger(__name__)

# Integrity checks read the whole SQLite file: one every this many rounds.
INTEGRITY_EVERY_ROUNDS = 20


@dataclass
class Report:
    rolled_back: list[str] = field(default_factory=list)  # recorded from what the cluster shows
    never_landed: list[str] = field(default_factory=list)  # recorded as failed
    dry_run: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # resumes recorded from the Deployment
    marked: list[str] = field(default_factory=list)  # bad-revision marks written
    # last-action audit ids (recent) with neither a record nor an intent in this store
    unrecorded: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _spec_unwritten(intent: IntentRow, deployment: dict[str, Any] | None) -> bool:
    """Proof that the intent's rollback never landed, strong enough to free its circuit ledger
    slot: the Deployment still has the spec generation the write was conditional on (a landed
    rollback changes the template, so the generation). A Deployment that is gone, or whose
    spec moved on (perhaps a later rollback after this one landed, its last-action written over),
    proves nothing: the slot stays booked until its window passes."""
    planned = intent.planned.get("generation")
    if deployment is None or not isinstance(planned, int):
        return False
    return bool(deployment["metadata"].get("generation") == planned)


class Reconciler:
    def __init__(
        self,
        *,
        audit: AuditStore,
        cluster: Cluster,
        clock: Callable[[], datetime],
        settle_after_seconds: float = 120.0,
        namespaces: Namespaces | None = None,
        lookback_seconds: float = 3600.0,
        ledger: Ledger | None = None,
    ) -> None:
        self.audit = audit
        # A rollback that never landed frees its circuit ledger slot (on every replica).
        self.ledger = ledger
        self.cluster = cluster
        self.clock = clock
        self.settle_after = timedelta(seconds=settle_after_seconds)
        # Where to read last-action annotations (None: not read), and how far back.
        self.namespaces = namespaces
        self.lookback = timedelta(seconds=lookback_seconds)

    def run_once(self) -> Report:
        """Settle every intent old enough; errors are kept in the report (tried next round)."""
        report = Report()
        for intent in self.audit.open_intents(before=self.clock() - self.settle_after):
            try:
                self._settle(intent, report)
            except (KubeError, AuditUnavailable) as exc:
                report.errors.append(f"{intent.id}: {exc}")
                log.warning(
                    "reconciler: %s (%s/%s): %s",
                    intent.id,
                    intent.namespace,
                    intent.deployment,
                    exc,
                )
        if self.namespaces is not None:
            try:
                self._check_annotations(report)
            except (KubeError, AuditUnavailable) as exc:
                report.errors.append(f"last-action annotations: {exc}")
        return report

    def _check_annotations(self, report: Report) -> None:
        """Recent last-action audit ids this store neither recorded nor intended: said, never
        written (with a SQLite file per replica they are the other replicas'; with one shared
        store, a rollback made without a record, e.g. by a release before write-ahead)."""
        assert self.namespaces is not None
        now = self.clock()
        for deployment in deployments_in_scope(self.cluster, self.namespaces):
            action = last_action(deployment) or {}
            audit_id = str(action.get("audit_id") or "")
            when = last_action_time(deployment)
            if not audit_id or when is None or not now - self.lookback <= when:
                continue
            if when > now - self.settle_after:
                continue  # perhaps still being recorded
            if self.audit.get(audit_id) is None and self.audit.intent(audit_id) is None:
                meta = deployment["metadata"]
                report.unrecorded.append(audit_id)
                log.warning(
                    "reconciler: %s/%s was rolled back by %s at %s, which %s has no record of",
                    meta.get("namespace"),
                    meta.get("name"),
                    audit_id,
                    action.get("time"),
                    self.audit.describe(),
                )

    def _settle(self, intent: IntentRow, report: Report) -> None:
        if intent.state == IntentState.MARK_PENDING:
            if self._mark(intent):
                report.marked.append(intent.id)
            self.audit.settle(intent, record=None, state=IntentState.DONE)
            return
        if intent.kind == IntentKind.DRY_RUN:
            if self.audit.settle(intent, record=_row(intent), state=IntentState.DONE):
                report.dry_run.append(intent.id)
            return
        if intent.kind == IntentKind.RESUME:
            self._settle_resume(intent, report)
            return
        deployment = self._deployment_of(intent)
        action = (last_action(deployment) or {}) if deployment else {}
        named = action.get("audit_id") == intent.id
        other = "" if named else self._another_rollback(intent, action)
        # Only when the last-action does not say: one GET of the ReplicaSet rolled back to.
        readopted = None if named or other or not deployment else self._target_readopted(intent)
        if named or readopted:
            if self._mark(intent):
                report.marked.append(intent.id)
            shows = (
                "the cluster shows this write"
                if named
                else f"the cluster shows this write: {readopted}, though the Deployment's "
                "last-action no longer names it (written over since)"
            )
            record = _row(intent, note=f"recorded by the reconciler: {shows}")
            if self.audit.settle(intent, record=record, state=IntentState.DONE):
                report.rolled_back.append(intent.id)
                log.warning(
                    "reconciler: %s rolled back %s/%s; its record was missing: stored",
                    intent.id,
                    intent.namespace,
                    intent.deployment,
                )
            return
        seen = action.get("audit_id") or "none"
        where = (
            f"resourceVersion {deployment['metadata'].get('resourceVersion')}"
            if deployment
            else "the Deployment is gone"
        )
        unwritten = _spec_unwritten(intent, deployment)
        planned = (
            f"the planned write ({intent.from_replicaset} -> {intent.to_replicaset}, "
            f"conditional on resourceVersion {intent.resource_version})"
        )
        if deployment is not None and not unwritten and not other:
            # The spec moved since the write's read and nothing shows whose write that was:
            # perhaps ours, its last-action since replaced (by hand, or kubectl's undo, which
            # copies the ReplicaSet's annotations). Not provably unlanded: the revision rolled
            # back from is marked bad all the same, so it is never rolled back to, or into
            # again, on this record's word (and the ledger's slot stays booked).
            marked = self._mark(intent)
            if marked:
                report.marked.append(intent.id)
            self._never_landed(
                intent,
                report,
                f"{planned} may have reached the cluster: the Deployment's spec changed "
                f"since (generation "
                f"{intent.planned.get('generation')}, now "
                f"{deployment['metadata'].get('generation')}) and its last-action names "
                f"{seen}; {intent.from_replicaset} is marked bad as if it had; settled by the "
                "reconciler",
            )
            return
        unpaused = self._undo_pause(intent) if deployment is not None and unwritten else ""
        settled = self._never_landed(
            intent,
            report,
            f"{planned} never reached the cluster ({where}, last-action audit id {seen}{other}); "
            "settled by the reconciler" + (f"; {unpaused}" if unpaused else ""),
        )
        if settled and self.ledger is not None and unwritten:
            key = slot_key(intent.namespace, intent.deployment, intent.resource_version)
            self.ledger.release(intent.id, key)

    def _deployment_of(self, intent: IntentRow) -> dict[str, Any] | None:
        """The intent's Deployment as it is now (None: gone)."""
        try:
            return self.cluster.get_deployment(intent.namespace, intent.deployment)
        except NotFound:
            return None

    def _never_landed(self, intent: IntentRow, report: Report, detail: str) -> bool:
        """Store the intent's record as failed: its writes never (all) reached the cluster.
        True when this call settled it."""
        record = _row(
            intent, outcome=contract.FAILED, reason=contract.FailReason.TIMEOUT, detail=detail
        )
        if self.audit.settle(intent, record=record, state=IntentState.DONE):
            report.never_landed.append(intent.id)
            return True
        return False

    def _settle_resume(self, intent: IntentRow, report: Report) -> None:
        """A resume whose record is missing: it landed when the Deployment's last-resume names
        it (the write that drops the pause sets it); anything else is not this resume's doing."""
        deployment = self._deployment_of(intent)
        annotations = (deployment["metadata"].get("annotations") or {}) if deployment else {}
        if annotations.get(contract.ANNOTATION_LAST_RESUME) == intent.id:
            row = _row(intent, note="recorded by the reconciler: the Deployment names this resume")
            if self.audit.settle(intent, record=row, state=IntentState.DONE):
                report.resumed.append(intent.id)
            return
        pause = (intent.planned or {}).get("pause_audit_id", "")
        if deployment is None:
            where = "the Deployment is gone"
        elif pause_record(annotations) is not None:
            where = "the Deployment still carries a pause"
        else:
            where = "the pause was removed by something else"
        self._never_landed(
            intent,
            report,
            f"the resume of the pause of audit {pause} never finished ({where}; its last-resume "
            f"is {annotations.get(contract.ANNOTATION_LAST_RESUME) or 'none'}); an owner handed "
            "back before the Deployment write (HelmRelease, Application) stays handed back: run "
            "resume again to finish; settled by the reconciler",
        )

    def _undo_pause(self, intent: IntentRow) -> str:
        """For a rollback proven never to have landed: undo the pause of its GitOps owner that
        only the owner may show (webhook.gitops_pause.undo_unrecorded_pause); '' when none."""
        data = (intent.planned or {}).get("gitops_owner")
        if not isinstance(data, dict):
            return ""
        try:
            owner = Owner.from_dict(data)
        except (KeyError, ValueError, TypeError):
            return ""
        try:
            return undo_unrecorded_pause(
                self.cluster,
                owner,
                audit_id=intent.id,
                namespace=intent.namespace,
                deployment=intent.deployment,
            )
        except NotFound:
            return ""

    def _another_rollback(self, intent: IntentRow, action: dict[str, Any]) -> str:
        """' (a rollback from <ReplicaSet> since)' when the Deployment's last-action names
        another decision of this store that rolled back from the ReplicaSet this intent would
        have (a retry of the same alert, say): that write explains the spec's change and the
        target's new number, and had this one landed first, it would have found that revision
        no longer current. '' otherwise."""
        audit_id = str(action.get("audit_id") or "")
        if not audit_id or audit_id == intent.id:
            return ""
        row = self.audit.get(audit_id)
        if row is not None:
            outcome, source = row.get("outcome"), row.get("from_replicaset")
        else:
            pending = self.audit.intent(audit_id)
            if pending is None:
                return ""
            outcome, source = contract.ROLLED_BACK, pending.from_replicaset
        if outcome != contract.ROLLED_BACK or source != intent.from_replicaset:
            return ""
        return f" (a rollback from {source} since)"

    def _target_readopted(self, intent: IntentRow) -> str | None:
        """How the cluster shows the rollback landed without its last-action: the ReplicaSet
        rolled back to now has a revision number above the one rolled back from (the
        controller re-adopts a ReplicaSet a rollback returns to under a new number). None when
        it does not, or cannot be read."""
        before = (intent.decision or {}).get("from_revision")
        if not intent.to_replicaset or not isinstance(before, int):
            return None
        try:
            rs = self.cluster.get_replicaset(intent.namespace, intent.to_replicaset)
        except NotFound:
            return None
        number = parse_revision((rs["metadata"].get("annotations") or {}).get(REVISION, ""))
        if number is None or number <= before:
            return None
        return f"{intent.to_replicaset} was re-adopted as revision {number} after revision {before}"

    def _mark(self, intent: IntentRow) -> bool:
        """Write the planned bad-revision mark unless the ReplicaSet already carries one."""
        try:
            rs = self.cluster.get_replicaset(intent.namespace, intent.from_replicaset)
        except NotFound:
            return False
        annotations = rs["metadata"].get("annotations") or {}
        if contract.ANNOTATION_BAD_REVISION in annotations:
            return False
        mark = str((intent.planned or {}).get("bad_mark", ""))
        self.cluster.annotate_replicaset(
            intent.namespace, intent.from_replicaset, {contract.ANNOTATION_BAD_REVISION: mark}
        )
        return True


def _row(intent: IntentRow, *, note: str = "", **changes: Any) -> DecisionRow:
    """The intent's planned record, with `changes`, as the reconciler stores it."""
    values = {k: v for k, v in (intent.decision or {}).items() if k in DECISION_FIELDS}
    values.update(changes)
    if note:
        values["detail"] = f"{values.get('detail', '')} ({note})"
    values.setdefault("id", intent.id)
    values.setdefault("time", intent.time)
    values.setdefault("source", intent.source or contract.Source.ALERTMANAGER)
    values.setdefault("outcome", contract.ROLLED_BACK)
    for name in ("time", "starts_at"):
        if isinstance(values.get(name), str):
            values[name] = parse_k8s_time(values[name])
    return DecisionRow(**values, settled_by="reconciler")


class ReconcileLoop:
    """The reconciler (and the store's integrity check) in a daemon thread of a worker."""

    def __init__(self, reconciler: Reconciler, *, interval_seconds: float) -> None:
        self.reconciler = reconciler
        self.interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"reconciler-{os.getpid()}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            try:
                if rounds % INTEGRITY_EVERY_ROUNDS == 0 and rounds:
                    self.reconciler.audit.refresh_integrity()
                self.reconciler.run_once()
            except AuditUnavailable as exc:
                log.warning("reconciler: audit store unavailable: %s", exc)
            except Exception:  # the loop must outlive a bug in one round
                log.exception("reconciler: round failed")
            rounds += 1
            self._stop.wait(self.interval)


def start_for_service(service: Any) -> ReconcileLoop:
    """Start the reconciler of a worker (call after the fork, in the worker)."""
    settings = service.settings
    loop = ReconcileLoop(
        Reconciler(
            audit=service.audit,
            cluster=service.cluster,
            clock=service.clock,
            settle_after_seconds=float(settings.audit.settle_after_seconds),
            namespaces=settings.namespaces,
            ledger=service.ledger,
        ),
        interval_seconds=float(settings.audit.reconcile_seconds),
    )
    loop.start()
    log.info(
        "reconciler: settling write-ahead intents older than %ss every %ss in worker pid %d",
        settings.audit.settle_after_seconds,
        settings.audit.reconcile_seconds,
        os.getpid(),
    )
    return loop
