"""Configuration: defaults as documented, and bad input stops start-up naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from webhook.config import ConfigError, Settings, load_settings, settings_from_dict


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert settings.dry_run is False and settings.require_opt_in is True
    assert settings.namespaces.deny == ("kube-system", "kube-public", "kube-node-lease")
    assert settings.namespaces.allow == ()
    assert settings.recent_rollout_window == 1800 and settings.min_healthy_seconds == 600
    assert settings.cooldown == 3600 and settings.circuit_window == 3600
    assert settings.max_rollbacks == 5
    assert settings.server.max_body_bytes == 1024 * 1024


def test_durations_accept_seconds_and_units() -> None:
    settings = settings_from_dict({"cooldown": "1h30m", "recent_rollout_window": 90})
    assert settings.cooldown == 5400 and settings.recent_rollout_window == 90


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"dry_rnu": True}, "dry_rnu: unknown key"),
        ({"namespaces": {"deny": ["a", 3]}}, "namespaces.deny[1]: expected a non-empty string"),
        ({"cooldown": "soon"}, "cooldown: expected a duration"),
        ({"server": {"port": 0}}, "server.port: must be greater than 0"),
        ({"auth": {"receiver": {"token": "x"}}}, "auth.receiver.token: unknown key"),
        ({"dry_run": "yes"}, "dry_run: expected true or false"),
        ({"namespaces": {"allow": ["a"], "deny": ["a"]}}, "namespaces.allow[0]"),
        ([1, 2], "the configuration: expected a mapping"),
        ({"max_rollbacks": 601}, "max_rollbacks: at most 600 while the circuit ledger is on"),
        (
            {"max_clock_skew": "9s"},
            "max_clock_skew: at least 10s while the circuit ledger may be on",
        ),
        ({"circuit_ledger": {"name": "No_Such"}}, "circuit_ledger.name: 'No_Such' is not a valid"),
        ({"circuit_ledger": {"mode": "yes"}}, "circuit_ledger.mode: expected one of auto, on, off"),
    ],
)
def test_bad_values_name_the_key(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_from_dict(document)


def test_the_ledger_cap_does_not_apply_where_the_ledger_cannot_be_on() -> None:
    assert settings_from_dict({"max_rollbacks": 601, "circuit_ledger": {"mode": "off"}})
    postgres = {"backend": "postgresql"}
    assert settings_from_dict({"max_rollbacks": 601, "audit": postgres}).max_rollbacks == 601
    assert settings_from_dict({"max_clock_skew": 0, "audit": postgres}).max_clock_skew == 0
    assert settings_from_dict({"max_clock_skew": 0, "circuit_ledger": {"mode": "off"}})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("max_rollbacks: many\n")
    with pytest.raises(ConfigError, match=r"config.yaml: max_rollbacks: expected an integer"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_check_config_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    good.write_text(
        f"dry_run: true\nauth:\n  receiver:\n    bearer_token_file: {token}\n"
        f"kubernetes:\n  kubeconfig: {kubeconfig}\naudit:\n  path: {tmp_path / 'audit.sqlite'}\n"
    )
    ok = subprocess.run(
        [sys.executable, "-m", "webhook", "check-config", "--config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert '"dry_run": true' in ok.stdout and "s3cret" not in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("cooldwon: 1h\n")
    refused = subprocess.run(
        [sys.executable, "-m", "webhook", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "cooldwon: unknown key" in refused.stderr
