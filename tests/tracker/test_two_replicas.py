"""Two service replicas run the tracker against one sandbox: one leader stamps; when it stops,
the other takes over within the lease duration and stamps from then on."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lab.receiver_harness import Harness, minutes
from sandbox.testing import SandboxHandle
from tests.tracker.support import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    create_lease_namespace,
    lease_spec,
    stamp_of,
    stamp_writes,
    wait_for,
)
from webhook.config import settings_from_dict
from webhook.kube import Cluster
from webhook.leader import LeaderElector, LeaderLoop, parse_lease_time
from webhook.runtime import build_service
from webhook.service import Service, utc_now
from webhook.tracker import start_for_service

LEASE_SECONDS = 3


def replica(sandbox: SandboxHandle, workdir: Path, token: str) -> Service:
    """One replica of the service: its own audit file and its own bearer token (so the
    sandbox's request record tells the replicas apart)."""
    workdir.mkdir()
    settings = settings_from_dict(
        {
            "audit": {"path": str(workdir / "audit.sqlite")},
            "min_healthy_seconds": 1,
            "kubernetes": {"timeout_seconds": 2},
            "tracker": {"resync_seconds": 1, "lease_duration_seconds": LEASE_SECONDS},
        }
    )
    return build_service(settings, api_client=sandbox.api_client(token=token))


def lease_writes(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in requests
        if r["resource"] == "leases" and r["verb"] in {"create", "update"} and r["status"] < 300
    ]


def test_one_leader_stamps_and_the_other_takes_over_when_it_stops(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    create_lease_namespace(sandbox)
    [rs1] = harness.deploy("web", [("web:1", minutes(5))])
    sandbox.controls.clear_requests()
    stops = {
        token: start_for_service(replica(sandbox, tmp_path / token, token))
        for token in ("replica-a", "replica-b")
    }
    try:
        wait_for(lambda: stamp_of(harness, rs1), seconds=10)
        record = sandbox.controls.requests()
        [first] = {w["token"] for w in stamp_writes(record)}
        assert {w["token"] for w in lease_writes(record)} == {first}, "only the leader writes"
        other = next(t for t in stops if t != first)

        for stop in stops.pop(first):
            stop()  # releases the Lease
        stopped = time.monotonic()
        wait_for(
            lambda: lease_writes(sandbox.controls.requests())[-1]["token"] == other,
            seconds=LEASE_SECONDS,
        )
        assert time.monotonic() - stopped < LEASE_SECONDS

        rs2 = harness.deploy("web", [("web:2", minutes(0))])[1]
        wait_for(lambda: stamp_of(harness, rs2), seconds=10)
    finally:
        for remaining in stops.values():
            for stop in remaining:
                stop()
    record = sandbox.controls.requests()
    writers = [(w["token"], w["name"]) for w in stamp_writes(record)]
    # Each revision stamped once, by whoever led at the time; never by both.
    assert writers == [(first, rs1), (other, rs2)]
    # The leader's writes and the successor's never interleave: a clean handover.
    tokens = [w["token"] for w in lease_writes(record)]
    handover = tokens.index(other)
    assert set(tokens[:handover]) == {first} and set(tokens[handover:]) == {other}


def test_forked_worker_stopping_the_tracker_leaves_the_parents_lease_alone(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """`serve` starts the tracker, then gunicorn forks workers; a worker exiting unwinds the
    same `finally` that stops the tracker. That must not release the parent's Lease."""
    create_lease_namespace(sandbox)
    reader = Cluster(sandbox.api_client())

    [stop] = start_for_service(replica(sandbox, tmp_path / "a", "replica-a"))
    try:
        wait_for(lambda: lease_writes(sandbox.controls.requests()), seconds=5)
        holder = lease_spec(reader)["holderIdentity"]
        assert holder
        child = os.fork()
        if child == 0:  # the "worker": exits through the parent's cleanup path
            try:
                stop()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 10
        while os.waitpid(child, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                raise AssertionError("forked child hung while stopping the tracker")
            time.sleep(0.05)
        time.sleep(LEASE_SECONDS / 3 * 2)  # two renewals by the parent
        spec = lease_spec(reader)
        assert spec["holderIdentity"] == holder
        assert spec["leaseTransitions"] == 0, "the Lease was released and taken again"
    finally:
        stop()
    assert lease_spec(reader)["holderIdentity"] == ""  # the parent itself does release on stop


def test_disabled_tracker_starts_nothing(sandbox: SandboxHandle, tmp_path: Path) -> None:
    settings = settings_from_dict(
        {"audit": {"path": str(tmp_path / "audit.sqlite")}, "tracker": {"enabled": False}}
    )
    service = build_service(settings, api_client=sandbox.api_client())
    sandbox.controls.clear_requests()
    assert start_for_service(service) == []
    time.sleep(0.2)
    assert sandbox.controls.requests() == []


CRASH_LEASE_SECONDS = 2


def test_a_crashed_leader_is_replaced_only_after_its_lease_expires(
    sandbox: SandboxHandle,
) -> None:
    """A leader that dies holding the Lease (no release: SIGKILL, OOM, node loss) keeps it
    until renewTime + leaseDurationSeconds; the follower, retrying all along, takes it over at
    its first round past expiry, so within the duration plus one retry period. Real time."""
    create_lease_namespace(sandbox)
    reader = Cluster(sandbox.api_client())

    def candidate(token: str) -> LeaderLoop:
        elector = LeaderElector(
            cluster=Cluster(sandbox.api_client(token=token), timeout_seconds=2),
            namespace=LEASE_NAMESPACE,
            name=LEASE_NAME,
            identity=token,
            lease_duration_seconds=CRASH_LEASE_SECONDS,
            clock=utc_now,
        )
        return LeaderLoop(elector=elector, task=lambda: None, task_name="idle", interval_seconds=60)

    leader, follower = candidate("replica-a"), candidate("replica-b")
    leader.start()
    try:
        wait_for(leader.elector.is_leader, seconds=5)
        follower.start()
        wait_for(lambda: follower.elector.observed_holder == "replica-a", seconds=5)

        leader.stop(release=False)  # the crash: no more renewals, the Lease still names it
        sandbox.controls.clear_requests()
        crashed = lease_spec(reader)
        assert crashed["holderIdentity"] == "replica-a"
        renewed = parse_lease_time(crashed["renewTime"])
        assert renewed is not None
        expiry = renewed + timedelta(seconds=crashed["leaseDurationSeconds"])

        retry = follower.elector.retry_period_seconds
        wait_for(
            lambda: lease_spec(reader)["holderIdentity"] == "replica-b",
            seconds=CRASH_LEASE_SECONDS + retry + 1,
        )
        taken = lease_spec(reader)
        acquired = parse_lease_time(taken["acquireTime"])
        assert acquired is not None
        # Not before expiry, although the follower asked every retry period meanwhile.
        assert acquired > expiry, (acquired, expiry)
        record = [
            r
            for r in sandbox.controls.requests()
            if r["token"] == "replica-b" and r["resource"] == "leases"
        ]
        takeover = next(
            i for i, r in enumerate(record) if r["verb"] == "update" and r["status"] < 300
        )
        rounds = [
            datetime.fromisoformat(r["time"]) for r in record[:takeover] if r["verb"] == "get"
        ]
        assert len(rounds) >= 3, "the follower was not retrying while the Lease was held"
        # Taken at the first round past expiry: the round before the takeover still found the
        # Lease live (its GET answered by expiry, give or take one loopback request) ...
        assert rounds[-2] <= expiry + timedelta(seconds=0.1), (rounds[-2], expiry)
        # ... so within the duration plus one retry period (rounds start a retry period
        # apart, plus the previous round's own few milliseconds).
        assert acquired <= expiry + timedelta(seconds=retry + 0.25), (acquired, expiry)
        assert taken["leaseTransitions"] == crashed["leaseTransitions"] + 1
        assert follower.elector.is_leader()
    finally:
        follower.stop()
        leader.stop(release=False)
    assert lease_spec(reader)["holderIdentity"] == ""  # the survivor's own clean stop releases it
