"""The pure policy core: facts in, a value out. The README's decision table, top to bottom.

`decide(facts)` returns `Skip(reason, detail)`, `Act(plan)` or `Redecide(why)`; it performs no
I/O and imports no I/O module (the import-linter contract in pyproject.toml says so). `Facts` is
a view: webhook.gather implements it over the cluster, reading each fact at most once and only
when the policy asks (so no API call happens before the label checks and the namespace policy
pass, and Prometheus is asked only about alerts that got that far); the table tests in
tests/policy implement it with plain values.

`facts.gate` is None on the first pass: the gate (webhook.gate) then runs `decide` again under
its lock with the breaker and duplicate state, and reserves the slot when the answer is still
Act. Everything else the second pass asks is already memoised, so it is pure and quick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from webhook import contract, names
from webhook.alerts import Alert
from webhook.ask import Request
from webhook.config import Settings
from webhook.contract import AlertStatus, Confirmation, SkipReason, Source
from webhook.evidence import ConfirmResult, TargetChoice
from webhook.gitops import Pause
from webhook.gitops_facts import OwnerFacts
from webhook.optin import opt_in
from webhook.overrides import policy_for
from webhook.revisions import (
    Revision,
    activation_time,
    current_revision,
    last_action,
    last_action_time,
    revisions_of,
)
from webhook.scope import namespace_refusal
from webhook.stayput import revert_note
from webhook.views import DeploymentView, Obj, ObjectRef

WORKLOAD_LABELS = (contract.LABEL_DEPLOYMENT, contract.LABEL_REPLICASET, contract.LABEL_POD)


# -- facts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resolution:
    """The Deployment and implicated ReplicaSet an alert names, through ownerReferences when
    it names only a pod or a ReplicaSet; `missing` says why none was found."""

    deployment: str = ""
    replicaset: str | None = None
    missing: str = ""


@dataclass(frozen=True)
class GateState:
    """The circuit breaker's count and the duplicate claim, as the gate read them."""

    rollbacks: int = 0  # rollbacks (and counted dry runs) within circuit_window, any source
    duplicate_of: str | None = None  # the earlier dry_run decision for the same revision


@dataclass(frozen=True)
class GitOpsFact:
    """What the GitOps seam (webhook.gitops) concluded about this Deployment's owner."""

    refuse: str = ""  # non-empty: skip gitops_managed with this detail
    annotations: Mapping[str, str] = field(default_factory=dict)  # added to the rollback write
    note: str = ""  # appended to the decision's detail
    # Pause the owner before the rollback's write (the effects do it; webhook.gitops_pause).
    pause: Pause | None = None
    pause_facts: OwnerFacts | None = None  # the owner object as read, for its conditional write


class Facts(Protocol):
    """What the policy knows or may ask. Methods may read the cluster (gather) and raise the
    KubeError the read met; the policy never catches it."""

    @property
    def alert(self) -> Alert: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def request(self) -> Request: ...
    @property
    def now(self) -> datetime: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def patient(self) -> bool:
        """Whether controller lag may still be waited for (false on the last attempt)."""
        ...

    @property
    def gate(self) -> GateState | None: ...

    def resolution(self) -> Resolution: ...
    def deployment(self) -> Obj | None: ...
    def namespace_opt_in(self) -> str | None: ...
    def replicasets(self) -> Sequence[Obj]: ...
    def deployment_unmoved(self) -> bool:
        """Whether a fresh read of the Deployment still shows the spec this attempt read (its
        generation): the ReplicaSets are listed after the Deployment is read, so a write that
        lands in between pairs the old template with newer ReplicaSets."""
        ...

    def gitops(self) -> GitOpsFact | None: ...
    def target(
        self, *, current: Revision, revisions: Sequence[Revision], min_healthy: int
    ) -> TargetChoice: ...
    def confirmation(self) -> ConfirmResult | None: ...


# -- values out -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertedMark:
    """`auto-rollback/alerted-at` to record on the alerting current revision."""

    namespace: str
    replicaset: str
    at: datetime


@dataclass(frozen=True)
class Found:
    """What the policy learned on the way, recorded in the Decision whatever the outcome."""

    deployment: str = ""
    involved: ObjectRef | None = None  # the Deployment as read, for the Event
    from_revision: int | None = None
    from_replicaset: str = ""
    to_revision: int | None = None
    to_replicaset: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    reason: SkipReason
    detail: str
    found: Found = field(default_factory=Found)
    alerted: AlertedMark | None = None
    no_target_event: str = ""  # the AutoRollbackNoHealthyRevision message, when one is due


@dataclass(frozen=True)
class Plan:
    """The rollback to write (or, in dry-run, to record): from `current` to `target`."""

    deployment: Obj
    current: Revision
    target: Revision
    summary: str
    dry_run: bool
    counts_dry_run: bool  # a dry run from Alertmanager previews the breaker and duplicates
    annotations: Mapping[str, str] = field(default_factory=dict)  # extra, in the same write
    gitops: GitOpsFact | None = None  # a pause to carry out before the write

    @property
    def key(self) -> tuple[str, str, str]:
        meta = self.deployment["metadata"]
        return (str(meta["namespace"]), str(meta["name"]), self.current.name)


@dataclass(frozen=True)
class Act:
    plan: Plan
    found: Found
    alerted: AlertedMark | None = None


@dataclass(frozen=True)
class Redecide:
    """The reads disagree (the Deployment changed meanwhile); decide again from fresh reads.
    `lagging`: the Deployment controller is behind, so wait a little first."""

    why: str
    lagging: bool = False
    found: Found = field(default_factory=Found)


Result = Skip | Act | Redecide


# -- the table --------------------------------------------------------------------------------
def decide(facts: Facts) -> Result:
    """The README's decision table, top to bottom: the first row that applies decides."""
    alert, settings, labels = facts.alert, facts.settings, facts.alert.labels
    if alert.status != AlertStatus.FIRING:
        return Skip(SkipReason.RESOLVED, "alert is resolved")
    trigger = labels.get(contract.LABEL_TRIGGER)
    if not trigger:
        return Skip(SkipReason.MISSING_LABELS, f"label {contract.LABEL_TRIGGER} is missing")
    if trigger not in contract.TRIGGERS:
        triggers = ", ".join(contract.TRIGGERS)
        return Skip(SkipReason.UNKNOWN_TRIGGER, f"{trigger!r} is not one of {triggers}")
    namespace = labels.get(contract.LABEL_NAMESPACE, "")
    if not namespace:
        return Skip(SkipReason.MISSING_LABELS, "label namespace is missing")
    if not any(labels.get(k) for k in WORKLOAD_LABELS):
        return Skip(SkipReason.MISSING_LABELS, "none of deployment, replicaset, pod is set")
    invalid = _invalid_name(labels)
    if invalid:
        return Skip(SkipReason.INVALID_LABELS, invalid)
    elsewhere = _other_cluster(labels, settings)
    if elsewhere:
        return Skip(SkipReason.WRONG_CLUSTER, elsewhere)
    ahead = alert.starts_at - facts.now
    if ahead > timedelta(seconds=int(settings.max_clock_skew)):
        return Skip(
            SkipReason.ALERT_FROM_FUTURE,
            f"alert starts at {alert.starts_at.isoformat()}, {int(ahead.total_seconds())}s after "
            f"this receiver's clock ({facts.now.isoformat()}): more than max_clock_skew "
            f"{int(settings.max_clock_skew)}s",
        )
    refusal = namespace_refusal(namespace, settings.namespaces)
    if refusal:
        return Skip(SkipReason.NAMESPACE_DENIED, refusal)

    resolution = facts.resolution()
    if resolution.missing:
        return Skip(SkipReason.DEPLOYMENT_NOT_FOUND, resolution.missing)
    found = Found(deployment=resolution.deployment)
    raw = facts.deployment()
    if raw is None:
        return Skip(
            SkipReason.DEPLOYMENT_NOT_FOUND,
            f"Deployment {namespace}/{resolution.deployment} not found",
            found,
        )
    deployment = DeploymentView.of(raw)
    found = Found(deployment=resolution.deployment, involved=deployment.ref())
    acts, why = opt_in(
        dict(deployment.meta.annotations),
        facts.namespace_opt_in,
        namespace=namespace,
        require_opt_in=settings.require_opt_in,
    )
    if not acts:
        return Skip(SkipReason.NOT_OPTED_IN, why, found)
    if deployment.paused:
        return Skip(SkipReason.PAUSED, "the Deployment is paused", found)
    gitops = facts.gitops()
    if gitops is not None and gitops.refuse:
        return Skip(SkipReason.GITOPS_MANAGED, gitops.refuse, found)

    revisions = revisions_of(raw, list(facts.replicasets()))
    current = current_revision(raw, revisions)
    lagging = facts.patient and deployment.controller_behind
    if current is None:
        if lagging:
            return Redecide("the controller has not created the new ReplicaSet yet", True, found)
        return Skip(
            SkipReason.NOT_CURRENT_REVISION,
            "no ReplicaSet runs the Deployment's template yet (rollout not started)",
            found,
        )
    if current.number < max(r.number for r in revisions):
        # New and re-adopted ReplicaSets always get max+1, so the current revision is the
        # newest one. Otherwise the Deployment we read is older than the ReplicaSets we
        # listed (someone rolled it meanwhile), or the controller has not re-numbered a
        # re-adopted ReplicaSet yet.
        if deployment.controller_behind or not facts.patient:
            # The template read is at least as new as the controller's work (or this is the
            # last attempt). Two rows need no numbering, only which ReplicaSet the template
            # runs: the usual repeat of an alert just after a rollback, before the controller
            # has re-numbered the ReplicaSet rolled back to, is settled by one of them.
            settled = _settled_before_renumbering(
                revisions, current, resolution.replicaset, last_action(raw), found
            )
            if settled is not None:
                return settled
        return Redecide("a newer revision than the Deployment read", lagging, found)
    found = Found(
        deployment=found.deployment,
        involved=found.involved,
        from_revision=current.number,
        from_replicaset=current.name,
    )

    implicated = _implicated(revisions, current, resolution.replicaset)
    if isinstance(implicated, str):
        return Skip(SkipReason.NOT_CURRENT_REVISION, implicated, found)
    policy = policy_for(settings, raw)
    notes = list(policy.notes)

    action = last_action(raw)
    activated = activation_time(implicated, raw)
    known = implicated.alerted_at
    alerted = None
    if alert.starts_at >= activated and (known is None or known < activated):
        # Whatever is decided next, this revision alerted while current: say so on it,
        # where every replica's health tracker sees it (the audit is per replica).
        alerted = AlertedMark(namespace, implicated.name, alert.starts_at)

    def skip(reason: SkipReason, detail: str, *, event: str = "") -> Skip:
        # `found` and `notes` as they stand when the row applies.
        return Skip(reason, _with_notes(detail, notes), _noted(found, notes), alerted, event)

    if action and action.get("to_replicaset") == implicated.name:
        return skip(
            SkipReason.ROLLBACK_OF_ROLLBACK,
            f"revision {implicated.number} ({implicated.name}) is the one this service rolled "
            f"back to (audit {action.get('audit_id', '?')}); never auto-rolled-back again",
        )
    if alert.starts_at < activated:
        return skip(
            SkipReason.ALERT_PREDATES_ROLLOUT,
            f"alert started {alert.starts_at.isoformat()}, before revision "
            f"{implicated.number} became current at {activated.isoformat()}",
        )
    overrides = facts.request.overrides
    window = timedelta(seconds=policy.recent_rollout_window)
    if alert.starts_at - activated > window and not overrides.ignore_recent_window:
        return skip(
            SkipReason.NO_RECENT_ROLLOUT,
            f"revision {implicated.number} became current at {activated.isoformat()}, more "
            f"than {policy.recent_rollout_window}s before the alert started",
        )
    reverted = revert_note(raw, implicated)
    if reverted and not overrides.ignore_cooldown:
        if facts.patient and not facts.deployment_unmoved():
            # A rollback that landed between the two reads (its PUT, then the bad mark on the
            # revision it left) pairs the old template with the new mark: that looks like a
            # revert and is not one. The stay-put watch checks the same (tracker._unchanged).
            return Redecide("the Deployment changed after it was read", found=found)
        # Someone (GitOps self-heal, a person) made the revision rolled back from current
        # again: rolling back again would start a loop. Held until a human acts.
        return skip(
            SkipReason.COOLDOWN,
            f"{reverted}; held as cooldown until a human acts (fix the source, or replay with "
            "ignore_cooldown)",
        )
    acted = last_action_time(raw) if action else None
    written = (raw["metadata"].get("annotations") or {}).get(contract.ANNOTATION_LAST_ACTION)
    if written is not None and acted is None and not overrides.ignore_cooldown:
        # Its own record of the last rollback, edited past reading: when that was is unknown,
        # so it may be within the cooldown. As with a bad mark: one it cannot read still holds.
        return skip(
            SkipReason.COOLDOWN,
            f"{contract.ANNOTATION_LAST_ACTION} cannot be read ({written[:80]!r}): when this "
            "service last rolled the Deployment back is unknown, so it is held as cooldown until "
            "the annotation is fixed or removed (or replay with ignore_cooldown)",
        )
    if acted and not overrides.ignore_cooldown:
        if facts.now - acted < timedelta(seconds=policy.cooldown):
            return skip(
                SkipReason.COOLDOWN,
                f"last rollback at {acted.isoformat()} is within the {policy.cooldown}s cooldown",
            )

    choice = facts.target(
        current=current, revisions=revisions, min_healthy=policy.min_healthy_seconds
    )
    if choice.target is None:
        explained = choice.explain()
        return skip(
            SkipReason.NO_HEALTHY_REVISION,
            f"no older revision has health evidence: {explained or 'none older'}",
            event=(
                f"alert {alert.alertname} ({trigger}) implicates revision {current.number}, "
                f"but no older revision has health evidence: {explained or 'no older revision'}"
            ),
        )
    target = choice.target
    found = Found(
        deployment=found.deployment,
        involved=found.involved,
        from_revision=current.number,
        from_replicaset=current.name,
        to_revision=target.number,
        to_replicaset=target.name,
    )
    confirmed = facts.confirmation()
    if confirmed is not None:
        if confirmed.verdict == Confirmation.NOT_CONFIRMED:
            return skip(SkipReason.NOT_CONFIRMED, confirmed.detail)
        if confirmed.verdict == Confirmation.UNKNOWN:
            notes.append(f"not confirmed by Prometheus ({confirmed.detail}); acting on the alert")
    if gitops is not None and gitops.note:
        notes.append(gitops.note)

    gate = facts.gate
    if gate is not None:
        if gate.rollbacks >= settings.max_rollbacks:
            return skip(
                SkipReason.CIRCUIT_OPEN,
                f"{gate.rollbacks} rollbacks in the last {int(settings.circuit_window)}s "
                f"(max_rollbacks {settings.max_rollbacks}): a mass incident is not fixed "
                "by mass rollback",
            )
        if gate.duplicate_of:
            return skip(SkipReason.DUPLICATE, f"already decided dry_run in {gate.duplicate_of}")
    summary = (
        f"revision {current.number} ({current.name}) -> revision {target.number} "
        f"({target.name}); {choice.explain()}"
    )
    plan = Plan(
        deployment=raw,
        current=current,
        target=target,
        summary=summary,
        dry_run=facts.dry_run,
        counts_dry_run=facts.dry_run and facts.request.source == Source.ALERTMANAGER,
        annotations=dict(gitops.annotations) if gitops is not None else {},
        gitops=gitops if gitops is not None and gitops.pause is not None else None,
    )
    return Act(plan, _noted(found, notes), alerted)


def _invalid_name(labels: Mapping[str, str]) -> str:
    """Which workload label is not a Kubernetes name, with its raw value ('' when all are)."""
    checks = (
        (contract.LABEL_NAMESPACE, names.dns1123_label_problem),
        (contract.LABEL_DEPLOYMENT, names.dns1123_subdomain_problem),
        (contract.LABEL_REPLICASET, names.dns1123_subdomain_problem),
        (contract.LABEL_POD, names.dns1123_subdomain_problem),
    )
    for label, problem_of in checks:
        value = labels.get(label)
        problem = problem_of(value) if value else None
        if problem:
            return f"label {label}={value!r}: {problem}; refused before any API call"
    return ""


def _other_cluster(labels: Mapping[str, str], settings: Settings) -> str:
    """Why the alert is about another cluster than this one ('' when it is not)."""
    name, label = settings.cluster.name, settings.cluster.label
    if name is None:
        return ""
    value = labels.get(label)
    if not value:
        if settings.cluster.require_label:
            return (
                f"label {label} is missing and cluster.require_label is true "
                f"(this is cluster {name!r})"
            )
        return ""
    if value != name:
        return f"label {label}={value!r} names another cluster (this is cluster {name!r})"
    return ""


def _settled_before_renumbering(
    revisions: Sequence[Revision],
    current: Revision,
    replicaset: str | None,
    action: Mapping[str, object] | None,
    found: Found,
) -> Skip | None:
    """What an alert comes to while the template's ReplicaSet awaits its new number, when that
    does not depend on the number: the alert names a ReplicaSet the template no longer runs
    (not_current_revision), or it implicates the one this service rolled back to
    (rollback_of_rollback). None: wait for the controller."""
    implicated = _implicated(revisions, current, replicaset)
    if isinstance(implicated, str):
        return Skip(
            SkipReason.NOT_CURRENT_REVISION,
            f"{implicated} (the controller has yet to re-number it)",
            found,
        )
    if action and action.get("to_replicaset") == implicated.name:
        return Skip(
            SkipReason.ROLLBACK_OF_ROLLBACK,
            f"{implicated.name} is the ReplicaSet this service rolled back to (audit "
            f"{action.get('audit_id', '?')}; the controller has yet to re-number it); never "
            "auto-rolled-back again",
            found,
        )
    return None


def _implicated(
    revisions: Sequence[Revision], current: Revision, replicaset: str | None
) -> Revision | str:
    """The revision the alert implicates, or why it is not the current one."""
    if replicaset is None:
        return current
    found = next((r for r in revisions if r.name == replicaset), None)
    if found is None:
        return f"ReplicaSet {replicaset} is not (or no longer) a revision of this Deployment"
    if found.name != current.name:
        marked = " (marked bad: already rolled back from)" if found.bad_mark else ""
        return (
            f"alert implicates revision {found.number} ({found.name}){marked}; "
            f"current is revision {current.number} ({current.name})"
        )
    return found


def _with_notes(detail: str, notes: Sequence[str]) -> str:
    return detail + ("; " + "; ".join(notes) if notes else "")


def _noted(found: Found, notes: Sequence[str]) -> Found:
    return Found(
        deployment=found.deployment,
        involved=found.involved,
        from_revision=found.from_revision,
        from_replicaset=found.from_replicaset,
        to_revision=found.to_revision,
        to_replicaset=found.to_replicaset,
        notes=tuple(notes),
    )
