"""Resource requests: get, list, create, replace, patch, delete and the /scale subresource.

HTTP-agnostic: `handle` takes a parsed request and a body and returns a `Reply`, or a
`WatchPlan` that `sandbox.watch` streams. Every write happens under `Store.lock`
so read-modify-write inside one request is atomic, as etcd's guaranteed update is.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox import fieldcheck, objects, protobuf
from sandbox.discovery import ResourceInfo, find_resource
from sandbox.errors import (
    STATUS_REASONS,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    method_not_allowed,
    not_found,
    path_not_found,
    unsupported_media_type,
)
from sandbox.gc import collect_garbage
from sandbox.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from sandbox.reads import (
    Reply,
    WatchPlan,
    get_object,
    list_objects,
    selector,
    served,
    watch_plan,
    with_kind,
)
from sandbox.routing import RequestInfo
from sandbox.store import AlreadyExists, Conflict, NotFound, Store

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
PROPAGATION_POLICIES = frozenset({"Foreground", "Background", "Orphan"})
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def decode_body(body: bytes, content_type: str = "application/json") -> Any:
    """Parse a request body: JSON, or the protobuf kubectl 1.32+ typed clients send."""
    if content_type.split(";")[0].strip().lower() == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(body)
        except (protobuf.ProtobufError, UnicodeDecodeError) as error:
            raise unsupported_media_type(
                f"{protobuf.CONTENT_TYPE} ({error})", ("application/json",)
            ) from error
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise bad_request(f"error decoding request body: {error}") from error


def _resource(request: RequestInfo) -> ResourceInfo:
    info = find_resource(request.group, request.version, request.resource)
    if info is None:
        raise path_not_found(request.path)
    if request.subresource and request.subresource not in info.subresources:
        raise path_not_found(request.path)
    if info.namespaced is False and request.namespace:
        raise path_not_found(request.path)
    return info


def handle(
    store: Store,
    request: RequestInfo,
    *,
    method: str,
    body: bytes,
    content_type: str,
) -> Reply | WatchPlan:
    """Serve one resource request."""
    info = _resource(request)
    method = method.upper()
    if request.subresource == "scale":
        return _scale(store, info, request, method=method, body=body, content_type=content_type)
    if method == "GET":
        if request.verb == "watch":
            return watch_plan(store, info, request)
        if request.name is None:
            return list_objects(store, info, request)
        obj = get_object(store, info, request.namespace, request.name)
        return Reply(200, served(info, obj, store.now()))
    if method == "POST" and request.name is None:
        return _create(store, info, request, decode_body(body, content_type))
    if method == "PUT" and request.name is not None:
        return _replace(store, info, request, decode_body(body, content_type))
    if method == "PATCH" and request.name is not None:
        return _patch(store, info, request, body=body, content_type=content_type)
    if method == "DELETE":
        options = decode_body(body) if body.strip() else {}
        policy = (
            request.query.get("propagationPolicy")
            or (options or {}).get("propagationPolicy")
            or "Background"
        )
        if policy not in PROPAGATION_POLICIES:
            # apimachinery validation of DeleteOptions: checked before anything is deleted.
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                f'value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
            )
        if request.name is None:
            dry_run = _dry(request) or "All" in ((options or {}).get("dryRun") or [])
            return _delete_collection(store, info, request, policy=policy, dry_run=dry_run)
        return _delete(store, info, request, options=options or {}, policy=policy)
    raise method_not_allowed(method, info.kind)


def _namespace_must_exist(store: Store, info: ResourceInfo, namespace: str | None) -> None:
    if info.namespaced and namespace:
        try:
            store.get("namespaces", None, namespace)
        except NotFound as error:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            ) from error


def _field_warnings(
    info: ResourceInfo,
    request: RequestInfo,
    new: dict[str, Any],
    old: dict[str, Any] | None = None,
) -> list[str]:
    """fieldValidation: Strict refuses unknown fields (400), Warn (the default) warns,
    Ignore ignores; unless refused they are dropped from `new`, as decoding into the typed
    object drops them. Fields the stored object already had are not the writer's doing."""
    mode = request.query.get("fieldValidation", "Warn")
    unknown = fieldcheck.unknown_fields(info.kind, new, drop=True)
    if mode == "Ignore":
        return []
    if old is not None:
        already = set(fieldcheck.unknown_fields(info.kind, old))
        unknown = [path for path in unknown if path not in already]
    if unknown and mode == "Strict":
        fields = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise bad_request(
            f'{info.kind} in version "{info.version}" cannot be handled as a '
            f"{info.kind}: strict decoding error: {fields}"
        )
    return [f'unknown field "{path}"' for path in unknown]


def _create(store: Store, info: ResourceInfo, request: RequestInfo, obj: Any) -> Reply:
    if not isinstance(obj, dict):
        raise bad_request("the request body must be a JSON object")
    warnings = _field_warnings(info, request, obj)
    objects.check_identity(info, obj, namespace=request.namespace, name=None)
    meta = obj["metadata"]
    for system_field in (
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ):
        meta.pop(system_field, None)
    name = str(meta.get("name") or "")
    if not name and not meta.get("generateName"):
        raise ApiError(
            422,
            "Invalid",
            f'{info.kind} "" is invalid: metadata.name: Required value: name '
            "or generateName is required",
        )
    if info.resource in objects.STATUS_SPLIT and info.resource != "namespaces":
        obj.pop("status", None)  # PrepareForCreate drops a client-sent status
    objects.apply_defaults(info.resource, obj)
    objects.validate(info, obj)
    with store.lock:
        _namespace_must_exist(store, info, request.namespace)
        try:
            created = store.create(info.resource, with_kind(info, obj), dry_run=_dry(request))
        except AlreadyExists as error:
            raise already_exists(info, name) from error
    return Reply(201, with_kind(info, created), warnings)


def _replace(store: Store, info: ResourceInfo, request: RequestInfo, obj: Any) -> Reply:
    if not isinstance(obj, dict):
        raise bad_request("the request body must be a JSON object")
    assert request.name is not None
    objects.check_identity(info, obj, namespace=request.namespace, name=request.name)
    with store.lock:
        old = get_object(store, info, request.namespace, request.name)
        warnings = _field_warnings(info, request, obj, old)
        return Reply(
            200,
            _store_update(
                store, info, old, obj, subresource=request.subresource, dry_run=_dry(request)
            ),
            warnings,
        )


def _dry(request: RequestInfo) -> bool:
    """dryRun=All: admission, defaulting and validation run, nothing is stored."""
    return request.query.get("dryRun") == "All"


def _store_update(
    store: Store,
    info: ResourceInfo,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    subresource: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    name = str(old["metadata"]["name"])
    new = objects.prepare_update(info, old, new, subresource=subresource)
    objects.apply_defaults(info.resource, new)
    objects.validate(info, new)
    objects.validate_update(info, old, new)
    try:
        stored = store.update(info.resource, with_kind(info, new), check_rv=True, dry_run=dry_run)
        return with_kind(info, stored)
    except Conflict as error:
        raise conflict(info, name) from error
    except NotFound as error:
        raise not_found(info, name) from error


def _patched(current: dict[str, Any], body: bytes, content_type: str) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if media not in PATCH_TYPES:
        raise unsupported_media_type(media, PATCH_TYPES)
    document = decode_body(body)
    try:
        if media == "application/json-patch+json":
            return apply_json_patch(current, document)
        if media == "application/merge-patch+json":
            result = apply_merge_patch(current, document)
            if not isinstance(result, dict):
                raise bad_request("a merge patch must be a JSON object")
            return result
        return apply_strategic_merge_patch(current, document)
    except PatchError as error:
        raise ApiError(error.status, STATUS_REASONS[error.status], str(error)) from error


def _patch(
    store: Store, info: ResourceInfo, request: RequestInfo, *, body: bytes, content_type: str
) -> Reply:
    assert request.name is not None
    with store.lock:
        old = get_object(store, info, request.namespace, request.name)
        patched = _patched(with_kind(info, old), body, content_type)
        objects.check_identity(info, patched, namespace=request.namespace, name=request.name)
        warnings = _field_warnings(info, request, patched, old)
        # A resourceVersion inside the patch is a precondition; otherwise the patch applies
        # to the version just read, which nobody can change while the lock is held.
        return Reply(
            200,
            _store_update(
                store, info, old, patched, subresource=request.subresource, dry_run=_dry(request)
            ),
            warnings,
        )


def _delete(
    store: Store,
    info: ResourceInfo,
    request: RequestInfo,
    *,
    options: dict[str, Any],
    policy: str,
) -> Reply:
    assert request.name is not None
    with store.lock:
        current = get_object(store, info, request.namespace, request.name)
        preconditions = options.get("preconditions") or {}
        meta = current["metadata"]
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise conflict(
                info,
                request.name,
                "Precondition failed: UID in precondition: "
                f"{preconditions['uid']}, UID in object meta: {meta.get('uid')}",
            )
        wanted_rv = preconditions.get("resourceVersion")
        if wanted_rv and wanted_rv != meta.get("resourceVersion"):
            raise conflict(info, request.name)
        if _dry(request) or "All" in (options.get("dryRun") or []):
            return Reply(200, with_kind(info, current))
        deleted = _delete_one(store, info, current, policy=policy)
    return Reply(200, with_kind(info, deleted))


def _delete_one(
    store: Store,
    info: ResourceInfo,
    obj: dict[str, Any],
    *,
    policy: str,
) -> dict[str, Any]:
    meta = obj["metadata"]
    if info.resource == "namespaces" and meta["name"] in IMMORTAL_NAMESPACES:
        # plugin/pkg/admission/namespace/lifecycle: these may never be deleted.
        raise ApiError(
            403,
            "Forbidden",
            f'namespaces "{meta["name"]}" is forbidden: this namespace may not be deleted',
            details={"name": meta["name"], "kind": "namespaces"},
        )
    # A deleted namespace is emptied by the sandbox controller (controller._empty_namespace),
    # owners first, inside this same write.
    deleted = store.delete(info.resource, meta.get("namespace"), meta["name"])
    # The garbage collector's job: cascade to the dependents.
    collect_garbage(store, with_kind(info, deleted), propagation=policy)
    return deleted


def _delete_collection(
    store: Store,
    info: ResourceInfo,
    request: RequestInfo,
    *,
    policy: str,
    dry_run: bool,
) -> Reply:
    with store.lock:
        matched, _ = store.list(info.resource, request.namespace, where=selector(request, info))
        if not dry_run:
            matched = [_delete_one(store, info, obj, policy=policy) for obj in matched]
        items = [with_kind(info, obj) for obj in matched]
        list_rv = str(store.resource_version)
    return Reply(
        200,
        {
            "kind": f"{info.kind}List",
            "apiVersion": info.api_version,
            "metadata": {"resourceVersion": list_rv},
            "items": items,
        },
    )


def _scale_of(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    selector_text = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_text,
        },
    }


def _scale(
    store: Store,
    info: ResourceInfo,
    request: RequestInfo,
    *,
    method: str,
    body: bytes,
    content_type: str,
) -> Reply:
    """GET/PUT/PATCH of the autoscaling/v1 Scale view (kubectl scale patches it)."""
    assert request.name is not None
    with store.lock:
        current = get_object(store, info, request.namespace, request.name)
        scale = _scale_of(info, current)
        if method == "GET":
            return Reply(200, scale)
        if method == "PUT":
            wanted = decode_body(body)
        elif method == "PATCH":
            wanted = _patched(scale, body, content_type)
        else:
            raise method_not_allowed(method, "Scale")
        if not isinstance(wanted, dict):
            raise bad_request("the request body must be a JSON object")
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{request.name}" is invalid: '
                f"spec.replicas: Invalid value: {replicas!r}: must be >= 0",
            )
        updated = dict(current)
        updated["spec"] = dict(current.get("spec") or {}, replicas=replicas)
        updated["metadata"] = dict(
            current["metadata"],
            resourceVersion=(wanted.get("metadata") or {}).get("resourceVersion")
            or current["metadata"]["resourceVersion"],
        )
        stored = _store_update(store, info, current, updated, subresource="", dry_run=_dry(request))
        return Reply(200, _scale_of(info, stored))
