"""The gate: the circuit breaker and the dry-run duplicate claims, checked and reserved at once.

The seam (what the durable audit's cross-replica implementation provides as well):

    gate.admit(claim, judge) -> (result, reservation | None)

Under the gate's lock (or transaction) it reads the `GateState` for the claim, calls
`judge(state)` (the pure policy, run again with that state) and, when the answer is still `Act`,
reserves the slot: the rollback then counts for every other decision while it is written. The
write itself happens outside the lock, so rollbacks of different Deployments run in parallel;
the decider calls `reservation.commit()` once written and `reservation.release()` when the write
met a 409 or failed, which frees the slot.

`InProcessGate` is this process's implementation: its counts are the max of the audit's, its
own decisions (in flight included) and the cluster's last-action annotations (other replicas).
A second rollback of the same Deployment waits for the one being written and is then decided
again (it would meet a 409 anyway), so a burst never holds two slots for one Deployment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from webhook.config import Settings
from webhook.contract import Outcome, Source
from webhook.policy import Act, GateState, Redecide, Result

# How long a decision waits for another decision of this process writing the same Deployment.
WRITER_WAIT_SECONDS = 30.0


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


class OutcomeLedger(Protocol):
    """The audit's side of the gate (webhook.audit.AuditStore)."""

    def count_outcomes_since(self, outcomes: Sequence[str], since: datetime) -> int: ...

    def find_previous(
        self,
        *,
        namespace: str,
        deployment: str,
        from_replicaset: str,
        outcomes: Sequence[str],
        source: str,
        since: datetime,
    ) -> str | None: ...


class Kept:
    """A reservation nothing can undo (a dry run's claim, or nothing reserved)."""

    def commit(self) -> None:
        pass

    def release(self) -> None:
        pass


@dataclass(eq=False)
class _Acted:
    at: datetime
    outcome: Outcome


class InProcessGate:
    """The gate for one process: exact within it, as exact across replicas as its inputs."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: OutcomeLedger,
        elsewhere: Callable[[datetime], int],
        writer_wait_seconds: float = WRITER_WAIT_SECONDS,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.elsewhere = elsewhere
        self.writer_wait_seconds = writer_wait_seconds
        self._cond = threading.Condition()
        # Decided in this process but perhaps not yet in the audit (recorded after deciding):
        # acted-on times for the breaker, dry-run claims for duplicates. Pruned by age.
        self._acted: list[_Acted] = []
        self._claimed: dict[tuple[str, str, str], tuple[datetime, str]] = {}
        self._writing: set[tuple[str, str]] = set()

    def admit(
        self, claim: Claim, judge: Callable[[GateState], Result]
    ) -> tuple[Result, Reservation | None]:
        deployment = (claim.namespace, claim.deployment)
        with self._cond:
            if not claim.dry_run and deployment in self._writing:
                self._cond.wait_for(
                    lambda: deployment not in self._writing, timeout=self.writer_wait_seconds
                )
                return Redecide("another decision of this process wrote this Deployment"), None
            result = judge(self._state(claim))
            if not isinstance(result, Act):
                return result, None
            if claim.dry_run:
                if claim.counts_dry_run:
                    key = (claim.namespace, claim.deployment, claim.from_replicaset)
                    self._claimed[key] = (claim.at, claim.decision_id)
                    self._acted.append(_Acted(claim.at, Outcome.DRY_RUN))
                return result, Kept()
            entry = _Acted(claim.at, Outcome.ROLLED_BACK)
            self._acted.append(entry)
            self._writing.add(deployment)
            return result, _Writing(self, entry, deployment)

    def _state(self, claim: Claim) -> GateState:
        window_start = claim.at - timedelta(seconds=int(self.settings.circuit_window))
        # A dry run previews the breaker too: its would-be rollbacks count like real ones.
        counted = [Outcome.ROLLED_BACK]
        if claim.counts_dry_run:
            counted.append(Outcome.DRY_RUN)
        self._acted = [a for a in self._acted if a.at >= window_start]
        recorded = self.ledger.count_outcomes_since(counted, window_start)
        in_memory = sum(1 for a in self._acted if a.outcome in counted)
        # Other replicas' rollbacks, from the cluster's last-action annotations.
        rollbacks = max(recorded, in_memory, self.elsewhere(window_start))
        if rollbacks >= self.settings.max_rollbacks or not claim.counts_dry_run:
            return GateState(rollbacks=rollbacks)
        return GateState(rollbacks=rollbacks, duplicate_of=self._earlier(claim))

    def _earlier(self, claim: Claim) -> str | None:
        since = claim.at - timedelta(seconds=int(self.settings.cooldown))
        self._claimed = {k: v for k, v in self._claimed.items() if v[0] >= since}
        claimed = self._claimed.get((claim.namespace, claim.deployment, claim.from_replicaset))
        if claimed:
            return claimed[1]
        return self.ledger.find_previous(
            namespace=claim.namespace,
            deployment=claim.deployment,
            from_replicaset=claim.from_replicaset,
            outcomes=(Outcome.DRY_RUN,),
            source=Source.ALERTMANAGER,
            since=since,
        )

    def _finish(self, entry: _Acted, deployment: tuple[str, str], *, kept: bool) -> None:
        with self._cond:
            if not kept and entry in self._acted:
                self._acted.remove(entry)
            self._writing.discard(deployment)
            self._cond.notify_all()


class _Writing:
    """The slot of a rollback being written."""

    def __init__(self, gate: InProcessGate, entry: _Acted, deployment: tuple[str, str]) -> None:
        self._gate, self._entry, self._deployment = gate, entry, deployment

    def commit(self) -> None:
        self._gate._finish(self._entry, self._deployment, kept=True)

    def release(self) -> None:
        self._gate._finish(self._entry, self._deployment, kept=False)
