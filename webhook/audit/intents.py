"""The gate's question and answer, and how an intent is settled (values only, no I/O).

The gate is asked once per decision that is about to act: "with this many rollbacks allowed in
this window, and (dry run) no earlier preview of the same bad revision, may this one go?" The
store answers it and, when the answer is yes, records the intent in the same transaction, so
the count that said yes already includes it for every replica that asks next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class GateRule:
    """What a decision must pass before it acts.

    `counted`: the outcomes the circuit breaker counts (rolled_back; dry_run too for a
    dry-run decision from Alertmanager). `duplicate_since`: look for an earlier dry_run of the
    same (namespace, deployment, from_replicaset) since then; None: no duplicate check.
    """

    window_start: datetime
    max_rollbacks: int
    counted: tuple[str, ...]
    duplicate_since: datetime | None = None


@dataclass(frozen=True)
class GateAnswer:
    admitted: bool
    counted: int  # acts in the window before this one (open intents included)
    duplicate_of: str | None = None  # the earlier decision (or open claim) this one repeats

    @property
    def circuit_open(self) -> bool:
        return not self.admitted and self.duplicate_of is None


class SettledBy(StrEnum):
    WORKER = ""
    RECONCILER = "reconciler"
