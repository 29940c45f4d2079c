"""The shipped configuration really behaves as its overlay says: the dry-run overlay's rendered
ConfigMap, loaded into the service, yields `dry_run` decisions and leaves the cluster untouched;
the enforce overlay's rolls back; the namespaced overlay's acts only in its namespaces.

Only machine-specific values are replaced (file paths of the audit and the mounted secrets, and
Prometheus' in-cluster URL by a closed loopback port, which the service treats as Prometheus
down); every policy key is the rendered one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.pipeline.processes import free_port
from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.deploy.render import Obj, config_of


def localised(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    result = dict(config)
    result["audit"] = {**config.get("audit", {}), "path": str(tmp_path / "audit.sqlite")}
    result["auth"] = {
        "receiver": {"bearer_token_file": str(tmp_path / "token")},
        "oncall_tokens_file": str(tmp_path / "oncall"),
    }
    result["kubernetes"] = {"timeout_seconds": 2}
    if config.get("prometheus", {}).get("url"):
        closed = f"http://127.0.0.1:{free_port()}"
        result["prometheus"] = {**config["prometheus"], "url": closed, "retries": 0}
    return result


@pytest.mark.parametrize(
    ("overlay", "namespace", "outcome"),
    [
        ("dry-run", "shop", ("dry_run", None)),
        ("enforce", "shop", ("rolled_back", None)),
        ("namespaced", "shop", ("skipped", "namespace_denied")),
        ("namespaced", "team-a", ("dry_run", None)),
    ],
)
def test_rendered_config_decides_as_its_overlay_says(
    rendered: dict[str, list[Obj]],
    sandbox: SandboxHandle,
    tmp_path: Path,
    overlay: str,
    namespace: str,
    outcome: tuple[str, str | None],
) -> None:
    config = config_of(rendered[overlay])
    harness = Harness(sandbox, tmp_path, **localised(config, tmp_path))
    assert harness.settings.dry_run is config["dry_run"]
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))], namespace=namespace)
    [decision] = harness.post_alerts(
        harness.alert(namespace=namespace, deployment="web", replicaset=rs[1])
    )
    assert (decision["outcome"], decision["reason"]) == outcome, decision
    expected = ["web:1"] if outcome[0] == "rolled_back" else ["web:2"]
    assert template_images(harness.deployment(namespace, "web")) == expected
