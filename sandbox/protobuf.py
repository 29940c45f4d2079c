"""Decode the Kubernetes protobuf request bodies that kubectl 1.32+ sends.

kubectl's typed clients (`kubectl create namespace`, `kubectl create deployment`,
`kubectl run`) send `application/vnd.kubernetes.protobuf` from 1.32 on, and client-go has
no fallback to JSON for protobuf. The envelope is the 4-byte magic `k8s\\0` then a
runtime.Unknown message {typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}
(apimachinery/pkg/runtime/serializer/protobuf/protobuf.go); `raw` is the object in the
field numbers of k8s.io/api's generated.proto files.

Only the messages below are known. A field this table does not know is refused with a
message naming it (a lossy decode would silently drop what the user asked for), so the
sandbox answers 415 and kubectl shows why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox.store import format_time

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# message -> field number -> (JSON name, type). Types: string, bytes, bool, int32, int64,
# "int32!" (pointer ints whose zero is meaningful, e.g. replicas: 0), time, intorstring,
# quantity, map:<value type>, []<type> (repeated), skip (read and dropped), or a message.
SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int64"), 2: ("nanos", "int32")},
    "IntOrString": {1: ("type", "int64"), 2: ("intVal", "int32"), 3: ("strVal", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        4: ("selfLink", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int64"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int32!"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "[]OwnerReference"),
        14: ("finalizers", "[]string"),
        17: ("managedFields", "skip"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "LabelSelector": {
        1: ("matchLabels", "map:string"),
        2: ("matchExpressions", "[]LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string"),
        2: ("operator", "string"),
        3: ("values", "[]string"),
    },
    # core/v1
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "skip"),
    },
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "Pod": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec"), 3: ("status", "skip")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "[]Container"),
        3: ("restartPolicy", "string"),
        4: ("terminationGracePeriodSeconds", "int32!"),
        5: ("activeDeadlineSeconds", "int32!"),
        6: ("dnsPolicy", "string"),
        7: ("nodeSelector", "map:string"),
        8: ("serviceAccountName", "string"),
        9: ("serviceAccount", "string"),
        10: ("nodeName", "string"),
        11: ("hostNetwork", "bool"),
        12: ("hostPID", "bool"),
        13: ("hostIPC", "bool"),
        14: ("securityContext", "PodSecurityContext"),
        16: ("hostname", "string"),
        17: ("subdomain", "string"),
        19: ("schedulerName", "string"),
        20: ("initContainers", "[]Container"),
        24: ("priorityClassName", "string"),
    },
    "PodSecurityContext": {},
    "Container": {
        1: ("name", "string"),
        2: ("image", "string"),
        3: ("command", "[]string"),
        4: ("args", "[]string"),
        5: ("workingDir", "string"),
        6: ("ports", "[]ContainerPort"),
        7: ("env", "[]EnvVar"),
        8: ("resources", "ResourceRequirements"),
        9: ("volumeMounts", "[]VolumeMount"),
        13: ("terminationMessagePath", "string"),
        14: ("imagePullPolicy", "string"),
        16: ("stdin", "bool"),
        17: ("stdinOnce", "bool"),
        18: ("tty", "bool"),
        20: ("terminationMessagePolicy", "string"),
    },
    "ContainerPort": {
        1: ("name", "string"),
        2: ("hostPort", "int32"),
        3: ("containerPort", "int32"),
        4: ("protocol", "string"),
        5: ("hostIP", "string"),
    },
    "EnvVar": {1: ("name", "string"), 2: ("value", "string")},
    "ResourceRequirements": {1: ("limits", "map:quantity"), 2: ("requests", "map:quantity")},
    "VolumeMount": {
        1: ("name", "string"),
        2: ("readOnly", "bool"),
        3: ("mountPath", "string"),
        4: ("subPath", "string"),
    },
    # apps/v1
    "Deployment": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "DeploymentSpec"),
        3: ("status", "skip"),
    },
    "DeploymentSpec": {
        1: ("replicas", "int32!"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", "int32"),
        6: ("revisionHistoryLimit", "int32!"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int32!"),
    },
    "DeploymentStrategy": {1: ("type", "string"), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {
        1: ("maxUnavailable", "intorstring"),
        2: ("maxSurge", "intorstring"),
    },
    "ReplicaSet": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "ReplicaSetSpec"),
        3: ("status", "skip"),
    },
    "ReplicaSetSpec": {
        1: ("replicas", "int32!"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("minReadySeconds", "int32"),
    },
}
# Top-level kinds this module decodes.
KINDS = frozenset({"Namespace", "Pod", "Deployment", "ReplicaSet"})


class ProtobufError(ValueError):
    """A protobuf body the sandbox cannot decode; the message says what and where."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: Any, where: str) -> Any:
    if kind == "string":
        return bytes(value).decode()
    if kind == "bytes":
        return bytes(value)
    if kind == "bool":
        return bool(value)
    if kind in {"int32", "int64", "int32!"}:
        return _signed(value)
    if kind == "quantity":
        return _message("Quantity", value, where).get("string", "")
    if kind == "time":
        parts = _message("Time", value, where)
        if not parts.get("seconds"):
            return None
        return format_time(datetime.fromtimestamp(parts["seconds"], UTC))
    if kind == "intorstring":
        parts = _message("IntOrString", value, where)
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    return _message(kind, value, where)


def _message(name: str, data: bytes, where: str) -> dict[str, Any]:
    if name == "Quantity":
        fields = _fields(data)
        return {"string": bytes(fields[0][2]).decode()} if fields else {}
    schema = SCHEMAS.get(name)
    if schema is None:
        raise ProtobufError(f"{where}: the sandbox cannot decode protobuf message {name}")
    result: dict[str, Any] = {}
    for number, _, value in _fields(data):
        if number not in schema:
            raise ProtobufError(
                f"{where}: field {number} of {name} is not known to the sandbox's protobuf "
                "decoder; send JSON (e.g. kubectl create -f FILE)"
            )
        json_name, kind = schema[number]
        path = f"{where}.{json_name}"
        if kind == "skip":
            continue
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(value)}
            key = bytes(entry.get(1, b"")).decode()
            result.setdefault(json_name, {})[key] = _scalar(kind[4:], entry.get(2, b""), path)
        elif kind.startswith("[]"):
            result.setdefault(json_name, []).append(_scalar(kind[2:], value, path))
        else:
            result[json_name] = _scalar(kind, value, path)
    # Go writes every non-pointer field; JSON would omit the empty ones (omitempty).
    for json_name, kind in schema.values():
        if (
            json_name in result
            and kind in {"string", "bool", "int32", "int64"}
            and result[json_name] in ("", False, 0)
        ):
            del result[json_name]
        elif json_name in result and kind == "time" and result[json_name] is None:
            del result[json_name]
    return result


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a protobuf request body (with kind and apiVersion)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the k8s\\0 magic prefix")
    envelope = _message("Unknown", body[len(MAGIC) :], "envelope")
    type_meta = envelope.get("typeMeta") or {}
    kind, api_version = type_meta.get("kind", ""), type_meta.get("apiVersion", "")
    if kind not in KINDS:
        raise ProtobufError(f"the sandbox cannot decode protobuf {api_version}/{kind}; send JSON")
    obj = _message(kind, envelope.get("raw", b""), kind)
    return {"kind": kind, "apiVersion": api_version, **obj}
