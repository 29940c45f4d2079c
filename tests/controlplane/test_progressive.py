"""Progressive rollouts paced by the real Deployment controller, and the decision a user expects
in each: a crash-looping surge pod while the old pods still serve, a human `kubectl rollout
undo` mid-rollout and after completion (then an alert for the re-adopted revision inside and
outside the recent window), progress deadline exceeded, and controller lag."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import ControlPlane
from lab.receiver_harness import REV
from tests.controlplane.support import (
    alert_now,
    apply,
    condition,
    deployment_manifest,
    get_json,
    kubectl,
    pods_of,
    receiver,
    replicasets,
    rollout_status,
    set_template,
    wait_until,
)

pytestmark = pytest.mark.controlplane


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_at(harness: Any, starts_at: datetime, **labels: str) -> dict[str, Any]:
    alert: dict[str, Any] = harness.alert(**labels)
    alert["startsAt"] = iso(starts_at)
    return alert


class Availability:
    """Samples the Deployment's availableReplicas in the background: the floor it kept."""

    def __init__(self, plane: ControlPlane, namespace: str, name: str) -> None:
        self.plane, self.namespace, self.name = plane, namespace, name
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            deployment = get_json(self.plane, "-n", self.namespace, "deployment", self.name)
            self.samples.append(int(deployment.get("status", {}).get("availableReplicas") or 0))
            self._stop.wait(0.3)

    def __enter__(self) -> Availability:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def healthy_first_revision(plane: ControlPlane, namespace: str, **spec: Any) -> None:
    apply(plane, deployment_manifest("web", namespace, "web:1", **spec))
    rollout_status(plane, namespace, "web")
    time.sleep(4)  # longer than the receiver's min_healthy_seconds (3): revision 1 is healthy


def test_crash_looping_surge_pod_with_max_unavailable_0_rolls_back_while_old_pods_serve(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    healthy_first_revision(controlplane, namespace, replicas=3, max_surge=1, max_unavailable=0)
    with Availability(controlplane, namespace, "web") as availability:
        set_template(controlplane, namespace, "web", "web:2", "crashloop")

        def surge_pod_restarted() -> list[dict[str, Any]] | None:
            sets = replicasets(controlplane, namespace, "web")
            if len(sets) < 2:
                return None
            pods = pods_of(controlplane, namespace, sets[-1]["metadata"]["name"])
            restarts = [
                c.get("restartCount", 0)
                for p in pods
                for c in p.get("status", {}).get("containerStatuses") or []
            ]
            if not restarts or min(restarts) < 1:
                return None
            # The controller writes the Deployment's status after the ReplicaSets': wait until
            # it counts the surge pod too, then judge the status below.
            deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
            status = deployment.get("status") or {}
            observed = status.get("observedGeneration") == deployment["metadata"]["generation"]
            return sets if observed and status.get("updatedReplicas") else None

        old, new = wait_until("the surge pod to restart", surge_pod_restarted)[-2:]
        # Mid-rollout: two active ReplicaSets, the old one still serving all replicas.
        deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
        status = deployment["status"]
        assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 1, status
        old_now = get_json(controlplane, "-n", namespace, "rs", old["metadata"]["name"])
        new_now = get_json(controlplane, "-n", namespace, "rs", new["metadata"]["name"])
        assert old_now["status"].get("readyReplicas") == 3
        assert new_now["spec"]["replicas"] == 1 and not new_now["status"].get("readyReplicas")
        [pod] = pods_of(controlplane, namespace, new["metadata"]["name"])
        [container] = pod["status"]["containerStatuses"]
        assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"

        harness = receiver(controlplane, tmp_path)
        decision = alert_now(
            harness, namespace=namespace, deployment="web", replicaset=new["metadata"]["name"]
        )
        assert decision["outcome"] == "rolled_back", decision
        assert (decision["from_revision"], decision["to_revision"]) == (2, 1)
        rollout_status(controlplane, namespace, "web")
    assert min(availability.samples) == 3, availability.samples
    sets = {rs["metadata"]["name"]: rs for rs in replicasets(controlplane, namespace, "web")}
    assert sets[old["metadata"]["name"]]["metadata"]["annotations"][REV] == "3"
    assert sets[new["metadata"]["name"]]["spec"]["replicas"] == 0


def human_undo(
    plane: ControlPlane, namespace: str, *, mid_rollout: bool
) -> tuple[str, str, datetime]:
    """web:1 healthy, web:2 rolled out (fully, or undone mid-way) by steps of minReadySeconds;
    then `kubectl rollout undo`. Returns (re-adopted RS, abandoned RS, when the undo returned)."""
    healthy_first_revision(
        plane, namespace, replicas=3, max_surge=1, max_unavailable=0, min_ready_seconds=3
    )
    started = time.monotonic()
    set_template(plane, namespace, "web", "web:2", None)
    if mid_rollout:

        def mid_way() -> bool:
            sets = replicasets(plane, namespace, "web")
            return len(sets) == 2 and 2 <= int(sets[-1]["spec"]["replicas"]) < 3

        wait_until("the rollout of revision 2 to be mid-way", mid_way)
    else:
        rollout_status(plane, namespace, "web")
    time.sleep(max(0.0, 4 - (time.monotonic() - started)))  # revision 2 ran > 3 s
    first, second = (rs["metadata"]["name"] for rs in replicasets(plane, namespace, "web"))
    kubectl(plane, "-n", namespace, "rollout", "undo", "deployment/web")
    undone = datetime.now(UTC)
    wait_until(
        "revision 1's ReplicaSet re-adopted as revision 3",
        lambda: replicasets(plane, namespace, "web")[-1]["metadata"]["name"] == first,
    )
    rollout_status(plane, namespace, "web")
    return first, second, undone


@pytest.mark.parametrize("mid_rollout", [True, False], ids=["mid-rollout", "after-completion"])
def test_alert_soon_after_a_human_undo_is_acted_on(
    controlplane: ControlPlane, namespace: str, tmp_path: Path, mid_rollout: bool
) -> None:
    readopted, abandoned, undone = human_undo(controlplane, namespace, mid_rollout=mid_rollout)
    time.sleep(2)  # let the controller's Progressing lastUpdateTime move past the alert's start
    deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
    progressing = condition(deployment, "Progressing")
    harness = receiver(controlplane, tmp_path)
    alert = alert_at(
        harness,
        undone + timedelta(seconds=1),
        namespace=namespace,
        deployment="web",
        replicaset=readopted,
    )
    [decision] = harness.post_alerts(alert)
    # The re-adopted revision became current at the undo, not at the controller's last step.
    assert decision["outcome"] == "rolled_back", (decision, progressing)
    assert (decision["from_revision"], decision["to_revision"]) == (3, 2)
    assert decision["to_replicaset"] == abandoned


@pytest.mark.parametrize("mid_rollout", [True, False], ids=["mid-rollout", "after-completion"])
def test_alert_outside_the_recent_window_of_a_human_undo_is_skipped(
    controlplane: ControlPlane, namespace: str, tmp_path: Path, mid_rollout: bool
) -> None:
    readopted, _abandoned, undone = human_undo(controlplane, namespace, mid_rollout=mid_rollout)
    window = 6
    starts = undone + timedelta(seconds=window + 3)
    wait_until("the alert's start to pass", lambda: datetime.now(UTC) > starts, timeout=30)
    harness = receiver(controlplane, tmp_path, recent_rollout_window=window)
    [decision] = harness.post_alerts(
        alert_at(harness, starts, namespace=namespace, deployment="web", replicaset=readopted)
    )
    deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
    assert decision["outcome"] == "skipped", (decision, condition(deployment, "Progressing"))
    assert decision["reason"] == "no_recent_rollout", decision


def test_progress_deadline_exceeded_still_rolls_back(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    healthy_first_revision(
        controlplane,
        namespace,
        replicas=2,
        max_surge=1,
        max_unavailable=0,
        progress_deadline_seconds=5,
    )
    set_template(controlplane, namespace, "web", "web:2", "oomkilled")

    def deadline_exceeded() -> dict[str, Any] | None:
        deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
        found = condition(deployment, "Progressing")
        return deployment if found.get("reason") == "ProgressDeadlineExceeded" else None

    # Nothing else writes: the controller requeues the deadline itself.
    deployment = wait_until("ProgressDeadlineExceeded", deadline_exceeded, timeout=60)
    assert condition(deployment, "Progressing")["status"] == "False"
    assert deployment["status"]["availableReplicas"] == 2
    new = replicasets(controlplane, namespace, "web")[-1]
    [pod] = pods_of(controlplane, namespace, new["metadata"]["name"])
    [container] = pod["status"]["containerStatuses"]
    assert container["lastState"]["terminated"]["reason"] == "OOMKilled"

    harness = receiver(controlplane, tmp_path)
    decision = alert_now(
        harness,
        namespace=namespace,
        deployment="web",
        replicaset=new["metadata"]["name"],
        trigger="oomkilled",
    )
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_revision"] == 1
    rollout_status(controlplane, namespace, "web")
    after = get_json(controlplane, "-n", namespace, "deployment", "web")
    assert condition(after, "Progressing")["reason"] == "NewReplicaSetAvailable"


def _pid(plane: ControlPlane, name: str) -> int:
    pids = dict(line.split() for line in (plane.workdir / "run" / "pids").read_text().splitlines())
    return int(pids[name])


def test_controller_lag_is_waited_out_not_met_with_back_to_back_retries(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The controller-manager paused while a human undoes: the Deployment runs revision 1's
    template but its ReplicaSet is not yet revision 3. The receiver waits for the controller
    (bounded backoff) and then decides on what it did, instead of failing with conflict."""
    healthy_first_revision(controlplane, namespace, replicas=1)
    set_template(controlplane, namespace, "web", "web:2", None)
    rollout_status(controlplane, namespace, "web")
    time.sleep(4)
    first = replicasets(controlplane, namespace, "web")[0]["metadata"]["name"]
    # Pauses of 0.2, 0.4, 0.8, 1.6, 1.6 s: room for a resumed controller on a loaded machine.
    harness = receiver(controlplane, tmp_path, max_conflict_retries=5)
    manager = _pid(controlplane, "kube-controller-manager")
    result: list[dict[str, Any]] = []
    os.kill(manager, signal.SIGSTOP)
    try:
        kubectl(controlplane, "-n", namespace, "rollout", "undo", "deployment/web")
        lagging = get_json(controlplane, "-n", namespace, "deployment", "web")
        assert lagging["status"]["observedGeneration"] < lagging["metadata"]["generation"]
        alert = harness.alert(
            namespace=namespace,
            deployment="web",
            replicaset=first,
            started_ago=timedelta(seconds=0),
        )
        poster = threading.Thread(target=lambda: result.extend(harness.post_alerts(alert)))
        poster.start()
        time.sleep(0.3)
    finally:
        os.kill(manager, signal.SIGCONT)
    poster.join(timeout=30)
    [decision] = result
    assert decision["outcome"] == "rolled_back", decision
    assert (decision["from_revision"], decision["to_revision"]) == (3, 2), decision


def test_a_repeat_just_after_a_rollback_is_not_current_revision_before_the_renumbering(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The controller-manager paused right after an automatic rollback: the Deployment runs
    revision 1's template again, but that ReplicaSet is not yet re-numbered as revision 3. A
    repeat of the alert for revision 2 (Alertmanager's next delivery, or another alert of the
    same group) is not_current_revision from that template at once, and one naming only the
    Deployment rollback_of_rollback, not failed/conflict once the wait for the controller runs
    out (which a storm on the real control plane showed)."""
    healthy_first_revision(controlplane, namespace, replicas=1)
    set_template(controlplane, namespace, "web", "web:2", None)
    rollout_status(controlplane, namespace, "web")
    bad = replicasets(controlplane, namespace, "web")[-1]["metadata"]["name"]
    harness = receiver(controlplane, tmp_path)
    alert = harness.alert(
        namespace=namespace, deployment="web", replicaset=bad, started_ago=timedelta(seconds=0)
    )
    manager = _pid(controlplane, "kube-controller-manager")
    os.kill(manager, signal.SIGSTOP)
    try:
        [first] = harness.post_alerts(alert)
        [repeat] = harness.post_alerts(alert)
        # Another rule's alert that names only the Deployment: it implicates revision 1's
        # ReplicaSet, which the template runs and last-action says was rolled back to.
        [by_deployment] = harness.post_alerts(
            harness.alert(namespace=namespace, deployment="web", started_ago=timedelta(0))
        )
        lagging = get_json(controlplane, "-n", namespace, "deployment", "web")
    finally:
        os.kill(manager, signal.SIGCONT)
    assert first["outcome"] == "rolled_back", first
    assert (first["from_revision"], first["to_revision"]) == (2, 1), first
    assert lagging["status"]["observedGeneration"] < lagging["metadata"]["generation"]
    assert (repeat["outcome"], repeat["reason"]) == ("skipped", "not_current_revision"), repeat
    assert bad in repeat["detail"] and "re-number" in repeat["detail"], repeat
    assert (by_deployment["outcome"], by_deployment["reason"]) == (
        "skipped",
        "rollback_of_rollback",
    ), by_deployment
    rollout_status(controlplane, namespace, "web")
    assert [
        rs["metadata"]["annotations"][REV] for rs in replicasets(controlplane, namespace, "web")
    ] == ["2", "3"]
