"""A Deployment and its ReplicaSets from a few lines of YAML, and `Table`: policy.Facts as plain
values that records which facts the policy asked for (the cluster reads it would have made)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from webhook.alerts import Alert
from webhook.ask import Request
from webhook.config import Settings, parse_duration
from webhook.evidence import (
    ClusterRuleEvidence,
    ConfirmResult,
    StampEvidence,
    TargetChoice,
    choose_target,
)
from webhook.policy import GateState, GitOpsFact, Resolution
from webhook.revisions import Revision, format_k8s_time
from webhook.views import Obj

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DEPLOYMENT_UID = "uid-web"

# The usual world: revision 1 ran for hours (healthy by the cluster-only rule), revision 2 was
# rolled out three minutes ago and is current; the Deployment is opted in.
TWO_REVISIONS = """
revisions:
  - {image: "web:1", age: 2h}
  - {image: "web:2", age: 3m}
"""


def ago(text: str) -> datetime:
    return NOW - timedelta(seconds=parse_duration(text, key="age"))


def _template(image: str, pod_hash: str | None = None) -> Obj:
    labels = {"app": "web", **({"pod-template-hash": pod_hash} if pod_hash else {})}
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }


def world(text: str = TWO_REVISIONS) -> tuple[Obj, list[Obj]]:
    """(Deployment, ReplicaSets) in namespace shop: revisions numbered 1.. oldest first, the
    Deployment running the one named by `current` (default the newest).

    Keys: revisions[{image, age, annotations}], current, annotations, paused, behind (the
    controller has not observed the latest generation)."""
    spec: dict[str, Any] = yaml.safe_load(text)
    replicasets = []
    for number, rev in enumerate(spec["revisions"], 1):
        annotations = {
            "deployment.kubernetes.io/revision": str(number),
            **rev.get("annotations", {}),
        }
        replicasets.append(
            {
                "metadata": {
                    "name": f"web-{number}",
                    "namespace": "shop",
                    "uid": f"uid-web-{number}",
                    "creationTimestamp": format_k8s_time(ago(rev["age"])),
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "kind": "Deployment",
                            "name": "web",
                            "uid": DEPLOYMENT_UID,
                            "controller": True,
                        }
                    ],
                },
                "spec": {"template": _template(rev["image"], f"h{number}")},
            }
        )
    current = spec.get("current", len(replicasets))
    image = spec["revisions"][current - 1]["image"]
    generation = 2 if spec.get("behind") else 1
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": DEPLOYMENT_UID,
            "resourceVersion": "7",
            "generation": generation,
            "annotations": spec.get("annotations", {"auto-rollback/enabled": "true"}),
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": _template(image),
            "paused": bool(spec.get("paused")),
        },
        "status": {"observedGeneration": 1},
    }
    return deployment, replicasets


def last_action(*, to_replicaset: str, age: str) -> str:
    return json.dumps(
        {"to_replicaset": to_replicaset, "time": format_k8s_time(ago(age)), "audit_id": "d-earlier"}
    )


def alert(*, status: str = "firing", started: str = "1m", ahead: str = "", **labels: str) -> Alert:
    """An alert that started `started` ago (or `ahead` from now); labels name web-2 by default."""
    chosen = labels or {"namespace": "shop", "deployment": "web", "replicaset": "web-2"}
    return Alert(
        status=status,
        labels={
            "alertname": "RolloutRestartRateHigh",
            "rollback_trigger": "restart_rate",
            **chosen,
        },
        annotations={},
        starts_at=NOW + (NOW - ago(ahead)) if ahead else ago(started),
        ends_at=None,
        generator_url="http://prometheus/graph?g0.expr=up",
        fingerprint="f1",
    )


@dataclass
class Table:
    """policy.Facts with plain values; `asked` lists the facts read, in order."""

    alert: Alert = field(default_factory=alert)
    cluster: tuple[Obj, list[Obj]] | None = field(default_factory=world)
    settings: Settings = field(default_factory=Settings)
    request: Request = field(default_factory=Request)
    now: datetime = NOW
    dry_run: bool = False
    patient: bool = True
    gate: GateState | None = field(default_factory=GateState)
    resolved: Resolution | None = None  # None: as the labels name it
    namespace_label: str | None = None
    owner: GitOpsFact | None = None
    confirmed: ConfirmResult | None = None
    moved: bool = False  # the Deployment changed between its read and the ReplicaSet list
    asked: list[str] = field(default_factory=list)

    def resolution(self) -> Resolution:
        self.asked.append("resolution")
        if self.resolved is not None:
            return self.resolved
        labels = self.alert.labels
        return Resolution(labels.get("deployment", "web"), labels.get("replicaset"))

    def deployment(self) -> Obj | None:
        self.asked.append("deployment")
        return self.cluster[0] if self.cluster else None

    def namespace_opt_in(self) -> str | None:
        self.asked.append("namespace")
        return self.namespace_label

    def replicasets(self) -> Sequence[Obj]:
        self.asked.append("replicasets")
        return self.cluster[1] if self.cluster else []

    def deployment_unmoved(self) -> bool:
        self.asked.append("deployment_unmoved")
        return not self.moved

    def gitops(self) -> GitOpsFact | None:
        self.asked.append("gitops")
        return self.owner

    def target(
        self, *, current: Revision, revisions: Sequence[Revision], min_healthy: int
    ) -> TargetChoice:
        self.asked.append("target")
        assert self.cluster is not None
        return choose_target(
            deployment=self.cluster[0],
            current=current,
            revisions=list(revisions),
            sources=[StampEvidence(), ClusterRuleEvidence()],
            min_healthy_seconds=min_healthy,
        )

    def confirmation(self) -> ConfirmResult | None:
        self.asked.append("confirmation")
        return self.confirmed
