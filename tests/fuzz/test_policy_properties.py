"""Property-based tests of the decision inputs: whatever labels, start time and cluster
settings an alert brings, the policy core answers a value (never raises), and it asks about
the cluster (the first fact that reads it: `resolution`) only for an alert whose workload
labels are Kubernetes names, whose namespace is in scope, whose cluster is this one and whose
start is not in the future: nothing a payload says can reach past the policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.budget import POLICY_EXAMPLES, budget
from webhook import contract, names, policy
from webhook.alerts import Alert
from webhook.ask import Request
from webhook.config import Settings, settings_from_dict
from webhook.scope import namespace_refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOSTILE = [
    "default/../kube-system",
    "./kube-public",
    "%2e%2e",
    "a/b",
    "Kube-System",
    "a" * 254,
    "kube-systém",
    "kube-system",
    "shop",
    "web",
    "web-7b8cd9d77c",
    "",
    "..",
    "x.y",
]
NAME = (
    st.sampled_from(HOSTILE)
    | st.sampled_from(["shop", "web", "kube-system", "kube-public", "web-1.b"])
    | st.text(max_size=12)
    | st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)
)
LABELS = st.fixed_dictionaries(
    {
        "namespace": NAME,
        "deployment": NAME,
        # Mostly a real trigger: the rows after the trigger check are the ones under test.
        "rollback_trigger": st.sampled_from([*contract.TRIGGERS * 3, "other", ""]),
    },
    optional={
        "replicaset": NAME,
        "pod": NAME,
        "cluster": st.sampled_from(["prod-eu", "prod-us", ""]),
        "alertname": st.text(max_size=8),
    },
)
SETTINGS = st.builds(
    lambda cluster, require, deny: settings_from_dict(
        {
            "cluster": {"name": cluster, "require_label": require and cluster is not None},
            "namespaces": {"deny": deny},
        }
    ),
    st.sampled_from([None, "prod-eu"]),
    st.booleans(),
    st.sampled_from([["kube-system", "kube-public"], []]),
)
STARTS = st.timedeltas(min_value=-timedelta(days=400), max_value=timedelta(days=400))


class ReachedTheCluster(Exception):
    """Raised by the first fact that would read the cluster: the policy let the alert past."""


@dataclass
class Facts:
    """The policy's facts as plain values; every cluster-reading fact raises ReachedTheCluster."""

    alert: Alert
    settings: Settings
    request: Request = field(default_factory=Request)
    now: datetime = NOW
    dry_run: bool = False
    patient: bool = False
    gate: Any = None

    def _cluster(self, *_: Any, **__: Any) -> Any:
        raise ReachedTheCluster

    resolution = deployment = namespace_opt_in = replicasets = deployment_unmoved = _cluster
    gitops = target = confirmation = _cluster


def passes_the_label_checks(labels: dict[str, str], settings: Settings, starts: datetime) -> bool:
    workload = [labels.get(k) for k in ("deployment", "replicaset", "pod")]
    namespace = labels.get("namespace", "")
    if not namespace or not any(workload):
        return False
    checks: Sequence[tuple[str | None, Any]] = (
        (namespace, names.is_namespace_name),
        *((w, names.is_object_name) for w in workload),
    )
    return (
        all(not value or ok(value) for value, ok in checks)
        and namespace_refusal(namespace, settings.namespaces) is None
        and labels.get("cluster", "") in {settings.cluster.name or labels.get("cluster", ""), ""}
        and not (settings.cluster.require_label and not labels.get("cluster"))
        and starts - NOW <= timedelta(seconds=int(settings.max_clock_skew))
    )


@budget(POLICY_EXAMPLES)
@given(LABELS, SETTINGS, STARTS, st.sampled_from(["firing"] * 5 + ["resolved"]))
def test_only_well_formed_in_scope_alerts_reach_the_cluster(
    labels: dict[str, str], settings: Settings, starts_in: timedelta, status: str
) -> None:
    starts = NOW + starts_in
    alert = Alert(
        status=status,
        labels=labels,
        annotations={},
        starts_at=starts,
        ends_at=None,
        generator_url="",
        fingerprint="f",
    )
    try:
        result = policy.decide(Facts(alert=alert, settings=settings))
    except ReachedTheCluster:
        event("reached the cluster")
        assert status == "firing"
        assert labels.get("rollback_trigger") in contract.TRIGGERS
        assert passes_the_label_checks(labels, settings, starts), labels
        return
    assert isinstance(result, policy.Skip), result
    event(f"skipped: {result.reason}")
    assert result.reason in {
        contract.SkipReason.RESOLVED,
        contract.SkipReason.MISSING_LABELS,
        contract.SkipReason.UNKNOWN_TRIGGER,
        contract.SkipReason.INVALID_LABELS,
        contract.SkipReason.WRONG_CLUSTER,
        contract.SkipReason.ALERT_FROM_FUTURE,
        contract.SkipReason.NAMESPACE_DENIED,
    }
    if result.reason == contract.SkipReason.INVALID_LABELS:
        assert "refused before any API call" in result.detail
