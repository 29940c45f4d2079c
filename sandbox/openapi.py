"""Just enough OpenAPI v3 for kubectl's validation to trust the server.

`kubectl create -f` (validation "strict", the default) asks the server's OpenAPI v3 whether
the PATCH operation of the object's kind takes the `fieldValidation` query parameter
(cli-runtime/pkg/resource/query_param_verifier_v3.go, supportsQueryParamV3). When it does,
kubectl leaves validation to the server and skips client-side schema validation; when
/openapi/v3 is missing it fails with "failed to download openapi". So each group-version
document lists, per served kind, the PATCH operation with its GVK extension and parameters.
Schemas are not served (`kubectl explain` is out of scope).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.discovery import RESOURCES, ResourceInfo

# Query parameters of a real apiserver's PATCH operation.
PATCH_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32].upper()


def index(kube_version: str) -> dict[str, Any]:
    """The /openapi/v3 answer: one entry per group-version."""
    paths: dict[str, Any] = {}
    for info in RESOURCES:
        gv = _gv_path(info.group, info.version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(gv + kube_version)}"}
    return {"paths": paths}


def _item_path(info: ResourceInfo) -> str:
    prefix = "/" + _gv_path(info.group, info.version)
    if info.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{info.resource}/{{name}}"
    return f"{prefix}/{info.resource}/{{name}}"


def group_version_document(path: str, kube_version: str) -> dict[str, Any] | None:
    """The /openapi/v3/{api/v1 | apis/G/V} answer, or None for an unknown group-version."""
    served = [info for info in RESOURCES if _gv_path(info.group, info.version) == path]
    if not served:
        return None
    paths: dict[str, Any] = {}
    for info in served:
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        parameters = [
            {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
            for name in PATCH_PARAMETERS
        ]
        paths[_item_path(info)] = {
            "patch": {
                "operationId": f"patch{info.kind}",
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": kube_version},
        "paths": paths,
        "components": {"schemas": {}},
    }
