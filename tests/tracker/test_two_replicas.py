"""Two service replicas run the tracker against one sandbox: one leader stamps; when it stops,
the other takes over within the lease duration and stamps from then on."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.receiver.harness import Harness, minutes
from tests.tracker.support import stamp_of, stamp_writes
from webhook.config import settings_from_dict
from webhook.kube import Cluster
from webhook.runtime import build_service
from webhook.sandbox.testing import SandboxHandle
from webhook.service import Service
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


def wait_for(condition: Callable[[], Any], *, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true within {seconds}s: {condition}")


def lease_writes(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in requests
        if r["resource"] == "leases" and r["verb"] in {"create", "update"} and r["status"] < 300
    ]


def test_one_leader_stamps_and_the_other_takes_over_when_it_stops(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rollback-webhook"}}
    )
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
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rollback-webhook"}}
    )
    reader = Cluster(sandbox.api_client())

    def lease() -> dict[str, Any]:
        spec: dict[str, Any] = reader.get_lease("rollback-webhook", "rollback-webhook-leader")[
            "spec"
        ]
        return spec

    [stop] = start_for_service(replica(sandbox, tmp_path / "a", "replica-a"))
    try:
        wait_for(lambda: lease_writes(sandbox.controls.requests()), seconds=5)
        holder = lease()["holderIdentity"]
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
        spec = lease()
        assert spec["holderIdentity"] == holder
        assert spec["leaseTransitions"] == 0, "the Lease was released and taken again"
    finally:
        stop()
    assert lease()["holderIdentity"] == ""  # the parent itself does release on stop


def test_disabled_tracker_starts_nothing(sandbox: SandboxHandle, tmp_path: Path) -> None:
    settings = settings_from_dict(
        {"audit": {"path": str(tmp_path / "audit.sqlite")}, "tracker": {"enabled": False}}
    )
    service = build_service(settings, api_client=sandbox.api_client())
    sandbox.controls.clear_requests()
    assert start_for_service(service) == []
    time.sleep(0.2)
    assert sandbox.controls.requests() == []
