"""`SandboxHandle`: a started sandbox with its URL, token, kubeconfig and controls.

Used by the pytest fixture (tests/conftest.py), the demo and the benchmarks. Starting one
takes milliseconds: no subprocess, just a server thread on a free loopback port.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client

from sandbox.controls import SandboxControls
from sandbox.kubeconfig import write_kubeconfig
from sandbox.server import SandboxServer
from sandbox.store import Store


def api_client_for(url: str, token: str | None) -> kubernetes.client.ApiClient:
    """An official-client ApiClient for `url` sending `token` as a bearer token."""
    configuration = kubernetes.client.Configuration(host=url)
    if token:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(configuration)


@dataclass
class SandboxHandle:
    """A running sandbox; `stop()` ends it."""

    url: str
    token: str
    kubeconfig: Path
    controls: SandboxControls
    store: Store
    server: SandboxServer

    @classmethod
    def start(cls, *, port: int = 0, workdir: Path, kube_version: str = "v1.30.0") -> SandboxHandle:
        """Serve a fresh sandbox on loopback and write `workdir/kubeconfig`."""
        server = SandboxServer(port=port, kube_version=kube_version)
        server.start()
        token = "sandbox-" + secrets.token_hex(8)
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", server=server.url, token=token)
        return cls(
            url=server.url,
            token=token,
            kubeconfig=kubeconfig,
            controls=SandboxControls(server.url, token=token),
            store=server.store,
            server=server,
        )

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        """A client authenticated with `token` (default: the handle's own token)."""
        return api_client_for(self.url, token if token is not None else self.token)

    def stop(self) -> None:
        """Stop the server (open watches end)."""
        self.server.stop()
