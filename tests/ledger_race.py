"""Two circuit ledgers (two "replicas") booking at once: the race the sandbox and the real API
server tests of webhook/ledger.py both run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.kube import Cluster
from webhook.ledger import Book, Ledger


def book(key: str, decision_id: str, *, limit: int, at: datetime | None = None) -> Book:
    when = at or datetime.now(UTC)
    return Book(
        key=key, decision_id=decision_id, at=when, since=when - timedelta(hours=1), limit=limit
    )


def race(one: Ledger, two: Ledger, *, bookings: int = 24, limit: int = 5) -> list[bool]:
    """Each replica writes once first, so the one that wrote first holds a version the other
    has written over since: its first PUT of the race is certain to meet a 409. Then
    `bookings` threads book distinct Deployments through both at once; who was admitted."""
    for ledger, name in ((one, "x"), (two, "y")):
        assert ledger.book(book(f"shop/{name}/1", name, limit=limit)).admitted
        ledger.release(name, f"shop/{name}/1")
    start = threading.Barrier(bookings)
    replicas = (one, two)

    def attempt(i: int) -> bool:
        start.wait()
        key = f"shop/app{i:02d}/7"
        return replicas[i % 2].book(book(key, f"d{i}", limit=limit)).admitted

    with ThreadPoolExecutor(bookings) as pool:
        return list(pool.map(attempt, range(bookings)))


def off_clock_ledger(api_client: Any, *, namespace: str, name: str, off: timedelta) -> Ledger:
    """A ledger whose process clock is `off` from the API server's (its own client)."""
    return Ledger(
        cluster=Cluster(api_client, timeout_seconds=10, clock=lambda: datetime.now(UTC) + off),
        namespace=namespace,
        name=name,
    )
