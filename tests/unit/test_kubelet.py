"""The kubelet stand-in's pod status: the kubelet's crash back-off, OOMKilled, readiness delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lab.kubelet import backoff, crash_state, pod_status

START = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def pod(fault: str | None = None, readiness_delay: int | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "web:1"}
    if readiness_delay is not None:
        container["readinessProbe"] = {"initialDelaySeconds": readiness_delay}
    annotations = {"sandbox.auto-rollback/fault": fault} if fault else {}
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "annotations": annotations},
        "spec": {"containers": [container]},
        "status": {"startTime": "2026-12-01T10:00:00Z"},
    }


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_back_off_doubles_from_10s_and_caps_at_300s() -> None:
    assert [backoff(n, 1.0) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff(3, 0.1) == 4.0


def test_restarts_follow_the_back_off() -> None:
    # Fails at 0; restarts at 10, 30, 70, 150 s (and fails again each time).
    assert [crash_state(START, at(t), 1.0).restarts for t in (0, 9, 10, 29, 30, 70, 150)] == [
        0,
        0,
        1,
        1,
        2,
        3,
        4,
    ]
    assert crash_state(START, at(35), 1.0).waiting_seconds == 40


def test_crash_loop_status_is_waiting_crashloopbackoff_with_the_last_failure() -> None:
    status = pod_status(pod("crashloop"), at(31), scale=1.0)
    [container] = status["containerStatuses"]
    assert container["restartCount"] == 2 and not container["ready"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["reason"] == "Error"
    assert container["lastState"]["terminated"]["finishedAt"] == "2026-12-01T10:00:30Z"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"


def test_oomkilled_is_the_last_termination_reason() -> None:
    [container] = pod_status(pod("oomkilled"), at(12), scale=1.0)["containerStatuses"]
    assert container["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert container["lastState"]["terminated"]["exitCode"] == 137


def test_ready_after_the_readiness_probe_delay_with_that_transition_time() -> None:
    before = pod_status(pod(readiness_delay=5), at(4), scale=1.0)
    after = pod_status(pod(readiness_delay=5), at(6), scale=1.0)
    assert before["phase"] == after["phase"] == "Running"
    assert not before["containerStatuses"][0]["ready"]
    ready = next(c for c in after["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == "2026-12-01T10:00:05Z"


def test_slow_pods_are_ready_at_once_without_a_probe() -> None:
    status = pod_status(pod("slow"), at(0), scale=1.0)
    assert status["containerStatuses"][0]["ready"]
    assert status["containerStatuses"][0]["restartCount"] == 0
