"""The stable strings of the product contract (the README's names, outcomes and reasons).

They appear in HTTP responses, the audit, logs, metrics, the rules bundle and cluster
annotations; every other module and the rule tests read them from here so none can drift.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "auto-rollback/"

# Cluster annotations and labels written or read by the service.
ANNOTATION_ENABLED: Final = "auto-rollback/enabled"
ANNOTATION_LAST_ACTION: Final = "auto-rollback/last-action"
ANNOTATION_BAD_REVISION: Final = "auto-rollback/bad-revision"
ANNOTATION_HEALTHY_SINCE: Final = "auto-rollback/healthy-since"
# When a trigger alert for a revision was first received while it was current (any replica):
# the health tracker never stamps that period healthy, and an older stamp stops counting.
ANNOTATION_ALERTED_AT: Final = "auto-rollback/alerted-at"
ANNOTATION_MIN_HEALTHY_SECONDS: Final = "auto-rollback/min-healthy-seconds"
ANNOTATION_RECENT_ROLLOUT_WINDOW: Final = "auto-rollback/recent-rollout-window"
ANNOTATION_COOLDOWN: Final = "auto-rollback/cooldown"
ANNOTATION_CHANGE_CAUSE: Final = "kubernetes.io/change-cause"

# Kubernetes' own Deployment bookkeeping.
REVISION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY: Final = "deployment.kubernetes.io/revision-history"
POD_TEMPLATE_HASH: Final = "pod-template-hash"

# The alert contract (section 3).
LABEL_TRIGGER: Final = "rollback_trigger"
TRIGGERS: Final = ("restart_rate", "oomkilled", "p99_latency")
# The workload labels the receiver reads (section 3): the namespace, and the Deployment and the
# implicated revision as replicaset (preferred) or pod.
LABEL_NAMESPACE: Final = "namespace"
LABEL_DEPLOYMENT: Final = "deployment"
LABEL_REPLICASET: Final = "replicaset"
LABEL_POD: Final = "pod"
# Labels every alert of the shipped rules bundle carries (section 13): what the receiver reads
# (pod aside: the rules name the revision by replicaset) plus severity.
RULE_LABELS: Final = (
    LABEL_TRIGGER,
    LABEL_NAMESPACE,
    LABEL_DEPLOYMENT,
    LABEL_REPLICASET,
    "severity",
)
RULE_ANNOTATIONS: Final = ("summary", "description", "runbook_url")

# Outcomes and reasons (section 4).
ROLLED_BACK: Final = "rolled_back"
DRY_RUN: Final = "dry_run"
SKIPPED: Final = "skipped"
FAILED: Final = "failed"
OUTCOMES: Final = (ROLLED_BACK, DRY_RUN, SKIPPED, FAILED)

SKIP_REASONS: Final = (
    "resolved",
    "unknown_trigger",
    "missing_labels",
    "namespace_denied",
    "not_opted_in",
    "deployment_not_found",
    "paused",
    "not_current_revision",
    "no_recent_rollout",
    "alert_predates_rollout",
    "no_healthy_revision",
    "cooldown",
    "rollback_of_rollback",
    "circuit_open",
    "duplicate",
    "not_confirmed",
)
FAIL_REASONS: Final = ("conflict", "forbidden", "api_error", "timeout")

# Event reasons posted on the Deployment (section 5).
EVENT_ROLLED_BACK: Final = "AutoRollback"
EVENT_DRY_RUN: Final = "AutoRollbackDryRun"
EVENT_FAILED: Final = "AutoRollbackFailed"
