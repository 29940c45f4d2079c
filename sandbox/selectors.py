"""Label and field selectors, parsed the way k8s.io/apimachinery parses them.

Label selector grammar (apimachinery/pkg/labels/selector.go): comma-separated requirements,
each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)` or
`key notin (a,b)`. Field selectors (apimachinery/pkg/fields/selector.go) support `=`, `==`
and `!=` on dotted field paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s,()]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")
_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

# The field selectors the apiserver accepts for every resource, plus the per-resource ones
# this sandbox supports (pkg/registry/*/strategy.go: GetAttrs / ToSelectableFields).
COMMON_FIELDS = ("metadata.name", "metadata.namespace")
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": ("spec.nodeName", "spec.restartPolicy", "status.phase", "status.podIP"),
    "events": (
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "reason",
        "type",
        "source",
    ),
    "replicasets": ("status.replicas",),
    "namespaces": ("status.phase",),
}


class SelectorError(ValueError):
    """A selector that does not parse; the message quotes the offending requirement."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement: operator is exists, !, =, !=, in or notin."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label map satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in {"=", "in"}:
            return present and value in self.values
        # != and notin also match objects without the key, as in apimachinery.
        return not present or value not in self.values


def _split_requirements(text: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a labelSelector query value; an empty selector matches everything."""
    requirements: list[Requirement] = []
    for part in _split_requirements(text or ""):
        if match := _SET_RE.match(part):
            key, op, raw = match.groups()
            values = tuple(v.strip() for v in raw.split(",") if v.strip())
            requirements.append(Requirement(_checked_key(key, part), op, values))
        elif match := _EQ_RE.match(part):
            key, op, value = match.groups()
            op = "=" if op == "==" else op
            requirements.append(Requirement(_checked_key(key, part), op, (value,)))
        elif match := _EXISTS_RE.match(part):
            bang, key = match.groups()
            requirements.append(Requirement(_checked_key(key, part), "!" if bang else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return requirements


def _checked_key(key: str, part: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r} in requirement {part.strip()!r}")
    return key


def selector_from_label_selector(spec: dict[str, Any] | None) -> list[Requirement]:
    """Requirements of a metav1.LabelSelector object (matchLabels + matchExpressions)."""
    spec = spec or {}
    match_labels = spec.get("matchLabels") or {}
    requirements = [Requirement(key, "=", (str(value),)) for key, value in match_labels.items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in spec.get("matchExpressions") or []:
        operator = operators.get(expression.get("operator", ""))
        if operator is None:
            raise SelectorError(f"unknown matchExpressions operator in {expression!r}")
        values = tuple(str(v) for v in expression.get("values") or [])
        requirements.append(Requirement(expression["key"], operator, values))
    return requirements


def labels_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    """Whether an object's metadata.labels satisfy every requirement."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value of a dotted field path ("" when absent, as the apiserver sees it)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, dict):
        # involvedObject-style "source" is a struct; the apiserver selects on its component.
        return str(current.get("component", ""))
    return str(current)


def parse_field_selector(text: str | None, *, resource: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a fieldSelector query value; unsupported fields are a SelectorError
    naming the field, as the apiserver's 400 'field label not supported' does."""
    tests: list[tuple[str, bool, str]] = []
    allowed = COMMON_FIELDS + EXTRA_FIELDS.get(resource, ())
    for part in _split_requirements(text or ""):
        match = _EQ_RE.match(part)
        if not match:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        path, op, value = match.groups()
        if path not in allowed:
            raise SelectorError(f"field label not supported: {path}")
        tests.append((path, op != "!=", value))

    def predicate(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in tests)

    return predicate
