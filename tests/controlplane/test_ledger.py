"""The circuit ledger (webhook/ledger.py) on the real API server: its conditional PUTs are what
make the breaker exact across replicas, so they are proven against the apiserver's own
optimistic concurrency, not only the sandbox's.

- two "replicas" (each its own client and connection pool) booking 24 rollbacks at once with a
  limit of 5: exactly 5 admitted, and some PUTs met a real 409 and counted again;
- a Lease changed by another writer after our last write (kubectl annotate): our next booking
  meets the 409, reads the Lease again and counts what is there now;
- a process whose clock is an hour off the apiserver's (its answers' Date header) books nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from lab.controlplane import ControlPlane
from tests.controlplane.support import get_json, kubectl
from tests.ledger_race import book, off_clock_ledger, race
from webhook.contract import ANNOTATION_LEDGER
from webhook.kube import Cluster
from webhook.ledger import ClockOff, Ledger

pytestmark = pytest.mark.controlplane

NAME = "rollback-webhook-rollbacks"


def ledger_on(plane: ControlPlane, namespace: str) -> Ledger:
    return Ledger(
        cluster=Cluster(plane.api_client(), timeout_seconds=10), namespace=namespace, name=NAME
    )


def test_two_replicas_booking_at_once_admit_exactly_the_limit(
    controlplane: ControlPlane, namespace: str
) -> None:
    replicas = (ledger_on(controlplane, namespace), ledger_on(controlplane, namespace))
    one, two = replicas
    admitted = race(one, two, bookings=24, limit=5)
    assert admitted.count(True) == 5
    lease = get_json(controlplane, "-n", namespace, "lease", NAME)
    slots = json.loads(lease["metadata"]["annotations"][ANNOTATION_LEDGER])
    assert len(slots) == 5
    assert one.conflicts >= 1, "the stale version met no 409"


def test_a_lease_changed_by_another_writer_is_read_again_before_counting(
    controlplane: ControlPlane, namespace: str
) -> None:
    ours = ledger_on(controlplane, namespace)
    assert ours.book(book("shop/a/1", "d1", limit=2)).admitted
    # Another replica's booking, written as that replica would (through kubectl here).
    lease = get_json(controlplane, "-n", namespace, "lease", NAME)
    slots = json.loads(lease["metadata"]["annotations"][ANNOTATION_LEDGER])
    slots.append({"key": "shop/b/1", "at": slots[0]["at"], "ids": ["d-other"]})
    kubectl(
        controlplane,
        "-n",
        namespace,
        "annotate",
        "lease",
        NAME,
        "--overwrite",
        f"{ANNOTATION_LEDGER}={json.dumps(slots)}",
    )
    refused = ours.book(book("shop/c/1", "d2", limit=2))
    assert not refused.admitted and refused.counted == 2
    # Its PUT from our last write met the 409; counted again, it wrote nothing.
    after = get_json(controlplane, "-n", namespace, "lease", NAME)
    assert "d2" not in after["metadata"]["annotations"][ANNOTATION_LEDGER]


def test_a_process_whose_clock_is_off_the_apiservers_books_nothing(
    controlplane: ControlPlane, namespace: str
) -> None:
    ours = ledger_on(controlplane, namespace)
    assert ours.book(book("shop/a/1", "d1", limit=2)).admitted
    offset = ours.cluster.clock_offset()  # same machine, same clock: the header's second
    assert offset is not None and abs(offset.total_seconds()) < 2, offset
    fast = off_clock_ledger(
        controlplane.api_client(), namespace=namespace, name=NAME, off=timedelta(hours=1)
    )
    with pytest.raises(ClockOff, match="3600s ahead of the API server's"):
        fast.book(book("shop/b/1", "d2", limit=2))
    lease = get_json(controlplane, "-n", namespace, "lease", NAME)
    slots = json.loads(lease["metadata"]["annotations"][ANNOTATION_LEDGER])
    assert [s["ids"] for s in slots] == [["d1"]]
