"""Protobuf request bodies (kubectl 1.32+ typed clients) decode to the JSON shape, and what
the decoder does not know is refused loudly instead of being dropped."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from sandbox.protobuf import ProtobufError, decode
from sandbox.testing import SandboxHandle


def varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return b"k8s\x00" + field(1, type_meta) + field(2, raw)


def namespace_body(name: str, *, extra: bytes = b"") -> bytes:
    # Go writes empty non-pointer strings too (generateName = ""), as kubectl does.
    meta = field(1, name.encode()) + field(2, b"") + field(11, field(1, b"team") + field(2, b"a"))
    return envelope("v1", "Namespace", field(1, meta + extra) + field(3, b""))


def test_decode_namespace_drops_empty_go_fields_and_keeps_maps() -> None:
    assert decode(namespace_body("shop")) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "shop", "labels": {"team": "a"}},
    }


def test_decode_keeps_an_explicit_zero_replicas() -> None:
    spec = field(1, 0)
    body = envelope("apps/v1", "Deployment", field(1, field(1, b"web")) + field(2, spec))
    assert decode(body)["spec"] == {"replicas": 0}


def test_unknown_field_is_refused_with_its_place() -> None:
    with pytest.raises(ProtobufError, match=r"field 99 of ObjectMeta"):
        decode(namespace_body("shop", extra=field(99, b"x")))


def test_server_answers_415_for_an_undecodable_protobuf_body(sandbox: SandboxHandle) -> None:
    request = urllib.request.Request(
        sandbox.url + "/api/v1/namespaces",
        method="POST",
        data=namespace_body("shop", extra=field(99, b"x")),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 415
    assert b"field 99 of ObjectMeta" in caught.value.read()


def test_server_creates_from_a_protobuf_body(sandbox: SandboxHandle) -> None:
    request = urllib.request.Request(
        sandbox.url + "/api/v1/namespaces",
        method="POST",
        data=namespace_body("shop"),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    assert sandbox.store.get("namespaces", None, "shop")["metadata"]["labels"]["team"] == "a"
