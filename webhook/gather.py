"""The reads that gather a decision's facts: `policy.Facts` over the cluster, through kube.py.

Each fact is read at most once per attempt and only when the policy asks for it, so the policy's
order is the order of the API calls (README, Performance: 2 requests for the usual repeat, 5 for
a rollback). The resolution through ownerReferences is shared by the attempts of one decision;
the Deployment and its ReplicaSets are read afresh by each attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from webhook import contract
from webhook.alerts import Alert
from webhook.ask import Request
from webhook.config import Settings
from webhook.evidence import Confirmer, ConfirmResult, EvidenceSource, TargetChoice, choose_target
from webhook.kube import Cluster, NotFound
from webhook.policy import GateState, GitOpsFact, Resolution
from webhook.revisions import Revision, controller_of
from webhook.views import Meta, Obj, label_selector

GitOpsCheck = Callable[[Obj, Settings], GitOpsFact | None]
"""The GitOps seam: what the Deployment's owner means for a rollback (None: no owner)."""


def resolve(cluster: Cluster, namespace: str, labels: dict[str, str]) -> Resolution:
    """(Deployment, implicated ReplicaSet) from the labels, through ownerReferences when needed."""
    deployment = labels.get(contract.LABEL_DEPLOYMENT) or ""
    replicaset = labels.get(contract.LABEL_REPLICASET) or None
    pod_name = labels.get(contract.LABEL_POD)
    claimed_uid: str | None = None  # the uid the pod's ownerReference gives its ReplicaSet
    if not replicaset and pod_name:
        try:
            pod = cluster.get_pod(namespace, pod_name)
        except NotFound:
            return Resolution(deployment, None, f"pod {namespace}/{pod_name} not found")
        owner = controller_of(pod)
        if not owner or owner.get("kind") != "ReplicaSet":
            return Resolution(
                deployment, None, f"pod {namespace}/{pod_name} is not controlled by a ReplicaSet"
            )
        replicaset, claimed_uid = str(owner["name"]), str(owner.get("uid"))
    if replicaset and (claimed_uid is not None or not deployment):
        try:
            rs = cluster.get_replicaset(namespace, replicaset)
        except NotFound:
            named = None if claimed_uid is not None else replicaset  # as the alert named it
            return Resolution(deployment, named, f"ReplicaSet {namespace}/{replicaset} not found")
        # Whoever may update a pod may write any name into its ownerReferences: only the uid
        # says which ReplicaSet (and so which Deployment) really made it.
        uid = rs["metadata"].get("uid")
        if claimed_uid is not None and claimed_uid != uid:
            return Resolution(
                deployment,
                None,
                f"pod {namespace}/{pod_name} names ReplicaSet {replicaset} as its controller "
                f"with uid {claimed_uid!r}, which is not that ReplicaSet's ({uid!r})",
            )
    if not deployment and replicaset:
        owner = controller_of(rs)
        if not owner or owner.get("kind") != "Deployment":
            return Resolution(
                "",
                replicaset,
                f"ReplicaSet {namespace}/{replicaset} is not controlled by a Deployment",
            )
        deployment = str(owner["name"])
    return Resolution(deployment, replicaset)


@dataclass
class _Memo:
    """The reads of one attempt (and the resolution, shared by all attempts)."""

    shared: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterFacts:
    """`policy.Facts` read lazily from the cluster, memoised per attempt."""

    cluster: Cluster
    alert: Alert
    settings: Settings
    request: Request
    now: datetime
    dry_run: bool
    patient: bool
    evidence: Sequence[EvidenceSource]
    confirmer: Confirmer | None
    gitops_check: GitOpsCheck | None
    memo: _Memo
    gate: GateState | None = None

    @classmethod
    def first(cls, *, shared: dict[str, Any] | None = None, **values: Any) -> ClusterFacts:
        """Facts for one attempt; pass the same `shared` dict to every attempt of a decision."""
        return cls(memo=_Memo(shared if shared is not None else {}), **values)

    def with_gate(self, state: GateState) -> ClusterFacts:
        """The same facts (and reads) with the gate's state: the gate's second pass."""
        return replace(self, gate=state)

    @property
    def namespace(self) -> str:
        return self.alert.labels.get(contract.LABEL_NAMESPACE, "")

    @property
    def read_deployment(self) -> Obj | None:
        """The Deployment this attempt read, if it got that far (for the failure's Event)."""
        found: Obj | None = self.memo.values.get("deployment")
        return found

    def _once(self, key: str, read: Callable[[], Any], *, shared: bool = False) -> Any:
        store = self.memo.shared if shared else self.memo.values
        if key not in store:
            store[key] = read()
        return store[key]

    def resolution(self) -> Resolution:
        value: Resolution = self._once(
            "resolution",
            lambda: resolve(self.cluster, self.namespace, self.alert.labels),
            shared=True,
        )
        return value

    def deployment(self) -> Obj | None:
        def read() -> Obj | None:
            try:
                return self.cluster.get_deployment(self.namespace, self.resolution().deployment)
            except NotFound:
                return None

        value: Obj | None = self._once("deployment", read)
        return value

    def namespace_opt_in(self) -> str | None:
        def read() -> str | None:
            labels = Meta.of(self.cluster.get_namespace(self.namespace)).labels
            label = labels.get(contract.ANNOTATION_ENABLED)
            return None if label is None else str(label)

        value: str | None = self._once("namespace_opt_in", read)
        return value

    def replicasets(self) -> Sequence[Obj]:
        def read() -> list[Obj]:
            deployment = self.deployment() or {}
            return self.cluster.list_replicasets(
                self.namespace, label_selector=label_selector(deployment)
            )

        value: list[Obj] = self._once("replicasets", read)
        return value

    def deployment_unmoved(self) -> bool:
        def read() -> bool:
            seen = self.deployment()
            return seen is not None and self.cluster.unmoved(seen)

        value: bool = self._once("deployment_unmoved", read)
        return value

    def gitops(self) -> GitOpsFact | None:
        check, deployment = self.gitops_check, self.deployment()
        if check is None or deployment is None:
            return None
        value: GitOpsFact | None = self._once("gitops", lambda: check(deployment, self.settings))
        return value

    def target(
        self, *, current: Revision, revisions: Sequence[Revision], min_healthy: int
    ) -> TargetChoice:
        def read() -> TargetChoice:
            return choose_target(
                deployment=self.deployment() or {},
                current=current,
                revisions=list(revisions),
                sources=self.evidence,
                min_healthy_seconds=min_healthy,
            )

        value: TargetChoice = self._once(f"target:{current.name}:{min_healthy}", read)
        return value

    def confirmation(self) -> ConfirmResult | None:
        confirmer = self.confirmer
        if confirmer is None:
            return None
        value: ConfirmResult = self._once("confirmation", lambda: confirmer(self.alert))
        return value
