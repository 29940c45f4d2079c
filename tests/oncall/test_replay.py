"""POST /api/v1/replay: preview first, then the real rollback; safety policy is never waived."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.oncall.support import ALICE, BOB, RECEIVER, OnCall
from webhook.replay import find_alert


def stale_rollout(oncall: OnCall) -> tuple[list[str], dict[str, Any]]:
    """Revision 2 became current two hours ago; an alert now is outside the 30m window."""
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert (skip["outcome"], skip["reason"]) == ("skipped", "no_recent_rollout"), skip
    return rs, skip


def test_no_recent_rollout_skip_is_previewed_then_rolled_back_and_linked(oncall: OnCall) -> None:
    rs, skip = stale_rollout(oncall)
    before = oncall.h.deployment("shop", "web")
    oncall.h.sandbox.controls.clear_requests()

    status, preview = oncall.replay(
        {
            "audit_id": skip["id"],
            "reason": "rollout was just outside the window; web:2 is the culprit",
            "overrides": {"ignore_recent_window": True},
        }
    )
    assert status == 200, preview
    [would] = preview["decisions"]
    assert preview["dry_run"] is True and preview["refused"] is False
    assert would["outcome"] == "dry_run" and would["dry_run"] is True
    assert (would["from_revision"], would["to_revision"]) == (2, 1)
    assert "revision 2" in preview["summary"] and "revision 1" in preview["summary"]
    # Only the AutoRollbackDryRun Event is written: no Deployment or ReplicaSet change.
    assert {resource for _, resource, _ in oncall.cluster_writes()} == {"events"}
    after = oncall.h.deployment("shop", "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert template_images(after) == ["web:2"]

    status, done = oncall.replay(
        {
            "audit_id": skip["id"],
            "reason": "confirmed after preview",
            "dry_run": False,
            "overrides": {"ignore_recent_window": True},
        },
        token=BOB,
    )
    assert status == 200, done
    [rolled] = done["decisions"]
    assert rolled["outcome"] == "rolled_back", rolled
    assert (rolled["from_revision"], rolled["to_revision"]) == (2, 1)
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:1"]

    response = oncall.audit(f"/{skip['id']}")
    assert response.status_code == 200
    detail = response.get_json()
    assert detail["decision"]["id"] == skip["id"]
    assert detail["payload"]["body"]["alerts"][0]["labels"]["replicaset"] == rs[1]
    replays = detail["replays"]
    assert [(r["id"], r["actor"], r["source"], r["outcome"]) for r in replays] == [
        (would["id"], "alice", "replay", "dry_run"),
        (rolled["id"], "bob", "replay", "rolled_back"),
    ]
    assert all(r["replay_of"] == skip["id"] for r in replays)
    assert all(r["overrides"] == {"ignore_recent_window": True} for r in replays)
    # The reason each person gave is in the audit, before the decider's own detail.
    assert replays[0]["detail"].startswith(
        "replay preview (dry run) by alice: rollout was just outside the window"
    )
    assert replays[1]["detail"].startswith("replay execute by bob: confirmed after preview")
    # Each replay's payload is stored too, attributed to the person.
    stored = oncall.audit(f"/{rolled['id']}").get_json()["payload"]
    assert (stored["source"], stored["actor"]) == ("replay", "bob")


def test_replay_without_override_stays_skipped_and_names_the_override(oncall: OnCall) -> None:
    _, skip = stale_rollout(oncall)
    status, answer = oncall.replay({"audit_id": skip["id"], "reason": "just look"})
    assert status == 200
    assert answer["refused"] is True
    [refusal] = answer["refusals"]
    assert refusal["reason"] == "no_recent_rollout"
    assert refusal["overridable_with"] == "ignore_recent_window"
    assert "overrides.ignore_recent_window" in refusal["message"]


def refused(oncall: OnCall, body: dict[str, Any]) -> dict[str, Any]:
    """Replay for real with every override; assert refused; return the one refusal."""
    status, answer = oncall.replay(
        {
            "reason": "trying to force it",
            "dry_run": False,
            "overrides": {"ignore_recent_window": True, "ignore_cooldown": True},
            **body,
        }
    )
    assert status == 200, answer
    assert answer["refused"] is True, answer
    [decision] = answer["decisions"]
    assert decision["outcome"] == "skipped"
    [refusal] = answer["refusals"]
    assert refusal["overridable_with"] is None
    assert "never overridable" in refusal["message"] and refusal["reason"] in refusal["message"]
    assert "refused" in answer["summary"]
    assert "trying to force it" not in refusal["message"]  # the decider's reason, not ours
    row = oncall.h.service.audit.get(decision["id"])
    assert row is not None and row["detail"].startswith("replay execute by alice: trying to force")
    return refusal


def test_opt_out_is_never_overridable(oncall: OnCall) -> None:
    rs = oncall.h.deploy(
        "web",
        [("web:1", hours(3)), ("web:2", minutes(5))],
        annotations={"auto-rollback/enabled": "false"},
    )
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert skip["reason"] == "not_opted_in"
    assert refused(oncall, {"audit_id": skip["id"]})["reason"] == "not_opted_in"
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]


def test_namespace_deny_is_never_overridable_even_for_a_given_payload(oncall: OnCall) -> None:
    oncall.h.deploy("dns", [("dns:1", hours(3)), ("dns:2", minutes(5))], namespace="kube-system")
    payload = oncall.h.payload(oncall.h.alert(namespace="kube-system", deployment="dns"))
    refusal = refused(oncall, {"payload": payload})
    assert refusal["reason"] == "namespace_denied" and "namespaces.deny" in refusal["message"]
    assert template_images(oncall.h.deployment("kube-system", "dns")) == ["dns:2"]


def test_bad_mark_is_never_overridable(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    # Revision 1 was rolled back from once: it must never become a target again.
    oncall.h.official().patch_namespaced_replica_set(
        rs[0],
        "shop",
        {"metadata": {"annotations": {"auto-rollback/bad-revision": '{"reason": "earlier"}'}}},
    )
    payload = oncall.h.payload(oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    refusal = refused(oncall, {"payload": payload})
    assert refusal["reason"] == "no_healthy_revision" and "bad" in refusal["message"]
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]


def test_replaying_an_alert_already_rolled_back_from_is_refused(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    [done] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert done["outcome"] == "rolled_back"
    refusal = refused(oncall, {"audit_id": done["id"]})
    assert refusal["reason"] == "not_current_revision" and "marked bad" in refusal["message"]


def test_circuit_breaker_is_never_overridable(sandbox: SandboxHandle, tmp_path: Path) -> None:
    oncall = OnCall(Harness(sandbox, tmp_path, max_rollbacks=1))
    first = oncall.h.deploy("a", [("a:1", hours(3)), ("a:2", minutes(5))])
    [done] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="a", replicaset=first[1])
    )
    assert done["outcome"] == "rolled_back"
    second = oncall.h.deploy("b", [("b:1", hours(3)), ("b:2", minutes(5))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="b", replicaset=second[1])
    )
    assert skip["reason"] == "circuit_open"
    assert refused(oncall, {"audit_id": skip["id"]})["reason"] == "circuit_open"
    assert template_images(oncall.h.deployment("shop", "b")) == ["b:2"]


def test_tokens_of_the_wrong_kind_get_403_and_none_401(oncall: OnCall) -> None:
    body = {
        "payload": oncall.h.payload(oncall.h.alert(namespace="shop", deployment="web")),
        "reason": "x",
    }
    assert oncall.replay(body, token=RECEIVER)[0] == 403
    assert oncall.replay(body, token=None)[0] == 401
    assert oncall.replay(body, token="not-a-token")[0] == 401
    assert oncall.audit(token=RECEIVER).status_code == 403
    assert oncall.audit(token=None).status_code == 401
    assert oncall.audit("/d-nothing", token=None).status_code == 401
    # And the other way round: an on-call token cannot post alerts.
    assert oncall.h.post(oncall.h.payload(), token=ALICE).status_code == 403
    assert oncall.h.service.audit.query() == []  # nothing decided by any of these


def test_invalid_replays_are_400_naming_the_field(oncall: OnCall) -> None:
    _, skip = stale_rollout(oncall)
    # error message pattern -> body
    cases = {
        r"overrides\.namespace_denied: not overridable": {
            "audit_id": skip["id"],
            "reason": "r",
            "overrides": {"namespace_denied": True},
        },
        r"overrides\.ignore_opt_out: not overridable": {
            "audit_id": skip["id"],
            "reason": "r",
            "overrides": {"ignore_opt_out": True},
        },
        "reason: required": {"audit_id": skip["id"]},
        "audit_id or payload: give exactly one": {
            "audit_id": skip["id"],
            "payload": {},
            "reason": "r",
        },
        "dry_run: expected true or false": {"audit_id": skip["id"], "reason": "r", "dry_run": "no"},
        "execute: unknown field": {"audit_id": skip["id"], "reason": "r", "execute": True},
        "payload: .*'alerts'": {
            "payload": {"version": "4", "status": "firing"},
            "reason": "r",
        },
        r"payload\.alerts\[0\]\.startsAt: ": {
            "payload": {
                "version": "4",
                "status": "firing",
                "alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}],
            },
            "reason": "r",
        },
    }
    for pattern, body in cases.items():
        status, answer = oncall.replay(body)
        assert status == 400, (pattern, answer)
        assert re.match(pattern, answer["error"]), (pattern, answer)
    status, answer = oncall.replay({"audit_id": "d-nope", "reason": "r"})
    assert status == 404 and "d-nope" in answer["error"]
    assert len(oncall.h.service.audit.query()) == 1  # only the original skip


def test_paused_deployment_is_never_overridable(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    oncall.h.official().patch_namespaced_deployment("web", "shop", {"spec": {"paused": True}})
    payload = oncall.h.payload(oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    assert refused(oncall, {"payload": payload})["reason"] == "paused"
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]


def test_watch_only_server_previews_but_never_executes(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    oncall = OnCall(Harness(sandbox, tmp_path, dry_run=True))
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    payload = oncall.h.payload(oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    status, preview = oncall.replay({"payload": payload, "reason": "look"})
    assert status == 200 and preview["decisions"][0]["outcome"] == "dry_run"
    status, answer = oncall.replay({"payload": payload, "reason": "act", "dry_run": False})
    assert status == 409 and answer["error"].startswith("dry_run: the server runs with dry_run")
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]
    assert len(oncall.h.service.audit.query()) == 1  # the preview only


def test_a_replay_by_audit_id_replays_that_decisions_alert_not_one_sharing_its_fingerprint(
    oncall: OnCall,
) -> None:
    """A fingerprint is whatever the sender wrote: two alerts of one payload may share one.
    The replay takes the alert with the decision's labels, so it can only act on the
    Deployment that decision was about."""
    h = oncall.h
    rs = h.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    h.official().patch_namespaced_deployment("web", "shop", {"spec": {"paused": True}})
    about_web = h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    about_other = h.alert(namespace="shop", deployment="other")
    about_web["fingerprint"] = about_other["fingerprint"] = "0123456789abcdef"
    paused, missing = h.post_alerts(about_web, about_other)
    assert (paused["reason"], missing["reason"]) == ("paused", "deployment_not_found")
    h.official().patch_namespaced_deployment("web", "shop", {"spec": {"paused": False}})

    status, body = oncall.replay(
        {"audit_id": missing["id"], "reason": "the other one", "dry_run": False}
    )
    assert status == 200, body
    [again] = body["decisions"]
    assert (again["deployment"], again["reason"]) == ("other", "deployment_not_found"), again
    assert template_images(h.deployment("shop", "web")) == ["web:2"]  # web untouched
    # The console's decision page shows that alert too (its labels, not the first fingerprint's).
    detail = oncall.audit(f"/{missing['id']}").get_json()
    shown = find_alert(detail["decision"], detail["payload"]["body"])
    assert shown is not None and shown["labels"]["deployment"] == "other"
