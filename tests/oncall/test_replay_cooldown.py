"""Replaying a `cooldown` skip: only `overrides.ignore_cooldown` gets past it, and the audit
says who did it and which skip it overrode (README: safety policy, on-call, audit)."""

from __future__ import annotations

from typing import Any

from lab.receiver_harness import hours, minutes, now, template_images
from tests.oncall.support import BOB, OnCall
from webhook.revisions import format_k8s_time


def cooldown_skip(oncall: OnCall) -> tuple[list[str], dict[str, Any]]:
    """web was rolled back from :2 to :1, :1 proved healthy (the tracker's stamp), then a human
    rolled out :3 and it fails within the hour: skipped `cooldown`. Returns (:1, :2, :3), skip."""
    h = oncall.h
    rs = h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    [first] = h.post_alerts(h.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    assert first["outcome"] == "rolled_back", first
    h.official().patch_namespaced_replica_set(
        rs[0],
        "shop",
        {"metadata": {"annotations": {"auto-rollback/healthy-since": format_k8s_time(now())}}},
    )
    third = h.deploy("web", [("web:3", minutes(0))])[-1]
    [skip] = h.post_alerts(
        h.alert(namespace="shop", deployment="web", replicaset=third, started_ago=minutes(0))
    )
    assert (skip["outcome"], skip["reason"]) == ("skipped", "cooldown"), skip
    return [rs[0], rs[1], third], skip


def test_cooldown_skip_replayed_with_ignore_cooldown_rolls_back_and_is_linked(
    oncall: OnCall,
) -> None:
    rs, skip = cooldown_skip(oncall)
    status, done = oncall.replay(
        {
            "audit_id": skip["id"],
            "reason": "web:3 is broken too, roll back again",
            "dry_run": False,
            "overrides": {"ignore_cooldown": True},
        },
        token=BOB,
    )
    assert status == 200, done
    assert done["refused"] is False
    [rolled] = done["decisions"]
    assert rolled["outcome"] == "rolled_back", rolled
    assert (rolled["from_replicaset"], rolled["to_replicaset"]) == (rs[2], rs[0])
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:1"]
    # The revision rolled back from is marked, as for any rollback.
    marked = next(r for r in oncall.h.replicasets("shop", "web") if r["metadata"]["name"] == rs[2])
    assert "auto-rollback/bad-revision" in marked["metadata"]["annotations"]

    detail = oncall.audit(f"/{skip['id']}").get_json()
    [replay] = detail["replays"]
    assert replay["id"] == rolled["id"]
    assert (replay["source"], replay["actor"], replay["replay_of"]) == ("replay", "bob", skip["id"])
    assert replay["overrides"] == {"ignore_cooldown": True}
    assert replay["dry_run"] is False
    assert replay["detail"].startswith("replay execute by bob: web:3 is broken too")
    # The original skip is kept as it was.
    assert detail["decision"]["reason"] == "cooldown"


def test_cooldown_skip_replayed_without_the_override_stays_cooldown(oncall: OnCall) -> None:
    _, skip = cooldown_skip(oncall)
    status, answer = oncall.replay(
        {
            "audit_id": skip["id"],
            "reason": "try again",
            "dry_run": False,
            # The other override does not waive the cooldown.
            "overrides": {"ignore_recent_window": True},
        }
    )
    assert status == 200, answer
    assert answer["refused"] is True
    [decision] = answer["decisions"]
    assert (decision["outcome"], decision["reason"]) == ("skipped", "cooldown")
    [refusal] = answer["refusals"]
    assert refusal["reason"] == "cooldown"
    assert refusal["overridable_with"] == "ignore_cooldown"
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:3"]
    row = oncall.h.service.audit.get(decision["id"])
    assert row is not None
    assert (row["replay_of"], row["actor"]) == (skip["id"], "alice")


def test_ignore_cooldown_preview_changes_nothing(oncall: OnCall) -> None:
    rs, skip = cooldown_skip(oncall)
    before = oncall.h.deployment("shop", "web")["metadata"]["resourceVersion"]
    status, preview = oncall.replay(
        {"audit_id": skip["id"], "reason": "look first", "overrides": {"ignore_cooldown": True}}
    )
    assert status == 200, preview
    [would] = preview["decisions"]
    assert would["outcome"] == "dry_run" and would["to_replicaset"] == rs[0]
    after = oncall.h.deployment("shop", "web")
    assert after["metadata"]["resourceVersion"] == before
    assert template_images(after) == ["web:3"]
