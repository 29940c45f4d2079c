"""The circuit ledger (webhook/ledger.py) when the Lease is not as this process left it, on the
sandbox: deleted by hand, freed by another process, written by others on every attempt; how a
worker's bookings share PUTs; and the reconciler freeing the slot of a write that never landed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import SandboxHandle
from tests.gate_claims import claim
from tests.ledger_race import book
from tests.policy.world import Table
from webhook.audit import SqliteStore
from webhook.config import Settings
from webhook.durable_gate import DurableGate
from webhook.kube import Cluster, Obj, Transient
from webhook.ledger import MAX_ATTEMPTS, Ledger
from webhook.policy import Act, GateState, Result, Skip, decide
from webhook.reconcile import Reconciler

NAMESPACE, NAME = "rollback-webhook", "rollback-webhook-rollbacks"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"


@pytest.fixture
def sandbox_ns(sandbox: SandboxHandle) -> SandboxHandle:
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    return sandbox


def ledger(sandbox: SandboxHandle, cluster: Cluster | None = None) -> Ledger:
    return Ledger(
        cluster=cluster or Cluster(sandbox.api_client(), timeout_seconds=5),
        namespace=NAMESPACE,
        name=NAME,
        sleep=lambda seconds: None,
    )


def lease_writes(sandbox: SandboxHandle) -> int:
    return sum(
        1
        for r in sandbox.controls.requests()
        if r["resource"] == "leases" and r["verb"] in ("create", "update") and r["status"] < 300
    )


def test_a_lease_deleted_by_hand_is_made_again_by_the_next_booking(
    sandbox_ns: SandboxHandle,
) -> None:
    one = ledger(sandbox_ns)
    assert one.book(book("shop/a/1", "d1", limit=5)).admitted
    Cluster(sandbox_ns.api_client(), timeout_seconds=5)._call("DELETE", f"{LEASES}/{NAME}")
    # Its PUT over the Lease it wrote last meets a 404: it reads again, and creates it.
    assert one.book(book("shop/b/1", "d2", limit=5)).admitted
    assert [s.key for s in one.slots()] == ["shop/b/1"]


def test_a_refusal_is_counted_from_a_fresh_read_not_from_our_last_write(
    sandbox_ns: SandboxHandle,
) -> None:
    one, two = ledger(sandbox_ns), ledger(sandbox_ns)
    assert one.book(book("shop/a/1", "d1", limit=1)).admitted  # one's last write: full
    two.release("d1", "shop/a/1")  # d1's write met a 409, seen by another process
    assert one.book(book("shop/b/1", "d2", limit=1)).admitted


def test_one_processes_bookings_made_at_once_share_puts(sandbox_ns: SandboxHandle) -> None:
    one = ledger(sandbox_ns)
    assert one.book(book("shop/x/1", "x", limit=100)).admitted  # the Lease exists, cached
    sandbox_ns.controls.clear_requests()
    start = threading.Barrier(20)

    def attempt(i: int) -> bool:
        start.wait()
        return one.book(book(f"shop/app{i:02d}/7", f"d{i}", limit=100)).admitted

    with ThreadPoolExecutor(20) as pool:
        assert all(pool.map(attempt, range(20)))
    assert len(one.slots()) == 21
    writes = lease_writes(sandbox_ns)
    assert 1 <= writes < 20, f"{writes} PUTs for 20 bookings made at once"


class _Contended(Cluster):
    """Another writer lands on the Lease just before each of our PUTs: every PUT meets a real
    409 from the sandbox."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        super().__init__(sandbox.api_client(), timeout_seconds=5)
        self.other = Cluster(sandbox.api_client(), timeout_seconds=5)

    def replace_lease(self, lease: Obj) -> Obj:
        current = self.other.get_lease(NAMESPACE, NAME)
        labels = current["metadata"].setdefault("labels", {})
        labels["bumped"] = str(int(labels.get("bumped", "0")) + 1)
        self.other.replace_lease(current)
        return super().replace_lease(lease)


def test_a_lease_contended_on_every_attempt_is_a_transient_failure(
    sandbox_ns: SandboxHandle,
) -> None:
    assert ledger(sandbox_ns).book(book("shop/a/1", "d1", limit=5)).admitted
    contended = ledger(sandbox_ns, _Contended(sandbox_ns))
    # Transient: the payload is answered 503 and redelivered, not recorded failed for good.
    with pytest.raises(Transient, match=f"{MAX_ATTEMPTS} writes in a row met a 409"):
        contended.book(book("shop/b/1", "d2", limit=5))
    assert contended.conflicts == MAX_ATTEMPTS


@pytest.mark.parametrize("spec_moved", [False, True], ids=["same-generation", "spec-moved"])
def test_the_reconciler_frees_the_slot_of_a_rollback_proven_never_landed(
    sandbox_ns: SandboxHandle, tmp_path: Path, spec_moved: bool
) -> None:
    """Proven: the Deployment still has the generation the write was conditional on. When its
    spec moved on, the rollback may have landed and been written over (its last-action too):
    recorded failed as before, but its slot stays booked."""
    settings = Settings(max_rollbacks=1)
    stores = [SqliteStore(tmp_path / "a.sqlite"), SqliteStore(tmp_path / "b.sqlite")]
    ledgers = [ledger(sandbox_ns), ledger(sandbox_ns)]
    pod_a, pod_b = (
        DurableGate(settings=settings, audit=store, ledger=booked)
        for store, booked in zip(stores, ledgers, strict=True)
    )

    def judge(state: GateState) -> Result:
        return decide(Table(gate=state, settings=settings))  # web at resourceVersion 7

    now = datetime.now(UTC)
    admitted, _ = pod_a.admit(claim("d-a1", "web", at=now), judge)
    assert isinstance(admitted, Act)
    # Its write timed out unanswered (the intent and the slot stay), and never landed: the
    # Deployment is at another resourceVersion and names no such rollback.
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:2"}]},
            },
        },
    }
    sandbox_ns.controls.apply(deployment)  # generation 1, as the decision read it
    if spec_moved:
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "web:3"
        sandbox_ns.controls.apply(deployment)  # generation 2
    later = now + timedelta(minutes=5)
    refused, _ = pod_b.admit(claim("d-b1", "db", at=later), judge)
    assert isinstance(refused, Skip) and refused.reason == "circuit_open"
    report = Reconciler(
        audit=stores[0],
        cluster=Cluster(sandbox_ns.api_client(), timeout_seconds=5),
        clock=lambda: later,
        ledger=ledgers[0],
    ).run_once()
    assert report.never_landed == ["d-a1"]
    if spec_moved:
        assert [s.ids for s in ledgers[1].slots()] == [("d-a1",)]
        return
    assert ledgers[1].slots() == []
    again, _ = pod_b.admit(claim("d-b2", "db", at=later), judge)
    assert isinstance(again, Act), again
