"""Kubernetes' name rules, checked before any label from an alert is used in an API path.

A namespace is a DNS-1123 label; Deployments, ReplicaSets and pods have DNS-1123 subdomain
names (k8s.io/apimachinery/pkg/util/validation). Names that pass cannot contain `/`, `%`, `..`
or anything else that would let a label change which object a request addresses.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def dns1123_label_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label (a namespace name), or None when it is one."""
    if len(value) > DNS1123_LABEL_MAX:
        return f"longer than {DNS1123_LABEL_MAX} characters"
    if not _LABEL.fullmatch(value):
        return "not a DNS-1123 label (lowercase letters, digits and '-', alphanumeric at both ends)"
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain (a Deployment, ReplicaSet or pod name)."""
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"longer than {DNS1123_SUBDOMAIN_MAX} characters"
    if not _SUBDOMAIN.fullmatch(value):
        return (
            "not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
            "alphanumeric at both ends of each part)"
        )
    return None


def is_namespace_name(value: str) -> bool:
    return dns1123_label_problem(value) is None


def is_object_name(value: str) -> bool:
    return dns1123_subdomain_problem(value) is None
