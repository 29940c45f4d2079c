"""Lease leader election against the sandbox: one leader, conditional writes, takeover."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sandbox.testing import SandboxHandle
from tests.tracker.support import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    FakeClock,
    create_lease_namespace,
    lease_spec,
)
from webhook.kube import Cluster
from webhook.leader import LeaderElector, parse_lease_time

LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE_NAME}"

Candidate = Callable[[str], LeaderElector]


@pytest.fixture
def candidate(sandbox: SandboxHandle, clock: FakeClock) -> Candidate:
    """A candidate named `identity` that talks to the sandbox with its own bearer token."""
    create_lease_namespace(sandbox)

    def make(identity: str) -> LeaderElector:
        cluster = Cluster(sandbox.api_client(token=f"token-{identity}"), timeout_seconds=5)
        return LeaderElector(
            cluster=cluster,
            namespace=LEASE_NAMESPACE,
            name=LEASE_NAME,
            identity=identity,
            lease_duration_seconds=15,
            clock=clock,
        )

    return make


def test_first_candidate_creates_the_lease_and_the_second_waits(
    candidate: Candidate, clock: FakeClock
) -> None:
    a, b = candidate("a"), candidate("b")
    assert a.try_acquire_or_renew() and a.is_leader()
    acquired = lease_spec(a.cluster)
    assert acquired["holderIdentity"] == "a" and acquired["leaseTransitions"] == 0
    assert acquired["leaseDurationSeconds"] == 15
    assert not b.try_acquire_or_renew() and not b.is_leader()
    assert b.observed_holder == "a"
    clock.advance(a.retry_period_seconds)
    assert a.try_acquire_or_renew()
    renewed = lease_spec(a.cluster)
    assert renewed["acquireTime"] == acquired["acquireTime"]
    assert parse_lease_time(renewed["renewTime"]) == clock()
    assert renewed["leaseTransitions"] == 0


def test_follower_takes_over_once_a_dead_leader_lease_expires_never_before(
    candidate: Candidate, clock: FakeClock
) -> None:
    a, b = candidate("a"), candidate("b")
    assert a.try_acquire_or_renew()
    clock.advance(5)
    assert a.try_acquire_or_renew()
    last_renewal = clock()
    # a dies here: no more rounds. b keeps trying every retry period.
    took_over = None
    for _ in range(10):
        clock.advance(b.retry_period_seconds)
        won = b.try_acquire_or_renew()
        assert not (a.is_leader() and b.is_leader()), "two leaders at once"
        if won:
            took_over = clock()
            break
        assert clock() <= last_renewal + a.lease_duration, "expired lease not taken over"
    assert took_over is not None
    assert took_over - last_renewal <= a.lease_duration + b.lease_duration / 3
    spec = lease_spec(b.cluster)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew() and a.observed_holder == "b"


def test_released_lease_is_taken_over_at_the_next_round(
    candidate: Candidate, clock: FakeClock
) -> None:
    a, b = candidate("a"), candidate("b")
    assert a.try_acquire_or_renew()
    assert a.release() and not a.is_leader()
    assert lease_spec(a.cluster)["holderIdentity"] == ""
    assert b.try_acquire_or_renew()  # same instant: no waiting for expiry
    assert lease_spec(b.cluster)["holderIdentity"] == "b"


def test_lease_write_is_conditional_so_a_concurrent_writer_wins(
    sandbox: SandboxHandle, candidate: Candidate, clock: FakeClock
) -> None:
    a = candidate("a")
    assert a.try_acquire_or_renew()
    clock.advance(a.retry_period_seconds)
    # Another candidate writes the Lease between a's GET and a's PUT.
    sandbox.controls.interleave(
        method="PUT",
        path=LEASE_PATH + "$",
        resource="leases",
        namespace=LEASE_NAMESPACE,
        name=LEASE_NAME,
        merge_patch={"spec": {"holderIdentity": "intruder"}},
    )
    assert not a.try_acquire_or_renew() and not a.is_leader()
    assert lease_spec(a.cluster)["holderIdentity"] == "intruder"
    puts = [r for r in sandbox.controls.requests() if r["verb"] == "update"]
    assert [r["status"] for r in puts][-1] == 409


def test_racing_candidates_elect_exactly_one(candidate: Candidate) -> None:
    electors = [candidate(f"c{i}") for i in range(8)]
    barrier = threading.Barrier(len(electors))
    results: dict[str, bool] = {}

    def run(elector: LeaderElector) -> None:
        barrier.wait()
        results[elector.identity] = elector.try_acquire_or_renew()

    threads = [threading.Thread(target=run, args=(e,)) for e in electors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [name for name, won in results.items() if won]
    assert len(winners) == 1, results
    assert lease_spec(electors[0].cluster)["holderIdentity"] == winners[0]
    assert [e.identity for e in electors if e.is_leader()] == winners


def test_api_outage_keeps_leadership_only_until_the_renew_deadline(
    sandbox: SandboxHandle, candidate: Candidate, clock: FakeClock
) -> None:
    a = candidate("a")
    assert a.try_acquire_or_renew()
    sandbox.controls.fault(method="GET", path=LEASE_PATH, status=503, count=100)
    clock.advance(a.retry_period_seconds)
    assert not a.try_acquire_or_renew()
    assert a.is_leader()  # one failed renewal is no reason to stop
    clock.advance(a.renew_deadline.total_seconds() - a.retry_period_seconds)
    assert not a.try_acquire_or_renew()
    # Past the renew deadline, before anyone may take the Lease over: stop acting.
    assert not a.is_leader()
