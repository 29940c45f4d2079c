"""A payload's alerts decided per target: one target's alerts in order, targets side by side.

A decision's latency is mostly waiting on the Kubernetes API (a rollback is five requests), so a
payload that names many Deployments, as an alert storm's first payloads do, would take the sum of
its rollbacks if decided one alert after another. Alerts are grouped by the workload they name
(namespace and the first of deployment, replicaset, pod that is set): a group is decided in
payload order, as before, and groups run side by side on a small pool of threads (greenlets under
`serve`'s gevent worker). Alerts of the same target never run at once, so a payload's duplicates
meet no contention of their own making; correctness never rests on the grouping: two groups that
turn out to name one Deployment (one alert by replicaset, one by pod) meet the gate and the
conditional write exactly as two payloads would.

Resolved alerts and payloads naming one target are decided on the caller's thread: no pool.
Which Deployments a storm rolls back first, and so which ones an open breaker stops, follows the
order the API answers in, not the payload's order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from webhook import contract
from webhook.alerts import Alert
from webhook.contract import AlertStatus

__all__ = ["MAX_PARALLEL_TARGETS", "Fanout", "by_target"]

T = TypeVar("T")

# Targets of one payload decided at once (and threads in the pool, shared by all payloads).
MAX_PARALLEL_TARGETS = 8
_WORKLOAD = (contract.LABEL_DEPLOYMENT, contract.LABEL_REPLICASET, contract.LABEL_POD)


def target_of(alert: Alert) -> tuple[str, str, str] | None:
    """The workload a firing alert names, or None when it needs no cluster read to decide."""
    if alert.status != AlertStatus.FIRING:
        return None
    labels = alert.labels
    for key in _WORKLOAD:
        value = labels.get(key)
        if value:
            return labels.get(contract.LABEL_NAMESPACE, ""), key, value
    return None


def by_target(alerts: Sequence[Alert]) -> tuple[list[list[int]], list[int]]:
    """Indexes of the firing alerts that name a target, grouped by target (each group in payload
    order, groups in the order of their first alert), and the indexes of all the others."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    others: list[int] = []
    for index, alert in enumerate(alerts):
        target = target_of(alert)
        if target is None:
            others.append(index)
        else:
            groups.setdefault(target, []).append(index)
    return list(groups.values()), others


class Fanout:
    """Runs a payload's groups side by side on a pool made on first use (none at import, none
    for a payload of one group)."""

    def __init__(self, *, workers: int = MAX_PARALLEL_TARGETS) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, work: Callable[[list[int]], T], groups: list[list[int]]) -> list[T]:
        """`work(group)` for every group, results in the order of `groups`; the first exception
        is raised once every group has finished (none is abandoned half-way)."""
        if len(groups) <= 1 or self.workers <= 1:
            return [work(group) for group in groups]
        futures = [self._executor().submit(work, group) for group in groups]
        errors = [f.exception() for f in futures]  # waits for every group
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="decide")
            return self._pool

    def close(self) -> None:
        """Stop the pool's threads (a new one is made if the fanout is used again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
