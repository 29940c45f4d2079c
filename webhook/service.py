"""The service: settings wired to the cluster, the audit, the evidence and the decider.

`Service.receive` is what both the HTTP receiver and replays call: decide each alert, record each
decision, log it as one JSON line and count it; the raw payload is stored with the first record
that names it (webhook.audit.payloads), always before the answer.

Each decision is serialised once: the JSON text written to the decision log is the text the
HTTP answer carries (`Received.serialised`), and the log line is queued for a writer thread
(webhook.decision_log) instead of being written on the request's thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook import contract, jsontext
from webhook.alerts import MAX_COUNT, Alert, Payload, PayloadError, parse_payload
from webhook.ask import Request
from webhook.audit import AuditStore, AuditUnavailable
from webhook.circuit import ClusterRollbacks
from webhook.config import Settings
from webhook.contract import Confirmation
from webhook.decide import Decider
from webhook.decision import Decision
from webhook.decision_log import DECISION_LOG, decision_logger
from webhook.durable_gate import DurableGate
from webhook.evidence import (
    AlertQuery,
    ClusterRuleEvidence,
    Confirmer,
    ConfirmResult,
    EvidenceSource,
    PrometheusHistoryEvidence,
    PrometheusSource,
    RevisionHealthQuery,
    StampEvidence,
)
from webhook.fanout import Fanout, by_target
from webhook.gitops_check import gitops_check
from webhook.gitops_metrics import PausedOwnersCollector
from webhook.inventory import deployments_in_scope
from webhook.kube import Cluster
from webhook.ledger import Ledger
from webhook.metrics import Metrics
from webhook.stayput_metrics import RevertsCollector

log = logging.getLogger(__name__)
__all__ = ["DECISION_LOG", "Received", "Service"]
PRUNE_EVERY = timedelta(hours=1)
PRUNE_RETRY = timedelta(minutes=1)  # after a prune that failed
# Outcomes that acted when decided (not unsettled): a rollback or a resume written, a dry
# run's preview made. Each has an intent the reconciler records it from if its record is lost,
# and a retry finds it done (not_current_revision, a dry-run duplicate), not decided again.
_LANDED = frozenset({contract.ROLLED_BACK, contract.DRY_RUN, contract.Outcome.RESUMED})


def _line(text: str, *, recorded: bool) -> str:
    """A decision's JSON text as its log line: the event first, then whether it is recorded."""
    return '{"event": "decision", ' + ("" if recorded else '"recorded": false, ') + text[1:]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Received:
    """The outcome of one payload: its stored id and its decisions."""

    payload_id: str
    decisions: list[Decision] = field(default_factory=list)
    # Each decision's JSON text (as_dict, sorted keys), in the order of `decisions`: the same
    # text the decision log carries, so an answer serialises nothing again.
    serialised: list[str] = field(default_factory=list)

    @property
    def transient_failure(self) -> bool:
        return any(d.transient for d in self.decisions)


def evidence_sources(prometheus: RevisionHealthQuery | None) -> list[EvidenceSource]:
    """Strongest first: the tracker's stamp, Prometheus history, the cluster-only rule."""
    sources: list[EvidenceSource] = [StampEvidence()]
    if prometheus is not None:
        sources.append(PrometheusHistoryEvidence(prometheus))
    sources.append(ClusterRuleEvidence())
    return sources


def prometheus_confirmer(prometheus: AlertQuery, clock: Callable[[], datetime]) -> Confirmer:
    """Re-evaluate an alert's expression (from its generatorURL) at decision time."""

    def confirm(alert: Alert) -> ConfirmResult:
        result = prometheus.confirm(
            generator_url=alert.generator_url, at=clock(), labels=alert.labels
        )
        return ConfirmResult(verdict=Confirmation(result.verdict), detail=str(result.detail))

    return confirm


class Service:
    """One running instance: what the HTTP app, the CLI and the tests drive."""

    def __init__(
        self,
        *,
        settings: Settings,
        cluster: Cluster,
        audit: AuditStore,
        clock: Callable[[], datetime] = utc_now,
        prometheus: PrometheusSource | None = None,
        metrics: Metrics | None = None,
        evidence: Sequence[EvidenceSource] | None = None,
        in_pod: bool = False,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.audit = audit
        self.clock = clock
        self.prometheus = prometheus
        self.metrics = metrics or Metrics.create(dry_run=settings.dry_run)
        # The stay-put watch records in the tracker's process: its metric reads the audit.
        self.metrics.registry.register(
            RevertsCollector(count=audit.count_outcomes_since, clock=clock)
        )
        # Owners left paused: the Deployments' own pause annotations, listed lazily at scrape.
        self.metrics.registry.register(
            PausedOwnersCollector(
                deployments=lambda: deployments_in_scope(cluster, settings.namespaces),
                clock=clock,
            )
        )
        confirmer = None
        if prometheus is not None and settings.prometheus.confirm:
            confirmer = prometheus_confirmer(prometheus, clock)
        # The gate counts from the audit store every replica sharing it sees (write-ahead
        # intents included); other replicas' last-action annotations count too.
        rollbacks = ClusterRollbacks(cluster=cluster, settings=settings, clock=clock)
        self.cluster_rollbacks = rollbacks
        # Replicas that share no audit store book every rollback in one Lease (exact limit).
        ledger_on = settings.circuit_ledger.enabled(settings.audit, in_pod=in_pod)
        self.ledger = (
            Ledger(
                cluster=cluster,
                namespace=settings.circuit_ledger.namespace,
                name=settings.circuit_ledger.name,
                max_clock_skew=float(settings.max_clock_skew),
            )
            if ledger_on
            else None
        )
        self.fanout = Fanout()
        self.decider = Decider(
            settings=settings,
            cluster=cluster,
            gate=DurableGate(
                settings=settings,
                audit=audit,
                elsewhere=rollbacks.count_since,
                ledger=self.ledger,
            ),
            evidence=evidence if evidence is not None else evidence_sources(prometheus),
            clock=clock,
            confirmer=confirmer,
            gitops=gitops_check(cluster),
        )
        self._log = decision_logger()
        self._prune_due: datetime | None = None  # None: on the first payload

    def start_cluster_view(self) -> None:
        """Start re-reading every replica's rollbacks for the breaker (in each serving worker)."""
        self.cluster_rollbacks.start()

    def store(
        self,
        body: str,
        *,
        source: str,
        remote: str = "",
        actor: str = "",
        document: Any = None,
        deferred: bool = False,
    ) -> str:
        """Store a raw payload durably (AuditUnavailable when that is impossible); `deferred`:
        with the first row that names it, or by `audit.flush_payload` (webhook.audit.payloads)."""
        self.prune_if_due()
        if document is None:
            try:
                document = jsontext.loads(body)
            except ValueError:
                document = None
        group_key, truncated = "", 0
        if isinstance(document, dict):
            group_key = str(document.get("groupKey", ""))
            if jsontext.unencodable_field(group_key) is not None:
                group_key = ""  # refused by the parser next; the raw body keeps what was sent
            try:
                truncated = int(document.get("truncatedAlerts", 0) or 0)
            except (TypeError, ValueError, OverflowError):
                truncated = 0
            if not 0 <= truncated <= MAX_COUNT:
                truncated = 0  # refused by the parser next; the raw body keeps what was sent
        return self.audit.store_payload(
            body,
            received_at=self.clock(),
            source=source,
            remote=remote,
            actor=actor,
            group_key=group_key,
            truncated_alerts=truncated,
            deferred=deferred,
        )

    def prune_if_due(self) -> None:
        """Apply audit.retention_days, at most once an hour (on the first payload, then hourly).

        A prune that fails (a locked or full store, a DELETE of a long backlog cut off by the
        statement timeout) is logged and tried again a minute later: it never refuses the
        payload, which is stored or refused on its own merits, and it is not put off an hour.
        """
        now = self.clock()
        if self._prune_due is not None and now < self._prune_due:
            return
        self._prune_due = now + PRUNE_RETRY  # set first: one prune at a time, not one each
        retention = self.settings.audit.retention_days
        try:
            removed = self.audit.prune(retention_days=retention, now=now)
        except AuditUnavailable as exc:
            log.warning(
                "audit: pruning rows older than %d days failed, again in 1 minute: %s",
                retention,
                exc,
            )
            return
        self._prune_due = now + PRUNE_EVERY
        if removed:
            log.info("audit: removed %d rows older than %d days", removed, retention)

    def decide_payload(self, payload: Payload, request: Request) -> list[Decision]:
        """Decide, record, log and count every alert of a parsed payload (see decide_texts)."""
        return self.decide_texts(payload, request)[0]

    def decide_texts(self, payload: Payload, request: Request) -> tuple[list[Decision], list[str]]:
        """Decide, record, log and count every alert of a parsed payload.

        A decision that wrote to the cluster (rolled_back) or failed is recorded the moment it is
        made. The others are recorded together before the answer: until then nothing is
        accepted (no 2xx), so a crash only means Alertmanager sends the payload again. Alerts
        are decided per target (webhook.fanout): one target's alerts in payload order, the
        targets side by side. The answer and the batch of skips keep payload order; a rollback
        or failure is recorded and logged when it is made, so those follow the order groups end.
        """
        if payload.truncated_alerts:
            request = replace(request, truncated_alerts=payload.truncated_alerts)
        alerts = payload.alerts
        made: dict[int, Decision] = {}
        texts: dict[int, str] = {}
        audit_down = threading.Event()  # the payload's 503 is decided: the other groups stop

        def decide_group(indexes: list[int]) -> None:
            try:
                for index in indexes:
                    if audit_down.is_set():
                        return
                    decision = self.decider.decide(alerts[index], request)  # gate: may raise
                    made[index] = decision
                    if decision.outcome in (contract.ROLLED_BACK, contract.FAILED):
                        texts.update(self._record([decision]))
            except AuditUnavailable:
                audit_down.set()
                raise

        groups, others = by_target(alerts)
        decide_group(others)  # nothing to read in the cluster: decided here, first
        self.fanout.map(decide_group, groups)
        decisions = [made[index] for index in range(len(alerts))]
        texts.update(self._record([d for d in decisions if id(d) not in texts]))
        return decisions, [texts[id(decision)] for decision in decisions]

    def record(self, decision: Decision) -> None:
        """Record a decision made outside a payload (a resume, a revert): audit, metrics, log."""
        self._record([decision])

    def _record(self, decisions: list[Decision]) -> dict[int, str]:
        """Audit, count and log `decisions`; their JSON texts by id() of each decision."""
        if not decisions:
            return {}
        # An unsettled write is not recorded as failed: its intent stays open for the reconciler.
        recorded = [d for d in decisions if not d.unsettled]
        texts = {id(d): json.dumps(d.as_dict(), sort_keys=True) for d in decisions}
        try:
            self.audit.record_many(
                recorded, mark_pending=[d.id for d in recorded if d.mark_pending]
            )
        except AuditUnavailable:
            # A decision that changed the cluster is still counted and logged, marked
            # unrecorded: it is then in the pod's log and metrics at once, not only an open
            # intent until the reconciler records it (which neither logs nor counts). The
            # payload is answered 503 and sent again; the rest is decided again then.
            landed = [d for d in decisions if d.outcome in _LANDED and not d.unsettled]
            for decision in landed:
                self.metrics.observe(decision)
            if landed:
                self._log.error("\n".join(_line(texts[id(d)], recorded=False) for d in landed))
            raise
        for decision in decisions:
            self.metrics.observe(decision)
        # One JSON line per decision, queued in one call (one log record per batch); the line
        # is the decision's text with the event first (and "recorded": false when its write
        # is unsettled: the intent stays open for the reconciler).
        self._log.info("\n".join(_line(texts[id(d)], recorded=not d.unsettled) for d in decisions))
        return texts

    def receive(
        self,
        body: str,
        *,
        source: contract.Source = contract.Source.ALERTMANAGER,
        remote: str = "",
        actor: str = "",
    ) -> Received:
        """Store, parse (PayloadError names the field), then decide every alert."""
        try:
            document = jsontext.loads(body)
        except jsontext.JsonTextError as exc:
            # Stored all the same: what Alertmanager sent is kept even when it is not JSON.
            self.store(body, source=source, remote=remote, actor=actor)
            raise PayloadError(str(exc)) from exc
        # Stored with the first row that names it (an intent or the decisions), at the latest
        # by flush_payload below: always before the answer, one transaction fewer per payload.
        payload_id = self.store(
            body, source=source, remote=remote, actor=actor, document=document, deferred=True
        )
        try:
            payload = parse_payload(document)
            request = Request(
                source=source,
                actor=actor,
                payload_id=payload_id,
                group_key=payload.group_key,
            )
            decisions, texts = self.decide_texts(payload, request)
        except AuditUnavailable:
            # Answered 503 and sent again: waiting on the store once more would only delay that.
            self.audit.forget_payload(payload_id)
            raise
        finally:
            self.audit.flush_payload(payload_id)  # a no-op once carried (or forgotten)
        return Received(payload_id, decisions, texts)
