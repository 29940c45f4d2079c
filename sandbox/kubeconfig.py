"""A kubeconfig that `kubectl --kubeconfig PATH` and the Python client use as is."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "sandbox"


def kubeconfig_text(*, server: str, token: str, namespace: str = "default") -> str:
    """The kubeconfig YAML for a sandbox at `server` with a bearer `token`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfig(path: Path, *, server: str, token: str, namespace: str = "default") -> Path:
    """Write the kubeconfig (mode 0600, as kubectl writes its own) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kubeconfig_text(server=server, token=token, namespace=namespace))
    path.chmod(0o600)
    return path
