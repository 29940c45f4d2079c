"""The stable strings of the product contract (the README's names, outcomes and reasons).

They appear in HTTP responses, the audit, logs, metrics, the rules bundle and cluster
annotations; every other module and the rule tests read them from here so none can drift.
Outcomes, reasons, triggers, verdicts and Event reasons are StrEnums: a typo is a type error (and
an AttributeError), never a new metric label. tests/unit/test_contract_readme.py checks that the
README's tables name exactly these values.
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final


@unique
class Outcome(StrEnum):
    """What a decision did (README, How a decision is made)."""

    ROLLED_BACK = "rolled_back"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"
    FAILED = "failed"
    # Records that are not an alert's decision (README, GitOps owners).
    REVERTED = "reverted"  # the stay-put watch saw a bad-marked revision made current again
    RESUMED = "resumed"  # an on-call resume handed a paused GitOps owner back


@unique
class SkipReason(StrEnum):
    """Why a decision is `skipped`, in the order the policy checks them."""

    RESOLVED = "resolved"
    UNKNOWN_TRIGGER = "unknown_trigger"
    MISSING_LABELS = "missing_labels"
    INVALID_LABELS = "invalid_labels"
    WRONG_CLUSTER = "wrong_cluster"
    ALERT_FROM_FUTURE = "alert_from_future"
    NAMESPACE_DENIED = "namespace_denied"
    DEPLOYMENT_NOT_FOUND = "deployment_not_found"
    NOT_OPTED_IN = "not_opted_in"
    PAUSED = "paused"
    GITOPS_MANAGED = "gitops_managed"
    NOT_CURRENT_REVISION = "not_current_revision"
    ROLLBACK_OF_ROLLBACK = "rollback_of_rollback"
    ALERT_PREDATES_ROLLOUT = "alert_predates_rollout"
    NO_RECENT_ROLLOUT = "no_recent_rollout"
    COOLDOWN = "cooldown"
    NO_HEALTHY_REVISION = "no_healthy_revision"
    NOT_CONFIRMED = "not_confirmed"
    CIRCUIT_OPEN = "circuit_open"
    DUPLICATE = "duplicate"


@unique
class FailReason(StrEnum):
    """Why a decision `failed`."""

    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    API_ERROR = "api_error"
    TIMEOUT = "timeout"


Reason = SkipReason | FailReason


@unique
class Trigger(StrEnum):
    """The `rollback_trigger` label values the receiver acts on."""

    RESTART_RATE = "restart_rate"
    OOMKILLED = "oomkilled"
    P99_LATENCY = "p99_latency"


@unique
class Source(StrEnum):
    """Who asked for a decision."""

    ALERTMANAGER = "alertmanager"
    REPLAY = "replay"
    WATCH = "watch"  # the stay-put watch (health tracker)
    RESUME = "resume"  # rollback-webhook resume / POST /api/v1/resume


@unique
class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@unique
class Confirmation(StrEnum):
    """Prometheus' verdict when it re-evaluates an alert at decision time."""

    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    UNKNOWN = "unknown"


@unique
class Health(StrEnum):
    """An evidence source's verdict on a revision's health."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@unique
class EventReason(StrEnum):
    """The reasons of the Kubernetes Events posted on the Deployment."""

    ROLLED_BACK = "AutoRollback"
    DRY_RUN = "AutoRollbackDryRun"
    FAILED = "AutoRollbackFailed"
    NO_HEALTHY_REVISION = "AutoRollbackNoHealthyRevision"
    GITOPS_REFUSED = "AutoRollbackRefused"
    REVERTED = "AutoRollbackReverted"
    RESUMED = "AutoRollbackResumed"


PREFIX: Final = "auto-rollback/"

# Cluster annotations and labels written or read by the service.
ANNOTATION_ENABLED: Final = "auto-rollback/enabled"
ANNOTATION_LAST_ACTION: Final = "auto-rollback/last-action"
# The audit id of the last resume that handed the Deployment's GitOps owner back (written in the
# write that drops the pause): the reconciler's proof that a resume's write landed.
ANNOTATION_LAST_RESUME: Final = "auto-rollback/last-resume"
ANNOTATION_BAD_REVISION: Final = "auto-rollback/bad-revision"
ANNOTATION_HEALTHY_SINCE: Final = "auto-rollback/healthy-since"
# When a trigger alert for a revision was first received while it was current (any replica):
# the health tracker never stamps that period healthy, and an older stamp stops counting.
ANNOTATION_ALERTED_AT: Final = "auto-rollback/alerted-at"
ANNOTATION_MIN_HEALTHY_SECONDS: Final = "auto-rollback/min-healthy-seconds"
ANNOTATION_RECENT_ROLLOUT_WINDOW: Final = "auto-rollback/recent-rollout-window"
ANNOTATION_COOLDOWN: Final = "auto-rollback/cooldown"
ANNOTATION_CHANGE_CAUSE: Final = "kubernetes.io/change-cause"
# On the circuit ledger's Lease (webhook/ledger.py): the rollbacks booked within circuit_window.
ANNOTATION_LEDGER: Final = "auto-rollback/rollbacks"

# Kubernetes' own Deployment bookkeeping.
REVISION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY: Final = "deployment.kubernetes.io/revision-history"
POD_TEMPLATE_HASH: Final = "pod-template-hash"

# The alert contract (README, How a decision is made).
LABEL_TRIGGER: Final = "rollback_trigger"
TRIGGERS: Final = tuple(Trigger)
# The workload labels the receiver reads: the namespace, and the Deployment and the
# implicated revision as replicaset (preferred) or pod.
LABEL_NAMESPACE: Final = "namespace"
LABEL_DEPLOYMENT: Final = "deployment"
LABEL_REPLICASET: Final = "replicaset"
LABEL_POD: Final = "pod"
# Multi-cluster: the default name of the label carrying the cluster (cluster.label).
LABEL_CLUSTER: Final = "cluster"
# Labels every alert of the shipped rules bundle carries (README, Alerting rules): what the
# receiver reads (pod aside: the rules name the revision by replicaset) plus severity.
RULE_LABELS: Final = (
    LABEL_TRIGGER,
    LABEL_NAMESPACE,
    LABEL_DEPLOYMENT,
    LABEL_REPLICASET,
    "severity",
)
RULE_ANNOTATIONS: Final = ("summary", "description", "runbook_url")

# Outcomes and reasons as plain names, for callers that predate the enums.
ROLLED_BACK: Final = Outcome.ROLLED_BACK
DRY_RUN: Final = Outcome.DRY_RUN
SKIPPED: Final = Outcome.SKIPPED
FAILED: Final = Outcome.FAILED
OUTCOMES: Final = tuple(Outcome)
SKIP_REASONS: Final = tuple(SkipReason)
FAIL_REASONS: Final = tuple(FailReason)

EVENT_ROLLED_BACK: Final = EventReason.ROLLED_BACK
EVENT_DRY_RUN: Final = EventReason.DRY_RUN
EVENT_FAILED: Final = EventReason.FAILED
EVENT_NO_HEALTHY_REVISION: Final = EventReason.NO_HEALTHY_REVISION
