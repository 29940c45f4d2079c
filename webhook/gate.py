"""The gate: the circuit breaker and the dry-run duplicate claims, checked and reserved at once.

The seam the decider writes through (webhook.durable_gate.DurableGate implements it on the
audit store, exact for every replica that shares it):

    gate.admit(claim, judge) -> (result, reservation | None)

Under the gate's lock (or transaction) it reads the `GateState` for the claim, calls
`judge(state)` (the pure policy, run again with that state) and, when the answer is still `Act`,
reserves the slot: the rollback then counts for every other decision while it is written. The
write itself happens outside the lock, so rollbacks of different Deployments run in parallel;
the decider calls `reservation.commit()` once written and `reservation.release()` when the write
met a 409 or failed, which frees the slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from webhook.policy import GateState, Result


@dataclass(frozen=True)
class Claim:
    """What a decision that passed every other check asks the gate for."""

    namespace: str
    deployment: str
    from_replicaset: str
    decision_id: str
    at: datetime
    dry_run: bool
    counts_dry_run: bool  # an Alertmanager dry run: previews the breaker, claims duplicates
    # The decision's record-to-be (alert and request fields): a durable gate stores it with
    # the write-ahead intent, so whoever settles the intent stores the same record.
    record: Mapping[str, Any] = field(default_factory=dict)


class Reservation(Protocol):
    def commit(self) -> None:
        """The write happened: the slot stays taken."""

    def release(self) -> None:
        """The write did not happen (409, failure): the slot is free again."""


class Gate(Protocol):
    def admit(
        self, claim: Claim, judge: Callable[[GateState], Result]
    ) -> tuple[Result, Reservation | None]: ...


class Kept:
    """A reservation nothing can undo (a dry run's claim, or nothing reserved)."""

    def commit(self) -> None:
        pass

    def release(self) -> None:
        pass
