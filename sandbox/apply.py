"""The `apply` test control: create objects, or replace the spec and metadata of existing
ones without a precondition (like `kubectl apply --force-conflicts`), optionally "as of" a
past time so everything written during the apply (ReplicaSets, pods, conditions) carries it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from sandbox import objects
from sandbox.discovery import resource_for_kind
from sandbox.errors import ApiError
from sandbox.reads import with_kind
from sandbox.store import NotFound, Store


def parse_manifests(manifest: str | dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """YAML text (multi-document, `List` kinds unpacked), one dict, or a list of dicts."""
    if isinstance(manifest, str):
        documents = [doc for doc in yaml.safe_load_all(manifest) if doc]
    elif isinstance(manifest, dict):
        documents = [manifest]
    else:
        documents = list(manifest)
    result: list[dict[str, Any]] = []
    for number, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise ValueError(f"document {number} is not a mapping: {doc!r}")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            result.extend(doc["items"])
        else:
            result.append(doc)
    return result


def apply_objects(
    store: Store, documents: list[dict[str, Any]], *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Create or replace each document in order; returns the stored objects. Missing
    namespaces are created. ValueError or ApiError names the offending document."""
    stored: list[dict[str, Any]] = []
    with store.as_of(as_of), store.lock:
        for number, doc in enumerate(documents, start=1):
            info = resource_for_kind(str(doc.get("apiVersion", "")), str(doc.get("kind", "")))
            meta = doc.get("metadata") or {}
            name = meta.get("name")
            if info is None:
                raise ValueError(
                    f"document {number}: the sandbox does not serve "
                    f"{doc.get('apiVersion')}/{doc.get('kind')}"
                )
            if not name:
                raise ValueError(f"document {number} ({info.kind}): metadata.name is required")
            namespace = (meta.get("namespace") or "default") if info.namespaced else None
            if namespace is not None:
                ensure_namespace(store, namespace)
            obj = with_kind(info, {**doc, "metadata": dict(meta)})
            if namespace is not None:
                obj["metadata"]["namespace"] = namespace
            try:
                current = store.get(info.resource, namespace, name)
            except NotFound:
                current = None
            try:
                if current is None:
                    for system_field in ("uid", "resourceVersion", "creationTimestamp"):
                        obj["metadata"].pop(system_field, None)
                    objects.apply_defaults(info.resource, obj)
                    objects.validate(info, obj)
                    stored.append(store.create(info.resource, obj))
                    continue
                merged = dict(current)
                merged["spec"] = obj.get("spec", current.get("spec"))
                if info.resource not in objects.STATUS_SPLIT and "status" in obj:
                    merged["status"] = obj["status"]
                for key, value in obj.items():
                    if key not in {"metadata", "spec", "status", "kind", "apiVersion"}:
                        merged[key] = value
                merged_meta = dict(current["metadata"])
                if "labels" in meta:
                    merged_meta["labels"] = meta["labels"]
                annotations = dict(merged_meta.get("annotations") or {})
                annotations.update(meta.get("annotations") or {})
                if annotations:
                    merged_meta["annotations"] = annotations
                merged["metadata"] = merged_meta
                objects.apply_defaults(info.resource, merged)
                objects.validate(info, merged)
                stored.append(store.update(info.resource, merged, check_rv=False))
            except ApiError as error:
                raise ValueError(f"document {number} ({info.kind} {name}): {error}") from error
    return stored


def ensure_namespace(store: Store, name: str) -> None:
    """Create namespace `name` unless it exists."""
    with store.lock:
        try:
            store.get("namespaces", None, name)
        except NotFound:
            namespace: dict[str, Any] = {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": name},
            }
            objects.apply_defaults("namespaces", namespace)
            store.create("namespaces", namespace)
