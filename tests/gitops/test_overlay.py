"""deploy/overlays/gitops: enforce, plus exactly the pause handling and the grants it needs."""

from __future__ import annotations

import copy

import pytest

from tests.deploy.rbac import granted
from tests.deploy.render import DEPLOY, Obj, config_of, render
from tests.deploy.test_overlays import differing_keys
from webhook.config import GitOpsHandling, settings_from_dict

pytestmark = pytest.mark.kubectl

EXTRA = {
    ("get", "argoproj.io", "applications"),
    ("patch", "argoproj.io", "applications"),
    ("get", "helm.toolkit.fluxcd.io", "helmreleases"),
    ("patch", "helm.toolkit.fluxcd.io", "helmreleases"),
}


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[Obj]]:
    return {name: render(DEPLOY / "overlays" / name) for name in ("enforce", "gitops")}


def test_the_gitops_overlay_is_enforce_with_owners_paused(overlays: dict[str, list[Obj]]) -> None:
    gitops, enforce = config_of(overlays["gitops"]), config_of(overlays["enforce"])
    assert {key.split(".")[0] for key in differing_keys(gitops, enforce)} == {"gitops"}
    settings = settings_from_dict(gitops).gitops
    assert settings.argocd == GitOpsHandling.PAUSE
    assert settings.flux_helmrelease == GitOpsHandling.PAUSE
    assert settings.helm == GitOpsHandling.REFUSE


def test_the_gitops_overlay_grants_enforce_and_exactly_the_owner_writes(
    overlays: dict[str, list[Obj]],
) -> None:
    assert granted(overlays["gitops"]) == granted(overlays["enforce"]) | EXTRA
    [role] = [
        o for o in overlays["gitops"] if o["kind"] == "Role" and "gitops" in o["metadata"]["name"]
    ]
    assert role["metadata"]["namespace"] == "argocd"  # Applications only where they live


def test_apart_from_config_and_rbac_the_gitops_overlay_is_enforce(
    overlays: dict[str, list[Obj]],
) -> None:
    def comparable(objects: list[Obj]) -> list[Obj]:
        kept = []
        for obj in objects:
            if obj["kind"] == "ConfigMap" or "gitops" in obj["metadata"]["name"]:
                continue
            obj = copy.deepcopy(obj)
            if obj["kind"] == "Deployment":
                for volume in obj["spec"]["template"]["spec"]["volumes"]:
                    volume.get("configMap", {}).pop("name", None)
            kept.append(obj)
        return kept

    assert comparable(overlays["gitops"]) == comparable(overlays["enforce"])
