"""Which revisions a trigger alert reached, read from the audit in one pass per namespace.

The health tracker must not stamp a revision that a trigger alert was received for since it
became current. Asking the audit once per Deployment (paging through every row of the
namespace each time) costs Deployments x rows a round; this reads the namespace's rows since
the earliest activation among the round's candidates once, newest first, and keeps for each
ReplicaSet and each Deployment the newest row that implicates it, so each Deployment's
question is a dictionary lookup: O(Deployments + rows) a round.

`implicates` is the rule, row by row; `AlertIndex` answers it for every revision at once and
gives the same answer (tests/tracker/test_alert_index.py checks both against each other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from webhook import contract

# Rows read per audit page: large, since every row of the window is read once anyway.
PAGE = 1000


class DecisionQuery(Protocol):
    """The part of the audit the index reads (AuditStore.query)."""

    def query(
        self,
        *,
        namespace: str | None = None,
        since: datetime | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]: ...


def pod_of(pod: str, replicaset: str) -> bool:
    """Whether `pod` is one of `replicaset`'s (ReplicaSet pods are <replicaset>-<suffix>)."""
    return pod.rsplit("-", 1)[0] == replicaset if "-" in pod else False


def implicates(decision: dict[str, Any], *, deployment: str, replicaset: str) -> bool:
    """Whether an audited decision is about `replicaset` (the current revision of `deployment`).

    Its labels name the ReplicaSet or one of its pods; or they name neither and the decision
    resolved to it (`from_replicaset`) or names only the Deployment (whose current revision,
    during the period asked about, was this one). A decision whose labels name another
    ReplicaSet is about that one, even though from_replicaset records the current revision.
    """
    labels = decision.get("labels") or {}
    named_rs, named_pod = labels.get("replicaset"), labels.get("pod")
    if named_rs:
        return bool(named_rs == replicaset)
    if named_pod:
        return pod_of(str(named_pod), replicaset)
    if decision.get("from_replicaset") == replicaset:
        return True
    return bool(labels.get("deployment") == deployment)


def _time(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass
class AlertIndex:
    """The newest implicating row per ReplicaSet and per Deployment of one namespace."""

    # ReplicaSet name -> (time, decision id) of the newest row naming it, one of its pods,
    # or (naming neither) resolved to it.
    replicasets: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # Deployment name -> the newest row naming neither a ReplicaSet nor a pod.
    deployments: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    rows_read: int = 0

    def add(self, row: dict[str, Any]) -> None:
        """Index one audited decision (resolved alerts never count)."""
        self.rows_read += 1
        if row.get("reason") == contract.SkipReason.RESOLVED:
            return
        labels = row.get("labels") or {}
        entry = (_time(row["time"]), str(row["id"]))
        named_rs, named_pod = labels.get("replicaset"), labels.get("pod")
        if named_rs:
            _newest(self.replicasets, str(named_rs), entry)
            return
        if named_pod:
            if "-" in str(named_pod):
                _newest(self.replicasets, str(named_pod).rsplit("-", 1)[0], entry)
            return
        if row.get("from_replicaset"):
            _newest(self.replicasets, str(row["from_replicaset"]), entry)
        if labels.get("deployment"):
            _newest(self.deployments, str(labels["deployment"]), entry)

    def alert_since(self, *, deployment: str, replicaset: str, since: datetime) -> str | None:
        """Id of the newest decision at or after `since` about this revision, if any."""
        found = [
            entry
            for entry in (self.replicasets.get(replicaset), self.deployments.get(deployment))
            if entry is not None and entry[0] >= since
        ]
        return max(found)[1] if found else None


def _newest(index: dict[str, tuple[datetime, str]], key: str, entry: tuple[datetime, str]) -> None:
    current = index.get(key)
    if current is None or entry > current:
        index[key] = entry


def read_index(audit: DecisionQuery, *, namespace: str, since: datetime) -> AlertIndex:
    """One pass over the namespace's decisions at or after `since`, newest first."""
    index = AlertIndex()
    before: str | None = None
    while True:
        rows = audit.query(namespace=namespace, since=since, before_id=before, limit=PAGE)
        for row in rows:
            index.add(row)
        if len(rows) < PAGE:
            return index
        before = str(rows[-1]["id"])
