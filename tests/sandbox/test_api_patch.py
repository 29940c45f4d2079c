"""The three patch flavours on plain documents, in the shapes clients send.

RFC 6902 and RFC 7386 examples; strategic-merge directives as documented in
kubernetes/community contributors/devel/sig-api-machinery/strategic-merge-patch.md.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)


def deployment() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "annotations": {"deployment.kubernetes.io/revision": "3"},
            "finalizers": ["a", "b"],
        },
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "args": ["--a"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "side", "image": "side:1"},
                    ]
                }
            },
        },
    }


def test_json_patch_pointer_escapes_reach_annotation_keys_with_slashes() -> None:
    patched = apply_json_patch(
        deployment(),
        [
            {
                "op": "test",
                "path": "/metadata/annotations/deployment.kubernetes.io~1revision",
                "value": "3",
            },
            {
                "op": "replace",
                "path": "/metadata/annotations/deployment.kubernetes.io~1revision",
                "value": "4",
            },
            {"op": "add", "path": "/metadata/annotations/a~0b", "value": "tilde"},
        ],
    )
    assert patched["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "4",
        "a~b": "tilde",
    }


def test_json_patch_array_operations() -> None:
    patched = apply_json_patch(
        deployment(),
        [
            {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "copy", "from": "/metadata/finalizers/0", "path": "/metadata/finalizers/0"},
            {
                "op": "move",
                "from": "/spec/template/spec/containers/1",
                "path": "/spec/template/spec/containers/0",
            },
        ],
    )
    assert patched["metadata"]["finalizers"] == ["b", "b", "c"]
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["side", "app"]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "/spec/missing/x", "value": 1},
        {"op": "remove", "path": "/metadata/labels"},
        {"op": "test", "path": "/metadata/name", "value": "other"},
        {"op": "add", "path": "/metadata/finalizers/9", "value": "x"},
    ],
)
def test_json_patch_operation_that_cannot_apply_is_422_and_changes_nothing(
    operation: dict[str, Any],
) -> None:
    original = deployment()
    with pytest.raises(PatchError) as caught:
        apply_json_patch(original, [{"op": "add", "path": "/metadata/x", "value": 1}, operation])
    assert caught.value.status == 422
    assert original == deployment()


def test_malformed_json_patch_is_400() -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch(deployment(), {"op": "add"})
    assert caught.value.status == 400


def test_merge_patch_replaces_lists_and_null_deletes() -> None:
    patched = apply_merge_patch(
        deployment(),
        {
            "metadata": {"finalizers": ["z"], "annotations": None},
            "spec": {"template": {"spec": {"containers": [{"name": "only"}]}}},
        },
    )
    assert patched["metadata"]["finalizers"] == ["z"]
    assert "annotations" not in patched["metadata"]
    assert patched["spec"]["template"]["spec"]["containers"] == [{"name": "only"}]


def test_strategic_merge_merges_containers_and_env_by_name() -> None:
    patched = apply_strategic_merge_patch(
        deployment(),
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "app:2",
                                "args": ["--b"],
                                "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            }
                        ],
                    }
                }
            }
        },
    )
    app, side = patched["spec"]["template"]["spec"]["containers"]
    assert (app["image"], app["args"]) == ("app:2", ["--b"])  # args has no merge key
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert side == {"name": "side", "image": "side:1"}


def test_strategic_merge_directives() -> None:
    patched = apply_strategic_merge_patch(
        deployment(),
        {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {
                # kubectl apply switching to Recreate sends $retainKeys for the strategy.
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None},
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                        "containers": [
                            {"name": "app", "$patch": "delete"},
                            {"name": "new", "image": "new:1"},
                        ],
                    }
                },
            },
        },
    )
    assert patched["metadata"]["finalizers"] == ["b"]
    assert patched["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["side", "new"]


def test_strategic_merge_replace_directive_and_missing_merge_key() -> None:
    replaced = apply_strategic_merge_patch(
        deployment(),
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "solo", "image": "solo:1"}, {"$patch": "replace"}],
                    }
                }
            }
        },
    )
    assert replaced["spec"]["template"]["spec"]["containers"] == [
        {"name": "solo", "image": "solo:1"}
    ]
    with pytest.raises(PatchError, match="does not contain declared merge key: name") as caught:
        apply_strategic_merge_patch(
            deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "nameless"}]}}}}
        )
    assert caught.value.status == 400
