"""Request paths to request information, as the apiserver's RequestInfoFactory reads them
(k8s.io/apiserver/pkg/endpoints/request/requestinfo.go), including the RBAC verb."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

# Subresources of a namespace, not resources inside it (requestinfo.go namespaceSubresources).
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class RequestInfo:
    """What a request is about; `is_resource` is False for discovery and other paths."""

    path: str
    query: dict[str, str]
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None


def parse_request(method: str, raw_path: str) -> RequestInfo:
    """Split a request path and query into a RequestInfo with the Kubernetes verb."""
    split = urlsplit(raw_path)
    query = {key: values[-1] for key, values in parse_qs(split.query).items()}
    path = split.path
    parts = [part for part in path.strip("/").split("/") if part]
    plain_verb = method.lower()
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(path=path, query=query, verb=plain_verb)
    if not rest:
        return RequestInfo(path=path, query=query, verb=plain_verb, group=group, version=version)
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace: str | None = None
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return RequestInfo(path=path, query=query, verb=plain_verb, group=group, version=version)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name is not None:
        namespace = None
    verb = _verb(
        method,
        has_name=name is not None,
        watch=watch_prefix or query.get("watch", "") in {"true", "1"},
    )
    return RequestInfo(
        path=path,
        query=query,
        verb=verb,
        is_resource=True,
        group=group,
        version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _verb(method: str, *, has_name: bool, watch: bool) -> str:
    method = method.upper()
    if method == "GET":
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
