"""The stay-put watch's detection as a table: a Deployment and its current revision in, a
Revert (or nothing) out; pure, no cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from webhook.config import GitOps
from webhook.revisions import Revision
from webhook.stayput import ANNOTATION_REVERTED_AT, detect_revert, revert_note

CREATED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def revision(name: str, **annotations: str) -> Revision:
    rs = {"metadata": {"name": name, "namespace": "shop", "annotations": annotations}}
    return Revision(
        number=2,
        name=name,
        uid="u-" + name,
        created=CREATED,
        template={},
        annotations=annotations,
        history=(),
        replicaset=rs,
    )


def deployment(action: dict[str, Any] | None = None, **labels: str) -> dict[str, Any]:
    annotations = {"auto-rollback/last-action": json.dumps(action)} if action else {}
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": labels,
            "annotations": annotations,
        }
    }


ROLLED = {"from_replicaset": "web-2", "to_replicaset": "web-1", "audit_id": "d-1"}
BAD = {"auto-rollback/bad-revision": json.dumps({"audit_id": "d-0"})}


@pytest.mark.parametrize(
    ("dep", "current", "reverted", "audit", "held"),
    [
        (deployment(), revision("web-2"), False, "", False),  # never rolled back
        (deployment(ROLLED), revision("web-1"), False, "", False),  # the rollback stayed
        (deployment(ROLLED), revision("web-2"), True, "d-1", True),  # back to what it left
        (deployment(), revision("web-2", **BAD), True, "d-0", True),  # any bad-marked one
        # Already reported for this period (at or after its activation): not again, but an
        # alert for it is still held.
        (
            deployment(ROLLED),
            revision("web-2", **{ANNOTATION_REVERTED_AT: "2026-12-01T10:00:00Z"}),
            False,
            "",
            True,
        ),
        # Reported for an earlier period (made current again since): reported again.
        (
            deployment(ROLLED),
            revision("web-2", **{ANNOTATION_REVERTED_AT: "2026-12-01T09:00:00Z"}),
            True,
            "d-1",
            True,
        ),
    ],
)
def test_a_revert_is_a_rolled_back_from_or_bad_revision_current_again(
    dep: dict[str, Any], current: Revision, reverted: bool, audit: str, held: bool
) -> None:
    found = detect_revert(dep, current, settings=GitOps())
    assert (found is not None) == reverted
    if found is not None:
        assert found.rollback_audit_id == audit
        assert "will not roll it back again" in found.message()
    assert (revert_note(dep, current) is not None) == (
        reverted or ANNOTATION_REVERTED_AT in current.annotations
    )


def test_the_revert_names_the_owner_that_did_it() -> None:
    dep = deployment(ROLLED, **{"kustomize.toolkit.fluxcd.io/name": "apps"})
    found = detect_revert(dep, revision("web-2"), settings=GitOps())
    assert found is not None and found.owner is not None
    assert "reverted by Flux Kustomization shop/apps" in found.message()
    bare = detect_revert(deployment(ROLLED), revision("web-2"), settings=GitOps())
    assert bare is not None and "someone (no GitOps owner on it)" in bare.message()
