"""Rollbacks of different Deployments are written in parallel (the gate's lock only reserves the
breaker slot; the PUT happens outside it), and only a decision's final attempt leaves marks: one
re-decided after a 409 writes no alerted-at on the revision it found replaced."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from lab.receiver_harness import Harness, hours, minutes, template_images


def _post_in_thread(
    harness: Harness, alert: dict[str, Any], out: dict[str, Any]
) -> threading.Thread:
    def run() -> None:
        client = harness.app.test_client()  # one client per thread
        response = client.post(
            "/api/v1/alerts",
            json=harness.payload(alert),
            headers={"Authorization": "Bearer " + harness_token(harness)},
        )
        out["decision"] = response.get_json()["decisions"][0]
        out["done"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def harness_token(harness: Harness) -> str:
    return (harness.tmp_path / "token").read_text().strip()


# web's PUT is answered this late; the client waits twice as long, so a loaded machine's lag on
# top of the delay is no timeout.
PUT_DELAY = 3.0


def test_a_slow_rollback_write_does_not_hold_up_another_deployments_rollback(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness(kubernetes={"timeout_seconds": 2 * PUT_DELAY})
    web = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    api = harness.deploy("api", [("api:1", hours(2)), ("api:2", minutes(3))])
    # web's PUT is answered only after PUT_DELAY; api's rollback is decided and written
    # meanwhile.
    harness.sandbox.controls.fault(
        method="PUT", path="/deployments/web$", action="delay", delay=PUT_DELAY
    )
    slow: dict[str, Any] = {}
    fast: dict[str, Any] = {}
    started = time.monotonic()
    first = _post_in_thread(
        harness, harness.alert(namespace="shop", deployment="web", replicaset=web[1]), slow
    )
    time.sleep(0.3)  # web's decision is in its PUT by now
    second = _post_in_thread(
        harness, harness.alert(namespace="shop", deployment="api", replicaset=api[1]), fast
    )
    second.join(timeout=10)
    first.join(timeout=10)
    assert slow["decision"]["outcome"] == fast["decision"]["outcome"] == "rolled_back"
    assert fast["done"] < slow["done"], "api's rollback waited for web's write"
    # Done before web's PUT, sent after `started`, could even have been answered.
    assert fast["done"] - started < PUT_DELAY
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
    assert template_images(harness.deployment("shop", "api")) == ["api:1"]


def test_a_decision_redecided_after_a_409_leaves_no_alerted_mark_from_its_first_attempt(
    harness: Harness,
) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    # Just before our PUT, someone rolls web forward to web:3: the PUT meets 409, and the
    # fresh read finds web:2 no longer current.
    harness.sandbox.controls.interleave(
        method="PUT",
        path="/deployments/web$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch={
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "web:3", "ports": [{"containerPort": 8080}]}
                        ]
                    }
                }
            }
        },
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert (decision["outcome"], decision["reason"]) == ("skipped", "not_current_revision")
    statuses = [r["status"] for r in harness.sandbox.controls.requests() if r["method"] == "PUT"]
    assert statuses == [409]
    marked = {
        r["metadata"]["name"]: r["metadata"].get("annotations", {})
        for r in harness.replicasets("shop", "web")
    }
    # The first attempt saw web:2 alerting while current; the final one found it replaced.
    assert "auto-rollback/alerted-at" not in marked[rs[1]]
    assert template_images(harness.deployment("shop", "web")) == ["web:3"]
