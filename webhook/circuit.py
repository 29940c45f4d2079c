"""Rollbacks made by ANY replica, as the Deployments' last-action annotations tell them.

The breaker's exact count is the shared audit store's (PostgreSQL) or the circuit ledger's
(webhook.ledger, replicas with a SQLite file each); this view is a lower bound beside them, for
replicas that run with the ledger off, and for the console's count of the window.

Each replica's audit knows only its own rollbacks. Every rollback also leaves
`auto-rollback/last-action` (with its time) on the Deployment it rolled back, so a periodic
LIST of Deployments tells every replica what all of them did. The refresh runs in a background
thread of the serving process (started by `serve` in each worker), never on the decision path,
so a rollback still costs five requests; the price is up to `refresh_seconds` of staleness,
during which the in-process and audit counts still hold.

Within one circuit window a Deployment rolls back at most once while `cooldown` >= the window
(both default to one hour), so one last-action per Deployment counts them all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

from webhook import contract
from webhook.config import Settings
from webhook.inventory import deployments_in_scope
from webhook.kube import Cluster, KubeError
from webhook.revisions import last_action_time

log = logging.getLogger(__name__)


class ClusterRollbacks:
    """The times of the latest rollback of every Deployment in scope, as last read."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        settings: Settings,
        clock: Callable[[], datetime],
        refresh_seconds: float = 15.0,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._times: list[datetime] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """LIST the Deployments in scope and keep their last-action times (KubeError: keep the
        previous snapshot)."""
        deployments = deployments_in_scope(self.cluster, self.settings.namespaces)
        times = [t for t in map(last_action_time, deployments) if t is not None]
        with self._lock:
            self._times = times

    def count_since(self, since: datetime) -> int:
        """Rollbacks (by any replica) at or after `since`, as of the last refresh."""
        with self._lock:
            return sum(1 for when in self._times if when >= since)

    def start(self) -> None:
        """Refresh now and then every `refresh_seconds` in a daemon thread of this process."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"circuit-view-{os.getpid()}", daemon=True
        )
        self._thread.start()
        log.info(
            "circuit breaker: reading every replica's rollbacks (%s) every %ss in worker pid %d",
            contract.ANNOTATION_LAST_ACTION,
            self.refresh_seconds,
            os.getpid(),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except KubeError as exc:
                log.warning(
                    "circuit breaker: cannot read %s annotations: %s",
                    contract.ANNOTATION_LAST_ACTION,
                    exc,
                )
            self._stop.wait(self.refresh_seconds)
