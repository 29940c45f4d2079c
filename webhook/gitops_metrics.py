"""The "GitOps owner left paused" gauge, read from the Deployments at scrape time.

The truth is the Deployment's own `auto-rollback/gitops-paused` annotation (webhook.gitops): the
rollback's write sets it with the pause, `rollback-webhook resume` removes it with the pause, and
it is exactly what `resume` acts on. The audit holds the same story as rows (a rolled_back decision
that paused, a later `resumed`), but pairing them needs a scan of every pausing decision and misses
a Deployment deleted or edited by hand; the annotation needs one Deployment LIST per namespace in
scope, made at most once per `ttl` per worker (the answer is cached), never in the gunicorn master
(describe() answers without the cluster; see webhook.stayput_metrics).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook.gitops import pause_record
from webhook.kube import KubeError, Obj

NAME = "rollback_webhook_gitops_owners_paused"
# Two Prometheus replicas and several workers scrape: one LIST per worker per half-minute at most.
TTL = timedelta(seconds=30)


class PausedOwnersCollector(Collector):
    """`rollback_webhook_gitops_owners_paused`: Deployments whose owner this service paused."""

    def __init__(
        self,
        *,
        deployments: Callable[[], list[Obj]],
        clock: Callable[[], datetime],
        ttl: timedelta = TTL,
    ) -> None:
        self._deployments, self._clock, self._ttl = deployments, clock, ttl
        self._lock = threading.Lock()
        self._cached: tuple[datetime, int] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Registration's question, answered without the cluster (serve's master asks it)."""
        yield _family(0.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        value = self._value()
        if value is not None:  # a scrape must not fail on the API: no sample instead
            yield _family(float(value))

    def _value(self) -> int | None:
        now = self._clock()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            try:
                found = self._deployments()
            except KubeError:
                return None
            count = sum(1 for d in found if paused(d))
            self._cached = (now, count)
            return count


def paused(deployment: Obj) -> bool:
    """True when the Deployment carries a pause by this service that no resume has undone."""
    return pause_record(deployment.get("metadata", {}).get("annotations") or {}) is not None


def _family(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        NAME,
        "Deployments in scope whose GitOps owner rollback-webhook paused and no resume has "
        "handed back (the Deployment's auto-rollback/gitops-paused annotation)",
        value=value,
    )
