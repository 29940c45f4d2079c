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
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, template_images
from tests.durability.serving import Served, Store, bad_deployments, burst_over, two_replicas
from webhook.contract import ANNOTATION_LEDGER

pytestmark = pytest.mark.slow

LEDGER = {"mode": "on", "namespace": "rollback-webhook", "name": "rollback-webhook-rollbacks"}


@pytest.fixture
def replicas(harness: Harness, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    harness.sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEDGER["namespace"]}}
    )
    settings: dict[str, Any] = {"max_rollbacks": 3, "circuit_ledger": LEDGER}
    stores = (Store(sqlite=tmp_path / "one.sqlite"), Store(sqlite=tmp_path / "two.sqlite"))
    with two_replicas(harness.sandbox, tmp_path, stores, **settings) as pair:
        yield pair


def test_max_rollbacks_is_exact_across_replicas_with_an_audit_each(
    harness: Harness, replicas: tuple[Served, Served]
) -> None:
    bad = bad_deployments(harness, 12)
    names = sorted(bad)
    decisions = burst_over(replicas, bad)
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
