"""The health tracker: stamps `auto-rollback/healthy-since` on revisions that proved healthy.

The stamp is the strongest rollback-target evidence (README, last healthy revision; StampEvidence).
A revision earns it while it is the current one of an opted-in Deployment:

- fully available: Progressing=True with reason NewReplicaSetAvailable, observedGeneration
  current, and availableReplicas == replicas == updatedReplicas (status.replicas too, so no old
  pod is still around) with at least one replica;
- without interruption for `min_healthy_seconds` (the Deployment's
  `auto-rollback/min-healthy-seconds` annotation wins), measured from the first round that saw
  it fully available. That start lives in memory, keyed by ReplicaSet uid and activation time:
  a restart of the service starts the clock again, never shortens it;
- with no trigger alert received for it since it became current (the audit's decisions);
- and, when Prometheus is configured, not contradicted by it over the period at stamp time
  (pods unready between two rounds, or a trigger alert that reached another replica's audit).

The stamp value is the time the healthy period started. A re-adopted revision whose stamp
predates its current activation is judged afresh and re-stamped once it proves healthy again.
Writes are merge patches carrying the ReplicaSet's resourceVersion; a 409 skips it this round.
Only the Lease leader writes (webhook.leader); followers keep observing so a takeover does not
restart every clock.

A round costs O(Deployments + audit rows) per namespace: one ReplicaSet LIST grouped by
controller uid, and one pass over the namespace's audit rows since the earliest activation
(webhook.alert_index), instead of a scan of the audit per Deployment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webhook import contract
from webhook.alert_index import AlertIndex, implicates, read_index
from webhook.audit import AuditStore
from webhook.config import Settings
from webhook.decision import Decision
from webhook.evidence import UNHEALTHY, RevisionHealthQuery
from webhook.inventory import deployments_in_scope
from webhook.kube import Cluster, Conflict, KubeError, NotFound, Obj
from webhook.leader import LeaderElector, LeaderLoop, default_identity
from webhook.optin import opt_in
from webhook.overrides import policy_for
from webhook.revisions import (
    Revision,
    activation_time,
    current_revision,
    format_k8s_time,
    revisions_of,
)
from webhook.stayput import detect_revert
from webhook.stayput_report import report_revert
from webhook.views import condition

log = logging.getLogger(__name__)

__all__ = ["HealthTracker", "Observation", "Round", "implicates", "unavailability"]

PeriodKey = tuple[str, str]  # (ReplicaSet uid, activation time RFC 3339)


def unavailability(deployment: Obj) -> str | None:
    """Why the Deployment's current revision is not fully available, or None when it is."""
    spec_replicas = deployment.get("spec", {}).get("replicas", 1)
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return f"observedGeneration {status.get('observedGeneration', 0)} < generation {generation}"
    progressing = condition(deployment, "Progressing")
    if (
        progressing is None
        or progressing.get("status") != "True"
        or progressing.get("reason") != "NewReplicaSetAvailable"
    ):
        found = (
            f"{progressing.get('status')}/{progressing.get('reason')}" if progressing else "absent"
        )
        return f"Progressing is {found}, not True/NewReplicaSetAvailable"
    if spec_replicas < 1:
        return "scaled to 0 replicas: nothing runs to prove health"
    counts = {
        "replicas": status.get("replicas", 0),
        "updatedReplicas": status.get("updatedReplicas", 0),
        "availableReplicas": status.get("availableReplicas", 0),
    }
    short = [f"{k} {v}" for k, v in counts.items() if v != spec_replicas]
    if short:
        return f"{', '.join(short)} of {spec_replicas} desired"
    return None


@dataclass(frozen=True)
class Observation:
    """What one round concluded for one Deployment."""

    namespace: str
    deployment: str
    replicaset: str
    revision: int
    # stamped | already_stamped | waiting | unavailable | alerted | prometheus_unhealthy |
    # conflict | follower
    state: str
    detail: str


@dataclass
class Round:
    """The result of one resync."""

    observations: list[Observation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def state_of(self, namespace: str, deployment: str) -> str | None:
        """The state recorded for one Deployment this round (None when not examined)."""
        for item in self.observations:
            if (item.namespace, item.deployment) == (namespace, deployment):
                return item.state
        return None


@dataclass
class _RoundCache:
    """Reads shared by the Deployments of one round."""

    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # namespace -> controller uid -> the ReplicaSets it controls (one LIST per namespace).
    replicasets: dict[str, dict[str, list[Obj]]] = field(default_factory=dict)


@dataclass
class _NamespaceAlerts:
    """The namespace's alert index, read on first use from the earliest activation on."""

    audit: AuditStore
    namespace: str
    since: datetime
    index: AlertIndex | None = None

    def alert_since(self, *, deployment: str, replicaset: str, since: datetime) -> str | None:
        if self.index is None:
            self.index = read_index(self.audit, namespace=self.namespace, since=self.since)
        return self.index.alert_since(deployment=deployment, replicaset=replicaset, since=since)


# A Deployment of the round with its current revision and that revision's activation.
_Candidate = tuple[Obj, Revision, datetime]


class HealthTracker:
    """Watches opted-in Deployments and stamps revisions that proved healthy."""

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        audit: AuditStore,
        clock: Callable[[], datetime],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        prometheus: RevisionHealthQuery | None = None,
        record: Callable[[Decision], None] | None = None,
    ) -> None:
        self.cluster = cluster
        # Where the stay-put watch's records go (the service adds its metrics); the audit alone
        # by default.
        self.record = record or audit.record
        self.prometheus = prometheus
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self.is_leader = is_leader
        # When each (ReplicaSet uid, activation) was first seen fully available, untouched by
        # any alert. Only the resync thread touches it.
        self._healthy_from: dict[PeriodKey, datetime] = {}

    # -- the round -------------------------------------------------------------------------------
    def resync_once(self) -> Round:
        """List the opted-in Deployments and stamp every current revision that earned it."""
        result = Round()
        seen: set[PeriodKey] = set()
        cache = _RoundCache()
        namespaces: dict[str, list[Obj]] = {}
        for deployment in self._deployments(result):
            namespaces.setdefault(deployment["metadata"]["namespace"], []).append(deployment)
        for namespace, deployments in namespaces.items():
            candidates = [
                candidate
                for deployment in deployments
                if (candidate := self._candidate(deployment, cache, result)) is not None
            ]
            if not candidates:
                continue
            alerts = _NamespaceAlerts(
                self.audit, namespace, since=min(activated for _, _, activated in candidates)
            )
            for deployment, current, activated in candidates:
                try:
                    observation = self._examine(deployment, current, activated, seen, alerts)
                except KubeError as exc:
                    self._failed(deployment, exc, result)
                    continue
                result.observations.append(observation)
        # Periods no longer observed (rolled forward, deleted, opted out) are forgotten; after
        # an API error the unseen ones may just be unreadable, so a blip restarts no clock.
        if not result.errors:
            for key in set(self._healthy_from) - seen:
                del self._healthy_from[key]
        return result

    @staticmethod
    def _failed(deployment: Obj, exc: KubeError, result: Round) -> None:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        result.errors.append(f"{namespace}/{name}: {exc}")
        log.warning("health tracker: %s/%s: %s", namespace, name, exc)

    def _candidate(self, deployment: Obj, cache: _RoundCache, result: Round) -> _Candidate | None:
        """The opted-in Deployment with its current revision and activation, or None."""
        try:
            if not self._opted_in(deployment, cache):
                return None
            current = self._current(deployment, cache)
            if current is None:
                return None
            self._stay_put(deployment, current)
        except KubeError as exc:
            self._failed(deployment, exc, result)
            return None
        # Stamps have whole seconds: compare like with like, or a stamp would never count.
        return deployment, current, activation_time(current, deployment).replace(microsecond=0)

    def _current(self, deployment: Obj, cache: _RoundCache) -> Revision | None:
        namespace = deployment["metadata"]["namespace"]
        if namespace not in cache.replicasets:
            # One LIST per namespace, not per Deployment, grouped by controller uid so each
            # Deployment reads only its own; revisions_of still keeps only the ReplicaSets
            # this Deployment controls, as kubectl does.
            grouped: dict[str, list[Obj]] = {}
            for rs in self.cluster.list_replicasets(namespace, label_selector=""):
                for ref in rs["metadata"].get("ownerReferences") or []:
                    if ref.get("controller"):
                        grouped.setdefault(str(ref.get("uid")), []).append(rs)
                        break
            cache.replicasets[namespace] = grouped
        owned = cache.replicasets[namespace].get(str(deployment["metadata"].get("uid")), [])
        return current_revision(deployment, revisions_of(deployment, owned))

    def _deployments(self, result: Round) -> list[Obj]:
        def failed(scope: str, exc: KubeError) -> None:
            result.errors.append(f"list deployments in {scope}: {exc}")
            log.warning("health tracker: cannot list deployments: %s", exc)

        return deployments_in_scope(self.cluster, self.settings.namespaces, on_error=failed)

    def _opted_in(self, deployment: Obj, cache: _RoundCache) -> bool:
        namespace = deployment["metadata"]["namespace"]

        def namespace_label() -> str | None:
            if namespace not in cache.namespace_labels:
                try:
                    ns = self.cluster.get_namespace(namespace)
                    cache.namespace_labels[namespace] = dict(ns["metadata"].get("labels") or {})
                except NotFound:
                    cache.namespace_labels[namespace] = {}
            return cache.namespace_labels[namespace].get(contract.ANNOTATION_ENABLED)

        acts, _ = opt_in(
            deployment["metadata"].get("annotations") or {},
            namespace_label,
            namespace=namespace,
            require_opt_in=self.settings.require_opt_in,
        )
        return acts

    def _examine(
        self,
        deployment: Obj,
        current: Revision,
        activated: datetime,
        seen: set[PeriodKey],
        alerts: _NamespaceAlerts,
    ) -> Observation:
        meta = deployment["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (current.uid, activated.isoformat())

        def observe(state: str, detail: str) -> Observation:
            return Observation(namespace, name, current.name, current.number, state, detail)

        stamped = current.healthy_since
        if stamped is not None and stamped >= activated:
            return observe("already_stamped", f"healthy since {format_k8s_time(stamped)}")
        problem = unavailability(deployment)
        if problem is not None:
            return observe("unavailable", problem)
        marked = current.alerted_at
        if marked is not None and marked >= activated:
            return observe(
                "alerted",
                f"{contract.ANNOTATION_ALERTED_AT} {format_k8s_time(marked)}: a trigger alert "
                "reached a replica since it became current",
            )
        alerted = alerts.alert_since(deployment=name, replicaset=current.name, since=activated)
        if alerted is not None:
            return observe("alerted", f"trigger alert for it since it became current ({alerted})")
        now = self.clock()
        seen.add(key)
        started = self._healthy_from.setdefault(key, now)
        needed = timedelta(seconds=policy_for(self.settings, deployment).min_healthy_seconds)
        if now - started < needed:
            left = int((needed - (now - started)).total_seconds())
            return observe("waiting", f"fully available since {started.isoformat()}, {left}s to go")
        if not self.is_leader():
            return observe("follower", "healthy long enough; the leader stamps it")
        doubt = self._prometheus_doubt(deployment, current, start=started, end=now)
        if doubt is not None:
            # Between two rounds pods may have flapped, or an alert may have reached another
            # replica's audit: Prometheus saw it. The period is broken; start again.
            del self._healthy_from[key]
            return observe("prometheus_unhealthy", doubt)
        return self._stamp(current, since=max(started, activated), observe=observe)

    def _stay_put(self, deployment: Obj, current: Revision) -> None:
        """The stay-put watch (webhook.stayput): a revert to a bad-marked revision, once, by the
        leader. Pure until there is one to report; then a mark, an Event and a record."""
        if not self.is_leader():
            return
        revert = detect_revert(deployment, current, settings=self.settings.gitops)
        if revert is not None and self._unchanged(deployment):
            report_revert(
                self.cluster, revert, deployment=deployment, clock=self.clock, record=self.record
            )

    def _unchanged(self, deployment: Obj) -> bool:
        """Whether the Deployment is still as listed. The round lists Deployments first and
        ReplicaSets after: a rollback landing in between (its PUT, then the bad mark on the
        revision it left) pairs the old template with the new mark and looks like a revert.
        A revert is only reported when a fresh read shows the spec unmoved (Cluster.unmoved);
        else the next round judges it."""
        return self.cluster.unmoved(deployment)

    def _stamp(
        self, current: Revision, *, since: datetime, observe: Callable[[str, str], Observation]
    ) -> Observation:
        namespace = current.replicaset["metadata"]["namespace"]
        value = format_k8s_time(since)
        try:
            self.cluster.annotate_replicaset(
                namespace,
                current.name,
                {contract.ANNOTATION_HEALTHY_SINCE: value},
                resource_version=current.resource_version,
            )
        except Conflict:
            return observe("conflict", "ReplicaSet changed since read (409): next round decides")
        log.info(
            "health tracker: stamped %s/%s (revision %d) %s=%s",
            namespace,
            current.name,
            current.number,
            contract.ANNOTATION_HEALTHY_SINCE,
            value,
        )
        return observe("stamped", f"healthy since {value}")

    def _prometheus_doubt(
        self, deployment: Obj, current: Revision, *, start: datetime, end: datetime
    ) -> str | None:
        """Prometheus' detail when it says the revision was not healthy over [start, end]."""
        if self.prometheus is None or (end - start).total_seconds() < 1:
            return None
        evidence = self.prometheus.revision_health(
            namespace=deployment["metadata"]["namespace"],
            deployment=deployment["metadata"]["name"],
            replicaset=current.name,
            start=start,
            end=end,
        )
        # Only a definite "unhealthy" blocks: Prometheus down or without data proves nothing.
        if str(evidence.verdict) == UNHEALTHY:
            return str(evidence.detail)
        return None


def start_for_service(service: Any) -> list[Callable[[], None]]:
    """Start the tracker for a Service when `tracker.enabled`; returns the stop callables.

    The tracker gets its own Kubernetes and Prometheus connection pools: `serve` forks its
    gunicorn workers after this returns, and pooled sockets shared across a fork mix answers.
    """
    settings: Settings = service.settings
    if not settings.tracker.enabled:
        return []
    cluster: Cluster = service.cluster.with_own_pool()
    elector = LeaderElector(
        cluster=cluster,
        namespace=settings.tracker.lease_namespace,
        name=settings.tracker.lease_name,
        identity=default_identity(),
        lease_duration_seconds=int(settings.tracker.lease_duration_seconds),
        clock=service.clock,
    )
    tracker = HealthTracker(
        cluster,
        settings,
        service.audit,
        service.clock,
        is_leader=elector.is_leader,
        prometheus=_own_prometheus(service),
        record=service.record,
    )
    loop = LeaderLoop(
        elector=elector,
        task=tracker.resync_once,
        task_name="health-tracker",
        interval_seconds=float(settings.tracker.resync_seconds),
    )
    loop.start()
    log.info(
        "health tracker started as %s (Lease %s, resync every %ss)",
        elector.identity,
        elector.what,
        settings.tracker.resync_seconds,
    )
    return [loop.stop]


def _own_prometheus(service: Any) -> Any | None:
    settings: Settings = service.settings
    if not settings.prometheus.url:
        # None, or an evidence object a caller injected (no URL: nothing of ours to rebuild).
        return getattr(service, "prometheus", None)
    from webhook import prom

    return prom.from_settings(settings.prometheus, clock=service.clock)
