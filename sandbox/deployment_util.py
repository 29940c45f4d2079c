"""Pure Deployment helpers of the sandbox controller (util/deployment_util.go, sync.go,
progress.go): template equality and hashing, revisions, maxSurge/maxUnavailable, conditions,
the annotations a Deployment puts on its ReplicaSets, and status arithmetic.

Nothing here reads or writes the store; `controller` does that and calls these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from sandbox import pods
from sandbox.store import clone
from webhook import contract

DESIRED_REPLICAS: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS: Final = "deployment.kubernetes.io/max-replicas"
# util.annotationsToSkip: never copied between a Deployment and its ReplicaSets.
SKIP_COPY: Final = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        contract.REVISION,
        contract.REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
# sync.go: revision-history is trimmed from the front past this many characters.
MAX_REVISION_HISTORY_CHARS: Final = 2000


def _prune(value: Any) -> Any:
    # apiequality.Semantic.DeepEqual sees nil and empty maps, slices and strings as equal.
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _without_hash(template: dict[str, Any] | None) -> Any:
    # _prune builds new containers, so only the path to the labels is copied here (this runs
    # for every owned ReplicaSet in every reconcile: no deep copy of whole templates).
    template = dict(template or {})
    meta = template.get("metadata") or {}
    labels = meta.get("labels")
    if isinstance(labels, dict):
        kept = {k: v for k, v in labels.items() if k != contract.POD_TEMPLATE_HASH}
        template["metadata"] = {**meta, "labels": kept}
    return _prune(template)


def equal_ignore_hash(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """util.EqualIgnoreHash: pod templates equal once pod-template-hash is dropped."""
    return bool(_without_hash(a) == _without_hash(b))


def equal_ignore_hash_to(template: dict[str, Any] | None) -> Callable[[Any], bool]:
    """`equal_ignore_hash` with `template` on one side, which is pruned once, not once per
    ReplicaSet it is compared with."""
    wanted = _without_hash(template)
    return lambda other: bool(_without_hash(other) == wanted)


def compute_hash(template: dict[str, Any], collision_count: int | None) -> str:
    """controller.ComputeHash: FNV-32a of the template (here its canonical JSON), then the
    collision count as 4 little-endian bytes padded to 8, safe-encoded."""
    data = json.dumps(_without_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little") + bytes(4)
    return pods.safe_encode(str(pods.fnv32a(data)))


def parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): None where Go returns an error. Python's int() would
    also take '1_2', ' 4' and other scripts' digits, and any size."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def revision(obj: dict[str, Any]) -> int:
    """util.Revision as MaxRevision and ReplicaSetsByRevision use it: 0 when the annotation
    is absent, and when it is no int64 (they skip such a ReplicaSet)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(contract.REVISION, "0")
    return parse_int64(text) or 0


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    # intstr.GetScaledValueFromIntOrPercent
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def fenceposts(deployment: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as util.MaxSurge and util.MaxUnavailable resolve them."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    if replicas == 0:
        unavailable = 0
    return surge, min(unavailable, replicas)


def get_condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of `kind` in a status, or None."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def set_condition(
    status: dict[str, Any], kind: str, state: str, reason: str, message: str, *, now: str
) -> None:
    """util.SetDeploymentCondition: no-op for the same status and reason, keeps
    lastTransitionTime while the status holds, and moves the condition to the end."""
    current = get_condition(status, kind)
    if current and current.get("status") == state and current.get("reason") == reason:
        return
    transition = now
    if current and current.get("status") == state:
        transition = current.get("lastTransitionTime", now)
    others = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    others.append(
        {
            "type": kind,
            "status": state,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }
    )
    status["conditions"] = others


def remove_condition(status: dict[str, Any], kind: str) -> None:
    """util.RemoveDeploymentCondition; drops `conditions` when none are left."""
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if not status["conditions"]:
        del status["conditions"]


def set_new_replicaset_annotations(
    deployment: dict[str, Any], rs: dict[str, Any], new_revision: int, *, exists: bool
) -> bool:
    """util.SetNewReplicaSetAnnotations: copy the Deployment's annotations (not the skip set),
    raise the revision to `new_revision` and, when re-adopting, append the old number to
    revision-history. True when the ReplicaSet changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((deployment.get("metadata") or {}).get("annotations") or {}).items():
        if key in SKIP_COPY or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    had_revision = contract.REVISION in annotations
    old_revision = parse_int64(annotations.get(contract.REVISION) or "0")
    if old_revision is None:
        # Upstream: "Updating replica set revision OldRevision not int", and false: nothing
        # of this pass is written, so the Deployment takes the ReplicaSet's revision as it is.
        return False
    if old_revision < new_revision:
        annotations[contract.REVISION] = str(new_revision)
        changed = True
        if had_revision:
            history = [h for h in annotations.get(contract.REVISION_HISTORY, "").split(",") if h]
            history.append(str(old_revision))
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            annotations[contract.REVISION_HISTORY] = ",".join(history)
    if not exists:
        changed = set_replicas_annotations(deployment, rs) or changed
    return changed


def set_replicas_annotations(deployment: dict[str, Any], rs: dict[str, Any]) -> bool:
    """util.SetReplicasAnnotations: desired-replicas and max-replicas (replicas + maxSurge)
    on the ReplicaSet. True when they changed."""
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    surge, _ = fenceposts(deployment)
    annotations = rs["metadata"].setdefault("annotations", {})
    wanted = {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + surge)}
    if all(annotations.get(k) == v for k, v in wanted.items()):
        return False
    annotations.update(wanted)
    return True


def set_min_ready(rs: dict[str, Any], seconds: int) -> None:
    """Copy the Deployment's minReadySeconds onto the ReplicaSet (omitted when 0)."""
    if seconds:
        rs["spec"]["minReadySeconds"] = seconds
    else:
        rs["spec"].pop("minReadySeconds", None)


def paused_conditions(status: dict[str, Any], *, paused: bool, now: str) -> None:
    """DeploymentController.checkPausedConditions: record a pause or resume in the
    Progressing condition, unless the deadline was already exceeded."""
    current = get_condition(status, "Progressing")
    if current and current.get("reason") == "ProgressDeadlineExceeded":
        return
    paused_recorded = bool(current and current.get("reason") == "DeploymentPaused")
    if paused and not paused_recorded:
        set_condition(
            status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now=now
        )
    elif not paused and paused_recorded:
        set_condition(
            status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now=now
        )


def is_scaling_event(replicas: int, rss: list[dict[str, Any]]) -> bool:
    """DeploymentController.isScalingEvent: an active ReplicaSet's desired-replicas
    annotation differs from spec.replicas."""
    for rs in rss:
        if int(rs["spec"].get("replicas", 1)) <= 0:
            continue
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
        if desired is not None and desired.isdigit() and int(desired) != replicas:
            return True
    return False


def active_or_latest(
    new_rs: dict[str, Any] | None, old: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """util.FindActiveOrLatest: the one active ReplicaSet (None when several are); with none
    active, the new one, else the last old one."""
    # Several active ReplicaSets (proportional scaling) never arise with immediate rollouts,
    # so they are left alone.
    everything = [*([new_rs] if new_rs else []), *old]
    active = [rs for rs in everything if int(rs["spec"].get("replicas", 1)) > 0]
    if len(active) == 1:
        return active[0]
    if active:
        return None
    if new_rs is not None:
        return new_rs
    return old[-1] if old else None


def deployment_complete(deployment: dict[str, Any], status: dict[str, Any]) -> bool:
    """util.DeploymentComplete: every replica updated and available, generation observed."""
    replicas = int(deployment["spec"].get("replicas", 1))
    return (
        status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    )


def calculate_status(
    deployment: dict[str, Any],
    new_rs: dict[str, Any] | None,
    old: list[dict[str, Any]],
    status: dict[str, Any],
    *,
    now: str,
) -> dict[str, Any]:
    """sync.go calculateStatus: counts summed over the ReplicaSets and the Available
    condition. Pure: returns a new status."""
    # Zero counts are omitted as the apiserver's JSON does.
    everything = [*([new_rs] if new_rs else []), *old]

    def total(field: str, rss: list[dict[str, Any]]) -> int:
        return sum(int((rs.get("status") or {}).get(field, 0)) for rs in rss)

    available = total("availableReplicas", everything)
    wanted = sum(int(rs["spec"].get("replicas", 1)) for rs in everything)
    counts = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": total("replicas", everything),
        "updatedReplicas": total("replicas", [new_rs] if new_rs else []),
        "readyReplicas": total("readyReplicas", everything),
        "availableReplicas": available,
        "unavailableReplicas": max(0, wanted - available),
    }
    new_status: dict[str, Any] = {k: v for k, v in counts.items() if v}
    if status.get("collisionCount") is not None:
        new_status["collisionCount"] = status["collisionCount"]
    if status.get("conditions"):
        new_status["conditions"] = clone(status["conditions"])
    replicas = int(deployment["spec"].get("replicas", 1))
    _, max_unavailable = fenceposts(deployment)
    if available >= replicas - max_unavailable:
        set_condition(
            new_status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now=now,
        )
    else:
        set_condition(
            new_status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now=now,
        )
    return new_status


def deployment_progressing(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """util.DeploymentProgressing: more updated, ready or available replicas, or fewer old
    ones, than in `old`."""
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (
        new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_old < old_old
        or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or new.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )
