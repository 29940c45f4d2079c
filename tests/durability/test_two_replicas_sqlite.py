"""Two `serve` processes, each with a SQLite audit of its own (the base install's two replicas):
the circuit breaker is still exact across them, because each books its rollbacks in the circuit
ledger's Lease before writing (webhook/ledger.py).

A burst of alerts spread over both (two workers each: four deciders, four SQLite files' worth of
counting that none of them shares) rolls back exactly max_rollbacks Deployments; the others are
circuit_open, saying where they were counted; and the Lease names exactly the decisions that
rolled back. Each replica gets six of the twelve alerts, so without the ledger each would admit
three by its own count: six rollbacks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from tests.durability.serving import Served, Store, serve
from webhook.contract import ANNOTATION_LEDGER

pytestmark = pytest.mark.slow

LEDGER = {"mode": "on", "namespace": "rollback-webhook", "name": "rollback-webhook-rollbacks"}


@pytest.fixture
def replicas(harness: Harness, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    harness.sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEDGER["namespace"]}}
    )
    settings: dict[str, Any] = {"max_rollbacks": 3, "circuit_ledger": LEDGER}
    one = serve(
        harness.sandbox, tmp_path, Store(sqlite=tmp_path / "one.sqlite"), name="one", **settings
    )
    try:
        two = serve(
            harness.sandbox, tmp_path, Store(sqlite=tmp_path / "two.sqlite"), name="two", **settings
        )
    except BaseException:
        one.stop()
        raise
    try:
        yield one, two
    finally:
        one.stop()
        two.stop()


def test_max_rollbacks_is_exact_across_replicas_with_an_audit_each(
    harness: Harness, replicas: tuple[Served, Served]
) -> None:
    bad = {}
    for i in range(12):
        name = f"app{i:02d}"
        bad[name] = harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])[1]
    names = sorted(bad)

    def one_delivery(i: int) -> dict[str, Any]:
        name = names[i]
        alert = Harness.alert(namespace="shop", deployment=name, replicaset=bad[name])
        status, body = replicas[i % 2].deliver(Harness.payload(alert))
        assert status == 200, body
        decision: dict[str, Any] = body["decisions"][0]
        return decision

    with ThreadPoolExecutor(12) as pool:
        decisions = list(pool.map(one_delivery, range(len(names))))
    rolled_back = [d for d in decisions if d["outcome"] == "rolled_back"]
    assert len(rolled_back) == 3, decisions
    refused = [d for d in decisions if d["outcome"] != "rolled_back"]
    assert {d["reason"] for d in refused} == {"circuit_open"}, refused
    rolled = [n for n in names if template_images(harness.deployment("shop", n)) == [f"{n}:1"]]
    assert sorted(rolled) == sorted(d["deployment"] for d in rolled_back)
    # A refusal the replica's own audit could not have made says where it was counted.
    assert any("Lease rollback-webhook/rollback-webhook-rollbacks" in d["detail"] for d in refused)
    lease = harness.read(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/rollback-webhook/leases/rollback-webhook-rollbacks",
    )
    slots = json.loads(lease["metadata"]["annotations"][ANNOTATION_LEDGER])
    assert sorted(i for s in slots for i in s["ids"]) == sorted(d["id"] for d in rolled_back)
