"""When a re-adopted revision became current: from the template's write, never from the
controller's per-step Progressing times (docs/tracker.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from webhook.revisions import activation_time, revisions_of, template_written_at

UNDO = "2026-12-01T10:00:05Z"
STEP = "2026-12-01T10:00:40Z"  # the controller's last rollout step: status only


def deployment(**extra: Any) -> dict[str, Any]:
    template_owned: dict[str, Any] = {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}
    return {
        "metadata": {
            "name": "web",
            "uid": "d-1",
            "annotations": extra.get("annotations", {}),
            "managedFields": [
                {
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "time": "2026-12-01T08:00:00Z",
                    "fieldsV1": template_owned,
                },
                {
                    "manager": "kubectl-rollout",
                    "operation": "Update",
                    "time": UNDO,
                    "fieldsV1": template_owned,
                },
                {
                    "manager": "kubectl-scale",
                    "operation": "Update",
                    "subresource": "scale",
                    "time": STEP,
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "subresource": "status",
                    "time": STEP,
                    "fieldsV1": {"f:status": {}},
                },
                {
                    "manager": "kubectl-annotate",
                    "operation": "Update",
                    "time": STEP,
                    "fieldsV1": {"f:metadata": {"f:annotations": {}}},
                },
            ],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}},
        "status": {
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "lastUpdateTime": STEP,
                    "lastTransitionTime": "2026-12-01T08:00:00Z",
                }
            ]
        },
    }


def readopted_revision(owner: dict[str, Any]) -> Any:
    rs = {
        "metadata": {
            "name": "web-1",
            "uid": "rs-1",
            "creationTimestamp": "2026-12-01T08:00:00Z",
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "deployment.kubernetes.io/revision-history": "1",
            },
            "ownerReferences": [{"controller": True, "uid": "d-1", "kind": "Deployment"}],
        },
        "spec": {"template": owner["spec"]["template"]},
    }
    [revision] = revisions_of(owner, [rs])
    return revision


def test_template_write_time_ignores_status_scale_and_metadata_only_writes() -> None:
    assert template_written_at(deployment()) == datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)


def test_readopted_revision_is_active_from_the_undo_not_the_last_rollout_step() -> None:
    owner = deployment()
    assert activation_time(readopted_revision(owner), owner) == datetime(
        2026, 12, 1, 10, 0, 5, tzinfo=UTC
    )


def test_a_later_human_undo_beats_our_older_rollback_to_the_same_replicaset() -> None:
    action = {"time": "2026-12-01T09:00:00Z", "to_replicaset": "web-1"}
    owner = deployment(annotations={"auto-rollback/last-action": json.dumps(action)})
    assert activation_time(readopted_revision(owner), owner) == datetime(
        2026, 12, 1, 10, 0, 5, tzinfo=UTC
    )


def test_without_managed_fields_the_progressing_update_time_is_the_fallback() -> None:
    owner = deployment()
    del owner["metadata"]["managedFields"]
    assert activation_time(readopted_revision(owner), owner) == datetime(
        2026, 12, 1, 10, 0, 40, tzinfo=UTC
    )
