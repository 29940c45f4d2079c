"""Kubernetes' name rules (webhook/names.py), and kube.py refusing to build a path from a name
that breaks them: the second line of defence behind the policy's invalid_labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes.client
import pytest

from webhook.kube import Cluster, InvalidName, KubeError
from webhook.names import is_namespace_name, is_object_name

TRAVERSALS = ["..", ".", "a/..", "../kube-system", "a%2F..", "a/b", "", "a\x00b", "A"]


@pytest.mark.parametrize("name", ["shop", "a", "a-1", "x" * 63, "0day"])
def test_dns1123_labels_are_namespace_names(name: str) -> None:
    assert is_namespace_name(name)


@pytest.mark.parametrize("name", [*TRAVERSALS, "a.b", "-a", "a-", "x" * 64, "ü"])
def test_anything_else_is_not_a_namespace_name(name: str) -> None:
    assert not is_namespace_name(name)


@pytest.mark.parametrize("name", ["web", "web-7f9c", "web.v2", "a.b.c", "x" * 253])
def test_dns1123_subdomains_are_object_names(name: str) -> None:
    assert is_object_name(name)


@pytest.mark.parametrize("name", [*TRAVERSALS, "a..b", ".a", "a.", "a.-b", "x" * 254])
def test_anything_else_is_not_an_object_name(name: str) -> None:
    assert not is_object_name(name)


@pytest.fixture
def cluster() -> Cluster:
    # Pointed at a port nothing listens on: a request would be a Transient, not InvalidName.
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:9")
    return Cluster(kubernetes.client.ApiClient(configuration), timeout_seconds=0.5)


CALLS: list[Callable[[Cluster, str], Any]] = [
    lambda c, bad: c.get_deployment(bad, "web"),
    lambda c, bad: c.get_deployment("shop", bad),
    lambda c, bad: c.get_replicaset("shop", bad),
    lambda c, bad: c.list_replicasets(bad, label_selector="app=web"),
    lambda c, bad: c.get_pod("shop", bad),
    lambda c, bad: c.get_namespace(bad),
    lambda c, bad: c.annotate_replicaset("shop", bad, {"k": "v"}),
    lambda c, bad: c.replace_deployment(
        {"metadata": {"namespace": "shop", "name": bad, "resourceVersion": "1"}}
    ),
    lambda c, bad: c.create_event(
        involved={"metadata": {"namespace": bad, "name": "web"}}, reason="R", message="m"
    ),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad", ["../kube-system", "shop/../kube-system", "a/b", ".."])
def test_kube_refuses_to_build_a_path_from_an_invalid_name(
    cluster: Cluster, call: Callable[[Cluster, str], Any], bad: str
) -> None:
    with pytest.raises(InvalidName) as raised:
        call(cluster, bad)
    assert repr(bad) in str(raised.value)
    assert isinstance(raised.value, KubeError)  # callers that handle API errors handle it
