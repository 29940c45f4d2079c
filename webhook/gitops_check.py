"""The GitOps seam of the decision: owner, facts, handling -> policy.GitOpsFact (gather side).

`gitops_check(cluster)` is the `GitOpsCheck` the Decider is given: for a Deployment it detects
the owner (webhook.gitops, pure), reads the owner object only when pausing a controller needs
it (webhook.gitops_pause.read_facts), and turns the configured handling into the fact the pure
policy reads: `refuse` (skip gitops_managed with the steps), a `pause` the effects carry out
before the rollback's write, or a `note` (ignored, or nothing to pause).
"""

from __future__ import annotations

from webhook.config import Settings
from webhook.gather import GitOpsCheck
from webhook.gitops import Pause, Refuse, detect_owner, handle
from webhook.gitops_pause import read_facts
from webhook.gitops_steps import Target
from webhook.kube import Cluster
from webhook.policy import GitOpsFact
from webhook.views import Obj


def gitops_check(cluster: Cluster) -> GitOpsCheck:
    """The check over `cluster` (the reads go through kube.py)."""

    def check(deployment: Obj, settings: Settings) -> GitOpsFact | None:
        meta = deployment["metadata"]
        owner = detect_owner(
            meta.get("labels") or {},
            meta.get("annotations") or {},
            namespace=meta["namespace"],
            name=meta["name"],
            settings=settings.gitops,
        )
        if owner is None:
            return None
        facts = read_facts(cluster, owner, settings.gitops, deployment=deployment)
        target = Target(namespace=meta["namespace"], deployment=meta["name"])
        verdict = handle(owner, settings.gitops, target=target, facts=facts)
        if isinstance(verdict, Refuse):
            return GitOpsFact(refuse=verdict.text())
        if isinstance(verdict, Pause):
            return GitOpsFact(pause=verdict, pause_facts=facts)
        return GitOpsFact(note=verdict.note)

    return check
