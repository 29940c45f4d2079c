"""The in-process gate: the breaker slot is reserved under the lock and held while the rollback
is written, released when the write does not happen, and a second rollback of the same
Deployment waits for the first and is then decided again. A real SQLite audit is the ledger."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.policy.world import Table
from webhook.audit import open_store
from webhook.config import Settings
from webhook.gate import Claim, InProcessGate
from webhook.policy import Act, GateState, Redecide, Result, Skip, decide

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = Settings(max_rollbacks=2)


@pytest.fixture
def gate(tmp_path: Path) -> InProcessGate:
    store = open_store(path=str(tmp_path / "audit.sqlite"))
    return InProcessGate(
        settings=SETTINGS, ledger=store, elsewhere=lambda since: 0,
        writer_wait_seconds=5,
    )


def claim(deployment: str, *, dry_run: bool = False) -> Claim:
    return Claim(
        namespace="shop", deployment=deployment, from_replicaset=f"{deployment}-2",
        decision_id=f"d-{deployment}", at=NOW, dry_run=dry_run, counts_dry_run=dry_run,
    )


def judge(state: GateState) -> Result:
    return decide(Table(gate=state, settings=SETTINGS))


def test_slots_in_flight_count_and_a_released_one_is_free_again(gate: InProcessGate) -> None:
    first, held_a = gate.admit(claim("a"), judge)
    second, held_b = gate.admit(claim("b"), judge)
    assert isinstance(first, Act) and isinstance(second, Act)
    assert held_a is not None and held_b is not None
    third, _ = gate.admit(claim("c"), judge)
    assert isinstance(third, Skip) and third.reason == "circuit_open"  # two in flight
    held_b.release()  # b's write met a 409
    fourth, held_c = gate.admit(claim("c"), judge)
    assert isinstance(fourth, Act) and held_c is not None
    held_a.commit()
    held_c.commit()
    fifth, _ = gate.admit(claim("d"), judge)
    assert isinstance(fifth, Skip) and fifth.reason == "circuit_open"  # two written


def test_a_second_rollback_of_the_same_deployment_waits_then_is_decided_again(
    gate: InProcessGate,
) -> None:
    _, held = gate.admit(claim("a"), judge)
    assert held is not None
    answer: dict[str, object] = {}

    def second() -> None:
        answer["result"], answer["held"] = gate.admit(claim("a"), judge)
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waiting for the write in flight
    committed = time.monotonic()
    held.commit()
    thread.join(timeout=5)
    assert isinstance(answer["result"], Redecide) and answer["held"] is None
    assert float(answer["at"]) >= committed  # type: ignore[arg-type]


def test_a_dry_run_claim_makes_the_next_one_a_duplicate(gate: InProcessGate) -> None:
    first, _ = gate.admit(claim("a", dry_run=True), lambda s: decide(Table(gate=s, dry_run=True)))
    again, _ = gate.admit(claim("a", dry_run=True), lambda s: decide(Table(gate=s, dry_run=True)))
    assert isinstance(first, Act)
    assert isinstance(again, Skip) and again.reason == "duplicate" and "d-a" in again.detail
