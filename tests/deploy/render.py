"""Render the deploy/ kustomize overlays with the real `kubectl kustomize` and look objects up.

kustomize is what an operator runs (`kubectl apply -k`), so the tests read its output rather
than the source files: name hashes, namespaces and deletions are already applied.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.binaries import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dry-run", "enforce", "namespaced")

Obj = dict[str, Any]


def kustomize(directory: Path, *, kubectl: str | Path | None = None) -> str:
    """The YAML `KUBECTL kustomize DIRECTORY` prints (the kubectl on PATH unless given)."""
    binary = str(kubectl or require_binary("kubectl"))
    result = subprocess.run(
        [binary, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{binary} kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


def render(directory: Path) -> list[Obj]:
    """The objects `kubectl kustomize DIRECTORY` renders, in its order."""
    return [doc for doc in yaml.safe_load_all(kustomize(directory)) if doc]


def find(objects: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    """Objects of `kind` (and `name`, when given)."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def only(objects: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of `kind` (and `name`); fails naming what was found instead."""
    found = find(objects, kind, name)
    if len(found) != 1:
        names = [obj["metadata"]["name"] for obj in found]
        raise AssertionError(f"expected exactly one {kind} {name or ''}, found {names}")
    return found[0]


def config_of(objects: Iterable[Obj]) -> dict[str, Any]:
    """The service configuration the rendered ConfigMap carries, parsed."""
    config_map = only(objects, "ConfigMap")
    parsed = yaml.safe_load(config_map["data"]["config.yaml"])
    assert isinstance(parsed, dict), "config.yaml in the ConfigMap is not a mapping"
    return parsed


def pod_spec(objects: Iterable[Obj]) -> dict[str, Any]:
    """The pod spec of the rendered rollback-webhook Deployment."""
    deployment = only(objects, "Deployment", "rollback-webhook")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def webhook_container(objects: Iterable[Obj]) -> Obj:
    """The rollback-webhook container of the rendered Deployment."""
    return next(c for c in pod_spec(objects)["containers"] if c["name"] == "rollback-webhook")
