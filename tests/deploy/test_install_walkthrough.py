"""docs/install.md walked where it can be without a cluster: the site overlay the page shows
renders with the real `kubectl kustomize` (your image, the kube-prometheus-stack release label,
a renamed release), every overlay's rendered configuration passes `rollback-webhook check-config`
with the files its Deployment mounts, and going from dry-run to enforce is the overlay switch
the page says it is (tests/controlplane/test_install.py applies it to a real API server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import DEPLOY, REPO, config_of, only, render, webhook_container

INSTALL = REPO / "docs" / "install.md"
IMAGE = "registry.example.com/platform/rollback-webhook:0.1.0"
MONITORING = ("PrometheusRule", "ServiceMonitor")


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


def site_overlay(tmp_path: Path, *, extra: str = "") -> Path:
    """The page's site/kustomization.yaml beside a checkout named rollback-webhook."""
    [block] = [b for b in yaml_blocks(INSTALL.read_text()) if b.startswith("# site/kustomization")]
    (tmp_path / "rollback-webhook").symlink_to(REPO)
    site = tmp_path / "site"
    site.mkdir()
    (site / "kustomization.yaml").write_text(block + extra)
    return site


def release_labels(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    """The release label of every monitoring object, by kind and name (all of them: a rule
    bundle Prometheus does not select is an alert that never fires)."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["labels"].get("release")
        for o in objects
        if o["kind"] in MONITORING
    }


WATCHED = (
    "PrometheusRule/rollback-webhook",
    "PrometheusRule/rollback-webhook-monitoring",
    "ServiceMonitor/rollback-webhook",
)


def test_the_site_overlay_of_the_page_sets_your_image_and_the_release_label(tmp_path: Path):
    objects = render(site_overlay(tmp_path))
    assert webhook_container(objects)["image"] == IMAGE
    assert release_labels(objects) == {k: "kube-prometheus-stack" for k in WATCHED}
    # Still the dry-run overlay underneath.
    assert config_of(objects)["dry_run"] is True


def test_another_release_name_is_the_patch_the_page_shows(tmp_path: Path) -> None:
    [patch] = [b for b in yaml_blocks(INSTALL.read_text()) if b.startswith("patches:")]
    objects = render(site_overlay(tmp_path, extra=patch))
    assert release_labels(objects) == {k: "my-monitoring" for k in WATCHED}


def test_the_shipped_overlays_name_a_placeholder_image_the_page_warns_about() -> None:
    text = INSTALL.read_text()
    image = webhook_container(render(DEPLOY / "overlays" / "dry-run"))["image"]
    assert image == "rollback-webhook:0.1.0"
    assert f"`{image}`, a placeholder" in text
    assert "docker push" in text and "newName:" in text


def _verbs(objects: list[dict[str, Any]], resource: str) -> set[str]:
    role = only(objects, "ClusterRole", "rollback-webhook")
    return {v for rule in role["rules"] if resource in rule["resources"] for v in rule["verbs"]}


def test_dry_run_to_enforce_is_an_overlay_switch() -> None:
    dry_run = render(DEPLOY / "overlays" / "dry-run")
    enforce = render(DEPLOY / "overlays" / "enforce")
    assert "update" not in _verbs(dry_run, "deployments")
    assert "update" in _verbs(enforce, "deployments")
    assert config_of(dry_run)["dry_run"] is True and config_of(enforce)["dry_run"] is False
    step = INSTALL.read_text().split("### 6.")[1].split("###")[0]
    assert "overlay switch" in step and "grants `update` on Deployments" in step
    assert "`forbidden`" in step  # what dry_run: false alone would give


def _mounted(objects: list[dict[str, Any]], path: str) -> bool:
    mounts = webhook_container(objects).get("volumeMounts") or []
    return any(path == m["mountPath"] or path.startswith(m["mountPath"] + "/") for m in mounts)


@pytest.mark.parametrize("overlay", ["dry-run", "enforce", "namespaced", "gitops", "site"])
def test_each_rendered_config_passes_check_config(tmp_path: Path, overlay: str) -> None:
    directory = site_overlay(tmp_path) if overlay == "site" else DEPLOY / "overlays" / overlay
    objects = render(directory)
    config = config_of(objects)
    root = tmp_path / "pod"
    # Every file the configuration names is where the Deployment mounts something; the test
    # puts a file at the same path under `root` (the secrets' content is the operator's).
    files = {
        "auth.receiver.bearer_token_file": config["auth"]["receiver"]["bearer_token_file"],
        "auth.oncall_tokens_file": config["auth"]["oncall_tokens_file"],
    }
    for key, path in files.items():
        assert _mounted(objects, path), f"{overlay}: {key} {path} is not mounted"
        local = root / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("alice:secret\n" if key == "auth.oncall_tokens_file" else "secret\n")
    receiver_file = files["auth.receiver.bearer_token_file"]
    config["auth"]["receiver"]["bearer_token_file"] = str(root / receiver_file.lstrip("/"))
    config["auth"]["oncall_tokens_file"] = str(root / files["auth.oncall_tokens_file"].lstrip("/"))
    audit_path = config["audit"]["path"]
    assert _mounted(objects, str(Path(audit_path).parent)), f"{overlay}: audit.path not on a volume"
    config["audit"]["path"] = str(root / audit_path.lstrip("/"))
    # In the pod the ServiceAccount is the credential; here a kubeconfig stands in for it.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    assert config["kubernetes"]["kubeconfig"] is None
    config["kubernetes"]["kubeconfig"] = str(kubeconfig)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "check-config", "--config", str(path), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{overlay}: {result.stderr}"
