"""Unknown-field detection for `fieldValidation`, with the official Python client's models
as the schema (each model's `openapi_types` and `attribute_map` are generated from the
Kubernetes OpenAPI, so they know every field of every built-in type).

The apiserver (handlers/create.go, update.go, patch.go with fieldValidation) refuses an
unknown field with 400 "... strict decoding error: unknown field "spec.foo"" under Strict,
which kubectl sends by default, and answers with a Warning header under Warn, the default
for clients that send no fieldValidation.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import kubernetes.client

# The client's model for each served kind.
MODELS = {
    "Namespace": "V1Namespace",
    "Pod": "V1Pod",
    "Event": "CoreV1Event",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "Lease": "V1Lease",
}
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


@functools.cache
def _fields(model_name: str) -> dict[str, str] | None:
    # Cached: the models are generated code, and a walk asks for the same few types at
    # every node of every write.
    model = getattr(kubernetes.client, model_name, None)
    types = getattr(model, "openapi_types", None)
    names = getattr(model, "attribute_map", None)
    if not isinstance(types, dict) or not isinstance(names, dict):
        return None
    return {names[attribute]: kind for attribute, kind in types.items()}


@functools.cache
def _schema(type_name: str) -> tuple[str, Any]:
    """What a type name means for the walk: ("list" | "dict", item type), ("model", its
    fields) or ("leaf", None) for a primitive, IntOrString or a type the client lacks."""
    if list_match := _LIST.match(type_name):
        return "list", list_match.group(1)
    if dict_match := _DICT.match(type_name):
        return "dict", dict_match.group(1)
    fields = _fields(type_name) if type_name.startswith(("V1", "V2", "CoreV1")) else None
    return ("leaf", None) if fields is None else ("model", fields)


def preload() -> None:
    """Import the client's models for every served kind and everything they contain now.
    The client imports a model on first use (about 0.3 s for these), which would otherwise
    land on the first write a sandbox serves."""
    seen: set[str] = set()
    pending = list(MODELS.values())
    while pending:
        type_name = pending.pop()
        if type_name in seen:
            continue
        seen.add(type_name)
        shape, detail = _schema(type_name)
        if shape in {"list", "dict"}:
            pending.append(detail)
        elif shape == "model":
            pending.extend(detail.values())


def _walk(value: Any, type_name: str, path: str, found: list[str], *, drop: bool) -> None:
    shape, detail = _schema(type_name)
    if shape == "list":
        if isinstance(value, list) and _schema(detail)[0] != "leaf":
            for index, item in enumerate(value):
                _walk(item, detail, f"{path}[{index}]", found, drop=drop)
        return
    if shape == "dict":
        if isinstance(value, dict) and _schema(detail)[0] != "leaf":
            for key, item in value.items():
                _walk(item, detail, f"{path}[{key}]", found, drop=drop)
        return
    if shape == "leaf" or not isinstance(value, dict):
        return  # a primitive, IntOrString ("object"), or a type the client does not model
    fields: dict[str, str] = detail
    for key in list(value):
        if key not in fields:
            found.append(f"{path}.{key}" if path else key)
            if drop:
                del value[key]
        elif _schema(fields[key])[0] != "leaf":  # a leaf has nothing to find: not visited
            _walk(value[key], fields[key], f"{path}.{key}" if path else key, found, drop=drop)


def unknown_fields(kind: str, obj: dict[str, Any], *, drop: bool = False) -> list[str]:
    """Dotted paths of the fields of `obj` that its kind does not have; with `drop`, they
    are also removed from `obj`, as decoding into the typed object loses them."""
    model = MODELS.get(kind)
    if model is None:
        return []
    found: list[str] = []
    _walk(obj, model, "", found, drop=drop)
    return found
