"""Real kube-state-metrics (v2.20, built by scripts/build-go.sh) as the judge of what the sandbox's
/metrics imitates and as the source of the shipped rules' inputs, on the real control plane.

1. Differential: the same objects on the control plane (read by real kube-state-metrics, run
   with its default metric selection) and on the sandbox (its /metrics): a Deployment rolled to a
   crash-looping second revision, one rolled to an OOMKilled one, a ReplicaSet with two
   non-controller owners and an unowned pod. Every family the rules (and the receiver's
   Prometheus evidence) read is exported by default and served by the sandbox with the same type
   and label names; every other family the sandbox serves is real too; and the series, with
   names reduced to the role of their object, agree: pod -> ReplicaSet -> Deployment owners,
   replicas, restarts > 0 and last-terminated reasons Error / OOMKilled for the bad revisions'
   pods, readiness.
2. End to end on real parts only: control plane + kubelet stand-in + kube-state-metrics +
   Prometheus 3 with the shipped rules + Alertmanager 0.3x + the receiver: a crash-looping second
   revision is rolled back to revision 1 exactly once.

Both rollouts in the differential use maxSurge 0 / maxUnavailable 100%: the real controller
then replaces every pod in one step, as the sandbox's immediate rollout does (docs/sandbox.md),
so the two clusters hold the same pods; the end-to-end test keeps the default progressive
strategy.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.controlplane import ControlPlane
from lab.kube_state_metrics import KubeStateMetrics
from lab.pipeline import Cluster, Generation, Pipeline, Timing
from lab.pipeline.processes import BUILT_ALERTMANAGER, BUILT_PROMETHEUS
from sandbox.testing import SandboxHandle
from tests.binaries import require_built
from tests.controlplane.support import (
    apply,
    deployment_manifest,
    get_json,
    kubectl,
    replicasets,
    rollout_status,
    set_template,
    wait_until,
)
from tests.rules.test_sandbox_metrics import JOIN_LABELS, NOT_IN_SANDBOX
from webhook import contract

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

Obj = dict[str, Any]
T = TypeVar("T")
# The kube-state-metrics families rules/rollback-rules.yaml reads and the labels it joins on
# (tests/rules/test_sandbox_metrics.py keeps that table equal to the rules' inputs); the init
# container variants join as their app-container twins do.
RULE_INPUTS: dict[str, set[str]] = {
    name: labels for name, labels in JOIN_LABELS.items() if name.startswith("kube_")
} | {name: JOIN_LABELS[name.replace("_init_container_", "_container_")] for name in NOT_IN_SANDBOX}
# What the receiver's Prometheus evidence reads besides (webhook/promql.py: pods ready).
RECEIVER_INPUTS = {"kube_pod_status_ready": {"namespace", "pod", "condition"}}
INPUTS = RULE_INPUTS | RECEIVER_INPUTS
# Families whose value is a creation time: compared with the object's creationTimestamp.
CREATED = {"kube_pod_created", "kube_replicaset_created"}
# Families whose value is a count that grows with the clock: compared as zero / more than zero.
COUNTS = {"kube_pod_container_status_restarts_total"}


def replaced_at_once(
    name: str, namespace: str, image: str, replicas: int, fault: str | None = None
) -> Obj:
    """A Deployment whose rollout replaces every pod in one step (maxSurge 0, maxUnavailable
    100%), as the sandbox's immediate rollout does."""
    return deployment_manifest(
        name, namespace, image, replicas=replicas, fault=fault, max_surge=0, max_unavailable="100%"
    )


def ksm_binary() -> str:
    return require_built("kube-state-metrics")


# ---- reading an exposition ------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    kind: str
    samples: list[tuple[dict[str, str], float]]


def families(text: str) -> dict[str, Family]:
    """Families by their exposition name (the parser strips a counter's `_total`; put back)."""
    found: dict[str, Family] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = Family(family.type, [(dict(s.labels), s.value) for s in family.samples])
    return found


def in_namespace(family: Family, namespace: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for labels, value in family.samples if labels["namespace"] == namespace]


# ---- one scenario, two clusters ---------------------------------------------------------------
def lone_replicaset(namespace: str, namespace_uid: str, deployment_uid: str) -> Obj:
    """A ReplicaSet no controller owns, with two non-controller owners (its namespace and the
    Deployment oom, whose selector does not match it): two owner series, both of which the
    rules' owner_is_controller="true" leaves out."""
    labels = {"app": "lone"}
    owners = [
        {"apiVersion": "v1", "kind": "Namespace", "name": namespace, "uid": namespace_uid},
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "oom", "uid": deployment_uid},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "lone", "namespace": namespace, "ownerReferences": owners},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "lone:1"}]},
            },
        },
    }


def bare_pod(namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "bare:1"}]},
    }


def first_revisions(namespace: str) -> list[Obj]:
    return [
        replaced_at_once("web", namespace, "web:1", 2),
        replaced_at_once("oom", namespace, "oom:1", 1),
        bare_pod(namespace),
    ]


def second_revisions(namespace: str, namespace_uid: str, oom_uid: str) -> list[Obj]:
    return [
        lone_replicaset(namespace, namespace_uid, oom_uid),
        replaced_at_once("web", namespace, "web:2", 2, "crashloop"),
        replaced_at_once("oom", namespace, "oom:2", 1, "oomkilled"),
    ]


def roles(replicasets_: list[Obj], pods: list[Obj]) -> dict[str, str]:
    """Object name -> its role in the scenario (`web@2`, `pod of web@2`, `bare`...), the same
    on both clusters whatever the hashes and random suffixes."""
    named: dict[str, str] = {}
    for rs in replicasets_:
        meta = rs["metadata"]
        owners = [r["name"] for r in meta.get("ownerReferences") or [] if r.get("controller")]
        revision = (meta.get("annotations") or {}).get(contract.REVISION)
        named[meta["name"]] = f"{owners[0]}@{revision}" if owners else meta["name"]
    for pod in pods:
        meta = pod["metadata"]
        owners = [r["name"] for r in meta.get("ownerReferences") or [] if r.get("controller")]
        named[meta["name"]] = f"pod of {named[owners[0]]}" if owners else meta["name"]
    return named


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def normalised(
    text: str, namespace: str, replicasets_: list[Obj], pods: list[Obj]
) -> Counter[tuple[str, tuple[tuple[str, str], ...], object]]:
    """The INPUTS series of `namespace`: object names replaced by their roles, `uid` dropped,
    creation times checked against the objects, restart counts as 0 / ">0"."""
    named = roles(replicasets_, pods)
    created = {o["metadata"]["name"]: epoch(o["metadata"]["creationTimestamp"]) for o in pods}
    created |= {
        o["metadata"]["name"]: epoch(o["metadata"]["creationTimestamp"]) for o in replicasets_
    }
    found = families(text)
    series: Counter[tuple[str, tuple[tuple[str, str], ...], object]] = Counter()
    for name in INPUTS:
        for labels, value in in_namespace(found[name], namespace) if name in found else []:
            subject = labels.get("pod") or labels.get("replicaset", "")
            shown: object = value
            if name in CREATED:
                shown = "creationTimestamp" if value == created.get(subject) else value
            elif name in COUNTS:
                shown = ">0" if value > 0 else value
            key = tuple(
                sorted(
                    (k, named.get(v, v) if k in {"pod", "replicaset", "owner_name"} else v)
                    for k, v in labels.items()
                    if k != "uid"
                )
            )
            series[(name, key, shown)] += 1
    return series


@dataclass
class Scrapes:
    """The same scenario read by real kube-state-metrics and from the sandbox."""

    namespace: str
    real: str
    sandbox: str
    real_objects: tuple[list[Obj], list[Obj]]
    sandbox_objects: tuple[list[Obj], list[Obj]]


def owned_pods(pods: list[Obj], replicaset: str) -> list[Obj]:
    return [
        p
        for p in pods
        if any(r["name"] == replicaset for r in p["metadata"].get("ownerReferences") or [])
    ]


def real_side(
    plane: ControlPlane, namespace: str, workdir: Path
) -> tuple[str, tuple[list[Obj], list[Obj]]]:
    apply(plane, *first_revisions(namespace))
    rollout_status(plane, namespace, "web")
    rollout_status(plane, namespace, "oom")
    space = json.loads(kubectl(plane, "get", "namespace", namespace, "-o", "json").stdout)
    oom = get_json(plane, "-n", namespace, "deployment", "oom")
    apply(plane, *second_revisions(namespace, space["metadata"]["uid"], oom["metadata"]["uid"]))
    ksm = KubeStateMetrics.start(
        binary=ksm_binary(), kubeconfig=plane.kubeconfig, workdir=workdir, namespaces=(namespace,)
    )
    try:

        def settled(text: str) -> tuple[str, tuple[list[Obj], list[Obj]]] | None:
            sets = get_json(plane, "-n", namespace, "replicasets")["items"]
            pods = [
                p
                for p in get_json(plane, "-n", namespace, "pods")["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]
            found = families(text)
            wanted = (
                "kube_pod_container_status_restarts_total",
                "kube_pod_container_status_last_terminated_reason",
                "kube_replicaset_spec_replicas",
            )
            if any(name not in found for name in wanted):
                return None  # a store kube-state-metrics has yet to sync exports no family
            restarts = in_namespace(found["kube_pod_container_status_restarts_total"], namespace)
            reasons = in_namespace(
                found["kube_pod_container_status_last_terminated_reason"], namespace
            )
            scraped_pods = {labels["pod"] for labels, _ in restarts}
            spec = in_namespace(found["kube_replicaset_spec_replicas"], namespace)
            scraped_spec = {labels["replicaset"]: value for labels, value in spec}
            crashing = [
                p["metadata"]["name"]
                for rs in sets
                if rs["spec"]["template"]["metadata"].get("annotations")
                for p in owned_pods(pods, rs["metadata"]["name"])
            ]
            done = (
                len(sets) == 5  # web@1, web@2, oom@1, oom@2, lone
                and len(pods) == 5  # 2 x web@2, oom@2, lone's, bare
                and scraped_pods == {p["metadata"]["name"] for p in pods}
                and scraped_spec == {r["metadata"]["name"]: r["spec"]["replicas"] for r in sets}
                and len(crashing) == 3
                and all(v > 0 for labels, v in restarts if labels["pod"] in crashing)
                and {labels["pod"] for labels, _ in reasons} == set(crashing)
            )
            return (text, (sets, pods)) if done else None

        return ksm.wait_for("the second revisions crash-looping, the first ones gone", settled)
    finally:
        ksm.stop()


def sandbox_side(namespace: str, workdir: Path) -> tuple[str, tuple[list[Obj], list[Obj]]]:
    sandbox = SandboxHandle.start(workdir=workdir)
    try:
        sandbox.controls.apply(first_revisions(namespace))  # creates the namespace
        space = sandbox.store.get("namespaces", None, namespace)["metadata"]["uid"]
        oom = sandbox.store.get("deployments", namespace, "oom")["metadata"]["uid"]
        sandbox.controls.apply(second_revisions(namespace, space, oom))
        with urllib.request.urlopen(sandbox.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        sets, _ = sandbox.store.list("replicasets", namespace)
        pods, _ = sandbox.store.list("pods", namespace)
        return text, (sets, pods)
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def scrapes(
    controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scrapes]:
    namespace = "ksm-" + uuid.uuid4().hex[:8]
    kubectl(controlplane, "create", "namespace", namespace)
    try:
        workdir = tmp_path_factory.mktemp("ksm-differential")
        real, real_objects = real_side(controlplane, namespace, workdir / "ksm")
        sandbox, sandbox_objects = sandbox_side(namespace, workdir / "sandbox")
        yield Scrapes(namespace, real, sandbox, real_objects, sandbox_objects)
    finally:
        kubectl(controlplane, "delete", "namespace", namespace, "--wait=false", check=False)


# ---- 1. the differential -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_family_the_rules_read_is_exported_by_default_with_the_sandbox_labels(
    scrapes: Scrapes, name: str
) -> None:
    real, sandbox = families(scrapes.real), families(scrapes.sandbox)
    assert name in real, f"real kube-state-metrics (default metric set) does not export {name}"
    if name in NOT_IN_SANDBOX:
        # No init containers in the scenario (the kubelet stand-in runs none): the family is
        # there, empty; the rules take it with `or` beside the app containers'.
        assert name not in sandbox or not sandbox[name].samples
        return
    assert name in sandbox, f"the sandbox does not serve {name}"
    assert sandbox[name].kind == real[name].kind
    real_names = {frozenset(labels) for labels, _ in in_namespace(real[name], scrapes.namespace)}
    sandbox_names = {
        frozenset(labels) for labels, _ in in_namespace(sandbox[name], scrapes.namespace)
    }
    assert real_names, f"real kube-state-metrics has no {name} series for the scenario"
    assert sandbox_names == real_names
    for labels in real_names:
        assert INPUTS[name] <= labels, (name, sorted(labels))


# The application's request histogram: the sandbox's stand-in for the pods' own /metrics.
APPLICATION = {"http_request_duration_seconds"}


def test_every_kube_family_the_sandbox_serves_is_real_with_its_type_and_label_names(
    scrapes: Scrapes,
) -> None:
    real, sandbox = families(scrapes.real), families(scrapes.sandbox)
    served = set(sandbox) - APPLICATION
    assert served - set(real) == set()
    for name in sorted(served):
        assert (name, sandbox[name].kind) == (name, real[name].kind)
        ours = {frozenset(labels) for labels, _ in in_namespace(sandbox[name], scrapes.namespace)}
        theirs = {frozenset(labels) for labels, _ in in_namespace(real[name], scrapes.namespace)}
        if ours and theirs:
            assert (name, ours) == (name, theirs)


def test_the_sandbox_series_agree_with_real_kube_state_metrics_object_for_object(
    scrapes: Scrapes,
) -> None:
    real = normalised(scrapes.real, scrapes.namespace, *scrapes.real_objects)
    sandbox = normalised(scrapes.sandbox, scrapes.namespace, *scrapes.sandbox_objects)
    only_real = sorted((real - sandbox).elements(), key=str)
    only_sandbox = sorted((sandbox - real).elements(), key=str)
    assert (only_real, only_sandbox) == ([], [])


def _labels(series: Counter[Any], name: str) -> list[dict[str, str]]:
    return [dict(key) for family, key, _ in series.elements() if family == name]


def test_real_kube_state_metrics_gives_the_joins_the_rules_rely_on(scrapes: Scrapes) -> None:
    # The shape rules/rollback-rules.yaml joins on, as the real exporter writes it (the sandbox
    # is held to the same series by the test above).
    series = normalised(scrapes.real, scrapes.namespace, *scrapes.real_objects)
    values = {(family, key): shown for family, key, shown in series}
    owners = {
        (d["pod"], d["owner_kind"], d["owner_name"], d["owner_is_controller"])
        for d in _labels(series, "kube_pod_owner")
    }
    assert owners == {
        ("pod of web@2", "ReplicaSet", "web@2", "true"),
        ("pod of oom@2", "ReplicaSet", "oom@2", "true"),
        ("pod of lone", "ReplicaSet", "lone", "true"),
        # An unowned pod: empty owner labels (absent, to Prometheus), not v1's "<none>".
        ("bare", "", "", ""),
    }
    rs_owners = {
        (d["replicaset"], d["owner_kind"], d["owner_name"], d["owner_is_controller"])
        for d in _labels(series, "kube_replicaset_owner")
    }
    assert rs_owners == {
        ("web@1", "Deployment", "web", "true"),
        ("web@2", "Deployment", "web", "true"),
        ("oom@1", "Deployment", "oom", "true"),
        ("oom@2", "Deployment", "oom", "true"),
        ("lone", "Namespace", scrapes.namespace, "false"),
        ("lone", "Deployment", "oom", "false"),
    }
    spec = {
        dict(key)["replicaset"]: shown
        for (family, key), shown in values.items()
        if family == "kube_replicaset_spec_replicas"
    }
    assert spec == {"web@1": 0, "web@2": 2, "oom@1": 0, "oom@2": 1, "lone": 1}
    deployments = {
        dict(key)["deployment"]: shown
        for (family, key), shown in values.items()
        if family == "kube_deployment_spec_replicas"
    }
    assert deployments == {"web": 2, "oom": 1}
    for family in CREATED:
        assert {shown for (f, _), shown in values.items() if f == family} == {"creationTimestamp"}
    restarts = {
        dict(key)["pod"]: shown
        for (family, key), shown in values.items()
        if family == "kube_pod_container_status_restarts_total"
    }
    assert restarts == {"pod of web@2": ">0", "pod of oom@2": ">0", "pod of lone": 0, "bare": 0}
    reasons = {
        (d["pod"], d["container"], d["reason"])
        for d in _labels(series, "kube_pod_container_status_last_terminated_reason")
    }
    assert reasons == {("pod of web@2", "app", "Error"), ("pod of oom@2", "app", "OOMKilled")}


# ---- 2. end to end -----------------------------------------------------------------------------
def test_crash_looping_second_revision_is_rolled_back_once_through_real_kube_state_metrics(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    require_built(BUILT_PROMETHEUS)
    require_built(BUILT_ALERTMANAGER)
    ksm = KubeStateMetrics.start(
        binary=ksm_binary(),
        kubeconfig=controlplane.kubeconfig,
        workdir=tmp_path / "ksm",
        namespaces=(namespace,),
    )
    cluster = Cluster(api_client=controlplane.api_client, metrics_target=ksm.target)
    try:
        with Pipeline.start(
            workdir=tmp_path / "pipeline",
            timing=Timing(),
            generation=Generation.CURRENT,
            cluster=cluster,
            # Revision 1 is seconds old here, not hours: healthy once it ran 3 s (as in the
            # other control-plane tests).
            receiver_settings={"min_healthy_seconds": 3},
        ) as pipeline:
            rolled_back_once(controlplane, namespace, pipeline)
    finally:
        ksm.stop()


def rolled_back_once(plane: ControlPlane, namespace: str, pipeline: Pipeline) -> None:
    audit = pipeline.receiver.service.audit

    def decisions() -> list[dict[str, Any]]:
        return list(reversed(audit.query(namespace=namespace, deployment="web", limit=50)))

    def image() -> str:
        deployment = get_json(plane, "-n", namespace, "deployment", "web")
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def waited(what: str, probe: Callable[[], T | None], timeout: float) -> T:
        try:
            return wait_until(what, probe, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            outcomes = [(d["outcome"], d["reason"]) for d in decisions()]
            alerts = pipeline.alert_states(namespace, "web")
            logs = "\n".join(p.log_tail()[-800:] for p in pipeline.processes)
            raise AssertionError(f"{exc}; decisions {outcomes}; alerts {alerts}\n{logs}") from None

    apply(plane, deployment_manifest("web", namespace, "web:1", replicas=2))
    rollout_status(plane, namespace, "web")
    time.sleep(4)  # longer than min_healthy_seconds: revision 1 has health evidence
    set_template(plane, namespace, "web", "web:2", "crashloop")
    # Progressive (maxSurge 25%, maxUnavailable 25%): one crash-looping pod of revision 2 while
    # revision 1's two pods serve.
    sets = waited("revision 2", lambda: (s := replicasets(plane, namespace, "web"))[1:] and s, 60)
    good, bad = (rs["metadata"]["name"] for rs in sets)

    waited("the rollback to web:1", lambda: image() == "web:1", 90)
    # The resolved notification follows once revision 2 is no longer current: a second
    # decision, and still one rollback.
    waited("a second notification", lambda: len(decisions()) >= 2, 60)
    rows = decisions()
    rolled = [r for r in rows if r["outcome"] == contract.ROLLED_BACK]
    assert len(rolled) == 1, [(r["outcome"], r["reason"]) for r in rows]
    [decision] = rolled
    assert decision["alertname"] == "RolloutRestartRateHigh"
    assert (decision["trigger"], decision["source"]) == ("restart_rate", "alertmanager")
    assert (decision["from_replicaset"], decision["to_replicaset"]) == (bad, good)
    assert (decision["from_revision"], decision["to_revision"]) == (2, 1)

    by_name = {rs["metadata"]["name"]: rs for rs in replicasets(plane, namespace, "web")}
    mark = json.loads(by_name[bad]["metadata"]["annotations"][contract.ANNOTATION_BAD_REVISION])
    assert (mark["trigger"], mark["audit_id"]) == ("restart_rate", decision["id"])
    assert contract.ANNOTATION_BAD_REVISION not in by_name[good]["metadata"]["annotations"]
    deployment = get_json(plane, "-n", namespace, "deployment", "web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    action = json.loads(deployment["metadata"]["annotations"][contract.ANNOTATION_LAST_ACTION])
    assert action["audit_id"] == decision["id"]
    events = json.loads(kubectl(plane, "-n", namespace, "get", "events", "-o", "json").stdout)
    reasons = [e["reason"] for e in events["items"]]
    assert reasons.count("AutoRollback") == 1, reasons
