"""On the real control plane, with Argo CD and Flux CRDs and a test double of each reconciler
that re-applies Git's template unless paused (webhook.gitops; README, GitOps owners).

The service runs as a ServiceAccount bound to the gitops overlay's rendered RBAC (so a missing
grant is a real 403) and its requests are recorded for the RBAC-from-traffic test.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from lab.controlplane import ControlPlane
from lab.receiver_harness import SERVICE_TOKEN, Harness
from sandbox.pods import FAULT_ANNOTATION
from tests.controlplane.support import (
    alert_now,
    apply,
    deployment_manifest,
    kubectl,
    replicasets,
    rollout_status,
    wait_until,
)
from tests.gitops import reconcilers
from tests.gitops.controlplane_support import (
    ARGOCD_NAMESPACE,
    FLUX_NAMESPACE,
    BoundOverlay,
    application,
    create,
    dump_record,
    get,
    gitops_overlay,
    helmrelease,
    image_of,
    install_crds,
    kustomization,
    recorded_receiver,
    released,
)
from tests.gitops.support import FullApp, events
from tests.tracker.support import tracker_for
from webhook.gitops import ANNOTATION_GITOPS_PAUSED, ANNOTATION_OWNER_PAUSE, FLUX_RECONCILE

pytestmark = pytest.mark.controlplane

WRITES = {"create", "update", "patch", "delete"}


@pytest.fixture(scope="module")
def overlay(controlplane: ControlPlane) -> Iterator[BoundOverlay]:
    """The CRDs installed and the gitops overlay's RBAC bound to the service's account."""
    install_crds(controlplane)
    with gitops_overlay(controlplane) as bound:
        yield bound


class Bench:
    """One test's receiver (as the overlay's ServiceAccount), its record and its doubles."""

    def __init__(
        self,
        plane: ControlPlane,
        overlay: BoundOverlay,
        namespace: str,
        tmp_path: Path,
        **gitops: Any,
    ) -> None:
        self.plane, self.namespace = plane, namespace
        self.record: list[dict[str, Any]] = []
        config = overlay.config(dry_run=False, cooldown="1s")
        config["gitops"] = {**config.get("gitops", {}), **gitops}
        self.h: Harness = recorded_receiver(
            plane, tmp_path, token=overlay.token, record=self.record, **config
        )
        self.doubles: list[reconcilers.Reconciler] = []
        self.admin = plane.api_client()

    def deploy(self, *, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
        """web:1 from "Git", rolled out and healthy longer than min_healthy_seconds."""
        manifest = deployment_manifest("web", self.namespace, "web:1", replicas=1)
        manifest["metadata"]["labels"] = labels
        manifest["metadata"]["annotations"].update(annotations)
        apply(self.plane, manifest)
        rollout_status(self.plane, self.namespace, "web")
        time.sleep(4)  # min_healthy_seconds is 3: revision 1 is healthy by age
        return manifest

    def reconcile(self, double: reconcilers.Reconciler) -> reconcilers.Reconciler:
        self.doubles.append(double.start())
        return double

    def push_bad_revision(self, double: reconcilers.Reconciler, manifest: dict[str, Any]) -> str:
        """Git moves to web:2 (crash-looping); the reconciler rolls it out. Its ReplicaSet."""
        bad = copy.deepcopy(manifest["spec"]["template"])
        bad["spec"]["containers"][0]["image"] = "web:2"
        bad["metadata"]["annotations"] = {FAULT_ANNOTATION: "crashloop"}
        double.set_git(bad)
        sets = wait_until(
            "the reconciler's rollout of web:2",
            lambda: s if len(s := replicasets(self.plane, self.namespace, "web")) == 2 else None,
        )
        return str(sets[1]["metadata"]["name"])

    def bad_revision_under(
        self,
        reconciler: Callable[[dict[str, Any]], reconcilers.Reconciler],
        *,
        labels: dict[str, str],
        annotations: dict[str, str],
    ) -> tuple[reconcilers.Reconciler, dict[str, Any], str]:
        """web:1 deployed with the owner's `labels` and `annotations`, the owner's reconciler
        (made from Git's template) running, then Git at web:2: the double, the manifest, the
        bad ReplicaSet."""
        manifest = self.deploy(labels=labels, annotations=annotations)
        double = self.reconcile(reconciler(manifest["spec"]["template"]))
        return double, manifest, self.push_bad_revision(double, manifest)

    def argocd_app(self, *, automated: dict[str, Any]) -> str:
        """An Argo CD Application for this namespace with `automated` sync, its status listing
        the Deployment web: its name."""
        app = f"shop-{self.namespace}"
        create(self.plane, application(app, automated=automated, applies=self.web))
        return app

    @property
    def web(self) -> tuple[tuple[str, str]]:
        return ((self.namespace, "web"),)

    def argocd_bad_revision(self, app: str) -> str:
        """The same under Argo CD Application `app`, its self-heal syncing every second."""
        _, _, bad = self.bad_revision_under(
            lambda git: reconcilers.argocd(
                self.admin,
                app=(ARGOCD_NAMESPACE, app),
                namespace=self.namespace,
                deployment="web",
                git=git,
                interval=1.0,
            ),
            labels={},
            annotations=tracking(app, self.namespace),
        )
        return bad

    def helmrelease_bad_revision(
        self,
        labels: dict[str, str],
        annotations: dict[str, str],
        *,
        release: tuple[str, str] | None = None,
    ) -> tuple[reconcilers.Reconciler, dict[str, Any], str]:
        """The same under a Flux HelmRelease (namespace, name), by default "web" in this
        namespace (every 2 s)."""
        return self.bad_revision_under(
            lambda git: reconcilers.flux_helmrelease(
                self.admin,
                release=release or (self.namespace, "web"),
                namespace=self.namespace,
                deployment="web",
                git=git,
                interval=2.0,
            ),
            labels=labels,
            annotations=annotations,
        )

    def application(self, app: str) -> dict[str, Any]:
        return get(self.plane, "application.argoproj.io", ARGOCD_NAMESPACE, app)

    def resume(self, reason: str) -> dict[str, Any]:
        """`POST /resume` for web as the logged-in person; asserts 200, returns its decision."""
        answer = FullApp(self.h).resume(
            {"namespace": self.namespace, "deployment": "web", "reason": reason}
        )
        assert answer.status_code == 200, answer.get_json()
        decision: dict[str, Any] = answer.get_json()["decision"]
        return decision

    def alert(self, replicaset: str) -> dict[str, Any]:
        return alert_now(self.h, namespace=self.namespace, deployment="web", replicaset=replicaset)

    def deployment(self) -> dict[str, Any]:
        # Through the client, not a kubectl process per poll (two shared cores).
        apps = kubernetes.client.AppsV1Api(self.admin)
        found: dict[str, Any] = self.admin.sanitize_for_serialization(
            apps.read_namespaced_deployment("web", self.namespace)
        )
        return found

    def stays(self, image: str, seconds: float) -> None:
        """The Deployment keeps `image` for the whole window (polled twice a second)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert image_of(self.deployment()) == image, "the rollback did not stay"
            time.sleep(0.5)

    def tracker_round(self) -> None:
        tracker_for(self.h, self.h.service.clock, record=self.h.service.record).resync_once()

    def reported_revert(self) -> list[dict[str, Any]]:
        """Tracker rounds (as the 60 s resync would run them) until one reports the revert."""

        def round_reported() -> list[dict[str, Any]] | None:
            self.tracker_round()
            return events(self.h, "AutoRollbackReverted", self.namespace) or None

        return wait_until("the stay-put watch to report the revert", round_reported, interval=1)

    def service_writes(self, resource: str, *, refused: bool = False) -> list[str]:
        """The service's writes of `resource` that took effect (2xx), or with `refused` the
        ones the apiserver refused (a 409 re-decided, a strict patch refused)."""
        return [
            e["verb"]
            for e in self.record
            if e["token"] == SERVICE_TOKEN
            and e["verb"] in WRITES
            and e["resource"] == resource
            and (e["status"] >= 300) == refused
        ]

    def close(self, test: str) -> None:
        for double in self.doubles:
            double.stop()
        dump_record(self.record, test)
        for double in self.doubles:
            assert double.errors == [], double.errors


@pytest.fixture
def bench(
    controlplane: ControlPlane,
    overlay: BoundOverlay,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Any]:
    made: list[Bench] = []

    def make(**gitops: Any) -> Bench:
        made.append(Bench(controlplane, overlay, namespace, tmp_path, **gitops))
        return made[-1]

    yield make
    for one in made:
        one.close(request.node.nodeid)


def pauses_and_undos(patches: list[str]) -> bool:
    """A pause and its undo (resume), plus a pause undone for each rollback write that met a
    409 while the reconciler was writing too (the decision is then taken again)."""
    return len(patches) >= 2 and len(patches) % 2 == 0 and set(patches) == {"patch"}


def owner_copy(owner: dict[str, Any]) -> dict[str, Any] | None:
    """The owner object's own copy of this service's pause, parsed (None when it has none)."""
    raw = (owner["metadata"].get("annotations") or {}).get(ANNOTATION_OWNER_PAUSE)
    return json.loads(raw) if raw else None


def carries_the_pause(owner: dict[str, Any], deployment: dict[str, Any]) -> bool:
    """The owner's copy is the record on the Deployment, for that Deployment."""
    on_deployment = json.loads(deployment["metadata"]["annotations"][ANNOTATION_GITOPS_PAUSED])
    meta = deployment["metadata"]
    expected = {**on_deployment, "deployment": f"{meta['namespace']}/{meta['name']}"}
    return owner_copy(owner) == expected


def flux_labels(name: str) -> dict[str, str]:
    return {
        "kustomize.toolkit.fluxcd.io/name": name,
        "kustomize.toolkit.fluxcd.io/namespace": FLUX_NAMESPACE,
    }


def tracking(app: str, namespace: str) -> dict[str, str]:
    return {"argocd.argoproj.io/tracking-id": f"{app}:apps/Deployment:{namespace}/web"}


def test_flux_kustomization_pause_keeps_the_rollback_for_the_window_and_resume_hands_back(
    bench: Any, namespace: str
) -> None:
    b: Bench = bench()
    ks = f"apps-{namespace}"
    create(b.plane, kustomization(ks, interval="2s"))
    double, _, bad = b.bad_revision_under(
        lambda git: reconcilers.flux_kustomization(
            b.admin,
            kustomization=(FLUX_NAMESPACE, ks),
            namespace=namespace,
            deployment="web",
            git=git,
            interval=2.0,
        ),
        labels=flux_labels(ks),
        annotations={},
    )

    decision = b.alert(bad)

    assert decision["outcome"] == "rolled_back", decision
    assert f"paused Flux Kustomization {FLUX_NAMESPACE}/{ks}" in decision["detail"]
    live = b.deployment()
    assert live["metadata"]["annotations"][FLUX_RECONCILE] == "disabled"
    assert b.service_writes("deployments") == ["update"]  # the annotation rode in the rollback
    skipped = double.skipped
    b.stays("web:1", seconds=7)  # three and a half intervals
    assert double.skipped > skipped  # it looked, and was paused

    resumed = b.resume("Git reverted to web:1")
    assert resumed["outcome"] == "resumed"
    assert FLUX_RECONCILE not in b.deployment()["metadata"]["annotations"]
    assert b.h.audit_row(resumed["id"])["actor"] == "alice"
    # Git still says web:2 (nobody fixed it): the reconciler takes over again, and the
    # stay-put watch reports it; the next alert is held, never a second rollback.
    wait_until("the reconciler to re-apply Git", lambda: image_of(b.deployment()) == "web:2")
    [reverted] = b.reported_revert()
    assert f"reverted by Flux Kustomization {FLUX_NAMESPACE}/{ks}" in reverted["message"]
    time.sleep(1.5)
    again = b.alert(bad)
    assert (again["outcome"], again["reason"]) == ("skipped", "cooldown")
    assert "reverted" in again["detail"]
    assert b.service_writes("deployments") == ["update", "update"]  # rollback, resume


def test_argocd_pause_disables_automated_sync_and_resume_enables_it(
    bench: Any, namespace: str
) -> None:
    b: Bench = bench(argocd="pause")
    app = b.argocd_app(automated={"selfHeal": True, "prune": True})
    bad = b.argocd_bad_revision(app)

    decision = b.alert(bad)

    assert decision["outcome"] == "rolled_back", decision
    assert "spec.syncPolicy.automated.enabled: false" in decision["detail"]
    listed = f"owner confirmed: its status.resources lists apps/Deployment {namespace}/web"
    assert listed in decision["detail"]
    automated = b.application(app)["spec"]["syncPolicy"]["automated"]
    assert automated == {"enabled": False, "selfHeal": True, "prune": True}
    b.stays("web:1", seconds=5)  # self-heal would have reverted within a second
    assert ANNOTATION_GITOPS_PAUSED in b.deployment()["metadata"]["annotations"]
    assert carries_the_pause(b.application(app), b.deployment())
    assert owner_copy(b.application(app))["audit_id"] == decision["id"]  # type: ignore[index]

    b.resume("fixed")
    automated = b.application(app)["spec"]["syncPolicy"]["automated"]
    assert automated["enabled"] is True
    assert owner_copy(b.application(app)) is None  # dropped in the same write
    wait_until("self-heal to take over again", lambda: image_of(b.deployment()) == "web:2")
    assert pauses_and_undos(b.service_writes("applications"))


def helmrelease_owned(bench: Any, namespace: str, *, inventory: bool = True) -> tuple[Bench, str]:
    """A HelmRelease-owned Deployment (pause on) with a bad current revision: (bench, its RS).
    Its status lists the Deployment in its inventory, or (without `inventory`, as a
    helm-controller before it kept one) only its latest release, "web" in this namespace."""
    # Without an inventory, the latest release counts only where the operator says so.
    b: Bench = bench(flux_helmrelease="pause", helmrelease_latest_release=not inventory)
    create(b.plane, helmrelease("web", namespace, interval="2s"))
    released(b.plane, namespace, "web", inventory=b.web if inventory else None, history=(b.web[0],))
    labels = {
        "helm.toolkit.fluxcd.io/name": "web",
        "helm.toolkit.fluxcd.io/namespace": namespace,
        "app.kubernetes.io/managed-by": "Helm",
    }
    _, _, bad = b.helmrelease_bad_revision(labels, {"meta.helm.sh/release-name": "web"})
    return b, bad


@pytest.mark.parametrize("inventory", [True, False], ids=["inventory", "latest-release"])
def test_helmrelease_pause_suspends_it_and_resume_unsuspends(
    bench: Any, namespace: str, inventory: bool
) -> None:
    b, bad = helmrelease_owned(bench, namespace, inventory=inventory)

    decision = b.alert(bad)

    assert decision["outcome"] == "rolled_back", decision
    if inventory:
        confirmed = f"owner confirmed: its status.inventory lists {namespace}_web_apps_Deployment"
    else:
        confirmed = (
            "owner confirmed: it keeps no status.inventory, and its latest release "
            f"{namespace}/web is the release"
        )
    assert confirmed in decision["detail"]
    paused = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert paused["spec"]["suspend"] and carries_the_pause(paused, b.deployment())
    b.stays("web:1", seconds=5)
    b.resume("ok")
    release = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert release["spec"]["suspend"] is False and owner_copy(release) is None
    assert pauses_and_undos(b.service_writes("helmreleases"))


@pytest.mark.parametrize(
    "kind",
    [
        "argocd",
        "argocd-marker-only",
        "argocd-other-cluster",
        "helmrelease",
        "helmrelease-latest-release",
        "helmrelease-other-cluster",
    ],
)
def test_a_deployment_naming_an_owner_that_does_not_list_it_pauses_nothing(
    bench: Any, namespace: str, kind: str
) -> None:
    """Whoever may edit a Deployment may write any owner marker on it. Markers naming another
    team's Application or HelmRelease (which lists other objects, lists this one only because
    it carries the marker, released into another namespace, or lists this very namespace and
    name in another cluster it deploys to) get a
    refusal that says so, and that owner is neither written nor taken as paused: the pause is
    steered by what the owner's own controller lists, here, not by the Deployment's metadata."""
    b: Bench = bench(argocd="pause", flux_helmrelease="pause", helmrelease_latest_release=True)
    victim = f"victim-{namespace}"
    elsewhere = (("payments", "api"),)
    remote = kind.endswith("-other-cluster")
    if kind.startswith("argocd"):
        if remote:
            app = application(
                victim,
                automated={"selfHeal": True},
                applies=((namespace, "web"),),
                server="https://prod-eu.example.com:6443",
            )
            said = "its spec.destination names 'https://prod-eu.example.com:6443', not this cluster"
        elif kind == "argocd-marker-only":
            # Argo CD lists any live object carrying its marker, as one to prune.
            app = application(
                victim, automated={"selfHeal": True}, applies=elsewhere, extraneous=b.web
            )
            said = f"lists apps/Deployment {namespace}/web only as an object to prune"
        else:
            app = application(victim, automated={"selfHeal": True}, applies=elsewhere)
            said = f"its status.resources does not list apps/Deployment {namespace}/web"
        create(b.plane, app)
        bad = b.argocd_bad_revision(victim)
        resource, where = "applications", ("application.argoproj.io", ARGOCD_NAMESPACE)
    else:
        create(
            b.plane,
            helmrelease(victim, FLUX_NAMESPACE, kube_config="prod-eu" if remote else None),
        )
        inventory = (
            ((namespace, "web"),) if remote else elsewhere if kind == "helmrelease" else None
        )
        released(
            b.plane, FLUX_NAMESPACE, victim, inventory=inventory, history=(("payments", victim),)
        )
        labels = {
            "helm.toolkit.fluxcd.io/name": victim,
            "helm.toolkit.fluxcd.io/namespace": FLUX_NAMESPACE,
        }
        _, _, bad = b.helmrelease_bad_revision(
            labels, {"meta.helm.sh/release-name": victim}, release=(FLUX_NAMESPACE, victim)
        )
        resource, where = "helmreleases", ("helmrelease.helm.toolkit.fluxcd.io", FLUX_NAMESPACE)
        if remote:
            said = "it releases into the cluster its spec.kubeConfig names"
        elif inventory:
            said = f"its status.inventory does not list {namespace}_web_apps_Deployment"
        else:
            said = f"its latest release payments/{victim} is not the release {namespace}/{victim}"
    before = get(b.plane, *where, victim)

    decision = b.alert(bad)

    assert (decision["outcome"], decision["reason"]) == ("skipped", "gitops_managed"), decision
    assert said in decision["detail"] and "so it is not paused" in decision["detail"]
    after = get(b.plane, *where, victim)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert owner_copy(after) is None
    assert b.service_writes(resource) == [] and b.service_writes("deployments") == []
    [event] = events(b.h, "AutoRollbackRefused", namespace)
    assert (
        "--show-managed-fields" in event["message"]
        and victim not in event["message"].split("steps:")[1]
    )
    assert image_of(b.deployment()) == "web:2"


def keep_the_pause(plane: ControlPlane, namespace: str) -> Callable[[], None]:
    """A ValidatingAdmissionPolicy that refuses any update of the namespace's Deployments which
    drops the pause record (the real apiserver's own definite refusal); returns its removal."""
    name = f"keep-pause-{namespace}"
    paused = "'auto-rollback/gitops-paused'"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": (
                        f"!has(oldObject.metadata.annotations) || !({paused} in "
                        "oldObject.metadata.annotations) || (has(object.metadata.annotations) "
                        f"&& {paused} in object.metadata.annotations)"
                    ),
                    "message": "the pause record stays (test policy)",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    apply(plane, policy, binding)

    def remove() -> None:
        kubectl(plane, "delete", "validatingadmissionpolicybinding", name)
        kubectl(plane, "delete", "validatingadmissionpolicy", name)

    return remove


def test_an_owner_handed_back_whose_deployment_write_fails_is_recorded_so_and_resumed_again(
    bench: Any, namespace: str
) -> None:
    b, bad = helmrelease_owned(bench, namespace)
    assert b.alert(bad)["outcome"] == "rolled_back"
    remove = keep_the_pause(b.plane, namespace)
    apps = kubernetes.client.AppsV1Api(b.admin)

    def refused() -> bool:  # the policy is in force once a dry run of the drop is denied
        body = b.deployment()
        body["metadata"]["annotations"].pop(ANNOTATION_GITOPS_PAUSED)
        try:
            apps.replace_namespaced_deployment("web", namespace, body, dry_run="All")  # type: ignore[arg-type]
        except kubernetes.client.ApiException as exc:
            return exc.status in (400, 403, 422) and "pause record stays" in str(exc.body)
        return False

    try:
        wait_until("the admission policy to be in force", refused, timeout=60)
        answer = FullApp(b.h).resume({"namespace": namespace, "deployment": "web", "reason": "x"})
    finally:
        remove()

    assert answer.status_code == 200, answer.get_json()
    decision = answer.get_json()["decision"]
    assert decision["outcome"] == "failed", decision
    owner = f"Flux HelmRelease {namespace}/web"
    assert f"{owner} handed back, but the Deployment still carries the pause" in decision["detail"]
    assert "run resume again to finish" in decision["detail"]
    release = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert release["spec"]["suspend"] is False
    assert ANNOTATION_GITOPS_PAUSED in b.deployment()["metadata"]["annotations"]

    # Once the Deployment takes writes again, resume finishes (the owner is left as it is).
    def finished() -> bool:
        again = FullApp(b.h).resume({"namespace": namespace, "deployment": "web", "reason": "y"})
        return again.status_code == 200 and again.get_json()["decision"]["outcome"] == "resumed"

    wait_until("the policy removed and resume finished", finished, timeout=60, interval=1.0)
    assert ANNOTATION_GITOPS_PAUSED not in b.deployment()["metadata"]["annotations"]


def test_refuse_writes_nothing_and_the_event_names_the_steps(bench: Any, namespace: str) -> None:
    b: Bench = bench(argocd="refuse")  # the default
    app = b.argocd_app(automated={"selfHeal": True})
    bad = b.argocd_bad_revision(app)
    before = b.application(app)

    decision = b.alert(bad)

    assert (decision["outcome"], decision["reason"]) == ("skipped", "gitops_managed")
    assert b.service_writes("deployments") == [] and b.service_writes("applications") == []
    after = b.application(app)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    [event] = events(b.h, "AutoRollbackRefused", namespace)
    assert f"(1) argocd app set {ARGOCD_NAMESPACE}/{app} --sync-policy none" in event["message"]
    assert image_of(b.deployment()) == "web:2"


@pytest.mark.parametrize("managed_by", ["ApplicationSet", "Application"])
def test_an_application_managed_by_a_parent_or_an_applicationset_is_refused_by_default(
    bench: Any, namespace: str, managed_by: str
) -> None:
    b: Bench = bench(argocd="pause")
    app = f"shop-{namespace}"
    if managed_by == "ApplicationSet":
        appset = create(
            b.plane,
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet",
                "metadata": {"name": f"shops-{namespace}", "namespace": ARGOCD_NAMESPACE},
                "spec": {"generators": [], "template": {}},
            },
        )
        owner = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet",
            "name": appset["metadata"]["name"],
            "uid": appset["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        create(
            b.plane,
            application(app, automated={"selfHeal": True}, owner_refs=[owner], applies=b.web),
        )
        expected = f"managed by ApplicationSet {ARGOCD_NAMESPACE}/shops-{namespace}"
    else:
        parent = f"root-{namespace}"
        spec = application(app, automated={"selfHeal": True})["spec"]
        create(
            b.plane,
            application(
                app,
                automated={"selfHeal": True},
                applies=b.web,
                annotations={
                    "argocd.argoproj.io/tracking-id": (
                        f"{parent}:argoproj.io/Application:{ARGOCD_NAMESPACE}/{app}"
                    )
                },
            ),
        )
        parent_double = reconcilers.ParentApp(b.admin, child=(ARGOCD_NAMESPACE, app), git_spec=spec)
        parent_double.tick()
        expected = f"managed by Application {ARGOCD_NAMESPACE}/{parent}"
    bad = b.argocd_bad_revision(app)

    decision = b.alert(bad)

    assert (decision["outcome"], decision["reason"]) == ("skipped", "gitops_managed")
    assert expected in decision["detail"]
    assert b.service_writes("applications") == [] and b.service_writes("deployments") == []
    [event] = events(b.h, "AutoRollbackRefused", namespace)
    assert expected in event["message"]


def test_a_self_heal_revert_of_an_unpaused_deployment_is_detected_with_no_second_rollback(
    bench: Any, namespace: str
) -> None:
    b: Bench = bench(argocd="ignore")
    app = b.argocd_app(automated={"selfHeal": True})
    bad = b.argocd_bad_revision(app)

    decision = b.alert(bad)
    assert decision["outcome"] == "rolled_back", decision
    wait_until("self-heal to revert the rollback", lambda: image_of(b.deployment()) == "web:2")
    b.reported_revert()
    b.tracker_round()  # a later round reports nothing more

    [event] = events(b.h, "AutoRollbackReverted", namespace)
    assert f"reverted by Argo CD Application {ARGOCD_NAMESPACE}/{app}" in event["message"]
    [row] = b.h.service.audit.query(namespace=namespace, outcome="reverted", limit=5)
    assert row["source"] == "watch"
    time.sleep(1.5)  # past the 1s cooldown
    again = b.alert(bad)
    assert (again["outcome"], again["reason"]) == ("skipped", "cooldown")
    assert "reverted" in again["detail"]
    assert b.service_writes("deployments") == ["update"]  # one rollback, never a loop


@pytest.fixture
def argocd_without_enabled(controlplane: ControlPlane, overlay: BoundOverlay) -> Iterator[None]:
    """The Application CRD of an Argo CD release before automated.enabled existed."""
    crd = json.loads(
        kubectl(controlplane, "get", "crd", "applications.argoproj.io", "-o", "json").stdout
    )
    older = copy.deepcopy(crd)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        older["metadata"].pop(key, None)
    older.pop("status", None)
    automated = older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["syncPolicy"]["properties"]["automated"]["properties"]
    del automated["enabled"]
    apply(controlplane, older)
    # The apiserver picks a CRD's new schema up asynchronously: wait until a strict write of
    # the field is refused, as it will be for the service.
    probe = application("probe", automated={"enabled": False})

    def accepted() -> bool:
        return (
            kubectl(
                controlplane,
                "create",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                "-",
                stdin=json.dumps(probe),
                check=False,
            ).returncode
            == 0
        )

    wait_until("the older Application schema to be served", lambda: not accepted())
    try:
        yield
    finally:
        install_crds(controlplane)
        # Established already (it never stopped being): wait for the restored schema itself,
        # or the next test's strict write of automated.enabled would meet the older one.
        wait_until("the current Application schema to be served again", accepted)


def test_argocd_without_automated_enabled_removes_automated_and_resume_restores_it(
    bench: Any, namespace: str, argocd_without_enabled: None
) -> None:
    b: Bench = bench(argocd="pause")
    app = b.argocd_app(automated={"selfHeal": True, "prune": True})
    bad = b.argocd_bad_revision(app)

    decision = b.alert(bad)

    assert decision["outcome"] == "rolled_back", decision
    assert (
        'spec.syncPolicy.automated removed (was {"prune": true, "selfHeal": true})'
        in (decision["detail"])
    )
    policy = b.application(app)["spec"].get("syncPolicy", {})
    assert "automated" not in policy
    b.stays("web:1", seconds=4)
    b.resume("fixed")
    restored = b.application(app)["spec"]
    assert restored["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # The removal and the restore took effect; the strict attempt was refused.
    assert pauses_and_undos(b.service_writes("applications"))
    assert "patch" in b.service_writes("applications", refused=True)


def suspend_by_hand(plane: ControlPlane, namespace: str, name: str) -> None:
    """A person suspends a HelmRelease on purpose, as `flux suspend` does."""
    kubectl(
        plane,
        "-n",
        namespace,
        "patch",
        "helmrelease.helm.toolkit.fluxcd.io",
        name,
        "--type",
        "merge",
        "-p",
        '{"spec": {"suspend": true}}',
    )


def forged_record(owner: dict[str, str], mechanism: str, previous: Any) -> str:
    """A pause record as this service writes it on a Deployment, written by hand instead."""
    return json.dumps(
        {
            "owner": owner,
            "mechanism": mechanism,
            "previous": previous,
            "time": "2026-12-01T10:00:00Z",
            "audit_id": "d-20261201T100000000-0badc0de",
        }
    )


def test_a_pause_record_written_by_hand_on_a_deployment_steers_no_owner_write(
    bench: Any, namespace: str
) -> None:
    """Whoever can edit a Deployment can write a pause record on it. One naming an Application
    synced by hand on purpose (automated absent), with a `previous` of prune and self-heal, and
    one naming a HelmRelease someone suspended: resume refuses both with a 409, records the
    attempt, and writes neither owner, nor the Deployment."""
    b: Bench = bench(argocd="pause", flux_helmrelease="pause")
    app = f"manual-{namespace}"
    create(b.plane, application(app, automated=None))
    release = create(b.plane, helmrelease("web", namespace))
    suspend_by_hand(b.plane, namespace, "web")
    records = {
        "web": forged_record(
            {"kind": "argocd", "name": app, "namespace": ARGOCD_NAMESPACE, "evidence": "hand"},
            "argocd_automated_removed",
            {"prune": True, "selfHeal": True},
        ),
        "api": forged_record(
            {"kind": "flux_helmrelease", "name": "web", "namespace": namespace, "evidence": "x"},
            "helmrelease_suspend",
            None,
        ),
    }
    for name, record in records.items():
        manifest = deployment_manifest(name, namespace, f"{name}:1", replicas=1)
        manifest["metadata"]["annotations"][ANNOTATION_GITOPS_PAUSED] = record
        apply(b.plane, manifest)

    for name, owner in (
        ("web", f"Argo CD Application {ARGOCD_NAMESPACE}/{app}"),
        ("api", f"Flux HelmRelease {namespace}/web"),
    ):
        answer = FullApp(b.h).resume({"namespace": namespace, "deployment": name, "reason": "x"})
        assert answer.status_code == 409, answer.get_json()
        error = answer.get_json()["error"]
        assert owner in error and ANNOTATION_OWNER_PAUSE in error and "is missing" in error
        # The attempt is in the audit, with who tried and what was refused.
        audit_id = error.rsplit("recorded as audit id ", 1)[1].rstrip(")")
        row = b.h.audit_row(audit_id)
        assert (row["source"], row["outcome"], row["reason"]) == ("resume", "failed", "conflict")
        assert (row["namespace"], row["deployment"]) == (namespace, name)
        assert "resume refused, nothing written" in row["detail"] and owner in row["detail"]

    assert "automated" not in (b.application(app)["spec"].get("syncPolicy") or {})
    after = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert after["spec"]["suspend"] is True
    assert after["metadata"]["generation"] == release["metadata"]["generation"] + 1  # ours only
    assert b.service_writes("applications") == b.service_writes("helmreleases") == []
    assert b.service_writes("deployments") == []


def test_resume_leaves_alone_an_owner_someone_already_handed_back(
    bench: Any, namespace: str
) -> None:
    b: Bench = bench(flux_helmrelease="pause")
    create(b.plane, helmrelease("web", namespace, interval="2s"))
    released(b.plane, namespace, "web", inventory=b.web)
    labels = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": namespace}
    double, manifest, bad = b.helmrelease_bad_revision(labels, {})
    assert b.alert(bad)["outcome"] == "rolled_back"
    # A person runs `flux resume helmrelease` themselves (and Git was fixed meanwhile).
    double.set_git(manifest["spec"]["template"])
    kubectl(
        b.plane,
        "-n",
        namespace,
        "patch",
        "helmrelease.helm.toolkit.fluxcd.io",
        "web",
        "--type",
        "merge",
        "-p",
        '{"spec": {"suspend": false}}',
    )

    record = b.deployment()["metadata"]["annotations"][ANNOTATION_GITOPS_PAUSED]

    detail = b.resume("tidy")["detail"]
    assert "is not suspended any more: left as it is" in detail
    assert ANNOTATION_GITOPS_PAUSED not in b.deployment()["metadata"]["annotations"]
    # Its spec left as the person set it; only this service's copy of the pause is dropped.
    release = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert release["spec"]["suspend"] is False and owner_copy(release) is None
    # Later someone suspends it by hand, on purpose, and whoever may edit the Deployment puts
    # the old record back: the owner no longer carries it, so resume refuses and writes nothing.
    suspend_by_hand(b.plane, namespace, "web")
    manifest = b.deployment()
    manifest["metadata"]["annotations"][ANNOTATION_GITOPS_PAUSED] = record
    kubernetes.client.AppsV1Api(b.admin).replace_namespaced_deployment("web", namespace, manifest)  # type: ignore[arg-type]
    writes = len(b.service_writes("helmreleases"))
    answer = FullApp(b.h).resume({"namespace": namespace, "deployment": "web", "reason": "x"})
    assert answer.status_code == 409 and "is missing" in answer.get_json()["error"]
    assert len(b.service_writes("helmreleases")) == writes
    release = get(b.plane, "helmrelease.helm.toolkit.fluxcd.io", namespace, "web")
    assert release["spec"]["suspend"] is True
