"""The Alertmanager route and receiver that docs/install.md tells operators to paste.

amtool (Alertmanager 0.25) checks the snippet inside a full configuration, resolves which
receivers an alert reaches, and the receiver's URL must name the Service the bundle renders.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.binaries import require_binary
from tests.deploy.render import REPO, Obj, only

INSTALL = REPO / "docs" / "install.md"


def snippet() -> dict[str, Any]:
    """The YAML block of docs/install.md that configures the webhook receiver."""
    blocks = re.findall(r"```yaml\n(.*?)```", INSTALL.read_text(), flags=re.S)
    [block] = [b for b in blocks if "webhook_configs" in b]
    parsed: dict[str, Any] = yaml.safe_load(block)
    return parsed


def site_config(tmp_path: Path) -> Path:
    """The snippet merged into a small existing configuration, as an operator would."""
    config = snippet()
    config["route"]["receiver"] = "default"
    config["route"]["routes"].append({"receiver": "team-pager", "matchers": ['severity="page"']})
    config["receivers"] += [{"name": "default"}, {"name": "team-pager"}]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def receivers_for(config: Path, *labels: str) -> list[str]:
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().split(",")


def test_the_snippet_is_a_valid_alertmanager_configuration(tmp_path: Path):
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(site_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("trigger", ["restart_rate", "oomkilled", "p99_latency"])
def test_trigger_alerts_reach_the_webhook_and_still_page_the_team(tmp_path: Path, trigger: str):
    config = site_config(tmp_path)
    labels = [f"rollback_trigger={trigger}", "severity=page", "namespace=shop"]
    assert receivers_for(config, *labels) == ["rollback-webhook", "team-pager"]


def test_other_alerts_never_reach_the_webhook(tmp_path: Path):
    config = site_config(tmp_path)
    assert receivers_for(config, "alertname=DiskFull", "severity=page") == ["team-pager"]
    assert receivers_for(config, "rollback_trigger=cpu", "severity=page") == ["team-pager"]


@pytest.mark.kubectl
def test_the_receiver_url_is_the_rendered_service(rendered: dict[str, list[Obj]]):
    [receiver] = [r for r in snippet()["receivers"] if r["name"] == "rollback-webhook"]
    [webhook] = receiver["webhook_configs"]
    url = urlsplit(webhook["url"])
    service = only(rendered["dry-run"], "Service")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert url.hostname == host
    assert url.port in [port["port"] for port in service["spec"]["ports"]]
    assert url.path == "/api/v1/alerts"
    assert webhook["send_resolved"] is True
    # Alertmanager mounts spec.secrets at /etc/alertmanager/secrets/<name>/: the same Secret
    # name and key the Deployment mounts the receiver token from.
    credentials = Path(webhook["http_config"]["authorization"]["credentials_file"])
    deployment = only(rendered["dry-run"], "Deployment")
    secrets = {
        v["secret"]["secretName"]: [item["key"] for item in v["secret"]["items"]]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert credentials.parent == Path("/etc/alertmanager/secrets") / credentials.parent.name
    assert credentials.name in secrets[credentials.parent.name]
