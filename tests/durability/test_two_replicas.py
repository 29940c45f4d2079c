"""Two `serve` processes on one PostgreSQL audit: one audit, exact limits for both.

- a decision made by one is seen through the other's audit API and replayed by id there;
- max_rollbacks holds exactly under a concurrent burst spread over both (each process has two
  workers: four deciders, no staleness window, no overshoot);
- a dry-run duplicate is caught whichever replica got the first delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lab.postgres import PostgresServer
from lab.receiver_harness import ONCALL, Harness, template_images
from tests.durability.serving import Served, Store, bad_deployments, burst_over, two_replicas

# `serve` subprocesses against the sandbox (and PostgreSQL): seconds to a minute each.
pytestmark = pytest.mark.slow

ONCALL_TOKEN = ONCALL.split(":", 1)[1]


@pytest.fixture
def replicas(
    harness: Harness,
    tmp_path: Path,
    postgres_server: PostgresServer,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Served, Served]]:
    store = Store(dsn=postgres_server.create_database("replicas"))
    (tmp_path / "oncall").write_text(ONCALL + "\n")
    settings: dict[str, Any] = getattr(request, "param", {})
    common = {"auth": {"oncall_tokens_file": str(tmp_path / "oncall")}, **settings}
    with two_replicas(harness.sandbox, tmp_path, (store, store), **common) as pair:
        yield pair


def test_one_audit_seen_and_replayed_by_id_through_either_replica(
    harness: Harness, replicas: tuple[Served, Served]
) -> None:
    one, two = replicas
    bad = bad_deployments(harness, 1)
    alert = Harness.alert(namespace="shop", deployment="app00", replicaset=bad["app00"])
    status, body = one.deliver(Harness.payload(alert))
    assert status == 200
    [decision] = body["decisions"]
    assert decision["outcome"] == "rolled_back"
    for replica in (one, two):
        status, listed = replica.request(
            "GET", "/api/v1/audit?deployment=app00", token=ONCALL_TOKEN
        )
        assert status == 200 and [d["id"] for d in listed["decisions"]] == [decision["id"]]
    status, detail = two.request("GET", f"/api/v1/audit/{decision['id']}", token=ONCALL_TOKEN)
    assert status == 200 and detail["payload"] is not None
    status, replayed = two.request(
        "POST",
        "/api/v1/replay",
        {"audit_id": decision["id"], "reason": "checking from the other replica"},
        token=ONCALL_TOKEN,
    )
    assert status == 200, replayed
    [again] = replayed["decisions"]
    assert again["replay_of"] == decision["id"] and again["dry_run"] is True
    status, detail = one.request("GET", f"/api/v1/audit/{decision['id']}", token=ONCALL_TOKEN)
    assert [r["id"] for r in detail["replays"]] == [again["id"]]


@pytest.mark.parametrize("replicas", [{"max_rollbacks": 3}], indirect=True)
def test_max_rollbacks_is_exact_under_a_burst_spread_over_both_replicas(
    harness: Harness, replicas: tuple[Served, Served]
) -> None:
    bad = bad_deployments(harness, 12)
    names = sorted(bad)
    decisions = burst_over(replicas, bad)
    outcomes = sorted(d["outcome"] for d in decisions)
    assert outcomes.count("rolled_back") == 3, decisions
    assert {d["reason"] for d in decisions if d["outcome"] != "rolled_back"} == {"circuit_open"}
    rolled = [n for n in names if template_images(harness.deployment("shop", n)) == [f"{n}:1"]]
    assert len(rolled) == 3


@pytest.mark.parametrize("replicas", [{"dry_run": True}], indirect=True)
def test_a_dry_run_duplicate_is_caught_across_replicas(
    harness: Harness, replicas: tuple[Served, Served]
) -> None:
    bad = bad_deployments(harness, 1)
    alert = Harness.alert(namespace="shop", deployment="app00", replicaset=bad["app00"])
    payload = Harness.payload(alert)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: replicas[i % 2].deliver(payload), range(4)))
    decisions = [body["decisions"][0] for _, body in answers]
    first = [d for d in decisions if d["outcome"] == "dry_run"]
    assert len(first) == 1, decisions
    duplicates = [d for d in decisions if d["reason"] == "duplicate"]
    assert len(duplicates) == 3
    assert all(first[0]["id"] in d["detail"] for d in duplicates)
    assert template_images(harness.deployment("shop", "app00")) == ["app00:2"]
