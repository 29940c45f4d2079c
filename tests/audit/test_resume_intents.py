"""A resume's write-ahead intent on both stores: one open per Deployment, however many clients
(replicas) ask at once, and a new one once the last is closed by its record."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from tests.audit.conftest import MakeStore
from webhook.audit import IntentKind, IntentRow, IntentState
from webhook.contract import Outcome, Source
from webhook.decision import Decision

AT = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def intent(decision_id: str, deployment: str = "web") -> IntentRow:
    return IntentRow(
        id=decision_id,
        time=AT.isoformat(),
        kind=IntentKind.RESUME,
        state=IntentState.OPEN,
        namespace="shop",
        deployment=deployment,
        source=Source.RESUME,
        planned={"pause_audit_id": "d-earlier"},
        decision={"id": decision_id, "outcome": Outcome.RESUMED},
    )


def test_one_open_resume_per_deployment_and_a_new_one_once_it_is_recorded(
    make_store: MakeStore,
) -> None:
    store = make_store()
    assert store.open_intent(intent("d-1")) is None
    assert make_store().open_intent(intent("d-2")) == "d-1"  # another replica
    assert store.open_intent(intent("d-3", deployment="api")) is None  # another Deployment
    resumed = Decision(
        id="d-1",
        time=AT,
        source=Source.RESUME,
        outcome=Outcome.RESUMED,
        namespace="shop",
        deployment="web",
    )
    store.record(resumed)  # closes its intent
    assert store.open_intent(intent("d-4")) is None
    assert sorted(i.id for i in store.open_intents()) == ["d-3", "d-4"]


def test_clients_racing_for_the_same_deployment_open_one_intent(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(6)]
    for store in stores:
        store.prepare()
    start = threading.Barrier(len(stores))
    answers: dict[int, str | None] = {}

    def ask(index: int) -> None:
        start.wait()
        answers[index] = stores[index].open_intent(intent(f"d-{index}"))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [i for i, running in answers.items() if running is None]
    assert len(answers) == len(stores) and len(winners) == 1, answers
    assert {running for running in answers.values() if running} == {f"d-{winners[0]}"}
    assert [i.id for i in stores[0].open_intents()] == [f"d-{winners[0]}"]
