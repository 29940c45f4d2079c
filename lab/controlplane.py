"""`ControlPlane`: scripts/controlplane.sh run as a child, with its kubeconfig and clients.

The real kube-apiserver and kube-controller-manager (with the kubelet stand-in, lab/kubelet.py)
for tests that must be judged by real Kubernetes rather than the sandbox: RBAC, the Deployment
controller's pace, kubectl parity. Used by the session fixture in tests/controlplane/fixtures.py.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes.client
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "controlplane.sh"
READY_PREFIX = "controlplane: ready "


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message carries the end of its output."""


def api_client_for(url: str, token: str, ca_file: Path) -> kubernetes.client.ApiClient:
    """An official-client ApiClient for the https apiserver at `url`, bearer `token`."""
    configuration = kubernetes.client.Configuration(host=url)
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(configuration)


@dataclass
class ControlPlane:
    """A running control plane; `stop()` ends it (SIGTERM, as a person would)."""

    url: str
    token: str
    kubeconfig: Path
    ca_file: Path
    workdir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, *, workdir: Path, backoff_scale: float = 0.1, timeout: float = 3600.0
    ) -> ControlPlane:
        """Build if needed, start, and wait for the ready line (`timeout` covers a cold build)."""
        workdir.mkdir(parents=True, exist_ok=True)
        kubeconfig = workdir / "admin.kubeconfig"
        process = subprocess.Popen(
            [
                "bash",
                str(SCRIPT),
                "--kubeconfig-out",
                str(kubeconfig),
                "--workdir",
                str(workdir / "run"),
                "--backoff-scale",
                str(backoff_scale),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        output: list[str] = []

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True, name="controlplane-output").start()
        ready = None
        while ready is None:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                os.killpg(process.pid, signal.SIGTERM)
                raise ControlPlaneError("not ready in time:\n" + "\n".join(output[-30:])) from None
            if line is None:
                process.wait()
                raise ControlPlaneError(f"exited {process.returncode}:\n" + "\n".join(output[-30:]))
            if line.startswith(READY_PREFIX):
                ready = dict(p.split("=", 1) for p in line[len(READY_PREFIX) :].split())
        config = yaml.safe_load(kubeconfig.read_text())
        return cls(
            url=ready["server"],
            token=config["users"][0]["user"]["token"],
            kubeconfig=kubeconfig,
            ca_file=Path(ready["workdir"]) / "ca.crt",
            workdir=workdir,
            process=process,
            output=output,
        )

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        """A client authenticated with `token` (default: the admin token)."""
        return api_client_for(self.url, token or self.token, self.ca_file)

    def kubeconfig_for(self, token: str, name: str) -> Path:
        """A kubeconfig like the admin one with another bearer token (a ServiceAccount's)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"][0]["user"] = {"token": token}
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the script (it stops what it started) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode
