"""`rollback-webhook sandbox`: serves, seeds, writes a kubeconfig clients use as is, and
exits cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
from kubernetes import client

SEED = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: "api:1"}]}
"""


def test_command_serves_seeds_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    kubeconfig = tmp_path / "out" / "sandbox.kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook",
            "sandbox",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--kubeconfig-out",
            str(kubeconfig),
            "--kube-version",
            "v1.31.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert kubeconfig.exists()
        assert kubeconfig.stat().st_mode & 0o077 == 0  # the token is a credential
        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        assert client.VersionApi(api).get_code().git_version == "v1.31.0"
        deployment = client.AppsV1Api(api).read_namespaced_deployment("api", "shop")
        assert deployment.status is not None and deployment.status.ready_replicas == 2
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "sandbox cluster serving at http://127.0.0.1:" in out


def test_command_reports_a_bad_seed_and_exits_2(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "sandbox",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--kubeconfig-out",
            str(tmp_path / "k"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"--seed {seed}: document 1: the sandbox does not serve v1/ConfigMap" in result.stderr
