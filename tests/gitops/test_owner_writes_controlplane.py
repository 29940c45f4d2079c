"""The owner writes of a pause and of its undo, against the real API server's conditional
patches (webhook.gitops_pause): a 409 is read again and retried, a pause whose answer was lost is
undone from what the owner shows, and an undo that keeps meeting 409s says what a human must do.

The races are made real rather than simulated: a Cluster whose owner patch lets another writer's
change land on the owner first (an annotation, as Argo CD's and Flux's own status writes move the
resourceVersion), so the API server itself answers 409; a lost answer is the real write landing
and its answer dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import ControlPlane
from tests.controlplane.support import kubectl
from tests.gitops.controlplane_support import (
    ARGOCD_NAMESPACE,
    FLUX_NAMESPACE,
    application,
    create,
    get,
    helmrelease,
    install_crds,
    released,
)
from webhook.audit import GateRule, IntentKind, IntentRow, IntentState, SqliteStore
from webhook.config import GitOps, GitOpsHandling
from webhook.gitops import ANNOTATION_OWNER_PAUSE, Owner, OwnerKind, Pause, Target, handle
from webhook.gitops_pause import UNPAUSE_ATTEMPTS, pause_owner, read_facts, undo_pause
from webhook.kube import Cluster, Obj, Transient
from webhook.reconcile import Reconciler

pytestmark = pytest.mark.controlplane

SETTINGS = GitOps(argocd=GitOpsHandling.PAUSE, flux_helmrelease=GitOpsHandling.PAUSE)
APPLICATION = ("application.argoproj.io", ARGOCD_NAMESPACE)
HELMRELEASE = ("helmrelease.helm.toolkit.fluxcd.io", FLUX_NAMESPACE)


class Raced(Cluster):
    """The real cluster, where another writer changes the owner just before each of this
    service's next `races` owner patches land, and the answer of the next `lost` patches that
    do land is dropped (the write happened; the caller hears a timeout)."""

    def __init__(self, plane: ControlPlane, *, races: int = 0, lost: int = 0) -> None:
        super().__init__(plane.api_client(), timeout_seconds=10)
        self.plane, self.races, self.lost = plane, races, lost
        self.patches: list[str] = []  # "conflict" or "landed", in order

    def _raced(self, kind: str, namespace: str, name: str, write: Callable[[], Obj]) -> Obj:
        if self.races:
            self.races -= 1
            kubectl(
                self.plane, "-n", namespace, "annotate", kind, name,
                f"example.com/touched={len(self.patches)}", "--overwrite",
            )  # fmt: skip
        try:
            result = write()
        except Exception:
            self.patches.append("conflict")
            raise
        self.patches.append("landed")
        if self.lost:
            self.lost -= 1
            raise Transient(f"PATCH {kind} {namespace}/{name}: timed out after 10s", timeout=True)
        return result

    def patch_application(
        self, namespace: str, name: str, patch: Obj, *, resource_version: str, strict: bool = False
    ) -> Obj:
        parent = super().patch_application
        return self._raced(
            APPLICATION[0],
            namespace,
            name,
            lambda: parent(
                namespace, name, patch, resource_version=resource_version, strict=strict
            ),
        )

    def patch_helmrelease(
        self, namespace: str, name: str, patch: Obj, *, resource_version: str
    ) -> Obj:
        parent = super().patch_helmrelease
        return self._raced(
            HELMRELEASE[0],
            namespace,
            name,
            lambda: parent(namespace, name, patch, resource_version=resource_version),
        )


@pytest.fixture(scope="module")
def crds(controlplane: ControlPlane) -> ControlPlane:
    install_crds(controlplane)
    return controlplane


def _owned(plane: ControlPlane, namespace: str, kind: str) -> tuple[Owner, tuple[str, str]]:
    """An Application (automated self-heal) or a HelmRelease applying `namespace`/web."""
    name = f"web-{namespace}"
    if kind == "argocd":
        listed = ((namespace, "web"),)
        create(plane, application(name, automated={"selfHeal": True}, applies=listed))
        owner = Owner(OwnerKind.ARGOCD, name, ARGOCD_NAMESPACE, "annotation (test)")
        return owner, APPLICATION
    create(plane, helmrelease(name, FLUX_NAMESPACE))
    released(plane, FLUX_NAMESPACE, name, inventory=((namespace, "web"),))
    return Owner(OwnerKind.FLUX_HELMRELEASE, name, FLUX_NAMESPACE, "label (test)"), HELMRELEASE


def _pause(cluster: Cluster, owner: Owner, namespace: str) -> Any:
    deployment = {"metadata": {"namespace": namespace, "name": "web"}}
    facts = read_facts(cluster, owner, SETTINGS, deployment=deployment)
    verdict = handle(owner, SETTINGS, target=Target(namespace, "web", 1), facts=facts)
    assert isinstance(verdict, Pause), verdict
    return pause_owner(
        cluster,
        verdict,
        facts,
        clock=lambda: datetime.now(UTC),
        audit_id="d-test",
        namespace=namespace,
        deployment="web",
    )


def _paused(found: dict[str, Any], kind: str) -> bool:
    spec = found["spec"]
    if kind == "argocd":
        return spec["syncPolicy"]["automated"].get("enabled") is False
    return spec.get("suspend") is True


def _copy(found: dict[str, Any]) -> str | None:
    return (found["metadata"].get("annotations") or {}).get(ANNOTATION_OWNER_PAUSE)


@pytest.mark.parametrize("kind", ["argocd", "helmrelease"])
def test_an_undo_that_meets_another_writer_reads_again_and_hands_the_owner_back(
    crds: ControlPlane, namespace: str, kind: str
) -> None:
    owner, where = _owned(crds, namespace, kind)
    record = _pause(Cluster(crds.api_client()), owner, namespace)
    assert _paused(get(crds, *where, owner.name), kind)
    raced = Raced(crds, races=1)

    problem = undo_pause(raced, record, namespace=namespace, deployment="web")

    assert problem == ""
    assert raced.patches == ["conflict", "landed"]
    found = get(crds, *where, owner.name)
    assert not _paused(found, kind) and _copy(found) is None
    # The other writer's change is kept: the undo patched only what the pause set.
    assert found["metadata"]["annotations"]["example.com/touched"] == "0"


@pytest.mark.parametrize("kind", ["argocd", "helmrelease"])
def test_a_pause_whose_answer_was_lost_is_undone_from_what_the_owner_shows(
    crds: ControlPlane, namespace: str, kind: str
) -> None:
    """The pause landed but its caller heard a timeout, so it has no record to undo: the owner
    carries this pause's own copy, and that is what the undo goes by."""
    owner, where = _owned(crds, namespace, kind)
    raced = Raced(crds, lost=1)

    with pytest.raises(Transient):
        _pause(raced, owner, namespace)

    assert raced.patches == ["landed", "landed"]  # the pause, then its undo
    found = get(crds, *where, owner.name)
    assert not _paused(found, kind) and _copy(found) is None


def test_an_undo_that_keeps_meeting_other_writers_leaves_the_owner_paused_and_says_so(
    crds: ControlPlane, namespace: str
) -> None:
    owner, where = _owned(crds, namespace, "argocd")
    record = _pause(Cluster(crds.api_client()), owner, namespace)
    raced = Raced(crds, races=UNPAUSE_ATTEMPTS)

    problem = undo_pause(raced, record, namespace=namespace, deployment="web")

    assert raced.patches == ["conflict"] * UNPAUSE_ATTEMPTS
    assert f"{owner.describe()} stays paused" in problem
    assert "hand it back with its own tool" in problem
    found = get(crds, *where, owner.name)
    assert _paused(found, "argocd") and _copy(found) is not None


@pytest.mark.parametrize("kind", ["argocd", "helmrelease"])
def test_a_rollback_that_never_landed_has_the_pause_only_its_owner_shows_undone(
    crds: ControlPlane, namespace: str, kind: str, tmp_path: Path
) -> None:
    """The owner was paused, then the worker's write went unanswered (or the worker died)
    before any record of the pause was kept, and the write never landed: the Deployment's
    generation is still the one its intent was planned on. The reconciler hands the owner
    back from the owner's own copy of the pause, and says so in the record."""
    kubectl(crds, "-n", namespace, "create", "deployment", "web", "--image=web:2")
    deployment = Cluster(crds.api_client()).get_deployment(namespace, "web")
    owner, where = _owned(crds, namespace, kind)
    record = _pause(Cluster(crds.api_client()), owner, namespace)  # decision d-test
    assert _paused(get(crds, *where, owner.name), kind)
    store = SqliteStore(tmp_path / "audit.sqlite")
    now = datetime.now(UTC)
    admitted = store.begin_intent(
        IntentRow(
            id=record.audit_id,
            time=now.isoformat(),
            kind=IntentKind.ROLLBACK,
            state=IntentState.OPEN,
            namespace=namespace,
            deployment="web",
            from_replicaset="web-2",
            to_replicaset="web-1",
            source="alertmanager",
            resource_version=deployment["metadata"]["resourceVersion"],
            planned={
                "generation": deployment["metadata"]["generation"],
                "gitops_owner": owner.as_dict(),
            },
            decision={"id": record.audit_id, "namespace": namespace, "deployment": "web"},
        ),
        GateRule(window_start=now - timedelta(hours=1), max_rollbacks=5, counted=("rolled_back",)),
    )
    assert admitted.admitted

    report = Reconciler(
        audit=store,
        cluster=Cluster(crds.api_client()),
        clock=lambda: now + timedelta(seconds=1),
        settle_after_seconds=0,
    ).run_once()

    assert report.never_landed == [record.audit_id], report
    found = get(crds, *where, owner.name)
    assert not _paused(found, kind) and _copy(found) is None
    row = store.get(record.audit_id)
    assert row is not None and f"its pause of {owner.describe()} was undone" in row["detail"]


def test_a_lost_pause_whose_undo_fails_says_the_owner_stays_paused(
    crds: ControlPlane, namespace: str
) -> None:
    """The pause landed, its answer was lost, and the undo kept meeting other writers: the
    error the decision is recorded with names the owner left paused and what to do."""
    owner, where = _owned(crds, namespace, "argocd")

    class LostThenRaced(Raced):
        def __init__(self) -> None:
            super().__init__(crds, lost=1)

        def _raced(self, kind: str, namespace: str, name: str, write: Callable[[], Obj]) -> Obj:
            if self.patches:  # the pause went through: every undo now meets another writer
                self.races = 1
            return super()._raced(kind, namespace, name, write)

    with pytest.raises(Transient) as raised:
        _pause(LostThenRaced(), owner, namespace)

    assert f"{owner.describe()} stays paused" in str(raised.value)
    assert "hand it back with its own tool" in str(raised.value)
    assert _paused(get(crds, *where, owner.name), "argocd")
