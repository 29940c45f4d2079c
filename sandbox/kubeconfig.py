"""A kubeconfig that `kubectl --kubeconfig PATH` and the Python client use as is."""

from __future__ import annotations

import os
import tempfile
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
    """Write the kubeconfig (mode 0600, as kubectl writes its own) and return its path.

    Made 0600 from the start and renamed into place whole: whoever waits for the file to
    appear (a script, `sandbox --kubeconfig-out`'s caller) never reads half of it, nor a
    moment when its token is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: mode 0600, and a name of its own beside any other writer of the same path.
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(kubeconfig_text(server=server, token=token, namespace=namespace))
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path
