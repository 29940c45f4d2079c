"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Only the leader writes health stamps, so several replicas of the service never race on them.
The record lives in the Lease spec: `holderIdentity`, `leaseDurationSeconds`, `acquireTime`,
`renewTime`, `leaseTransitions` (client-go tools/leaderelection, LeaseLock).

- A candidate acquires the Lease when it is absent, has no holder, or has expired
  (`renewTime + leaseDurationSeconds < now`).
- The leader renews it every `retry_period` (a third of the duration, client-go's 2s of 15s
  is gentler; a third keeps the arithmetic obvious).
- Every write is conditional: create answers 409 when another candidate created it first, a PUT
  carries the resourceVersion that was read and answers 409 when anyone wrote in between.
  409 means someone else won this round; it is never retried blindly.
- A leader that has not renewed within `renew_deadline` (two thirds of the duration) stops
  calling itself leader, before any other candidate may consider the Lease expired, so two
  leaders never act at once as long as the replicas' clocks agree within that margin.
- `release()` (on stop) empties holderIdentity, so a follower takes over at its next attempt
  instead of waiting for expiry (client-go ReleaseOnCancel).

`LeaderLoop` runs the rounds and one periodic task (the health tracker's resync) on daemon
threads; `stop()` ends them and releases the Lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.kube import Cluster, Conflict, KubeError, NotFound, Obj
from webhook.revisions import parse_k8s_time

log = logging.getLogger(__name__)

# metav1.MicroTime's wire format (RFC 3339 with microseconds), as client-go writes it.
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_micro_time(when: datetime) -> str:
    """A Lease time field: RFC 3339 in UTC with microseconds."""
    return when.astimezone(UTC).strftime(MICRO_TIME)


def parse_lease_time(text: Any) -> datetime | None:
    """A Lease time field (MicroTime, or a plain RFC 3339 time), or None when absent/unreadable."""
    return parse_k8s_time(text) if isinstance(text, str) else None


def default_identity() -> str:
    """The pod name (HOSTNAME) plus a random suffix, so a restarted pod is a new candidate."""
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "rollback-webhook"
    return f"{host}_{secrets.token_hex(4)}"


class LeaderElector:
    """One candidate for one Lease. `try_acquire_or_renew()` is one round; `is_leader()` is
    what the tracker asks before each write. Thread-safe: a loop thread runs the rounds while
    another thread asks `is_leader()`."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        if lease_duration_seconds <= 0:
            raise ValueError(
                f"lease_duration_seconds must be greater than 0, got {lease_duration_seconds}"
            )
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = timedelta(seconds=lease_duration_seconds)
        self.renew_deadline = self.lease_duration * 2 / 3
        self.clock = clock
        self._lock = threading.Lock()
        self._renewed_at: datetime | None = None  # our last successful write as holder
        self._lease: Obj | None = None  # the Lease as our last successful write left it
        self._observed_holder = ""
        self._trouble = ""  # the last round's failure, logged once until it changes
        # A record renewed ahead of our clock, and when we first saw it (see _expired).
        self._ahead: tuple[str, str] | None = None
        self._ahead_seen = datetime.min.replace(tzinfo=UTC)

    # -- state ---------------------------------------------------------------------------------
    @property
    def what(self) -> str:
        """namespace/name of the Lease, for messages."""
        return f"{self.namespace}/{self.name}"

    @property
    def retry_period_seconds(self) -> float:
        """How often a round should run: a third of the lease duration."""
        return self.lease_duration.total_seconds() / 3

    @property
    def observed_holder(self) -> str:
        """The holderIdentity seen in the last round ("" when none)."""
        with self._lock:
            return self._observed_holder

    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it within the renew deadline."""
        with self._lock:
            if self._renewed_at is None:
                return False
            return self.clock() < self._renewed_at + self.renew_deadline

    def _failed(self, message: str) -> bool:
        """A round that could not reach a verdict: logged when the reason is new (the rounds
        repeat every retry period; the same line every few seconds buries the log)."""
        with self._lock:
            repeated, self._trouble = message == self._trouble, message
        if not repeated:
            log.warning(
                "%s: %s (retrying every %gs)", self.identity, message, self.retry_period_seconds
            )
        return False

    def _won(self, lease: Obj, now: datetime) -> bool:
        with self._lock:
            self._trouble = ""
            if self._renewed_at is None:
                log.info("%s: became leader of Lease %s", self.identity, self.what)
            self._renewed_at = now
            self._lease = lease
            self._observed_holder = self.identity
        return True

    def _lost(self, holder: str) -> bool:
        with self._lock:
            self._trouble = ""
            if self._renewed_at is not None:
                log.warning(
                    "%s: no longer leader of Lease %s (holder now %r)",
                    self.identity,
                    self.what,
                    holder,
                )
            self._renewed_at = None
            self._lease = None
            self._observed_holder = holder
        return False

    # -- one round -----------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """Acquire the Lease when free or expired, renew it when ours; True when we hold it.

        API trouble (5xx, timeouts) is not a loss: we keep leadership until the renew deadline
        runs out (is_leader), as client-go does, and the next round tries again.
        """
        now = self.clock()
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
        except NotFound:
            return self._create(now)
        except KubeError as exc:
            return self._failed(f"cannot read Lease {self.what}: {exc}")
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != self.identity and not self._expired(spec, now):
            return self._lost(holder)
        ours = holder == self.identity
        old_transitions = int(spec.get("leaseTransitions") or 0)
        lease["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration.total_seconds()),
            "acquireTime": spec.get("acquireTime") if ours else format_micro_time(now),
            "renewTime": format_micro_time(now),
            # An int32 on the server: one past its largest would make every takeover a 400.
            "leaseTransitions": old_transitions if ours else min(old_transitions + 1, 2**31 - 1),
        }
        try:
            # Conditional: metadata.resourceVersion is the one we just read.
            written = self.cluster.replace_lease(lease)
        except Conflict:
            log.info(
                "%s: Lease %s changed under us (409): another candidate won this round",
                self.identity,
                self.what,
            )
            return self._lost(holder)
        except KubeError as exc:
            return self._failed(f"cannot write Lease {self.what}: {exc}")
        if not ours:
            log.info(
                "%s: took over Lease %s from %r",
                self.identity,
                self.what,
                holder or "(released)",
            )
        return self._won(written, now)

    def _expired(self, spec: dict[str, Any], now: datetime) -> bool:
        renewed = parse_lease_time(spec.get("renewTime")) or parse_lease_time(
            spec.get("acquireTime")
        )
        if renewed is None:
            return True
        seconds = spec.get("leaseDurationSeconds")
        duration = (
            timedelta(seconds=int(seconds))
            if isinstance(seconds, int) and seconds > 0
            else self.lease_duration
        )
        if renewed > now:
            # Ahead of this clock: skew, or a hand edit (2999) that would hold every candidate
            # off forever. As client-go times every record: from when this candidate saw it
            # change. A holder that renews changes it each round; a frozen one expires.
            record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
            if self._ahead != record:
                self._ahead, self._ahead_seen = record, now
            return self._ahead_seen + duration < now
        return renewed + duration < now

    def _create(self, now: datetime) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration.total_seconds()),
                "acquireTime": format_micro_time(now),
                "renewTime": format_micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            created = self.cluster.create_lease(lease)
        except Conflict:
            # AlreadyExists: another candidate created it between our GET and POST.
            return self._lost("")
        except NotFound as exc:
            return self._failed(
                f"cannot create Lease {self.what}: {exc}: create the namespace "
                f"(kubectl create namespace {self.namespace}) or set tracker.lease_namespace"
            )
        except KubeError as exc:
            return self._failed(f"cannot create Lease {self.what}: {exc}")
        return self._won(created, now)

    # -- stop ------------------------------------------------------------------------------------
    def release(self) -> bool:
        """Give the Lease up if we hold it (holderIdentity emptied, conditional on our last
        write's resourceVersion, so a Lease someone else took meanwhile is left alone)."""
        with self._lock:
            lease = self._lease
            self._renewed_at = None
            self._lease = None
        if lease is None:
            return False
        spec = dict(lease.get("spec") or {})
        spec.update({"holderIdentity": "", "acquireTime": None, "renewTime": None})
        try:
            self.cluster.replace_lease({**lease, "spec": spec})
        except KubeError as exc:
            log.warning(
                "%s: could not release Lease %s: %s",
                self.identity,
                self.what,
                exc,
            )
            return False
        log.info("%s: released Lease %s", self.identity, self.what)
        return True


class LeaderLoop:
    """Two daemon threads: the elector's rounds every retry period, and `task` every
    `interval_seconds` (apart, so a long task never delays a renewal past its deadline).
    The task runs on every candidate; it asks `elector.is_leader()` before it writes."""

    def __init__(
        self,
        *,
        elector: LeaderElector,
        task: Callable[[], object],
        task_name: str,
        interval_seconds: float,
    ) -> None:
        self.elector = elector
        self.task = task
        self.task_name = task_name
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    def start(self) -> None:
        """Start both threads (daemon: they never hold the process up)."""
        for target, name in ((self._elect, "leader-election"), (self._run, self.task_name)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, *, release: bool = True) -> None:
        """Stop both threads and, with `release`, give the Lease up for a quick takeover.

        A no-op in any other process: gunicorn workers are forks of the process that started
        the loop, and a worker leaving through SystemExit unwinds the same `finally` that stops
        the loop. The worker has no such threads; releasing the parent's Lease from there
        would hand leadership away while the parent still acts as leader.
        """
        if os.getpid() != self._pid:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if release:
            self.elector.release()

    def _elect(self) -> None:
        while not self._stop.is_set():
            try:
                self.elector.try_acquire_or_renew()
            except Exception:  # the loop must outlive any one bad round
                log.exception("leader election round failed")
            self._stop.wait(self.elector.retry_period_seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.task()
            except Exception:  # the loop must outlive any one bad round
                log.exception("%s round failed", self.task_name)
            elapsed = time.monotonic() - started
            self._stop.wait(max(0.0, self.interval_seconds - elapsed))


def lease_problem(
    cluster: Cluster, *, namespace: str, name: str, clock: Callable[[], datetime]
) -> str | None:
    """Why leader election cannot work right now, or None: for /readyz and serve's start.

    Read from the cluster, not from an elector: under gunicorn the elector runs in the master
    and /readyz is answered by a forked worker, which sees only a stale copy of its state.
    """
    what = f"{namespace}/{name}"
    try:
        lease = cluster.get_lease(namespace, name)
    except NotFound:
        try:
            cluster.get_namespace(namespace)
        except NotFound:
            return (
                f"leader election: namespace {namespace!r} (tracker.lease_namespace) does not "
                f"exist: create it with kubectl create namespace {namespace}"
            )
        except KubeError:
            pass  # reading namespaces is not granted: say what is known
        return f"leader election: no Lease {what} yet (the log says why it was not created)"
    except KubeError as exc:
        return f"leader election: cannot read Lease {what}: {exc}"
    spec = lease.get("spec") or {}
    renewed = parse_lease_time(spec.get("renewTime"))
    seconds = spec.get("leaseDurationSeconds")
    if renewed is not None and isinstance(seconds, int) and seconds > 0:
        # Three durations: a takeover after a holder's crash needs one, plus a retry period.
        stale = clock() - renewed
        if -stale > timedelta(seconds=3 * seconds):
            return (
                f"leader election: Lease {what} renewed {int(-stale.total_seconds())}s ahead of "
                f"this clock (holder {spec.get('holderIdentity') or 'none'!r}): clock skew or "
                "a hand edit; candidates time it from when they saw it change"
            )
        if stale > timedelta(seconds=3 * seconds):
            return (
                f"leader election: Lease {what} not renewed for {int(stale.total_seconds())}s "
                f"(holder {spec.get('holderIdentity') or 'none'!r})"
            )
    return None
