"""The three PATCH flavours the apiserver accepts, on plain JSON documents.

- RFC 6902 JSON patch (application/json-patch+json), including `test`;
- RFC 7386 JSON merge patch (application/merge-patch+json);
- strategic merge patch (application/strategic-merge-patch+json) for the shapes kubectl
  sends: lists with a patch merge key (containers by name, ports by containerPort, ...)
  are merged element-wise, `$patch: replace|delete`, `$setElementOrder/<list>`,
  `$deleteFromPrimitiveList/<list>` and `$retainKeys` directives
  (k8s.io/apimachinery/pkg/util/strategicpatch/patch.go).
"""

from __future__ import annotations

from typing import Any

from sandbox.store import clone

# Patch merge keys from the `patchMergeKey` struct tags of k8s.io/api (core/v1, apps/v1,
# meta/v1). Lists not named here are replaced whole, as for atomic lists.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "conditions": "type",
    "resourceClaims": "name",
}
# Lists of primitives with patchStrategy merge (set semantics).
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that cannot be applied.

    `status` is the HTTP code the apiserver answers: 400 for a malformed patch document,
    422 for a well-formed JSON patch whose operation fails (a failed `test` included).
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# ---- RFC 6902 --------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'", status=422)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:  # noqa: S105 (JSON pointer token, not a secret)
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path!r}", status=422)
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds in {path!r}", status=422)
    return index


def _walk(doc: Any, tokens: list[str], path: str) -> Any:
    """What `tokens` (of `path`) lead to in `doc`; a missing step is a 422."""
    current = doc
    for token in tokens:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path=path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}", status=422)
    return current


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("operations on the whole document are not supported", status=422)
    return _walk(doc, tokens[:-1], path), tokens[-1]


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _pointer(path), path)


def _add(doc: Any, path: str, value: Any) -> None:
    parent, token = _parent(doc, path)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path=path, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}", status=422)


def _remove(doc: Any, path: str) -> Any:
    parent, token = _parent(doc, path)
    if isinstance(parent, dict) and token in parent:
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, path=path, allow_end=False))
    raise PatchError(f"unable to remove nonexistent key: {token} (path {path!r})", status=422)


def apply_json_patch(doc: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of `doc`; all operations or none."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations", status=400)
    result = clone(doc)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"operation {number} needs 'op' and 'path': {operation!r}", status=400)
        op, path = operation["op"], operation["path"]
        if op in {"add", "replace", "test"} and "value" not in operation:
            raise PatchError(f"operation {number} ({op} {path}) has no 'value'", status=400)
        if op == "add":
            _add(result, path, clone(operation["value"]))
        elif op == "remove":
            _remove(result, path)
        elif op == "replace":
            _remove(result, path)
            _add(result, path, clone(operation["value"]))
        elif op == "move":
            value = _remove(result, _from(operation, number))
            _add(result, path, value)
        elif op == "copy":
            _add(result, path, clone(_get(result, _from(operation, number))))
        elif op == "test":
            try:
                actual = _get(result, path)
            except PatchError:
                actual = None
            if actual != operation["value"]:
                raise PatchError(f"testing value {path} failed: test failed", status=422)
        else:
            raise PatchError(f"unexpected operation {op!r} in operation {number}", status=400)
    return result


def _from(operation: dict[str, Any], number: int) -> str:
    source = operation.get("from")
    if not isinstance(source, str):
        raise PatchError(f"operation {number} ({operation['op']}) has no 'from'", status=400)
    return source


# ---- RFC 7386 --------------------------------------------------------------------------
def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(doc) if isinstance(doc, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> None:
    # `result` is already a copy: merged in place, so no level of it is copied twice.
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            _merge_into(result[key], value)
        else:
            result[key] = apply_merge_patch(None, value)


# ---- strategic merge patch -------------------------------------------------------------
def apply_strategic_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch the way the apiserver does for built-in types."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object", status=400)
    merged = _smp_map(doc, patch)
    return merged if isinstance(merged, dict) else {}


def _smp_map(original: Any, patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type: {directive!r}", status=400)
    result = clone(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in {"$patch", "$retainKeys"} or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            remove = value if isinstance(value, list) else []
            result[name] = [item for item in result.get(name) or [] if item not in remove]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = clone(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = _ordered(name, result[name], value)
    return result


def _smp_list(key: str, original: Any, patch: list[Any]) -> list[Any]:
    current = clone(original) if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if key in MERGED_PRIMITIVE_LISTS:
        return current + [clone(item) for item in patch if item not in current]
    merge_key = MERGE_KEYS.get(key)
    if merge_key is None or not all(isinstance(item, dict) for item in patch):
        return clone(patch)
    for item in patch:
        if merge_key not in item:
            raise PatchError(
                f"map: {item!r} does not contain declared merge key: {merge_key}", status=400
            )
        position = next(
            (
                i
                for i, old in enumerate(current)
                if isinstance(old, dict) and old.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                current.pop(position)
        elif position is None:
            current.append({k: clone(v) for k, v in item.items() if k != "$patch"})
        else:
            current[position] = _smp_map(current[position], item)
    return current


def _ordered(name: str, items: list[Any], order: list[Any]) -> list[Any]:
    merge_key = MERGE_KEYS.get(name)

    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (
            wanted.index(identity(pair[1])) if identity(pair[1]) in wanted else len(wanted),
            pair[0],
        ),
    )
    return [item for _, item in ranked]
