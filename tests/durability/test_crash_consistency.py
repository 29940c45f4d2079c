"""Crash consistency: many concurrent rollbacks through `serve`, its workers killed with SIGKILL
at random moments (between the cluster write and the record included: the bad-mark PATCH and
the Event that follow each write are slowed), every delivery retried as Alertmanager retries.
Afterwards:

- every Deployment rolled back has exactly one rolled_back record, whose id is the audit id
  its `auto-rollback/last-action` carries;
- every ReplicaSet rolled back from carries the bad-revision mark of that record;
- no Deployment was rolled back twice (one successful PUT each);
- every payload answered 2xx is stored.

With the SQLite store and with PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lab.postgres import PostgresServer
from lab.receiver_harness import Harness, hours, minutes
from tests.durability.serving import Store, serve
from webhook import contract

# `serve` subprocesses against the sandbox (and PostgreSQL): seconds to a minute each.
pytestmark = pytest.mark.slow

DEPLOYMENTS = 16
CLIENTS = 8
KILLS = 6


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store(sqlite=tmp_path / "audit.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Store(dsn=server.create_database("crash"))


def test_killed_workers_leave_every_rollback_recorded_once_and_marked(
    harness: Harness, tmp_path: Path, store: Store
) -> None:
    names = [f"app{i:02d}" for i in range(DEPLOYMENTS)]
    bad: dict[str, str] = {}
    for name in names:
        revisions = harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])
        bad[name] = revisions[1]
    controls = harness.sandbox.controls
    # The mark after each write is slow, so many kills land between the write and the record;
    # some writes are slow too, so kills land before them as well.
    controls.fault(method="PATCH", path="/replicasets/", action="delay", delay=0.6, count=200)
    controls.fault(method="PUT", path="/deployments/", action="delay", delay=0.3, count=8)
    # A slow Event API, as in the hostile run (posted after the write, before the record).
    controls.fault(method="POST", path="/events$", action="delay", delay=1.0, count=12)
    served = serve(harness.sandbox, tmp_path, store, max_rollbacks=100)
    try:
        answers = deliver_under_fire(served, harness, names, bad)
        audit = store.open()
        deadline = time.monotonic() + 40
        while audit.open_intents() and time.monotonic() < deadline:
            time.sleep(0.5)  # the reconciler (in the workers) settles what the kills left
        assert audit.open_intents() == [], served.stderr[-3000:]
        check_consistency(harness, audit, names, bad, answers)
        settled = [
            r
            for r in audit.query(outcome="rolled_back", limit=500)
            if r["settled_by"] == "reconciler"
        ]
        assert settled, (
            "no rollback was left to the reconciler: no kill hit between write and record"
        )
    finally:
        served.stop()


def deliver_under_fire(
    served: Any, harness: Harness, names: list[str], bad: dict[str, str]
) -> list[tuple[int, Any]]:
    kills: list[int] = []
    stop = threading.Event()

    def written() -> bool:
        return any(
            r["method"] == "PUT" and r["status"] == 200 for r in harness.sandbox.controls.requests()
        )

    def killer() -> None:
        rng = random.Random(os.getpid())
        # First, surely between a write and its record: the moment a rollback PUT succeeded
        # (its bad-mark PATCH is slowed), every worker is killed.
        while not stop.is_set() and not written():
            time.sleep(0.02)
        for victim in served.workers():
            os.kill(victim, signal.SIGKILL)
            kills.append(victim)
        while not stop.is_set() and len(kills) < KILLS:
            time.sleep(rng.uniform(0.4, 1.2))
            workers = served.workers()
            if workers:
                victim = rng.choice(workers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    def one(name: str) -> tuple[int, Any]:
        alert = Harness.alert(namespace="shop", deployment=name, replicaset=bad[name])
        return served.deliver(Harness.payload(alert))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            # Each alert is delivered twice (Alertmanager's repeat, another group, a replay
            # of the route): duplicates must not roll back twice.
            answers = list(pool.map(one, names + names))
    finally:
        stop.set()
        thread.join(timeout=5)
    assert len(kills) >= 3, f"only {len(kills)} workers killed"
    assert all(status == 200 for status, _ in answers), answers
    return answers


def check_consistency(
    harness: Harness,
    audit: Any,
    names: list[str],
    bad: dict[str, str],
    answers: list[tuple[int, Any]],
) -> None:
    puts = [
        r
        for r in harness.sandbox.controls.requests()
        if r["method"] == "PUT" and "/deployments/" in r["path"] and r["status"] == 200
    ]
    for name in names:
        deployment = harness.deployment("shop", name)
        annotations = deployment["metadata"]["annotations"]
        action = json.loads(annotations[contract.ANNOTATION_LAST_ACTION])
        rows = audit.query(namespace="shop", deployment=name, outcome="rolled_back", limit=10)
        assert [r["id"] for r in rows] == [action["audit_id"]], (name, rows, action)
        assert rows[0]["from_replicaset"] == bad[name]
        rs = harness.read("GET", f"/apis/apps/v1/namespaces/shop/replicasets/{bad[name]}")
        mark = json.loads(rs["metadata"]["annotations"][contract.ANNOTATION_BAD_REVISION])
        assert mark["audit_id"] == action["audit_id"], (name, mark)
        written = [r for r in puts if r["path"].endswith(f"/deployments/{name}")]
        assert len(written) == 1, (name, written)  # never rolled back twice
    for _, body in answers:
        assert audit.payload(body["payload_id"]) is not None
