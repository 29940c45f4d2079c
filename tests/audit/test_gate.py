"""The gate (webhook.durable_gate on the audit store, both stores): breaker slots reserved while
written and freed when the write does not happen, dry-run duplicates, and decisions that read the
same Deployment at the same resourceVersion: one slot between them, and once one's rollback has
landed the others are decided again, never admitted with a slot of their own.

Such a decision's write is conditional on a resourceVersion that is gone, so it can only meet a
409; admitted, its slot counted that one rollback twice for as long as it lasted, and other
Deployments' alerts were skipped circuit_open at a limit not reached (a storm of alerts decided
concurrently showed it: 11 counted for 10 rollbacks).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.audit.conftest import MakeStore
from tests.gate_claims import claim as gate_claim
from tests.policy.world import Table
from webhook.audit import AuditStore, DecisionRow, IntentRow, IntentState
from webhook.config import Settings
from webhook.durable_gate import DurableGate
from webhook.gate import Claim
from webhook.policy import Act, GateState, Redecide, Result, Skip, decide

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = Settings(max_rollbacks=2)


def claim(decision_id: str, deployment: str = "web", *, dry_run: bool = False) -> Claim:
    return gate_claim(decision_id, deployment, at=NOW, dry_run=dry_run)


def judge(state: GateState) -> Result:
    # The same read for every claim: the Deployment at resourceVersion 7 running web-2.
    return decide(Table(gate=state, settings=SETTINGS))


def open_intent(store: AuditStore, decision_id: str) -> IntentRow:
    [intent] = [i for i in store.open_intents() if i.id == decision_id]
    return intent


@pytest.mark.parametrize("state", [IntentState.DONE, IntentState.MARK_PENDING])
def test_a_read_from_before_a_landed_rollback_is_decided_again_without_a_slot(
    make_store: MakeStore, state: IntentState
) -> None:
    store = make_store()
    gate = DurableGate(settings=SETTINGS, audit=store)
    first, held = gate.admit(claim("d-first"), judge)
    assert isinstance(first, Act) and held is not None
    # Its write landed and is recorded rolled_back (its bad mark written, or still to write).
    record = DecisionRow(
        id="d-first",
        time=NOW,
        source="alertmanager",
        outcome="rolled_back",
        namespace="shop",
        deployment="web",
    )
    assert store.settle(open_intent(store, "d-first"), record=record, state=state)

    stale, slot = gate.admit(claim("d-stale"), judge)
    assert isinstance(stale, Redecide) and slot is None, stale
    assert "d-first" in stale.why
    # No slot was taken: another Deployment's rollback is the second of max_rollbacks 2.
    other, other_slot = gate.admit(claim("d-other", deployment="api"), judge)
    assert isinstance(other, Act) and other_slot is not None, other
    third, _ = gate.admit(claim("d-third", deployment="db"), judge)
    assert isinstance(third, Skip) and third.reason == "circuit_open"


def test_a_write_that_did_not_land_leaves_the_same_read_free_to_act(
    make_store: MakeStore,
) -> None:
    store = make_store()
    gate = DurableGate(settings=SETTINGS, audit=store)
    _, held = gate.admit(claim("d-first"), judge)
    assert held is not None
    held.release()  # its write met a 409 or definitely failed: nothing landed
    again, slot = gate.admit(claim("d-again"), judge)
    assert isinstance(again, Act) and slot is not None, again


def test_a_write_still_in_flight_is_raced_not_waited_for(make_store: MakeStore) -> None:
    # An open intent may yet fail; the conditional write settles the race (one 409), as before.
    store = make_store()
    gate = DurableGate(settings=SETTINGS, audit=store)
    _, held = gate.admit(claim("d-first"), judge)
    assert held is not None
    racing, slot = gate.admit(claim("d-racing"), judge)
    assert isinstance(racing, Act) and slot is not None, racing
    # Both writes are conditional on one read: at most one lands, so they hold one slot.
    other, other_slot = gate.admit(claim("d-other", deployment="api"), judge)
    assert isinstance(other, Act) and other_slot is not None, other
    third, _ = gate.admit(claim("d-third", deployment="db"), judge)
    assert isinstance(third, Skip) and third.reason == "circuit_open"


def test_slots_in_flight_count_and_a_released_one_is_free_again(make_store: MakeStore) -> None:
    gate = DurableGate(settings=SETTINGS, audit=make_store())
    first, held_a = gate.admit(claim("d-a", "a"), judge)
    second, held_b = gate.admit(claim("d-b", "b"), judge)
    assert isinstance(first, Act) and isinstance(second, Act)
    assert held_a is not None and held_b is not None
    third, _ = gate.admit(claim("d-c", "c"), judge)
    assert isinstance(third, Skip) and third.reason == "circuit_open"  # two in flight
    held_b.release()  # b's write met a 409
    fourth, held_c = gate.admit(claim("d-c", "c"), judge)
    assert isinstance(fourth, Act) and held_c is not None
    held_a.commit()
    held_c.commit()  # written: their intents count until their records close them
    fifth, _ = gate.admit(claim("d-d", "d"), judge)
    assert isinstance(fifth, Skip) and fifth.reason == "circuit_open"


def test_a_dry_run_claim_makes_the_next_one_a_duplicate(make_store: MakeStore) -> None:
    gate = DurableGate(settings=SETTINGS, audit=make_store())

    def preview(state: GateState) -> Result:
        return decide(Table(gate=state, dry_run=True, settings=SETTINGS))

    first, _ = gate.admit(claim("d-a", "web", dry_run=True), preview)
    again, _ = gate.admit(claim("d-again", "web", dry_run=True), preview)
    assert isinstance(first, Act)
    assert isinstance(again, Skip) and again.reason == "duplicate" and "d-a" in again.detail
