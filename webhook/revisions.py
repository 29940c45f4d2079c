"""ReplicaSets as revisions: ownership, the current revision, activation time, and the
rollback body computed exactly as `kubectl rollout undo` computes it.

Pure functions over the JSON objects the API server returns; nothing here does I/O.
Parity reference: kubernetes/kubectl pkg/polymorphichelpers/rollback.go (DeploymentRollbacker)
and kubernetes/kubernetes pkg/controller/deployment/util (EqualIgnoreHash, FindNewReplicaSet).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webhook import contract, jsontext
from webhook.alerts import parse_time
from webhook.views import Obj as Obj
from webhook.views import condition

# rollback.go annotationsToSkip: kept from the Deployment, never copied from the ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        contract.REVISION,
        contract.REVISION_HISTORY,
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def parse_k8s_time(text: str | None) -> datetime | None:
    """A Kubernetes RFC 3339 timestamp (`2024-05-01T10:00:00Z`) in UTC; None when absent, and
    when unreadable.

    Read as an alert's times are (alerts.parse_time), but what is read here comes from the
    cluster, where anyone who may edit an object or its status can write any time: no timezone,
    a year a datetime cannot shift to UTC, one outside 1970 to 2999. Such a time is no time,
    for every reader alike. (An alert's bad time is the sender's error, a 400 naming it; this
    one must never become that 400, nor a 500, nor stop the tracker's round.)
    """
    if not text:
        return None
    try:
        return parse_time(text, where="time")
    except ValueError:
        return None


def format_k8s_time(when: datetime) -> str:
    """`when` as Kubernetes writes times: converted to UTC (not relabelled), seconds, `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The most of an alert's name the annotations a rollback writes copy (change-cause, last-action,
# the bad mark: three copies). A label value has no length limit, and a Deployment's annotations
# together are limited to 256 KiB: a long enough name would have the rollback's PUT refused.
ALERTNAME_IN_ANNOTATIONS = 253


def alertname_for_annotation(name: str) -> str:
    """`name` as the rollback's annotations hold it: cut to ALERTNAME_IN_ANNOTATIONS characters,
    the cut marked (the audit keeps the name as sent)."""
    if len(name) <= ALERTNAME_IN_ANNOTATIONS:
        return name
    return name[: ALERTNAME_IN_ANNOTATIONS - 1] + "\u2026"


def bad_mark_value(*, trigger: str, alertname: str, audit_id: str, at: datetime) -> str:
    """The `auto-rollback/bad-revision` value a rollback writes on the revision it left (the
    worker's, and its write-ahead intent's for the reconciler: the same text)."""
    return json.dumps(
        {
            "reason": trigger,
            "trigger": trigger,
            "alertname": alertname_for_annotation(alertname),
            "audit_id": audit_id,
            "time": format_k8s_time(at),
        },
        sort_keys=True,
    )


def json_annotation(annotations: Mapping[str, str], key: str) -> dict[str, Any] | None:
    """A JSON annotation this service writes, as an object, or None when absent. Edited by hand
    it may be anything: not JSON, nested past the decoder's depth, or a list or a number. Every
    reader takes it from here, as an object, so none meets a RecursionError or calls .get on a
    list (both were a 500 on each alert, resume and console page for that Deployment)."""
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        value = jsontext.loads(raw, where=key)
    except ValueError:
        # A mark we cannot read is still a mark: never roll back to it.
        return {"unreadable": raw}
    return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class Revision:
    """One ReplicaSet of a Deployment, seen as a revision."""

    number: int
    name: str
    uid: str
    created: datetime
    template: Obj
    annotations: dict[str, str]
    history: tuple[int, ...]
    replicaset: Obj

    @property
    def bad_mark(self) -> dict[str, Any] | None:
        return json_annotation(self.annotations, contract.ANNOTATION_BAD_REVISION)

    @property
    def healthy_since(self) -> datetime | None:
        return parse_k8s_time(self.annotations.get(contract.ANNOTATION_HEALTHY_SINCE))

    @property
    def alerted_at(self) -> datetime | None:
        return parse_k8s_time(self.annotations.get(contract.ANNOTATION_ALERTED_AT))

    @property
    def readopted(self) -> bool:
        return bool(self.history)

    @property
    def images(self) -> tuple[str, ...]:
        spec = self.template.get("spec", {})
        return tuple(c.get("image", "") for c in spec.get("containers", []))

    @property
    def resource_version(self) -> str:
        return str(self.replicaset["metadata"].get("resourceVersion", ""))


# What Go's strconv.ParseInt(v, 10, 64) accepts, as the Deployment controller and kubectl read
# a revision: ASCII digits with an optional sign, within int64. Python's int() also takes
# spaces, underscores and other scripts' digits, and no bound (the audit stores a BIGINT).
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = range(-(2**63), 2**63)


def parse_revision(raw: str) -> int | None:
    """A revision annotation's number as kubectl reads it; None where kubectl skips it."""
    if _GO_INT.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if value in _INT64 else None


def _revision_number(annotations: dict[str, str]) -> int | None:
    return parse_revision(annotations.get(contract.REVISION, ""))


def _history(annotations: dict[str, str]) -> tuple[int, ...]:
    raw = annotations.get(contract.REVISION_HISTORY, "")
    parsed = (parse_revision(p.strip()) for p in raw.split(","))
    return tuple(p for p in parsed if p is not None)


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    """True when `obj` has a controller ownerReference with the owner's UID."""
    uid = owner["metadata"].get("uid")
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") == uid:
            return True
    return False


def controller_of(obj: Obj) -> dict[str, Any] | None:
    """The controller ownerReference of an object, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def revisions_of(deployment: Obj, replicasets: list[Obj]) -> list[Revision]:
    """The Deployment's revisions, oldest first: ReplicaSets it controls that carry a revision.

    kubectl lists ReplicaSets by the Deployment's selector and keeps those whose controller
    ownerReference is the Deployment (deploymentutil.GetAllReplicaSets / ListReplicaSets).
    """
    result = []
    for rs in replicasets:
        if not is_controlled_by(rs, deployment):
            continue
        meta = rs["metadata"]
        annotations = dict(meta.get("annotations") or {})
        number = _revision_number(annotations)
        created = parse_k8s_time(meta.get("creationTimestamp"))
        if number is None or created is None:
            continue
        result.append(
            Revision(
                number=number,
                name=meta["name"],
                uid=meta.get("uid", ""),
                created=created,
                template=rs.get("spec", {}).get("template", {}),
                annotations=annotations,
                history=_history(annotations),
                replicaset=rs,
            )
        )
    return sorted(result, key=lambda r: r.number)


def _without_hash(template: Obj) -> Obj:
    """The template without the pod-template-hash label (and without a metadata or labels left
    empty by that): copies of the three dicts it changes, the rest shared, never changed."""
    clean = dict(template)
    meta = clean.get("metadata")
    if isinstance(meta, dict):
        meta = clean["metadata"] = dict(meta)
        labels = meta.get("labels")
        if isinstance(labels, dict):
            kept = {k: v for k, v in labels.items() if k != contract.POD_TEMPLATE_HASH}
            if kept:
                meta["labels"] = kept
            else:
                meta.pop("labels")
    if clean.get("metadata") == {}:
        clean.pop("metadata")
    return clean


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """deploymentutil.EqualIgnoreHash: templates equal once the hash label is ignored."""
    return _without_hash(a) == _without_hash(b)


def current_revision(deployment: Obj, revisions: list[Revision]) -> Revision | None:
    """The revision whose template the Deployment runs (FindNewReplicaSet: oldest match wins)."""
    template = deployment.get("spec", {}).get("template", {})
    matches = [r for r in revisions if equal_ignore_hash(r.template, template)]
    if not matches:
        return None
    return min(matches, key=lambda r: (r.created, r.name))


def last_action(deployment: Obj) -> dict[str, Any] | None:
    """The service's own `auto-rollback/last-action` record on the Deployment, if any."""
    annotations = deployment["metadata"].get("annotations") or {}
    return json_annotation(annotations, contract.ANNOTATION_LAST_ACTION)


def last_action_time(deployment: Obj) -> datetime | None:
    """When the service last rolled this Deployment back (its last-action's time), if known."""
    action = last_action(deployment)
    if not action:
        return None
    return parse_k8s_time(str(action.get("time") or ""))


def template_written_at(deployment: Obj) -> datetime | None:
    """When the Deployment's pod template was last written, from its managedFields.

    The newest entry of the main resource (not a status or scale subresource) that owns a
    field under spec.template: the write that made the Deployment run its template (a
    `kubectl rollout undo`, `set image`, an apply). The controller writes only status, so
    this does not move per rollout step. None where the server keeps no managedFields.
    """
    latest = None
    for entry in deployment["metadata"].get("managedFields") or []:
        if entry.get("subresource"):
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:template" not in spec:
            continue
        when = parse_k8s_time(entry.get("time"))
        if when and (latest is None or when > latest):
            latest = when
    return latest


def activation_time(revision: Revision, deployment: Obj) -> datetime:
    """When `revision` became the Deployment's current revision.

    Its ReplicaSet's creation time; for a re-adopted ReplicaSet (created long ago, made current
    again) the later of when the template was last written (managedFields, see
    template_written_at) and the time our own last-action recorded for a rollback to it, else
    the Progressing condition's lastUpdateTime.
    Never a time that moves per rollout step where the server says when the template changed:
    a real controller moves lastUpdateTime at every step and at completion, and keeps the old
    one at its first sync after an undo (docs/tracker.md).
    """
    if not revision.readopted:
        return revision.created
    known = [template_written_at(deployment)]
    action = last_action(deployment)
    if action and action.get("to_replicaset") == revision.name:
        known.append(last_action_time(deployment))
    written = [when for when in known if when]
    if written:
        # The later of the two: a human may have re-adopted again after our rollback.
        return max(written)
    progressing = condition(deployment, "Progressing")
    if progressing:
        # Servers without managedFields (the sandbox, whose rollouts finish in the write):
        # lastTransitionTime stays put while the condition stays True (SetDeploymentCondition),
        # i.e. at the first rollout ever, so lastUpdateTime is the closer one.
        updated = parse_k8s_time(progressing.get("lastUpdateTime"))
        if updated:
            return updated
    return revision.created


def rollback_body(deployment: Obj, target: Revision, *, service_annotations: dict[str, str]) -> Obj:
    """The Deployment as `kubectl rollout undo --to-revision=<target>` would leave it, plus ours.

    rollback.go: the pod template is the target ReplicaSet's with pod-template-hash removed;
    the annotations are the Deployment's values for the skip set plus the ReplicaSet's others.
    Unlike kubectl, the Deployment's own `auto-rollback/*` annotations (opt-in, overrides) are
    kept and the ReplicaSet's are not copied, so a rollback never silently opts a Deployment
    out or carries a stale mark; then `service_annotations` (change-cause, last-action) are set.
    The body keeps metadata.resourceVersion as read: the PUT is conditional on it.
    """
    body = copy.deepcopy(deployment)
    template = copy.deepcopy(target.template)
    labels = template.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(contract.POD_TEMPLATE_HASH, None)
    current = dict(deployment["metadata"].get("annotations") or {})
    annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP}
    for key, value in target.annotations.items():
        if key not in ANNOTATIONS_TO_SKIP and not key.startswith(contract.PREFIX):
            annotations[key] = value
    for key, value in current.items():
        if key.startswith(contract.PREFIX):
            annotations[key] = value
    annotations.update(service_annotations)
    body["spec"]["template"] = template
    body["metadata"]["annotations"] = annotations
    body.pop("status", None)
    return body
