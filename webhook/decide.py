"""Alert -> decision: the policy the README's decision table states.

`Decider.decide` reads the cluster through `kube.Cluster`, asks the audit for duplicates and the
circuit breaker, and returns exactly one Decision per alert. Every write is conditional on the
resourceVersion this decision read; a 409 means the world changed, so the whole decision is taken
again from a fresh read (bounded), never retried blindly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from webhook import contract
from webhook.contract import AlertStatus, Confirmation, FailReason, SkipReason, Source
from webhook.alerts import Alert
from webhook.audit import AuditStore
from webhook.circuit import ClusterRollbacks
from webhook.config import ConfigError, Settings, parse_duration
from webhook.decision import Decision, new_id
from webhook.evidence import EvidenceSource, choose_target
from webhook.kube import Cluster, Conflict, Forbidden, KubeError, NotFound, Obj, Transient
from webhook.optin import opt_in
from webhook.revisions import (
    Revision,
    activation_time,
    controller_of,
    current_revision,
    format_k8s_time,
    last_action,
    last_action_time,
    revisions_of,
)
from webhook.rollback import Rollback
from webhook.scope import namespace_refusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Overrides:
    """What an on-call replay may waive. Nothing else is ever overridable."""

    ignore_recent_window: bool = False
    ignore_cooldown: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class Request:
    """Who asks for the decisions of one payload, and how."""

    source: str = Source.ALERTMANAGER
    actor: str = ""
    payload_id: str | None = None
    group_key: str = ""
    dry_run: bool | None = None  # None: the configured dry_run
    overrides: Overrides = field(default_factory=Overrides)
    replay_of: str | None = None
    note: str = ""  # prefixed to every decision's detail (a replay's actor and reason)


@dataclass(frozen=True)
class ConfirmResult:
    verdict: str  # confirmed | not_confirmed | unknown
    detail: str


Confirmer = Callable[[Alert], ConfirmResult]


class _Done(Exception):
    """Internal: the decision is complete (outcome already set on the Decision)."""


class _Retry(Exception):
    """Internal: a conditional write met a 409; decide again from a fresh read."""


class _ControllerLag(_Retry):
    """Internal: the Deployment controller has not caught up with a template change yet
    (observedGeneration < generation); decide again after a pause, not back to back."""


# Pauses before the re-decisions that follow controller lag (bounded by max_conflict_retries).
LAG_BACKOFF_SECONDS = (0.2, 0.4, 0.8, 1.6)


def label_selector(deployment: Obj) -> str:
    """The Deployment's spec.selector as a label selector string (how kubectl lists RSs)."""
    selector = deployment.get("spec", {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


@dataclass(frozen=True)
class Policy:
    """The settings as they apply to one Deployment (annotation overrides included)."""

    min_healthy_seconds: int
    recent_rollout_window: int
    cooldown: int
    notes: tuple[str, ...] = ()


def policy_for(settings: Settings, deployment: Obj) -> Policy:
    """Settings with the Deployment's `auto-rollback/*` overrides; bad values ignored, noted."""
    annotations = deployment["metadata"].get("annotations") or {}
    values = {
        "min_healthy_seconds": int(settings.min_healthy_seconds),
        "recent_rollout_window": int(settings.recent_rollout_window),
        "cooldown": int(settings.cooldown),
    }
    keys = {
        "min_healthy_seconds": contract.ANNOTATION_MIN_HEALTHY_SECONDS,
        "recent_rollout_window": contract.ANNOTATION_RECENT_ROLLOUT_WINDOW,
        "cooldown": contract.ANNOTATION_COOLDOWN,
    }
    notes = []
    for name, key in keys.items():
        if key in annotations:
            try:
                values[name] = parse_duration(annotations[key], key=key)
            except ConfigError as exc:
                notes.append(f"ignored {exc}")
    return Policy(**values, notes=tuple(notes))


class Decider:
    """Turns alerts into decisions against one cluster."""

    def __init__(
        self,
        *,
        settings: Settings,
        cluster: Cluster,
        audit: AuditStore,
        evidence: Sequence[EvidenceSource],
        clock: Callable[[], datetime],
        confirmer: Confirmer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.cluster = cluster
        self.audit = audit
        self.evidence = tuple(evidence)
        self.clock = clock
        self.confirmer = confirmer
        self.rollback = Rollback(cluster=cluster, clock=clock)
        self.cluster_rollbacks = ClusterRollbacks(cluster=cluster, settings=settings, clock=clock)
        # Serialises the circuit-breaker count, duplicate claims and the write in this process.
        self._gate = threading.Lock()
        # Decided in this process but perhaps not yet in the audit (recorded after deciding):
        # acted-on times for the circuit breaker, dry-run claims for duplicates. Pruned by age.
        self._acted: list[tuple[datetime, str]] = []
        self._claimed: dict[tuple[str, str, str], tuple[datetime, str]] = {}

    # -- entry point -----------------------------------------------------------------------
    def decide(self, alert: Alert, request: Request) -> Decision:
        """Exactly one Decision for `alert`; cluster trouble is an outcome, never raised."""
        started = time.monotonic()
        now = self.clock()
        labels = alert.labels
        decision = Decision(
            id=new_id(now),
            time=now,
            source=request.source,
            outcome=contract.SKIPPED,
            actor=request.actor,
            payload_id=request.payload_id,
            group_key=request.group_key,
            fingerprint=alert.fingerprint,
            alertname=alert.alertname,
            trigger=labels.get(contract.LABEL_TRIGGER, ""),
            labels=dict(labels),
            starts_at=alert.starts_at,
            namespace=labels.get(contract.LABEL_NAMESPACE, ""),
            deployment=labels.get(contract.LABEL_DEPLOYMENT, ""),
            dry_run=self.settings.dry_run if request.dry_run is None else request.dry_run,
            overrides=request.overrides.as_dict(),
            replay_of=request.replay_of,
        )
        try:
            self._decide(alert, request, decision)
        except _Done:
            pass
        except Transient as exc:
            reason = FailReason.TIMEOUT if exc.timeout else FailReason.API_ERROR
            self._fail(decision, reason, str(exc), transient=True)
        except Forbidden as exc:
            self._fail(decision, FailReason.FORBIDDEN, str(exc))
        except KubeError as exc:
            self._fail(decision, FailReason.API_ERROR, str(exc))
        if decision.outcome != contract.ROLLED_BACK and not decision.dry_run:
            self.rollback.mark_alerted(decision)
        decision.duration_ms = round((time.monotonic() - started) * 1000, 3)
        self.rollback.announce(decision)
        return decision

    # -- the policy --------------------------------------------------------------------------
    @staticmethod
    def _set(decision: Decision, outcome: str, reason: str | None, detail: str) -> NoReturn:
        if decision.notes:
            detail += "; " + "; ".join(decision.notes)
        decision.outcome, decision.reason, decision.detail = outcome, reason, detail
        raise _Done

    def _skip(self, decision: Decision, reason: str, detail: str) -> NoReturn:
        self._set(decision, contract.SKIPPED, reason, detail)

    @staticmethod
    def _fail(decision: Decision, reason: str, detail: str, *, transient: bool = False) -> None:
        decision.outcome, decision.reason, decision.detail = contract.FAILED, reason, detail
        decision.transient = transient

    def _decide(self, alert: Alert, request: Request, decision: Decision) -> None:
        labels = alert.labels
        if alert.status != AlertStatus.FIRING:
            self._skip(decision, SkipReason.RESOLVED, "alert is resolved")
        trigger = labels.get(contract.LABEL_TRIGGER)
        if not trigger:
            self._skip(decision, SkipReason.MISSING_LABELS, f"label {contract.LABEL_TRIGGER} is missing")
        if trigger not in contract.TRIGGERS:
            known = ", ".join(contract.TRIGGERS)
            self._skip(decision, SkipReason.UNKNOWN_TRIGGER, f"{trigger!r} is not one of {known}")
        namespace = labels.get(contract.LABEL_NAMESPACE, "")
        if not namespace:
            self._skip(decision, SkipReason.MISSING_LABELS, "label namespace is missing")
        workload = (contract.LABEL_DEPLOYMENT, contract.LABEL_REPLICASET, contract.LABEL_POD)
        if not any(labels.get(k) for k in workload):
            self._skip(decision, SkipReason.MISSING_LABELS, "none of deployment, replicaset, pod is set")
        refusal = namespace_refusal(namespace, self.settings.namespaces)
        if refusal:
            self._skip(decision, SkipReason.NAMESPACE_DENIED, refusal)
        deployment_name, replicaset_name = self._resolve(namespace, labels, decision)
        decision.deployment = deployment_name
        lagged = 0
        retries = self.settings.max_conflict_retries
        for attempt in range(retries + 1):
            try:
                # The last attempt decides on what it reads, controller caught up or not.
                self._attempt(alert, request, decision, replicaset_name, patient=attempt < retries)
            except _ControllerLag:
                pause = LAG_BACKOFF_SECONDS[min(lagged, len(LAG_BACKOFF_SECONDS) - 1)]
                lagged += 1
                log.info(
                    "%s/%s: controller has not caught up: deciding again in %ss",
                    namespace,
                    deployment_name,
                    pause,
                )
                self.sleep(pause)
                continue
            except _Retry:
                log.info("conflict on %s/%s: deciding again", namespace, deployment_name)
                continue
        lag_note = f" ({lagged} found the controller behind the Deployment)" if lagged else ""
        self._fail(
            decision,
            FailReason.CONFLICT,
            f"Deployment kept changing: {self.settings.max_conflict_retries + 1} attempts met a "
            f"409 Conflict or a newer revision than the Deployment read{lag_note}",
        )

    def _resolve(
        self, namespace: str, labels: dict[str, str], decision: Decision
    ) -> tuple[str, str | None]:
        """(deployment, implicated ReplicaSet or None) through ownerReferences when needed."""
        deployment = labels.get(contract.LABEL_DEPLOYMENT) or ""
        replicaset = labels.get(contract.LABEL_REPLICASET) or None
        pod_name = labels.get(contract.LABEL_POD)
        if not replicaset and pod_name:
            try:
                pod = self.cluster.get_pod(namespace, pod_name)
            except NotFound:
                self._skip(
                    decision, SkipReason.DEPLOYMENT_NOT_FOUND, f"pod {namespace}/{pod_name} not found"
                )
            owner = controller_of(pod)
            if not owner or owner.get("kind") != "ReplicaSet":
                self._skip(
                    decision,
                    SkipReason.DEPLOYMENT_NOT_FOUND,
                    f"pod {namespace}/{pod_name} is not controlled by a ReplicaSet",
                )
            replicaset = str(owner["name"])
        if not deployment and replicaset:
            try:
                rs = self.cluster.get_replicaset(namespace, replicaset)
            except NotFound:
                self._skip(
                    decision,
                    SkipReason.DEPLOYMENT_NOT_FOUND,
                    f"ReplicaSet {namespace}/{replicaset} not found",
                )
            owner = controller_of(rs)
            if not owner or owner.get("kind") != "Deployment":
                self._skip(
                    decision,
                    SkipReason.DEPLOYMENT_NOT_FOUND,
                    f"ReplicaSet {namespace}/{replicaset} is not controlled by a Deployment",
                )
            deployment = str(owner["name"])
        return deployment, replicaset

    def _opted_in(self, deployment: Obj, decision: Decision) -> None:
        namespace = deployment["metadata"]["namespace"]

        def namespace_label() -> str | None:
            ns = self.cluster.get_namespace(namespace)
            label: str | None = (ns["metadata"].get("labels") or {}).get(
                contract.ANNOTATION_ENABLED
            )
            return label

        acts, why = opt_in(
            deployment["metadata"].get("annotations") or {},
            namespace_label,
            namespace=namespace,
            require_opt_in=self.settings.require_opt_in,
        )
        if not acts:
            self._skip(decision, SkipReason.NOT_OPTED_IN, why)

    def _attempt(
        self,
        alert: Alert,
        request: Request,
        decision: Decision,
        replicaset: str | None,
        *,
        patient: bool = False,
    ) -> None:
        namespace, name = decision.namespace, decision.deployment
        try:
            deployment = self.cluster.get_deployment(namespace, name)
        except NotFound:
            self._skip(decision, SkipReason.DEPLOYMENT_NOT_FOUND, f"Deployment {namespace}/{name} not found")
        decision.involved = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                k: deployment["metadata"].get(k)
                for k in ("name", "namespace", "uid", "resourceVersion")
            },
        }
        self._opted_in(deployment, decision)
        if deployment.get("spec", {}).get("paused"):
            self._skip(decision, SkipReason.PAUSED, "the Deployment is paused")
        replicasets = self.cluster.list_replicasets(
            namespace, label_selector=label_selector(deployment)
        )
        revisions = revisions_of(deployment, replicasets)
        current = current_revision(deployment, revisions)
        status = deployment.get("status") or {}
        lagging = patient and int(status.get("observedGeneration") or 0) < int(
            deployment["metadata"].get("generation") or 0
        )
        if current is None:
            if lagging:
                raise _ControllerLag
            self._skip(
                decision,
                SkipReason.NOT_CURRENT_REVISION,
                "no ReplicaSet runs the Deployment's template yet (rollout not started)",
            )
        if current.number < max(r.number for r in revisions):
            # New and re-adopted ReplicaSets always get max+1, so the current revision is the
            # newest one. Otherwise the Deployment we read is older than the ReplicaSets we
            # listed (someone rolled it meanwhile): decide again from a fresh read. Or the
            # controller has not re-numbered a re-adopted ReplicaSet yet: wait for it.
            raise _ControllerLag if lagging else _Retry
        decision.from_revision, decision.from_replicaset = current.number, current.name
        implicated = self._implicated(revisions, current, replicaset, decision)
        policy = policy_for(self.settings, deployment)
        decision.notes[:] = policy.notes  # (re)set on every attempt
        self._check_timing(alert, request, decision, deployment, implicated, policy)
        choice = choose_target(
            deployment=deployment,
            current=current,
            revisions=revisions,
            sources=self.evidence,
            min_healthy_seconds=policy.min_healthy_seconds,
        )
        if choice.target is None:
            self.rollback.no_target(deployment, decision, choice)
            self._skip(
                decision,
                SkipReason.NO_HEALTHY_REVISION,
                f"no older revision has health evidence: {choice.explain() or 'none older'}",
            )
        target = choice.target
        decision.to_revision, decision.to_replicaset = target.number, target.name
        if self.confirmer is not None:
            confirmed = self.confirmer(alert)
            if confirmed.verdict == Confirmation.NOT_CONFIRMED:
                self._skip(decision, SkipReason.NOT_CONFIRMED, confirmed.detail)
            if confirmed.verdict == Confirmation.UNKNOWN:
                decision.notes.append(
                    f"not confirmed by Prometheus ({confirmed.detail}); acting on the alert"
                )
        self._act(request, decision, deployment, current, target, choice.explain())

    def _implicated(
        self,
        revisions: list[Revision],
        current: Revision,
        replicaset: str | None,
        decision: Decision,
    ) -> Revision:
        if replicaset is None:
            return current
        found = next((r for r in revisions if r.name == replicaset), None)
        if found is None:
            self._skip(
                decision,
                SkipReason.NOT_CURRENT_REVISION,
                f"ReplicaSet {replicaset} is not (or no longer) a revision of this Deployment",
            )
        if found.name != current.name:
            marked = " (marked bad: already rolled back from)" if found.bad_mark else ""
            self._skip(
                decision,
                SkipReason.NOT_CURRENT_REVISION,
                f"alert implicates revision {found.number} ({found.name}){marked}; "
                f"current is revision {current.number} ({current.name})",
            )
        return found

    def _check_timing(
        self,
        alert: Alert,
        request: Request,
        decision: Decision,
        deployment: Obj,
        implicated: Revision,
        policy: Policy,
    ) -> None:
        action = last_action(deployment)
        activated = activation_time(implicated, deployment)
        known = implicated.alerted_at
        if alert.starts_at >= activated and (known is None or known < activated):
            # Whatever is decided next, this revision alerted while current: say so on it,
            # where every replica's health tracker sees it (the audit is per replica).
            decision.alerted_mark = (
                decision.namespace,
                implicated.name,
                format_k8s_time(alert.starts_at),
            )
        if action and action.get("to_replicaset") == implicated.name:
            self._skip(
                decision,
                SkipReason.ROLLBACK_OF_ROLLBACK,
                f"revision {implicated.number} ({implicated.name}) is the one this service rolled "
                f"back to (audit {action.get('audit_id', '?')}); never auto-rolled-back again",
            )
        if alert.starts_at < activated:
            self._skip(
                decision,
                SkipReason.ALERT_PREDATES_ROLLOUT,
                f"alert started {alert.starts_at.isoformat()}, before revision "
                f"{implicated.number} became current at {activated.isoformat()}",
            )
        window = timedelta(seconds=policy.recent_rollout_window)
        if alert.starts_at - activated > window and not request.overrides.ignore_recent_window:
            self._skip(
                decision,
                SkipReason.NO_RECENT_ROLLOUT,
                f"revision {implicated.number} became current at {activated.isoformat()}, more "
                f"than {policy.recent_rollout_window}s before the alert started",
            )
        if action and not request.overrides.ignore_cooldown:
            acted = last_action_time(deployment)
            if acted and self.clock() - acted < timedelta(seconds=policy.cooldown):
                self._skip(
                    decision,
                    SkipReason.COOLDOWN,
                    f"last rollback at {acted.isoformat()} is within the "
                    f"{policy.cooldown}s cooldown",
                )

    def _act(
        self,
        request: Request,
        decision: Decision,
        deployment: Obj,
        current: Revision,
        target: Revision,
        why: str,
    ) -> None:
        now = self.clock()
        summary = (
            f"revision {current.number} ({current.name}) -> revision {target.number} "
            f"({target.name}); {why}"
        )
        key = (decision.namespace, decision.deployment, current.name)
        with self._gate:
            window_start = now - timedelta(seconds=int(self.settings.circuit_window))
            # A dry run previews the breaker too: its would-be rollbacks count like real ones.
            counted = [contract.ROLLED_BACK]
            if decision.dry_run and request.source == Source.ALERTMANAGER:
                counted.append(contract.DRY_RUN)
            self._acted = [(t, o) for t, o in self._acted if t >= window_start]
            recorded = self.audit.count_outcomes_since(counted, window_start)
            in_memory = sum(1 for _, outcome in self._acted if outcome in counted)
            # Other replicas' rollbacks, from the cluster's last-action annotations.
            elsewhere = self.cluster_rollbacks.count_since(window_start)
            done = max(recorded, in_memory, elsewhere)
            if done >= self.settings.max_rollbacks:
                self._skip(
                    decision,
                    SkipReason.CIRCUIT_OPEN,
                    f"{done} rollbacks in the last {int(self.settings.circuit_window)}s "
                    f"(max_rollbacks {self.settings.max_rollbacks}): a mass incident is not fixed "
                    "by mass rollback",
                )
            if decision.dry_run:
                if request.source == Source.ALERTMANAGER:
                    since = now - timedelta(seconds=int(self.settings.cooldown))
                    self._claimed = {k: v for k, v in self._claimed.items() if v[0] >= since}
                    claimed = self._claimed.get(key)
                    earlier = claimed[1] if claimed else None
                    earlier = earlier or self.audit.find_previous(
                        namespace=key[0],
                        deployment=key[1],
                        from_replicaset=key[2],
                        outcomes=(contract.DRY_RUN,),
                        source=Source.ALERTMANAGER,
                        since=since,
                    )
                    if earlier:
                        self._skip(decision, SkipReason.DUPLICATE, f"already decided dry_run in {earlier}")
                    self._claimed[key] = (now, decision.id)
                    self._acted.append((now, contract.DRY_RUN))
                self._set(decision, contract.DRY_RUN, None, "would roll back " + summary)
            try:
                self.rollback.write(deployment, current=current, target=target, decision=decision)
            except Conflict as exc:
                raise _Retry from exc
            self._acted.append((now, contract.ROLLED_BACK))
        mark_note = self.rollback.mark_bad(deployment, current=current, decision=decision)
        self._set(decision, contract.ROLLED_BACK, None, "rolled back " + summary + mark_note)
