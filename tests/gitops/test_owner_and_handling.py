"""Owner detection and handling as tables: metadata in, a typed Owner and a verdict out."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from webhook.config import ConfigError, GitOps, GitOpsHandling, settings_from_dict
from webhook.gitops import (
    ANNOTATION_GITOPS_PAUSED,
    FLUX_RECONCILE,
    Ignore,
    Mechanism,
    Owner,
    OwnerKind,
    Pause,
    PauseRecord,
    Refuse,
    Target,
    describe_pause,
    detect_owner,
    handle,
    needs_facts,
    ownership,
    pause_annotations,
    pause_record,
)
from webhook.gitops_facts import (
    ApplicationFacts,
    HelmReleaseFacts,
    application_facts,
    helmrelease_facts,
)
from webhook.gitops_pause import read_facts
from webhook.kube import Cluster

DEFAULTS = GitOps()
TRACKING = "argocd.argoproj.io/tracking-id"
TARGET = Target(namespace="shop", deployment="web", to_revision=1)


def owner_of(labels: dict[str, str], annotations: dict[str, str], **settings: Any) -> Any:
    found = detect_owner(
        labels, annotations, namespace="shop", name="web", settings=GitOps(**settings)
    )
    return None if found is None else (found.kind, found.namespace, found.name)


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({}, {}, None),
        ({}, {TRACKING: "shop-app:apps/Deployment:shop/web"}, ("argocd", "argocd", "shop-app")),
        # Applications in any namespace are tracked as <namespace>_<name>.
        ({}, {TRACKING: "team_shop-app:apps/Deployment:shop/web"}, ("argocd", "team", "shop-app")),
        # An id copied from another object is not this Deployment's: Argo CD ignores it too.
        ({}, {TRACKING: "other:apps/Deployment:shop/api"}, None),
        ({"app.kubernetes.io/instance": "shop-app"}, {}, ("argocd", "argocd", "shop-app")),
        (
            {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
            {},
            ("flux_kustomization", "flux-system", "apps"),
        ),
        (
            # helm-controller's objects carry Helm's markers too: the HelmRelease is the owner.
            {
                "helm.toolkit.fluxcd.io/name": "web",
                "helm.toolkit.fluxcd.io/namespace": "shop",
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/instance": "web",
            },
            {"meta.helm.sh/release-name": "web"},
            ("flux_helmrelease", "shop", "web"),
        ),
        (
            # A chart's own instance label is not Argo CD's when Helm installed the release.
            {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "web"},
            {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "shop"},
            ("helm", "shop", "web"),
        ),
        ({"app.kubernetes.io/managed-by": "Helm"}, {}, ("helm", "shop", "?")),
        (
            # A chart rendered by Argo CD with label tracking: no Helm release annotation.
            {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "shop-app"},
            {},
            ("argocd", "argocd", "shop-app"),
        ),
    ],
)
def test_owner_is_read_from_the_deployments_own_metadata(
    labels: dict[str, str], annotations: dict[str, str], expected: Any
) -> None:
    assert owner_of(labels, annotations) == expected


def test_a_configured_instance_label_replaces_the_default_one() -> None:
    labels = {"app.kubernetes.io/instance": "web", "argocd.argoproj.io/instance": "shop-app"}
    found = owner_of(labels, {}, argocd_instance_label="argocd.argoproj.io/instance")
    assert found == ("argocd", "argocd", "shop-app")


def test_no_instance_label_means_argo_cd_is_known_by_its_tracking_annotation_only() -> None:
    # Argo CD 3 tracks by annotation by default; kustomize and Helm charts set the instance
    # label on plain Deployments too, which must then name no owner.
    labels = {"app.kubernetes.io/instance": "web"}
    assert owner_of(labels, {}, argocd_instance_label=None) is None
    tracked = {"argocd.argoproj.io/tracking-id": "shop-app:apps/Deployment:shop/web"}
    assert owner_of(labels, tracked, argocd_instance_label=None) == ("argocd", "argocd", "shop-app")


ARGO = Owner(OwnerKind.ARGOCD, "shop-app", "argocd", "annotation")
KUST = Owner(OwnerKind.FLUX_KUSTOMIZATION, "apps", "flux-system", "label")
HR = Owner(OwnerKind.FLUX_HELMRELEASE, "web", "shop", "label")
HELM = Owner(OwnerKind.HELM, "web", "shop", "annotation")
HR_P = {"flux_helmrelease": GitOpsHandling.PAUSE}
# Owner objects that list the Deployment (the pause's precondition; test_owner_must_list_...).
AUTO = ApplicationFacts(found=True, automated={"selfHeal": True, "prune": True}, listed=True)
HR_FACTS = HelmReleaseFacts(found=True, listed=True)

P, R, IGN = GitOpsHandling.PAUSE, GitOpsHandling.REFUSE, GitOpsHandling.IGNORE


@pytest.mark.parametrize(
    ("owner", "settings", "facts", "verdict", "detail"),
    [
        # The defaults: pause only Flux Kustomizations (no extra RBAC), refuse the rest.
        (KUST, {}, None, Pause, Mechanism.FLUX_RECONCILE_ANNOTATION),
        (ARGO, {}, None, Refuse, "gitops.argocd is refuse"),
        (HR, {}, None, Refuse, "gitops.flux_helmrelease is refuse"),
        (HELM, {}, None, Refuse, "gitops.helm is refuse"),
        (None, {}, None, Ignore, ""),
        # Ignore: act as though no owner were there.
        (ARGO, {"argocd": IGN}, None, Ignore, "ignore"),
        (HELM, {"helm": IGN}, None, Ignore, "ignore"),
        (KUST, {"flux_kustomization": R}, None, Refuse, "flux suspend kustomization apps"),
        # Argo CD pause: the Application decides.
        (ARGO, {"argocd": P}, AUTO, Pause, Mechanism.ARGOCD_AUTOMATED_DISABLED),
        (ARGO, {"argocd": P}, ApplicationFacts(found=False), Refuse, "not found"),
        (
            ARGO,
            {"argocd": P},
            ApplicationFacts(found=True, listed=True),
            Ignore,
            "no automated sync",
        ),
        (
            ARGO,
            {"argocd": P},
            ApplicationFacts(found=True, automated={"enabled": False}, listed=True),
            Ignore,
            "disabled already",
        ),
        (
            ARGO,
            {"argocd": P},
            ApplicationFacts(
                found=True, automated={}, managed_by="ApplicationSet argocd/shops", listed=True
            ),
            Refuse,
            "managed by ApplicationSet argocd/shops",
        ),
        (
            ARGO,
            {"argocd": P},
            ApplicationFacts(
                found=True, automated={}, managed_by="Application argocd/root", listed=True
            ),
            Refuse,
            "argocd app set argocd/root --sync-policy none",
        ),
        (
            ARGO,
            {"argocd": P, "allow_managed_applications": True},
            ApplicationFacts(
                found=True, automated={}, managed_by="Application argocd/root", listed=True
            ),
            Pause,
            Mechanism.ARGOCD_AUTOMATED_DISABLED,
        ),
        # HelmRelease pause: spec.suspend.
        (HR, HR_P, HR_FACTS, Pause, Mechanism.HELMRELEASE_SUSPEND),
        (HR, HR_P, HelmReleaseFacts(found=False), Refuse, "not found"),
        (HR, HR_P, HelmReleaseFacts(found=True, suspended=True, listed=True), Ignore, "already"),
        # An owner that does not list the Deployment is neither paused nor read as paused.
        (ARGO, {"argocd": P}, ApplicationFacts(found=True, automated={}), Refuse, "not paused"),
        (
            ARGO,
            {"argocd": P},
            ApplicationFacts(found=True, automated={"enabled": False}),
            Refuse,
            "not paused",
        ),
        (HR, HR_P, HelmReleaseFacts(found=True), Refuse, "not paused"),
        (HR, HR_P, HelmReleaseFacts(found=True, suspended=True), Refuse, "not paused"),
    ],
)
def test_handling_per_owner_kind(
    owner: Owner | None, settings: dict[str, Any], facts: Any, verdict: type, detail: str
) -> None:
    result = handle(owner, GitOps(**settings), target=TARGET, facts=facts)
    assert type(result) is verdict
    if isinstance(result, Pause):
        assert result.mechanism == detail
    elif isinstance(result, Refuse):
        assert detail in result.text()
    elif isinstance(result, Ignore):
        assert detail in result.note


def test_refusal_names_the_exact_steps_with_the_revision_to_go_back_to() -> None:
    result = handle(ARGO, DEFAULTS, target=TARGET)
    assert isinstance(result, Refuse)
    assert result.steps == (
        "argocd app set argocd/shop-app --sync-policy none",
        "argocd app rollback argocd/shop-app (or kubectl -n shop rollout undo deployment/web "
        "--to-revision=1)",
        "revert the bad change in Git (the image or template of the current revision)",
        "argocd app set argocd/shop-app --sync-policy automated",
    )
    assert "(1) argocd app set argocd/shop-app --sync-policy none" in result.text()


def test_only_controller_pauses_need_the_owner_object_read() -> None:
    paused = GitOps(argocd=P, flux_helmrelease=P)
    assert needs_facts(ARGO, paused) and needs_facts(HR, paused)
    assert not needs_facts(KUST, paused)  # the annotation needs nothing read
    assert not needs_facts(ARGO, DEFAULTS)  # refuse is decided on the Deployment alone


def test_application_facts_see_applicationset_and_parent_app() -> None:
    child = {
        "metadata": {
            "name": "shop-app",
            "namespace": "argocd",
            "resourceVersion": "7",
            "ownerReferences": [{"kind": "ApplicationSet", "name": "shops"}],
        },
        "spec": {"syncPolicy": {"automated": {"selfHeal": True}}},
    }
    facts = application_facts(child, settings=DEFAULTS, deployment=WEB)
    assert facts.managed_by == "ApplicationSet argocd/shops"
    assert facts.automated == {"selfHeal": True} and facts.resource_version == "7"
    tracked = {
        "metadata": {
            "name": "shop-app",
            "namespace": "argocd",
            "annotations": {TRACKING: "root:argoproj.io/Application:argocd/shop-app"},
        },
        "spec": {},
    }
    managed = application_facts(tracked, settings=DEFAULTS, deployment=WEB).managed_by
    assert managed == "Application argocd/root"
    alone = {"metadata": {"name": "shop-app", "namespace": "argocd"}, "spec": {**HERE}}
    assert application_facts(alone, settings=DEFAULTS, deployment=WEB) == ApplicationFacts(
        found=True, membership="its status.resources does not list apps/Deployment shop/web"
    )
    assert application_facts(None, settings=DEFAULTS, deployment=WEB).found is False
    release = {"metadata": {}, "spec": {"suspend": True}}
    assert helmrelease_facts(release, settings=DEFAULTS, deployment=WEB).suspended


WEB = {
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "annotations": {"meta.helm.sh/release-name": "web"},
    }
}


# Argo CD's own name for the cluster it runs in.
HERE = {"destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}}
# As Argo CD's controller lists an object its Git source applies.
SYNCED = {"group": "apps", "version": "v1", "kind": "Deployment", "status": "Synced"}
LISTING = {"resources": [{**SYNCED, "namespace": "shop", "name": "web"}]}
# Settings that accept a HelmRelease's latest release where it keeps no inventory.
LATEST = GitOps(helmrelease_latest_release=True)


def _resource(group: str, kind: str, namespace: str, name: str, **more: Any) -> dict[str, Any]:
    return {
        "group": group,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "version": "v1",
        "status": "Synced",
        **more,
    }


@pytest.mark.parametrize(
    ("resources", "listed"),
    [
        ([_resource("apps", "Deployment", "shop", "web")], True),
        (
            [
                _resource("", "Service", "shop", "web"),
                _resource("apps", "Deployment", "shop", "web"),
            ],
            True,
        ),
        ([_resource("apps", "Deployment", "other", "web")], False),
        ([_resource("apps", "Deployment", "shop", "api")], False),
        ([_resource("apps", "StatefulSet", "shop", "web")], False),
        ([_resource("extensions", "Deployment", "shop", "web")], False),
        ([_resource("apps", "Deployment", "shop", "web", status="OutOfSync")], True),
        # Argo CD lists any live object carrying its tracking marker, which the Deployment's
        # editor may write: not in Git (to prune), a hook, or with no sync status.
        ([_resource("apps", "Deployment", "shop", "web", requiresPruning=True)], False),
        ([_resource("apps", "Deployment", "shop", "web", hook=True)], False),
        ([{**_resource("apps", "Deployment", "shop", "web"), "status": None}], False),
        ([_resource("apps", "Deployment", "shop", "web", status="Unknown")], False),
        (
            [
                _resource("apps", "Deployment", "shop", "web", requiresPruning=True),
                _resource("apps", "Deployment", "shop", "web"),
            ],
            True,
        ),
        ([], False),
        (None, False),
        ("apps/Deployment:shop/web", False),
        (["apps/Deployment:shop/web", None, 7], False),
    ],
)
def test_an_application_lists_a_deployment_only_in_its_status_resources(
    resources: Any, listed: bool
) -> None:
    app = {"metadata": {"name": "shop-app", "namespace": "argocd"}, "spec": {**HERE}}
    if resources is not None:
        app["status"] = {"resources": resources}
    facts = application_facts(app, settings=DEFAULTS, deployment=WEB)
    assert facts.listed is listed
    assert (
        "lists apps/Deployment shop/web" in facts.membership and "only" not in facts.membership
    ) is listed


@pytest.mark.parametrize(
    ("destination", "settings", "listed", "said"),
    [
        ({"server": "https://kubernetes.default.svc"}, DEFAULTS, True, "lists"),
        ({"server": "https://kubernetes.default.svc/"}, DEFAULTS, True, "lists"),
        ({"name": "in-cluster"}, DEFAULTS, True, "lists"),
        # Another cluster's objects may share this one's names: its listing proves nothing here.
        ({"server": "https://prod-eu.example.com:6443"}, DEFAULTS, False, "'https://prod-eu"),
        ({"name": "prod-eu"}, DEFAULTS, False, "names 'prod-eu', not this cluster"),
        (
            {"server": "https://kubernetes.default.svc", "name": "prod-eu"},
            DEFAULTS,
            False,
            "not this cluster",
        ),
        ({}, DEFAULTS, False, "names no cluster"),
        (None, DEFAULTS, False, "names no cluster"),
        ("in-cluster", DEFAULTS, False, "names no cluster"),
        # Argo CD run elsewhere registers this cluster under a name of its choosing.
        (
            {"name": "prod-eu"},
            GitOps(argocd=GitOpsHandling.PAUSE, argocd_destinations=("prod-eu",)),
            True,
            "lists",
        ),
        (
            {"server": "https://kubernetes.default.svc"},
            GitOps(argocd=GitOpsHandling.PAUSE, argocd_destinations=("prod-eu",)),
            False,
            "gitops.argocd_destinations: prod-eu",
        ),
    ],
)
def test_an_application_that_deploys_to_another_cluster_lists_nothing_here(
    destination: Any, settings: GitOps, listed: bool, said: str
) -> None:
    app = {
        "metadata": {"name": "shop-app", "namespace": "argocd"},
        "spec": {"destination": destination},
        "status": LISTING,
    }
    facts = application_facts(app, settings=settings, deployment=WEB)
    assert facts.listed is listed
    assert said in facts.membership


def test_a_helmrelease_that_releases_into_another_cluster_lists_nothing_here() -> None:
    inventory = {"inventory": {"entries": [{"id": "shop_web_apps_Deployment", "v": "v1"}]}}
    local = {"metadata": {}, "spec": {}, "status": inventory}
    assert helmrelease_facts(local, settings=DEFAULTS, deployment=WEB).listed
    remote = {"metadata": {}, "spec": {"kubeConfig": {"secretRef": {"name": "prod-eu"}}}}
    facts = helmrelease_facts({**remote, "status": inventory}, settings=LATEST, deployment=WEB)
    assert facts.listed is False
    assert facts.membership == "it releases into the cluster its spec.kubeConfig names"


@pytest.mark.parametrize(
    ("status", "listed", "said"),
    [
        # helm-controllers with an inventory: the id "<namespace>_<name>_<group>_<kind>".
        (
            {"inventory": {"entries": [{"id": "shop_web_apps_Deployment", "v": "v1"}]}},
            True,
            "lists",
        ),
        (
            {"inventory": {"entries": [{"id": "other_web_apps_Deployment", "v": "v1"}]}},
            False,
            "not",
        ),
        ({"inventory": {"entries": [{"id": "shop_web__Service", "v": "v1"}]}}, False, "not"),
        # An inventory, even empty, is what the controller says; history is not looked at.
        ({"inventory": {}, "history": [{"name": "web", "namespace": "shop"}]}, False, "not"),
        ({"inventory": {"entries": "shop_web_apps_Deployment"}}, False, "not"),
        # No inventory: the latest release, in the Deployment's namespace, under its name.
        ({"history": [{"name": "web", "namespace": "shop", "version": 3}]}, True, "is the"),
        ({"history": [{"name": "web", "namespace": "other"}]}, False, "is not"),
        ({"history": [{"name": "api", "namespace": "shop"}]}, False, "is not"),
        # Only the latest counts: an older release of the name is no longer this one's.
        (
            {
                "history": [
                    {"name": "api", "namespace": "shop"},
                    {"name": "web", "namespace": "shop"},
                ]
            },
            False,
            "is not",
        ),
        ({"history": []}, False, "records no release"),
        ({}, False, "records no release"),
        ({"history": ["web"]}, False, "records no release"),
    ],
)
def test_a_helmrelease_lists_a_deployment_in_its_inventory_or_else_its_latest_release(
    status: dict[str, Any], listed: bool, said: str
) -> None:
    release = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {}, "status": status}
    facts = helmrelease_facts(release, settings=LATEST, deployment=WEB)
    assert facts.listed is listed and said in facts.membership


def test_with_no_inventory_a_helmrelease_lists_nothing_unless_its_latest_release_counts() -> None:
    """The latest release matches by the Deployment's own meta.helm.sh/release-name, which its
    editor may write: any release into the namespace (a platform chart with cluster-wide
    objects too) would be suspended. So it counts only where the operator accepts it."""
    release = {
        "metadata": {"name": "agent", "namespace": "flux-system"},
        "spec": {"targetNamespace": "shop"},
        "status": {"history": [{"name": "web", "namespace": "shop", "version": 4}]},
    }
    facts = helmrelease_facts(release, settings=DEFAULTS, deployment=WEB)
    assert facts.listed is False
    assert "gitops.helmrelease_latest_release is false" in facts.membership
    assert helmrelease_facts(release, settings=LATEST, deployment=WEB).listed


def test_with_no_inventory_a_deployment_without_a_release_name_matches_no_release() -> None:
    bare = {"metadata": {"name": "web", "namespace": "shop"}}
    release = {"metadata": {}, "status": {"history": [{"name": "web", "namespace": "shop"}]}}
    assert helmrelease_facts(release, settings=LATEST, deployment=bare).listed is False


def test_an_owner_that_does_not_list_the_deployment_is_refused_with_steps_that_name_none() -> None:
    facts = ApplicationFacts(
        found=True,
        automated={"selfHeal": True},
        membership="its status.resources does not list apps/Deployment shop/web",
    )
    result = handle(ARGO, GitOps(argocd=P), target=TARGET, facts=facts)
    assert isinstance(result, Refuse)
    assert "the Deployment's annotation names it, but its status.resources does not list" in (
        result.text()
    )
    # The steps send the human to find the real owner; they name no command on this one.
    assert all("shop-app" not in step for step in result.steps)
    assert "kubectl -n shop rollout undo deployment/web --to-revision=1" in result.steps


def test_pause_record_round_trips_through_the_deployment_annotations() -> None:
    record = PauseRecord(
        owner=KUST,
        mechanism=Mechanism.FLUX_RECONCILE_ANNOTATION,
        previous=None,
        time="2026-12-01T10:00:00Z",
        audit_id="d-1",
    )
    annotations = pause_annotations(record)
    assert annotations[FLUX_RECONCILE] == "disabled"
    assert pause_record(annotations) == record
    assert pause_record({}) is None
    assert pause_record({ANNOTATION_GITOPS_PAUSED: "{not json"}) is None
    removed = PauseRecord(ARGO, Mechanism.ARGOCD_AUTOMATED_REMOVED, {"selfHeal": True}, "t", "d-2")
    assert FLUX_RECONCILE not in pause_annotations(removed)
    line = describe_pause(removed, namespace="shop", deployment="web")
    assert 'removed (was {"selfHeal": true})' in line
    assert line.endswith('rollback-webhook resume shop/web --reason "<what was fixed>"')


def test_config_validates_gitops_handling() -> None:
    settings = settings_from_dict({"gitops": {"argocd": "pause", "helm": "ignore"}})
    assert settings.gitops.argocd == GitOpsHandling.PAUSE
    with pytest.raises(ConfigError, match=r"gitops\.helm: pause is not possible"):
        settings_from_dict({"gitops": {"helm": "pause"}})
    with pytest.raises(ConfigError, match=r"gitops\.argocd: expected one of pause, refuse, ignore"):
        settings_from_dict({"gitops": {"argocd": "suspend"}})


def test_ownership_says_owner_handling_pause_and_the_command_back() -> None:
    record = PauseRecord(KUST, Mechanism.FLUX_RECONCILE_ANNOTATION, None, "t0", "d-9")
    deployment = {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"kustomize.toolkit.fluxcd.io/name": "apps"},
            "annotations": pause_annotations(record),
        }
    }
    seen = ownership(deployment, DEFAULTS)
    assert seen.lines() == [
        "owner: Flux Kustomization shop/apps (label kustomize.toolkit.fluxcd.io/name); "
        "handling: pause (gitops.flux_kustomization)",
        "paused Flux Kustomization flux-system/apps (kustomize.toolkit.fluxcd.io/reconcile: "
        "disabled on the Deployment); hand control back once Git is fixed: rollback-webhook "
        'resume shop/web --reason "<what was fixed>" [since t0, audit d-9]',
    ]
    assert (
        seen.as_dict()["resume"] == 'rollback-webhook resume shop/web --reason "<what was fixed>"'
    )
    bare = ownership({"metadata": {"name": "web", "namespace": "shop"}}, DEFAULTS)
    assert bare.as_dict() == {"owner": None, "handling": None, "paused": None, "resume": None}


def _owner_and_verdict(
    deployment: dict[str, Any], app: dict[str, Any], settings: GitOps
) -> tuple[Owner | None, Any]:
    meta = deployment["metadata"]
    owner = detect_owner(
        meta.get("labels", {}),
        meta.get("annotations", {}),
        namespace=meta["namespace"],
        name=meta["name"],
        settings=settings,
    )
    facts = application_facts(app, settings=settings, deployment=deployment)
    return owner, handle(owner, settings, target=TARGET, facts=facts)


@pytest.mark.parametrize(
    ("labels", "tracking", "entry", "said"),
    [
        # A self-referencing tracking id written on the Deployment (with Prune=false, Argo CD
        # leaves it be): Argo CD lists it as an extra object, one Git does not hold.
        ({}, "platform:apps/Deployment:shop/web", {"requiresPruning": True}, "to prune"),
        # The instance label names the Application, the tracking id another object: Argo CD
        # lists it with no sync status.
        (
            {"app.kubernetes.io/instance": "platform"},
            "platform:apps/Deployment:shop/not-web",
            {"status": None},
            "with sync status None",
        ),
    ],
)
def test_a_marker_written_on_the_deployment_does_not_make_the_application_apply_it(
    labels: dict[str, str], tracking: str, entry: dict[str, Any], said: str
) -> None:
    """Argo CD's status.resources holds every live object its marker names, so the marker's
    writer can put the Deployment there; only what the Application's Git source applies
    counts, and the platform Application is not paused."""
    deployment = {
        "metadata": {
            "namespace": "shop",
            "name": "web",
            "labels": labels,
            "annotations": {TRACKING: tracking, "argocd.argoproj.io/sync-options": "Prune=false"},
        }
    }
    app = {
        "metadata": {"name": "platform", "namespace": "argocd", "resourceVersion": "7"},
        "spec": {**HERE, "syncPolicy": {"automated": {"selfHeal": True}}},
        "status": {
            "resources": [
                _resource("", "ConfigMap", "platform", "settings"),
                {**_resource("apps", "Deployment", "shop", "web"), **entry},
            ]
        },
    }
    settings = GitOps(argocd=GitOpsHandling.PAUSE)
    owner, verdict = _owner_and_verdict(deployment, app, settings)
    assert owner is not None and (owner.namespace, owner.name) == ("argocd", "platform")
    assert isinstance(verdict, Refuse), verdict
    assert said in verdict.why and "so it is not paused" in verdict.why


@pytest.mark.parametrize(
    ("labels", "annotations", "problem"),
    [
        ({}, {TRACKING: "_platform:apps/Deployment:shop/web"}, "no object can be /platform"),
        ({}, {TRACKING: "Platform:apps/Deployment:shop/web"}, "no object can be argocd/Platform"),
        (
            {"helm.toolkit.fluxcd.io/name": "web app", "helm.toolkit.fluxcd.io/namespace": "flux"},
            {},
            "no object can be flux/web app",
        ),
    ],
)
def test_an_owner_marker_that_names_no_possible_object_is_refused_and_nothing_is_read(
    labels: dict[str, str], annotations: dict[str, str], problem: str
) -> None:
    """A marker may hold anything. One naming what no object can be named is a refusal with
    the human steps (as any owner that does not list the Deployment), not an API error: the
    cluster here has no server, so any read would fail."""
    settings = GitOps(argocd=GitOpsHandling.PAUSE, flux_helmrelease=GitOpsHandling.PAUSE)
    owner = detect_owner(labels, annotations, namespace="shop", name="web", settings=settings)
    assert owner is not None
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9"))
    nowhere = Cluster(api, timeout_seconds=0.5)
    facts = read_facts(nowhere, owner, settings, deployment=WEB)
    verdict = handle(owner, settings, target=TARGET, facts=facts)
    assert isinstance(verdict, Refuse), verdict
    assert problem in verdict.why and "--show-managed-fields" in verdict.text()
