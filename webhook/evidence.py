"""Health evidence for revisions, and the choice of the last healthy revision (README).

Evidence sources are asked strongest first; the first definite answer (healthy or unhealthy)
decides a candidate, "unknown" passes it to the next source. A source is any object with a
`name` and a `judge(...)` method, so Prometheus evidence plugs in without touching the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from webhook.alerts import Alert
from webhook.contract import Confirmation, Health
from webhook.revisions import (
    Obj,
    Revision,
    activation_time,
    equal_ignore_hash,
    template_written_at,
)

HEALTHY = Health.HEALTHY
UNHEALTHY = Health.UNHEALTHY
UNKNOWN = Health.UNKNOWN


@dataclass(frozen=True)
class Verdict:
    source: str
    verdict: str  # healthy | unhealthy | unknown
    detail: str


@dataclass(frozen=True)
class Case:
    """One revision to judge, with what every source may need to judge it."""

    revision: Revision
    successor: Revision | None  # the next revision by number, None for the newest
    deployment: Obj
    min_healthy_seconds: int
    # When the current revision became current: every other one stopped being current by then.
    current_since: datetime | None = None


@dataclass(frozen=True)
class ConfirmResult:
    """Prometheus' answer when asked whether an alert still holds at decision time."""

    verdict: Confirmation
    detail: str


class Confirmer(Protocol):
    """Re-evaluates an alert's expression now (webhook.prom implements it)."""

    def __call__(self, alert: Alert) -> ConfirmResult: ...


class EvidenceSource(Protocol):
    name: str

    def judge(self, case: Case) -> Verdict: ...


class StampEvidence:
    """Rule 1: the health tracker's `auto-rollback/healthy-since` stamp on the ReplicaSet."""

    name = "stamp"

    def judge(self, case: Case) -> Verdict:
        revision = case.revision
        since = revision.healthy_since
        if since is None:
            return Verdict(self.name, UNKNOWN, "no healthy-since stamp")
        # The tracker stamps a revision while it is current, with a time no later than that
        # round: a stamp after the revision stopped being current (a future one, say, written
        # by hand) is no account of its time as current, and would outlast every alert below.
        successor = case.successor
        ended = replaced_at(successor, case.deployment) if successor else None
        if successor is not None and ended is None:
            # When it stopped being current is unknown (its successor was re-adopted): no
            # later than the current template was written, or the current revision began.
            ended = template_written_at(case.deployment) or case.current_since
        if successor is not None and ended is not None and since > ended:
            return Verdict(
                self.name,
                UNKNOWN,
                f"stamp {since.isoformat()} is after revision {successor.number} replaced it at "
                f"{ended.isoformat()}: not a stamp of its own time as current",
            )
        alerted = revision.alerted_at
        if alerted is not None and alerted > since:
            return Verdict(
                self.name,
                UNKNOWN,
                f"stamp {since.isoformat()} predates a trigger alert at {alerted.isoformat()}",
            )
        return Verdict(self.name, HEALTHY, f"stamped healthy since {since.isoformat()}")


class ClusterRuleEvidence:
    """Rule 3: created at least min_healthy_seconds before the next revision, never re-adopted."""

    name = "cluster"

    def judge(self, case: Case) -> Verdict:
        revision, successor = case.revision, case.successor
        deployment, min_healthy_seconds = case.deployment, case.min_healthy_seconds
        if revision.readopted:
            history = ",".join(str(h) for h in revision.history)
            return Verdict(
                self.name, UNKNOWN, f"re-adopted (revision-history {history}): age proves nothing"
            )
        if successor is None:
            return Verdict(self.name, UNKNOWN, "no later revision to measure against")
        until = replaced_at(successor, deployment)
        if until is None:
            return Verdict(
                self.name,
                UNKNOWN,
                f"revision {successor.number} after it was re-adopted: when it replaced this one "
                "is unknown",
            )
        lived = until - revision.created
        needed = timedelta(seconds=min_healthy_seconds)
        seconds = int(lived.total_seconds())
        if lived >= needed:
            return Verdict(
                self.name,
                HEALTHY,
                f"ran {seconds}s before revision {successor.number} (>= {min_healthy_seconds}s)",
            )
        return Verdict(
            self.name,
            UNKNOWN,
            f"ran only {seconds}s before revision {successor.number} (< {min_healthy_seconds}s)",
        )


@dataclass(frozen=True)
class Candidate:
    """One revision as the target choice saw it."""

    revision: Revision
    verdict: str  # current | healthy | bad | unhealthy | unproven | same_template | newer
    reason: str
    evidence: tuple[Verdict, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision.number,
            "replicaset": self.revision.name,
            "verdict": self.verdict,
            "reason": self.reason,
            "evidence": [v.__dict__ for v in self.evidence],
        }


@dataclass(frozen=True)
class TargetChoice:
    target: Revision | None
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def explain(self) -> str:
        """One line for the decision detail: why each newer candidate was passed over."""
        parts = [f"r{c.revision.number} {c.verdict} ({c.reason})" for c in self.candidates]
        return "; ".join(parts)


def alerted_while_current(revision: Revision) -> datetime | None:
    """The `auto-rollback/alerted-at` of a revision current only once (never re-adopted): the
    receiver writes it while the revision is current, for an alert that started after it
    became current, so it falls in that one period. None otherwise (a re-adopted revision's
    mark may be of an earlier period: StampEvidence weighs it against a later stamp)."""
    alerted = revision.alerted_at
    if alerted is None or revision.readopted or alerted < revision.created:
        return None
    return alerted


def replaced_at(successor: Revision, deployment: Obj) -> datetime | None:
    """When `successor` became current, i.e. when its predecessor stopped being current.

    Its ReplicaSet's creation time, unless it was re-adopted: then its creation says nothing,
    and only for the current revision is the activation known (revisions.activation_time).
    None when it cannot be known.
    """
    if not successor.readopted:
        return successor.created
    template = deployment.get("spec", {}).get("template", {})
    if equal_ignore_hash(successor.template, template):
        return activation_time(successor, deployment)
    return None


def _successor(revision: Revision, revisions: Sequence[Revision]) -> Revision | None:
    later = [r for r in revisions if r.number > revision.number]
    return min(later, key=lambda r: r.number) if later else None


def judge_revision(
    revision: Revision,
    *,
    revisions: Sequence[Revision],
    deployment: Obj,
    sources: Sequence[EvidenceSource],
    min_healthy_seconds: int,
    current_since: datetime | None = None,
) -> tuple[str, str, tuple[Verdict, ...]]:
    """(verdict, reason, evidence asked) for a non-current, unmarked revision."""
    asked: list[Verdict] = []
    successor = _successor(revision, revisions)
    case = Case(revision, successor, deployment, min_healthy_seconds, current_since)
    for source in sources:
        verdict = source.judge(case)
        asked.append(verdict)
        if verdict.verdict == HEALTHY:
            return HEALTHY, f"{verdict.source}: {verdict.detail}", tuple(asked)
        if verdict.verdict == UNHEALTHY:
            return UNHEALTHY, f"{verdict.source}: {verdict.detail}", tuple(asked)
    reason = "; ".join(f"{v.source}: {v.detail}" for v in asked) or "no evidence sources"
    return "unproven", reason, tuple(asked)


def choose_target(
    *,
    deployment: Obj,
    current: Revision,
    revisions: Sequence[Revision],
    sources: Sequence[EvidenceSource],
    min_healthy_seconds: int,
) -> TargetChoice:
    """The newest revision older than `current` that is not bad-marked, differs from the
    current template and has health evidence; candidates newest first, with their verdicts."""
    seen: list[Candidate] = []
    current_since = activation_time(current, deployment)
    for revision in sorted(revisions, key=lambda r: r.number, reverse=True):
        if revision.number >= current.number:
            continue
        if revision.bad_mark is not None:
            seen.append(Candidate(revision, "bad", "marked auto-rollback/bad-revision"))
            continue
        alerted = alerted_while_current(revision)
        if alerted is not None:
            # Its one time as current had a trigger alert: no evidence outweighs that (the
            # tracker stamps no period with an alert in it; an alert delivered after a stamp,
            # or to a replica of its own, still counts here).
            seen.append(
                Candidate(
                    revision,
                    UNHEALTHY,
                    f"a trigger alert at {alerted.isoformat()} while it was current "
                    "(auto-rollback/alerted-at)",
                )
            )
            continue
        if equal_ignore_hash(revision.template, current.template):
            seen.append(Candidate(revision, "same_template", "template equals the current one"))
            continue
        verdict, reason, asked = judge_revision(
            revision,
            revisions=revisions,
            deployment=deployment,
            sources=sources,
            min_healthy_seconds=min_healthy_seconds,
            current_since=current_since,
        )
        candidate = Candidate(revision, verdict, reason, asked)
        seen.append(candidate)
        if verdict == HEALTHY:
            return TargetChoice(revision, tuple(seen))
    return TargetChoice(None, tuple(seen))


class Judgement(Protocol):
    """A verdict with its human sentence (webhook.prom's Evidence and Confirmation)."""

    @property
    def verdict(self) -> str: ...
    @property
    def detail(self) -> str: ...


class RevisionHealthQuery(Protocol):
    """What PrometheusEvidence (webhook.prom) offers; kept structural so this module is pure."""

    def revision_health(
        self, *, namespace: str, deployment: str, replicaset: str, start: datetime, end: datetime
    ) -> Judgement: ...


class AlertQuery(Protocol):
    """Re-evaluating an alert's expression (from its generatorURL) at a time."""

    def confirm(
        self, *, generator_url: str, at: datetime, labels: Mapping[str, str] | None = None
    ) -> Judgement: ...


class PrometheusSource(RevisionHealthQuery, AlertQuery, Protocol):
    """The Prometheus seam: health history for evidence, re-evaluation for confirmation."""

    def reachable(self) -> str | None:
        """None when Prometheus answers, else why not (check-config)."""
        ...

    def close(self) -> None: ...


class PrometheusHistoryEvidence:
    """Rule 2: Prometheus history over the last `min_healthy_seconds` the revision was current.

    The window ends when the next revision's ReplicaSet was created (when this one stopped
    being current). Prometheus down or without data answers "unknown": weaker evidence is
    then asked, and the detail says so.
    """

    name = "prometheus"

    def __init__(self, prometheus: RevisionHealthQuery) -> None:
        self.prometheus = prometheus

    def judge(self, case: Case) -> Verdict:
        revision, successor = case.revision, case.successor
        deployment, min_healthy_seconds = case.deployment, case.min_healthy_seconds
        if successor is None:
            return Verdict(self.name, UNKNOWN, "still current: no finished period to judge")
        end = replaced_at(successor, deployment)
        if end is None:
            return Verdict(self.name, UNKNOWN, "when it stopped being current is unknown")
        start = end - timedelta(seconds=min_healthy_seconds)
        if not revision.readopted and revision.created > start:
            lived = int((end - revision.created).total_seconds())
            return Verdict(
                self.name, UNKNOWN, f"current for only {lived}s (< {min_healthy_seconds}s)"
            )
        evidence = self.prometheus.revision_health(
            namespace=deployment["metadata"]["namespace"],
            deployment=deployment["metadata"]["name"],
            replicaset=revision.name,
            start=start,
            end=end,
        )
        # The verdict is shown under its name ("prometheus: ..."): the detail need not repeat it.
        detail = str(evidence.detail).removeprefix("Prometheus: ")
        return Verdict(self.name, str(evidence.verdict), detail)
