"""What every caller relies on from the audit, the same for SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.audit.conftest import MakeStore
from webhook import contract
from webhook.audit import (
    AuditStore,
    DecisionRow,
    GateRule,
    IntentKind,
    IntentRow,
    IntentState,
    SchemaTooNew,
)
from webhook.audit.schema import SCHEMA_VERSION
from webhook.decision import Decision, new_id

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def decision(i: int, *, outcome: str = "skipped", **fields: object) -> Decision:
    when = START + timedelta(seconds=i)
    values: dict[str, object] = {
        "id": new_id(when),
        "time": when,
        "source": "alertmanager",
        "outcome": outcome,
        "namespace": "shop",
        "deployment": f"app{i % 3}",
        "labels": {"alertname": "A", "n": str(i)},
    }
    values.update(fields)
    return Decision(**values)  # type: ignore[arg-type]


def intent(d: Decision, *, kind: IntentKind = IntentKind.ROLLBACK, rs: str = "web-2") -> IntentRow:
    return IntentRow(
        id=d.id,
        time=d.time.isoformat(),
        kind=kind,
        state=IntentState.OPEN,
        namespace=d.namespace,
        deployment=d.deployment,
        from_replicaset=rs,
        to_replicaset="web-1",
        source=d.source,
        resource_version="41",
        planned={"last_action": "{}"},
        decision={},
    )


def rule(max_rollbacks: int = 3, *, dry_run: bool = False) -> GateRule:
    counted = (contract.ROLLED_BACK, contract.DRY_RUN) if dry_run else (contract.ROLLED_BACK,)
    return GateRule(
        window_start=START - timedelta(hours=1),
        max_rollbacks=max_rollbacks,
        counted=counted,
        duplicate_since=START - timedelta(hours=1) if dry_run else None,
    )


def test_payloads_and_decisions_read_back_as_stored(store: AuditStore) -> None:
    payload_id = store.store_payload(
        '{"alerts": []}',
        received_at=START,
        source="alertmanager",
        remote="10.1.2.3",
        group_key="g",
        truncated_alerts=2,
    )
    first = decision(1, payload_id=payload_id, dry_run=True, overrides={"ignore_cooldown": True})
    second = decision(2, outcome="rolled_back", from_revision=3)
    store.record_many([first, second])
    stored = store.payload(payload_id)
    assert stored is not None and stored.body == '{"alerts": []}'
    assert (stored.remote, stored.group_key, stored.truncated_alerts) == ("10.1.2.3", "g", 2)
    row = store.get(first.id)
    assert row is not None
    assert row["labels"] == {"alertname": "A", "n": "1"}
    assert row["dry_run"] is True and row["overrides"] == {"ignore_cooldown": True}
    assert row["payload_id"] == payload_id and row["settled_by"] == ""
    [rolled_back] = store.query(outcome="rolled_back")
    assert (rolled_back["id"], rolled_back["from_revision"]) == (second.id, 3)
    assert rolled_back["duration_ms"] == 0.0 and rolled_back["starts_at"] is None


def test_query_filters_and_pages_newest_first(store: AuditStore) -> None:
    decisions = [decision(i) for i in range(7)]
    store.record_many(decisions)
    page = store.query(limit=3)
    assert [r["id"] for r in page] == [d.id for d in reversed(decisions)][:3]
    rest = store.query(limit=10, before_id=page[-1]["id"])
    assert [r["id"] for r in rest] == [d.id for d in reversed(decisions)][3:]
    assert {r["deployment"] for r in store.query(deployment="app1")} == {"app1"}
    assert len(store.query(since=START + timedelta(seconds=5))) == 2


def test_a_decision_recorded_twice_is_stored_once(store: AuditStore) -> None:
    d = decision(1, outcome="rolled_back")
    store.record_many([d])
    store.record_many([d])
    assert len(store.query()) == 1


def test_replays_and_payload_listing(store: AuditStore) -> None:
    original = decision(1, outcome="rolled_back")
    replay = decision(2, source="replay", replay_of=original.id, outcome="dry_run")
    store.record_many([original, replay])
    assert [r["id"] for r in store.replays_of(original.id)] == [replay.id]
    for i in range(3):
        store.store_payload(str(i), received_at=START + timedelta(seconds=i), source="alertmanager")
    assert [p.body for p in store.payloads(limit=2)] == ["2", "1"]


def test_prune_removes_only_what_is_older_than_the_retention(store: AuditStore) -> None:
    store.record_many([decision(0), decision(100_000)])
    store.store_payload("old", received_at=START, source="alertmanager")
    removed = store.prune(retention_days=1, now=START + timedelta(days=1, seconds=10))
    assert removed == 2
    assert len(store.query()) == 1


def test_the_gate_admits_exactly_max_rollbacks_from_a_concurrent_burst_over_two_clients(
    make_store: MakeStore,
) -> None:
    # Admitted decisions record at once (closing their intents) while others count: a count
    # taken in two statements missed a rollback recorded between them (4 of 3 on PostgreSQL).
    replicas = [make_store(), make_store()]
    replicas[0].prepare()
    answers: list[bool] = []
    lock = threading.Lock()
    for rounds in range(3):
        answers.clear()

        def decide(i: int, rounds: int = rounds) -> None:
            d = decision(i, outcome="rolled_back", deployment=f"app{rounds}-{i}")
            store = replicas[i % 2]
            answer = store.begin_intent(intent(d), rule(3 * (rounds + 1)))
            if answer.admitted:
                store.record_many([d])
            with lock:
                answers.append(answer.admitted)

        threads = [threading.Thread(target=decide, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers.count(True) == 3
    assert len(replicas[1].query(outcome="rolled_back", limit=100)) == 9
    assert replicas[1].open_intents() == []


def test_open_intents_count_until_settled_and_a_settled_one_counts_through_its_record(
    store: AuditStore,
) -> None:
    first, second = decision(1, outcome="rolled_back"), decision(2, outcome="rolled_back")
    assert store.begin_intent(intent(first), rule(2)).admitted
    store.record_many([first])  # the rollback's record closes its intent
    assert store.intent(first.id).state == IntentState.DONE  # type: ignore[union-attr]
    assert store.begin_intent(intent(second), rule(2)).admitted
    third = decision(3, outcome="rolled_back")
    answer = store.begin_intent(intent(third), rule(2))
    assert not answer.admitted and answer.circuit_open and answer.counted == 2


def test_a_409_cancels_the_intent_and_frees_its_place(store: AuditStore) -> None:
    d = decision(1, outcome="rolled_back")
    assert store.begin_intent(intent(d), rule(1)).admitted
    store.cancel_intent(d.id)
    assert store.open_intents() == []
    assert store.begin_intent(intent(d), rule(1)).admitted  # the re-decision, same id


def test_dry_run_duplicates_are_caught_while_open_and_once_recorded(make_store: MakeStore) -> None:
    one, two = make_store(), make_store()
    first = decision(1, outcome="dry_run", dry_run=True, from_replicaset="web-2", deployment="web")
    assert one.begin_intent(intent(first, kind=IntentKind.DRY_RUN), rule(5, dry_run=True)).admitted
    again = decision(2, outcome="dry_run", dry_run=True, from_replicaset="web-2", deployment="web")
    answer = two.begin_intent(intent(again, kind=IntentKind.DRY_RUN), rule(5, dry_run=True))
    assert answer.duplicate_of == first.id
    one.record_many([first])
    answer = two.begin_intent(intent(again, kind=IntentKind.DRY_RUN), rule(5, dry_run=True))
    assert answer.duplicate_of == first.id
    other = decision(3, outcome="dry_run", dry_run=True, deployment="web")
    assert two.begin_intent(
        intent(other, kind=IntentKind.DRY_RUN, rs="web-9"), rule(5, dry_run=True)
    ).admitted


def test_a_missing_mark_keeps_the_intent_open_and_settle_writes_nothing_twice(
    store: AuditStore,
) -> None:
    d = decision(1, outcome="rolled_back")
    store.begin_intent(intent(d), rule())
    store.record_many([d], mark_pending=[d.id])
    [pending] = store.open_intents()
    assert pending.state == IntentState.MARK_PENDING
    assert store.settle(pending, record=None, state=IntentState.DONE)
    assert not store.settle(pending, record=None, state=IntentState.DONE)
    assert store.open_intents() == []


def test_settling_an_open_intent_stores_its_record_once(make_store: MakeStore) -> None:
    one, two = make_store(), make_store()
    d = decision(1, outcome="rolled_back")
    one.begin_intent(intent(d), rule())
    [open_intent] = two.open_intents()
    row = DecisionRow.from_decision(d, settled_by="reconciler")
    assert two.settle(open_intent, record=row, state=IntentState.DONE)
    assert not one.settle(open_intent, record=row, state=IntentState.DONE)
    one.record_many([d])  # the worker, late: its record is already there
    [stored] = one.query()
    assert stored["settled_by"] == "reconciler"


def test_a_fresh_store_is_created_at_the_current_schema_version(store: AuditStore) -> None:
    assert store.prepare() == 0
    assert store.schema_version() == SCHEMA_VERSION
    store.check_ready()


def test_a_store_newer_than_the_code_is_refused_with_a_clear_message(
    make_store: MakeStore,
) -> None:
    first = make_store()
    first.prepare()
    with first._transaction() as tx:
        tx.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
            (SCHEMA_VERSION + 5, START.isoformat(), "from the future"),
        )
    later = make_store()
    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 5}, newer"):
        later.store_payload("{}", received_at=START, source="alertmanager")


# ---- a payload stored with the first row that names it ------------------------------------
def deferred(store: AuditStore) -> str:
    return store.store_payload(
        '{"alerts": []}', received_at=START, source="alertmanager", deferred=True
    )


def test_a_deferred_payload_is_stored_with_the_decisions_that_name_it(store: AuditStore) -> None:
    payload_id = deferred(store)
    assert store.payload(payload_id) is None  # nothing written yet: not answered yet either
    store.record_many([decision(1, payload_id=payload_id), decision(2, payload_id=payload_id)])
    stored = store.payload(payload_id)
    assert stored is not None and stored.body == '{"alerts": []}'
    store.flush_payload(payload_id)  # already stored: nothing more
    assert [p.id for p in store.payloads(limit=10)] == [payload_id]


def test_a_deferred_payload_is_stored_with_the_intent_that_names_it(store: AuditStore) -> None:
    payload_id = deferred(store)
    d = decision(1, outcome="rolled_back")
    claimed = IntentRow(**{**intent(d).__dict__, "decision": {"payload_id": payload_id}})
    assert store.begin_intent(claimed, rule()).admitted
    # The write-ahead record and the payload it came from are one commit: a reconciler that
    # settles the intent after a crash links a decision to a stored payload.
    assert store.payload(payload_id) is not None


def test_a_deferred_payload_whose_gate_rolled_back_is_stored_by_flush(store: AuditStore) -> None:
    payload_id = deferred(store)
    d = decision(1, outcome="rolled_back")
    claimed = IntentRow(**{**intent(d).__dict__, "decision": {"payload_id": payload_id}})
    with pytest.raises(RuntimeError), store.gate(rule(), ("shop", "app1", "web-2")) as ticket:
        ticket.claim(claimed)
        raise RuntimeError("the gate's transaction rolls back")
    assert store.payload(payload_id) is None
    store.flush_payload(payload_id)  # the answer's last step: no row carried it
    assert store.payload(payload_id) is not None
