"""rules/alertmanager.yaml pasted into a full configuration, checked by amtool 0.25 (Debian) and
amtool 0.35 (built); and the AlertmanagerConfig manifest saying the same thing as the fragment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.binaries import require_binary, require_built
from tests.rules.support import ALERTMANAGER_CONFIG_CRD, ALERTMANAGER_FRAGMENT, run
from webhook.contract import TRIGGERS


@pytest.fixture(params=("0.25", "0.3x"), ids=lambda generation: f"amtool-{generation}")
def amtool(request: pytest.FixtureRequest) -> str:
    if request.param == "0.25":
        return require_binary("amtool")
    return require_built("amtool-0.3x")


def _fragment() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ALERTMANAGER_FRAGMENT.read_text())
    return loaded


def _site_config(tmp_path: Path) -> Path:
    """A small existing configuration with the fragment merged in as its comments say."""
    fragment = _fragment()
    config = {
        "route": {
            "receiver": "default",
            "group_by": ["alertname"],
            "routes": [
                *fragment["routes"],
                {"receiver": "team-pager", "matchers": ['severity="critical"']},
            ],
        },
        "receivers": [{"name": "default"}, {"name": "team-pager"}, *fragment["receivers"]],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _receivers(amtool: str, config: Path, *labels: str) -> list[str]:
    result = run([amtool, "config", "routes", "test", f"--config.file={config}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


def test_fragment_merged_into_a_full_configuration_passes_amtool_check_config(
    amtool: str, tmp_path: Path
):
    result = run([amtool, "check-config", str(_site_config(tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_contract_alerts_reach_the_webhook_and_still_reach_the_team(
    amtool: str, tmp_path: Path, trigger: str
):
    labels = [f"rollback_trigger={trigger}", "severity=critical", "namespace=shop"]
    assert _receivers(amtool, _site_config(tmp_path), *labels) == ["rollback-webhook", "team-pager"]


def test_an_unknown_trigger_still_reaches_the_webhook_to_be_audited(amtool: str, tmp_path: Path):
    # The receiver records it as skipped/unknown_trigger: a typo in a rule shows up in the audit.
    labels = ["rollback_trigger=cpu", "severity=critical"]
    assert _receivers(amtool, _site_config(tmp_path), *labels) == ["rollback-webhook", "team-pager"]


def test_alerts_without_the_trigger_label_never_reach_the_webhook(amtool: str, tmp_path: Path):
    config = _site_config(tmp_path)
    assert _receivers(amtool, config, "alertname=DiskFull", "severity=critical") == ["team-pager"]
    assert _receivers(amtool, config, "alertname=DiskFull", 'rollback_trigger=""') == ["default"]


def test_receiver_sends_resolved_alerts_with_a_bearer_token_from_a_file():
    [receiver] = _fragment()["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["url"].endswith("/api/v1/alerts")
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"
    assert "credentials_file" in authorization and "credentials" not in authorization


def test_alertmanagerconfig_manifest_says_the_same_as_the_fragment():
    crd = yaml.safe_load(ALERTMANAGER_CONFIG_CRD.read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert crd["kind"] == "AlertmanagerConfig"
    [route] = _fragment()["routes"]
    [receiver] = _fragment()["receivers"]
    [webhook] = receiver["webhook_configs"]
    spec_route = crd["spec"]["route"]
    assert spec_route["receiver"] == route["receiver"]
    assert [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in spec_route["matchers"]] == route[
        "matchers"
    ]
    assert spec_route["groupBy"] == route["group_by"]
    assert spec_route["groupWait"] == route["group_wait"]
    assert spec_route["groupInterval"] == route["group_interval"]
    assert spec_route["repeatInterval"] == route["repeat_interval"]
    assert spec_route["continue"] is route["continue"] is True
    [spec_receiver] = crd["spec"]["receivers"]
    [spec_webhook] = spec_receiver["webhookConfigs"]
    assert spec_receiver["name"] == receiver["name"]
    assert spec_webhook["url"] == webhook["url"]
    assert spec_webhook["sendResolved"] is webhook["send_resolved"]
    assert spec_webhook["maxAlerts"] == webhook["max_alerts"]
    assert spec_webhook["httpConfig"]["authorization"]["type"] == "Bearer"


def test_alerts_of_two_clusters_are_never_grouped_into_one_payload():
    # A central Alertmanager sees shop/web from eu-1 and from us-1: each cluster's receiver must
    # get its own payload (the other cluster's alert would be skipped wrong_cluster in it).
    [route] = _fragment()["routes"]
    assert {"cluster", "namespace", "deployment", "replicaset", "alertname"} <= set(
        route["group_by"]
    )
    assert "..." not in route["group_by"]  # grouping by every label would split per pod
