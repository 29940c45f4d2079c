"""The circuit ledger (webhook/ledger.py): what a booking and a release do to the slots (pure),
and the Lease it keeps on the sandbox, booked by two "replicas" at once (each its own client and
connection pool, so their conditional PUTs meet real 409s): never more admitted than the limit;
and the durable gates of two pods with a SQLite file each, held to one limit through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from tests.gate_claims import claim
from tests.ledger_race import off_clock_ledger, race
from tests.policy.world import Table
from webhook.audit import SqliteStore
from webhook.config import Settings
from webhook.console_deployment import circuit_state
from webhook.contract import ANNOTATION_LEDGER
from webhook.durable_gate import DurableGate, ledger_since
from webhook.kube import Cluster
from webhook.ledger import (
    Book,
    ClockOff,
    Ledger,
    LedgerUnreadable,
    Release,
    Slot,
    Verdict,
    apply,
    parse_slots,
)
from webhook.policy import Act, GateState, Result, Skip, decide

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NAMESPACE, NAME = "rollback-webhook", "rollback-webhook-rollbacks"


def book(key: str, decision_id: str, *, at: datetime = NOW, limit: int = 2) -> Book:
    return Book(key=key, decision_id=decision_id, at=at, since=at - HOUR, limit=limit)


def test_bookings_are_admitted_up_to_the_limit_then_refused_with_the_count() -> None:
    slots, answers = apply(
        [], [book("shop/a/1", "d1"), book("shop/b/1", "d2"), book("shop/c/1", "d3")]
    )
    assert [a.admitted for a in answers] == [True, True, False]
    assert [a.counted for a in answers] == [0, 1, 2]
    assert [s.key for s in slots] == ["shop/a/1", "shop/b/1"]


def test_the_same_read_of_a_deployment_joins_its_slot_even_when_the_window_is_full() -> None:
    slots, answers = apply(
        [], [book("shop/a/1", "d1"), book("shop/b/1", "d2"), book("shop/a/1", "d3")]
    )
    assert [a.admitted for a in answers] == [True, True, True]
    assert answers[2].counted == 1  # the other slot; its own is not counted twice
    assert [s.ids for s in slots] == [("d1", "d3"), ("d2",)]
    # A new read of the same Deployment (another resourceVersion) is another rollback.
    _, [later] = apply(slots, [book("shop/a/2", "d4")])
    assert not later.admitted and later.counted == 2


def test_a_release_frees_only_its_own_name_and_an_unnamed_slot_is_gone() -> None:
    joined = [Slot("shop/a/1", NOW, ("d1", "d3")), Slot("shop/b/1", NOW, ("d2",))]
    slots, _ = apply(joined, [Release("shop/a/1", "d1"), Release("shop/b/1", "d2")])
    assert slots == [Slot("shop/a/1", NOW, ("d3",))]
    # Releasing a name that is not there changes nothing.
    assert apply(slots, [Release("shop/a/1", "d9")])[0] == slots


def test_slots_older_than_the_window_no_longer_count_and_are_dropped() -> None:
    old = [Slot("shop/a/1", NOW - HOUR - timedelta(microseconds=1), ("d1",))]
    edge = [Slot("shop/b/1", NOW - HOUR, ("d2",))]
    slots, [answer] = apply(old + edge, [book("shop/c/1", "d3")])
    assert answer.admitted and answer.counted == 1
    assert [s.key for s in slots] == ["shop/b/1", "shop/c/1"]


def test_a_read_booked_before_the_window_is_a_new_rollback_not_a_join() -> None:
    # Its old writes cannot land any more (an hour on), and a join would count nothing now.
    old = [Slot("shop/a/1", NOW - HOUR - timedelta(seconds=1), ("d1",))]
    full = [Slot("shop/b/1", NOW, ("d2",)), Slot("shop/c/1", NOW, ("d3",))]
    slots, [answer] = apply(old + full[:1], [book("shop/a/1", "d4")])
    assert answer.admitted and answer.counted == 1
    assert slots == [full[0], Slot("shop/a/1", NOW, ("d4",))]
    _, [refused] = apply(old + full, [book("shop/a/1", "d4")])
    assert not refused.admitted and refused.counted == 2


def test_a_joined_slot_counts_from_its_latest_decision() -> None:
    # The earlier decision's write may fail for certain and be released; the later one's lands.
    late = NOW + timedelta(seconds=40)
    slots, _ = apply([], [book("shop/a/1", "dA"), book("shop/a/1", "dB", at=late)])
    slots, _ = apply(slots, [Release("shop/a/1", "dA")])
    assert slots == [Slot("shop/a/1", late, ("dB",))]
    _, [refused] = apply(
        slots, [book("shop/c/1", "dC", at=NOW + HOUR + timedelta(seconds=1), limit=1)]
    )
    assert not refused.admitted


def test_a_release_in_the_same_put_frees_its_slot_for_a_booking_queued_before_it() -> None:
    full = [Slot("shop/a/1", NOW, ("dA",))]
    slots, answers = apply(full, [book("shop/b/1", "dB", limit=1), Release("shop/a/1", "dA")])
    assert answers == [Verdict(admitted=True, counted=0), None]
    assert [s.key for s in slots] == ["shop/b/1"]


def test_a_booking_from_a_later_clock_counted_first_drops_no_slot_another_still_counts() -> None:
    old = [Slot("shop/a/1", NOW, ("dA",))]
    late = NOW + HOUR + timedelta(milliseconds=3)  # its window no longer holds a
    early = NOW + HOUR - timedelta(milliseconds=3)  # its window still does
    slots, answers = apply(
        old, [book("shop/x/1", "dX", at=late, limit=2), book("shop/y/1", "dY", at=early, limit=2)]
    )
    assert answers == [Verdict(admitted=True, counted=0), Verdict(admitted=False, counted=2)]
    assert [s.key for s in slots] == ["shop/a/1", "shop/x/1"]


def test_a_replica_with_a_fast_clock_still_counts_the_others_rollbacks() -> None:
    """Each replica prunes by its own clock; the ledger counts from circuit_window plus
    max_clock_skew back, so a clock 120 s ahead neither forgets nor erases a slot that is
    still inside the true window."""
    settings = Settings(max_rollbacks=1)  # circuit_window 1 h, max_clock_skew 300 s

    def at(when: datetime, key: str, decision_id: str) -> Book:
        since = ledger_since(settings, when)
        return Book(key=key, decision_id=decision_id, at=when, since=since, limit=1)

    slots, [first] = apply([], [at(NOW, "shop/a/1", "dA")])  # pod A, true time NOW
    fast = NOW + HOUR - timedelta(seconds=60) + timedelta(seconds=120)  # pod B, 59 min later
    slots, [second] = apply(slots, [at(fast, "shop/b/1", "dB")])
    assert first.admitted and not second.admitted
    assert [s.key for s in slots] == ["shop/a/1"]


def test_a_slot_round_trips_through_its_annotation_with_microseconds() -> None:
    slot = Slot("shop/a/1", NOW + timedelta(microseconds=123456), ("d1", "d2"))
    text = json.dumps([slot.as_json()])
    assert parse_slots(text) == [slot]
    assert parse_slots(None) == [] and parse_slots("") == []


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "{}",
        '[{"key": "a"}]',
        '[{"key": 1, "at": "2026-12-04T12:00:00Z", "ids": []}]',
        '[{"key": "a", "at": "yesterday", "ids": []}]',
        '[{"key": "a", "at": "2026-12-04T12:00:00Z", "ids": "d1"}]',
        '[{"key": "a", "at": 5, "ids": []}]',
        '[{"key": "a", "at": "2026-12-04T12:00:00Z", "ids": [1]}]',
        '["a"]',
        "[" * 100000 + "]" * 100000,
    ],
    ids=range(10),
)
def test_an_annotation_that_is_not_a_list_of_slots_is_unreadable_never_empty(text: str) -> None:
    with pytest.raises(LedgerUnreadable, match=ANNOTATION_LEDGER):
        parse_slots(text)


# -- on the sandbox ------------------------------------------------------------------------------
@pytest.fixture
def replicas(sandbox: SandboxHandle) -> tuple[Ledger, Ledger]:
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )

    def replica() -> Ledger:
        return Ledger(
            cluster=Cluster(sandbox.api_client(), timeout_seconds=5),
            namespace=NAMESPACE,
            name=NAME,
        )

    return replica(), replica()


def lease(sandbox: SandboxHandle) -> dict[str, object]:
    client = Cluster(sandbox.api_client(), timeout_seconds=5)
    return client.get_lease(NAMESPACE, NAME)


def test_the_lease_is_created_on_the_first_booking_and_holds_the_slots(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger]
) -> None:
    one, two = replicas
    assert one.slots() == []
    assert one.book(book("shop/a/1", "d1")).admitted
    assert two.book(book("shop/b/1", "d2")).admitted  # its first write meets the created Lease
    refused = one.book(book("shop/c/1", "d3"))
    assert not refused.admitted and refused.counted == 2
    annotation = lease(sandbox)["metadata"]["annotations"][ANNOTATION_LEDGER]  # type: ignore[index]
    assert [s["ids"] for s in json.loads(annotation)] == [["d1"], ["d2"]]
    two.release("d1", "shop/a/1")  # a 409 on d1's write, seen by the other replica
    assert [s.key for s in one.slots()] == ["shop/b/1"]
    assert one.book(book("shop/c/1", "d3")).admitted


def test_two_replicas_booking_at_once_admit_exactly_the_limit(
    replicas: tuple[Ledger, Ledger],
) -> None:
    one, two = replicas
    admitted = race(one, two, bookings=24, limit=5)
    assert admitted.count(True) == 5
    assert len(one.slots()) == 5
    assert one.conflicts >= 1, "the stale version met no 409"


def test_an_unreadable_lease_refuses_every_booking_and_names_itself(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger]
) -> None:
    one, _ = replicas
    assert one.book(book("shop/a/1", "d1")).admitted
    client = Cluster(sandbox.api_client(), timeout_seconds=5)
    broken = lease(sandbox)
    broken["metadata"]["annotations"][ANNOTATION_LEDGER] = "[not json"  # type: ignore[index]
    client.replace_lease(broken)
    fresh = Ledger(cluster=client, namespace=NAMESPACE, name=NAME)
    with pytest.raises(LedgerUnreadable, match="no rollback can be counted"):
        fresh.book(book("shop/b/1", "d2"))
    # The replica that wrote last meets the edit as a 409 and reads it too.
    with pytest.raises(LedgerUnreadable):
        one.book(book("shop/b/1", "d2"))


def test_gates_of_pods_with_a_store_each_are_held_to_the_limit_by_the_ledger(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger], tmp_path: Path
) -> None:
    """The durable gate of two pods, a SQLite file each, one ledger Lease between them."""
    settings = Settings(max_rollbacks=2)
    stores = [SqliteStore(tmp_path / "a.sqlite"), SqliteStore(tmp_path / "b.sqlite")]
    gate_a, gate_b = (
        DurableGate(settings=settings, audit=store, ledger=ledger)
        for store, ledger in zip(stores, replicas, strict=True)
    )

    def judge(state: GateState) -> Result:
        return decide(Table(gate=state, settings=settings))  # web-2 at resourceVersion 7

    first, _ = gate_a.admit(claim("d-a1", "web"), judge)
    second, held = gate_a.admit(claim("d-a2", "api"), judge)
    assert isinstance(first, Act) and isinstance(second, Act) and held is not None
    # Pod B's own store has counted nothing; the ledger has counted both.
    refused, slot = gate_b.admit(claim("d-b1", "db"), judge)
    assert isinstance(refused, Skip) and refused.reason == "circuit_open" and slot is None
    assert f"Lease {NAMESPACE}/{NAME}" in refused.detail
    assert stores[1].open_intents() == []  # its write-ahead intent went with the refusal
    # d-a2's write met a 409: its intent and its slot are gone, and the slot is free for any pod.
    held.release()
    assert [i.id for i in stores[0].open_intents()] == ["d-a1"]
    admitted, _ = gate_b.admit(claim("d-b2", "db"), judge)
    assert isinstance(admitted, Act), admitted


def test_the_console_counts_the_other_pods_bookings(
    replicas: tuple[Ledger, Ledger], make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(circuit_ledger={"mode": "on"}, max_rollbacks=2)
    other, _ = replicas  # another pod: nothing of it is in this pod's audit
    now = datetime.now(UTC)
    for name in ("a", "b"):
        booking = Book(key=f"shop/{name}/1", decision_id=name, at=now, since=now - HOUR, limit=2)
        assert other.book(booking).admitted
    state = circuit_state(harness.service, now=now)
    assert state.active and state.summary.startswith("open: 2 of 2 rollbacks"), state
    # Counted as the ledger counts: circuit_window plus max_clock_skew (300 s).
    assert state.ends == now + HOUR + timedelta(seconds=300)


def test_readyz_says_when_no_rollback_can_be_booked(
    sandbox: SandboxHandle, make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(circuit_ledger={"mode": "on", "namespace": "nowhere"})
    answer = harness.client.get("/readyz")
    assert answer.status_code == 503
    assert (
        "namespace 'nowhere' (circuit_ledger.namespace) does not exist"
        in answer.get_json()["error"]
    )
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nowhere"}}
    )
    assert harness.client.get("/readyz").status_code == 200  # the first booking will create it
    Cluster(sandbox.api_client(), timeout_seconds=5).create_lease(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": NAME,
                "namespace": "nowhere",
                "annotations": {ANNOTATION_LEDGER: "{"},
            },
            "spec": {},
        }
    )
    answer = harness.client.get("/readyz")
    assert answer.status_code == 503 and "no rollback can be counted" in answer.get_json()["error"]


def test_the_console_names_slots_dated_beyond_the_skew_ahead(
    replicas: tuple[Ledger, Ledger], make_harness: Callable[..., Harness]
) -> None:
    harness = make_harness(circuit_ledger={"mode": "on"}, max_rollbacks=3)
    other, _ = replicas
    now = datetime.now(UTC).replace(microsecond=0)
    near = now + timedelta(seconds=299)  # within max_clock_skew (300 s): not named
    far = now + timedelta(hours=5)  # dated by a clock 5 hours fast (or by hand)
    for name, at in (("a", near), ("b", far)):
        booking = Book(key=f"shop/{name}/1", decision_id=name, at=at, since=now - HOUR, limit=3)
        assert other.book(booking).admitted
    state = circuit_state(harness.service, now=now)
    assert not state.active and state.summary.startswith("closed: 2 of 3 rollbacks"), state
    assert "1 of them dated more than max_clock_skew 300s ahead of this pod's clock" in (
        state.summary
    )
    # It counts until its own date has left the window as this pod counts it.
    until = far + HOUR + timedelta(seconds=300)
    assert f"count until {until.strftime('%Y-%m-%d %H:%M:%S UTC')}" in state.summary


@pytest.mark.parametrize("hours", [5, -5])
def test_a_process_whose_clock_is_off_the_api_servers_books_nothing(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger], hours: int
) -> None:
    """Each process prunes the Lease by its own clock: one 5 hours fast would erase every other
    process's slots, one 5 hours slow would book slots the others forget early. Its clock is
    compared with the API server's (the Date header of its answers) before anything is written."""
    good, _ = replicas
    now = datetime.now(UTC)
    assert good.book(Book(key="shop/a/1", decision_id="a", at=now, since=now - HOUR, limit=2))
    wrong = off_clock_ledger(
        sandbox.api_client(), namespace=NAMESPACE, name=NAME, off=timedelta(hours=hours)
    )
    at = now + timedelta(hours=hours)
    with pytest.raises(ClockOff, match="the API server's") as refused:
        wrong.book(Book(key="shop/b/1", decision_id="b", at=at, since=at - HOUR, limit=2))
    assert ("ahead of" if hours > 0 else "behind") in str(refused.value)
    assert [s.ids for s in good.slots()] == [("a",)]  # nothing erased, nothing booked
    problem = wrong.problem()
    assert problem is not None and "more than 149s (half of max_clock_skew, less 1s" in problem
    assert good.problem() is None


def test_readyz_says_so_when_the_clock_is_off_before_any_lease_exists(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger]
) -> None:
    """A fresh install (no Lease yet) with a wrong clock: nothing can ever be booked, so the pod
    is unready, from the Date of the 404 its check met."""
    wrong = off_clock_ledger(
        sandbox.api_client(), namespace=NAMESPACE, name=NAME, off=timedelta(hours=5)
    )
    problem = wrong.problem()
    assert problem is not None and "18000s ahead of the API server's" in problem
    assert replicas[0].problem() is None  # the same cluster, a right clock: ready


def test_a_clock_within_half_the_skew_books_as_any_other(
    sandbox: SandboxHandle, replicas: tuple[Ledger, Ledger]
) -> None:
    good, _ = replicas
    slow = off_clock_ledger(
        sandbox.api_client(), namespace=NAMESPACE, name=NAME, off=-timedelta(seconds=140)
    )
    now = datetime.now(UTC)
    assert good.book(Book(key="shop/a/1", decision_id="a", at=now, since=now - HOUR, limit=2))
    at = now - timedelta(seconds=140)
    assert slow.book(Book(key="shop/b/1", decision_id="b", at=at, since=at - HOUR, limit=2))
    assert sorted(s.ids for s in good.slots()) == [("a",), ("b",)]
    assert slow.problem() is None
