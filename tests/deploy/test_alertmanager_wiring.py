"""The Alertmanager fragments in rules/ reach the Service and token this bundle deploys.

rules/ owns the route and receiver (its tests run amtool on them); here they are held to the
rendered manifests, so renaming the Service, its port, or the receiver Secret breaks a test
instead of silently breaking delivery.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.render import REPO, Obj, only, pod_spec

pytestmark = pytest.mark.kubectl

INSTALL = REPO / "docs" / "install.md"
PLAIN = REPO / "rules" / "alertmanager.yaml"
OPERATOR = REPO / "rules" / "alertmanagerconfig.yaml"


def load(path: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(path.read_text())
    return parsed


def receiver_secrets(objects: list[Obj]) -> dict[str, list[str]]:
    """Secret name -> keys the Deployment mounts from it."""
    return {
        v["secret"]["secretName"]: [item["key"] for item in v["secret"]["items"]]
        for v in pod_spec(objects)["volumes"]
        if "secret" in v
    }


def assert_is_the_receiver_endpoint(url: str, objects: list[Obj]) -> None:
    service = only(objects, "Service")
    parts = urlsplit(url)
    assert parts.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert parts.port in [port["port"] for port in service["spec"]["ports"]]
    assert parts.path == "/api/v1/alerts"


def test_the_install_guide_points_at_the_tested_fragments():
    guide = INSTALL.read_text()
    assert "rules/alertmanager.yaml" in guide
    assert "rules/alertmanagerconfig.yaml" in guide
    assert "webhook_configs" not in guide, "a copy in the guide would drift from rules/"


def test_the_plain_receiver_posts_to_the_service_with_the_mounted_token(
    rendered: dict[str, list[Obj]],
):
    objects = rendered["dry-run"]
    [receiver] = [r for r in load(PLAIN)["receivers"] if r["name"] == "rollback-webhook"]
    [webhook] = receiver["webhook_configs"]
    assert_is_the_receiver_endpoint(webhook["url"], objects)
    # The operator mounts Alertmanager spec.secrets at /etc/alertmanager/secrets/<name>/<key>.
    path = PurePosixPath(webhook["http_config"]["authorization"]["credentials_file"])
    assert path.parent.parent == PurePosixPath("/etc/alertmanager/secrets")
    assert path.name in receiver_secrets(objects)[path.parent.name]


def test_the_alertmanagerconfig_uses_the_service_and_the_receiver_secret(
    rendered: dict[str, list[Obj]],
):
    objects = rendered["dry-run"]
    config = load(OPERATOR)
    # Its credentials are read from a Secret in its own namespace: the service's.
    assert config["metadata"]["namespace"] == only(objects, "Service")["metadata"]["namespace"]
    [receiver] = [r for r in config["spec"]["receivers"] if r["name"] == "rollback-webhook"]
    [webhook] = receiver["webhookConfigs"]
    assert_is_the_receiver_endpoint(webhook["url"], objects)
    credentials = webhook["httpConfig"]["authorization"]["credentials"]
    assert credentials["key"] in receiver_secrets(objects)[credentials["name"]]
