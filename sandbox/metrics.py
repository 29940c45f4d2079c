"""The sandbox's /metrics: kube-state-metrics v2 series for its objects plus an application
request-duration histogram per pod, in the Prometheus text exposition format (0.0.4).

Metric and label names are kube-state-metrics' (docs/metrics/workload/*-metrics.md):
pod series carry `namespace`, `pod` and `uid`, container series add `container`,
ReplicaSet series `namespace` and `replicaset`, Deployment series `namespace` and
`deployment`. Everything is computed from the store and its clock at scrape time, so
counters (restarts, requests) grow between scrapes as they would on a cluster; see pods.py
for the behaviour model. Scrape with honor_labels so `namespace` and `pod` survive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from sandbox import pods
from sandbox.store import Store, parse_time

# prometheus/client_python's default buckets, the ones a standard HTTP histogram uses.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PHASES: Final = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help_text = name, kind, help_text
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def add(self, labels: dict[str, str], value: float, *, suffix: str = "") -> None:
        self.samples.append((self.name + suffix, labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} {self.kind}"
        for name, labels, value in self.samples:
            yield f"{name}{_labels(labels)} {_number(value)}"


_Factory = Callable[[str, str, str], _Family]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _timestamp(text: str | None) -> float:
    return parse_time(text).timestamp() if text else 0.0


def _owners(meta: dict[str, Any]) -> list[dict[str, str]]:
    """The owner labels of kube_pod_owner / kube_replicaset_owner as kube-state-metrics v2
    writes them (internal/store/pod.go, replicaset.go): one series per ownerReference, and one
    with empty values (absent labels, to Prometheus) for an object nobody owns; v1's "<none>"
    is gone since v2.0."""
    refs = meta.get("ownerReferences") or []
    if not refs:
        return [{"owner_kind": "", "owner_name": "", "owner_is_controller": ""}]
    return [
        {
            "owner_kind": str(ref.get("kind")),
            "owner_name": str(ref.get("name")),
            "owner_is_controller": "true" if ref.get("controller") else "false",
        }
        for ref in refs
    ]


def render(store: Store) -> str:
    """All sandbox metrics as Prometheus text, as of `store.now()`."""
    now = store.now()
    families: dict[str, _Family] = {}

    def family(name: str, kind: str, help_text: str) -> _Family:
        if name not in families:
            families[name] = _Family(name, kind, help_text)
        return families[name]

    pod_items, _ = store.list("pods")
    for pod in pod_items:
        _pod_metrics(pod, now, family)
    rs_items, _ = store.list("replicasets")
    for rs in rs_items:
        _replicaset_metrics(rs, family)
    deploy_items, _ = store.list("deployments")
    for deployment in deploy_items:
        _deployment_metrics(deployment, family)
    for pod in pod_items:
        _histogram(pod, now, family)
    return "\n".join(line for f in families.values() for line in f.lines()) + "\n"


def _pod_metrics(pod: dict[str, Any], now: datetime, family: _Factory) -> None:
    meta = pod["metadata"]
    base = {"namespace": meta.get("namespace", ""), "pod": meta["name"], "uid": meta["uid"]}
    pod_owner = family("kube_pod_owner", "gauge", "[STABLE] Information about the Pod's owner.")
    for owner in _owners(meta):
        pod_owner.add({**base, **owner}, 1)
    family("kube_pod_created", "gauge", "[STABLE] Unix creation timestamp").add(
        base, _timestamp(meta.get("creationTimestamp"))
    )
    status = pods.live_status(pod, now)
    family("kube_pod_start_time", "gauge", "[STABLE] Start time in unix timestamp for a pod.").add(
        base, _timestamp(status.get("startTime"))
    )
    phase = family("kube_pod_status_phase", "gauge", "[STABLE] The pods current phase.")
    for candidate in PHASES:
        phase.add({**base, "phase": candidate}, 1 if status.get("phase") == candidate else 0)
    ready = next(
        (c.get("status", "Unknown") for c in status["conditions"] if c["type"] == "Ready"),
        "Unknown",
    )
    ready_family = family(
        "kube_pod_status_ready",
        "gauge",
        "[STABLE] Describes whether the pod is ready to serve requests.",
    )
    for condition in ("true", "false", "unknown"):
        ready_family.add({**base, "condition": condition}, 1 if ready.lower() == condition else 0)
    for container in status.get("containerStatuses") or []:
        labels = {**base, "container": container["name"]}
        family(
            "kube_pod_container_status_restarts_total",
            "counter",
            "[STABLE] The number of container restarts per container.",
        ).add(labels, container.get("restartCount", 0))
        family(
            "kube_pod_container_status_ready",
            "gauge",
            "[STABLE] Describes whether the containers readiness check succeeded.",
        ).add(labels, 1 if container.get("ready") else 0)
        state = container.get("state") or {}
        family(
            "kube_pod_container_status_running",
            "gauge",
            "[STABLE] Describes whether the container is currently in running state.",
        ).add(labels, 1 if "running" in state else 0)
        family(
            "kube_pod_container_status_waiting",
            "gauge",
            "[STABLE] Describes whether the container is currently in waiting state.",
        ).add(labels, 1 if "waiting" in state else 0)
        waiting = family(
            "kube_pod_container_status_waiting_reason",
            "gauge",
            "[STABLE] Describes the reason the container is currently in waiting state.",
        )
        if "waiting" in state:
            waiting.add({**labels, "reason": state["waiting"].get("reason", "")}, 1)
        last = family(
            "kube_pod_container_status_last_terminated_reason",
            "gauge",
            "Describes the last reason the container was in terminated state.",
        )
        terminated = (container.get("lastState") or {}).get("terminated")
        if terminated:
            last.add({**labels, "reason": terminated.get("reason", "")}, 1)


def _replicaset_metrics(rs: dict[str, Any], family: _Factory) -> None:
    meta, spec, status = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    base = {"namespace": meta.get("namespace", ""), "replicaset": meta["name"]}
    owner_family = family(
        "kube_replicaset_owner", "gauge", "[STABLE] Information about the ReplicaSet's owner."
    )
    for owner in _owners(meta):
        owner_family.add({**base, **owner}, 1)
    family("kube_replicaset_created", "gauge", "[STABLE] Unix creation timestamp").add(
        base, _timestamp(meta.get("creationTimestamp"))
    )
    for metric, value, help_text in (
        (
            "kube_replicaset_spec_replicas",
            spec.get("replicas", 1),
            "Number of desired pods for a ReplicaSet.",
        ),
        (
            "kube_replicaset_status_replicas",
            status.get("replicas", 0),
            "The number of replicas per ReplicaSet.",
        ),
        (
            "kube_replicaset_status_ready_replicas",
            status.get("readyReplicas", 0),
            "The number of ready replicas per ReplicaSet.",
        ),
        (
            "kube_replicaset_status_fully_labeled_replicas",
            status.get("fullyLabeledReplicas", 0),
            "The number of fully labeled replicas per ReplicaSet.",
        ),
        (
            "kube_replicaset_status_observed_generation",
            status.get("observedGeneration", 0),
            "The generation observed by the ReplicaSet controller.",
        ),
        (
            "kube_replicaset_metadata_generation",
            meta.get("generation", 0),
            "Sequence number representing a specific generation of the desired state.",
        ),
    ):
        family(metric, "gauge", f"[STABLE] {help_text}").add(base, float(value))


def _deployment_metrics(deployment: dict[str, Any], family: _Factory) -> None:
    meta = deployment["metadata"]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    base = {"namespace": meta.get("namespace", ""), "deployment": meta["name"]}
    family("kube_deployment_created", "gauge", "[STABLE] Unix creation timestamp").add(
        base, _timestamp(meta.get("creationTimestamp"))
    )
    for metric, value, help_text in (
        (
            "kube_deployment_metadata_generation",
            meta.get("generation", 0),
            "Sequence number representing a specific generation of the desired state.",
        ),
        (
            "kube_deployment_status_observed_generation",
            status.get("observedGeneration", 0),
            "The generation observed by the deployment controller.",
        ),
        (
            "kube_deployment_spec_replicas",
            spec.get("replicas", 1),
            "Number of desired pods for a deployment.",
        ),
        (
            "kube_deployment_spec_paused",
            1 if spec.get("paused") else 0,
            "Whether the deployment is paused and will not be processed by the deployment "
            "controller.",
        ),
        (
            "kube_deployment_status_replicas",
            status.get("replicas", 0),
            "The number of replicas per deployment.",
        ),
        (
            "kube_deployment_status_replicas_ready",
            status.get("readyReplicas", 0),
            "The number of ready replicas per deployment.",
        ),
        (
            "kube_deployment_status_replicas_available",
            status.get("availableReplicas", 0),
            "The number of available replicas per deployment.",
        ),
        (
            "kube_deployment_status_replicas_unavailable",
            status.get("unavailableReplicas", 0),
            "The number of unavailable replicas per deployment.",
        ),
        (
            "kube_deployment_status_replicas_updated",
            status.get("updatedReplicas", 0),
            "The number of updated replicas per deployment.",
        ),
    ):
        family(metric, "gauge", f"[STABLE] {help_text}").add(base, float(value))
    conditions = family(
        "kube_deployment_status_condition",
        "gauge",
        "[STABLE] The current status conditions of a deployment.",
    )
    for condition in status.get("conditions") or []:
        for state in ("true", "false", "unknown"):
            conditions.add(
                {
                    **base,
                    "reason": condition.get("reason", ""),
                    "condition": condition["type"],
                    "status": state,
                },
                1 if str(condition.get("status", "")).lower() == state else 0,
            )


def _histogram(pod: dict[str, Any], now: datetime, family: _Factory) -> None:
    meta = pod["metadata"]
    base = {"namespace": meta.get("namespace", ""), "pod": meta["name"]}
    hist = family(
        "http_request_duration_seconds",
        "histogram",
        "Duration of HTTP requests served by the pod (sandbox application model).",
    )
    observed = pods.request_buckets(pod, now)
    for bound in BUCKETS:
        count = sum(n for latency, n in observed if latency <= bound)
        # client_python writes bounds as Go floats: 0.005, 1.0, 10.0
        hist.add({**base, "le": repr(float(bound))}, count, suffix="_bucket")
    total = sum(n for _, n in observed)
    hist.add({**base, "le": "+Inf"}, total, suffix="_bucket")
    hist.add(base, round(sum(latency * n for latency, n in observed), 6), suffix="_sum")
    hist.add(base, total, suffix="_count")
