"""RBAC as sets of (verb, group, resource), to compare what is granted with what is used.

`granted` reads rendered manifests; `used` reads a request record (rows with verb, group,
resource, subresource, e.g. from the sandbox API server). A subresource counts as
"resource/subresource", as RBAC rules spell it. Least privilege is then
`assert granted(objects) == used(record)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Permission = tuple[str, str, str]  # (verb, api group, resource) with "" for the core group

# The verbs RBAC authorizes for resource requests (apiserver requestinfo): a record must use
# these, not HTTP methods (a GET is get, list or watch depending on name and ?watch).
RBAC_VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)
_ROLE_KINDS = {"ClusterRole", "Role"}
_BINDING_KINDS = {"ClusterRoleBinding", "RoleBinding"}


def _role_key(kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
    # A ClusterRole has no namespace; a RoleBinding's roleRef to a Role means the Role in the
    # binding's own namespace.
    return (kind, name, (namespace or "") if kind == "Role" else "")


def granted(rendered_objects: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Every (verb, group, resource) a bound ClusterRole or Role of the manifests grants.

    Only roles some (Cluster)RoleBinding in the manifests binds count: an unbound role grants
    nothing. Wildcards stay "*" so they can never equal a used set. resourceNames narrow a rule
    but are not part of the tuple.
    """
    objects = list(rendered_objects)
    roles: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for obj in objects:
        if obj.get("kind") in _ROLE_KINDS:
            meta = obj["metadata"]
            roles[_role_key(obj["kind"], meta["name"], meta.get("namespace"))] = obj
    permissions: set[Permission] = set()
    for binding in objects:
        if binding.get("kind") not in _BINDING_KINDS:
            continue
        ref = binding["roleRef"]
        key = _role_key(ref["kind"], ref["name"], binding["metadata"].get("namespace"))
        role = roles.get(key)
        if role is None:
            raise ValueError(
                f"{binding['kind']} {binding['metadata']['name']} binds {ref['kind']} "
                f"{ref['name']}, which the manifests do not define"
            )
        for rule in role.get("rules") or []:
            for verb in rule.get("verbs", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        permissions.add((verb, group, resource))
    return permissions


def used(request_record: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Every (verb, group, resource) of a request record; subresources as "resource/sub"."""
    permissions: set[Permission] = set()
    for index, row in enumerate(request_record):
        missing = [key for key in ("verb", "group", "resource") if key not in row]
        if missing:
            raise ValueError(f"request record row {index}: missing {', '.join(missing)}: {row}")
        verb = row["verb"]
        if verb not in RBAC_VERBS:
            raise ValueError(
                f"request record row {index}: verb {verb!r} is not an RBAC verb "
                f"({', '.join(sorted(RBAC_VERBS))})"
            )
        resource = row["resource"]
        subresource = row.get("subresource") or ""
        if subresource:
            resource = f"{resource}/{subresource}"
        permissions.add((verb, row["group"] or "", resource))
    return permissions
