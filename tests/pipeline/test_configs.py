"""The pipeline's rendered configuration is the shipped bundle with only the documented changes,
and the real tools accept it (fast: no server is started)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from lab.pipeline import Timing
from lab.pipeline.configs import (
    DRY_RUN_RECEIVER_NAME,
    RECEIVER_NAME,
    ReceiverTarget,
    alertmanager_config,
    prometheus_config,
    render_monitoring_rule_file,
    render_rule_file,
    rules_dir,
    write_yaml,
)
from lab.pipeline.timing import prom_duration
from tests.binaries import require_binary

TIMING = Timing()


def _config(tmp_path: Path) -> dict:
    return alertmanager_config(
        receiver=ReceiverTarget("http://127.0.0.1:1/api/v1/alerts", tmp_path / "token"),
        dry_run_receiver=ReceiverTarget("http://127.0.0.1:2/api/v1/alerts", tmp_path / "dry"),
        dry_run_namespaces=("staging",),
        timing=TIMING,
    )


def test_alertmanager_route_is_the_shipped_one_with_short_waits(tmp_path: Path) -> None:
    shipped = yaml.safe_load((rules_dir() / "alertmanager.yaml").read_text())
    shipped_route, shipped_receiver = shipped["routes"][0], shipped["receivers"][0]
    config = _config(tmp_path)
    main = next(r for r in config["route"]["routes"] if r["receiver"] == RECEIVER_NAME)
    changed = {"group_wait", "group_interval", "repeat_interval"}
    assert {k: v for k, v in main.items() if k not in changed} == {
        k: v for k, v in shipped_route.items() if k not in changed
    }
    assert main["group_wait"] == "1s"
    receiver = next(r for r in config["receivers"] if r["name"] == RECEIVER_NAME)
    hook, shipped_hook = receiver["webhook_configs"][0], shipped_receiver["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:1/api/v1/alerts"
    assert hook["http_config"]["authorization"] == {
        **shipped_hook["http_config"]["authorization"],
        "credentials_file": str(tmp_path / "token"),
    }
    assert {k: v for k, v in hook.items() if k not in {"url", "http_config"}} == {
        k: v for k, v in shipped_hook.items() if k not in {"url", "http_config"}
    }


def _routes_to(amtool: str, config: Path, *labels: str) -> str:
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.stdout.strip()


@pytest.mark.pipeline
def test_amtool_accepts_the_config_and_routes_staged_namespaces_to_the_dry_run_receiver(
    tmp_path: Path,
) -> None:
    amtool = require_binary("amtool")
    path = write_yaml(tmp_path / "alertmanager.yml", _config(tmp_path))
    check = subprocess.run(
        [amtool, "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    alert = ("alertname=RolloutOOMKilled", "rollback_trigger=oomkilled", "deployment=web")
    assert _routes_to(amtool, path, *alert, "namespace=shop") == RECEIVER_NAME
    assert _routes_to(amtool, path, *alert, "namespace=staging") == DRY_RUN_RECEIVER_NAME
    assert _routes_to(amtool, path, "alertname=Other", "namespace=shop") == "blackhole"


@pytest.mark.pipeline
def test_promtool_accepts_prometheus_config_and_the_rendered_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yaml"
    rules.write_text(render_rule_file(TIMING))
    rendered = yaml.safe_load(rules.read_text())
    for group in rendered["groups"]:
        assert group["interval"] == "1s"
        assert all(rule["for"] == "3s" for rule in group["rules"] if "alert" in rule)
        assert all(rule["keep_firing_for"] == "3s" for rule in group["rules"] if "alert" in rule)
    monitoring = tmp_path / "monitoring.yaml"
    monitoring.write_text(render_monitoring_rule_file(TIMING))
    config = write_yaml(
        tmp_path / "prometheus.yml",
        prometheus_config(
            sandbox_target="127.0.0.1:1",
            alertmanager_target="127.0.0.1:2",
            rule_file=rules,
            timing=TIMING,
            receiver_targets=("127.0.0.1:3",),
            monitoring_rule_file=monitoring,
        ),
    )
    scrape = yaml.safe_load(config.read_text())["scrape_configs"]
    assert scrape[0]["honor_labels"] is True
    assert scrape[0]["job_name"] == "kube-state-metrics"  # the job its series have on a cluster
    assert scrape[1]["job_name"] == "rollback-webhook"
    check = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_durations_are_written_as_prometheus_parses_them() -> None:
    assert prom_duration(1) == "1s"
    assert prom_duration(1.5) == "1500ms"
    assert prom_duration(3600) == "3600s"
    with pytest.raises(ValueError, match="positive"):
        prom_duration(0)
    with pytest.raises(ValueError, match=r"Timing\.for_seconds"):
        Timing(for_seconds=0)
