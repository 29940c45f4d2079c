"""The README's decision table, row by row, on the pure policy: plain values in, a value out.

No HTTP, no Kubernetes client, no sandbox: `Table` (world.py) is the Facts view with values, and
records which facts the policy asked for, i.e. which cluster reads it would have made.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.policy.world import Table, alert, last_action, world
from webhook.ask import Overrides, Request
from webhook.config import ClusterScope, Namespaces, Settings
from webhook.contract import Confirmation, SkipReason, Source
from webhook.evidence import ConfirmResult
from webhook.policy import Act, GateState, GitOpsFact, Redecide, Resolution, Skip, decide

COVERED: set[str] = set()


def skip(facts: Table, reason: SkipReason) -> Skip:
    result = decide(facts)
    assert isinstance(result, Skip), result
    assert result.reason == reason, result.detail
    COVERED.add(reason)
    return result


def act(facts: Table) -> Act:
    result = decide(facts)
    assert isinstance(result, Act), result
    return result


# -- the alert itself does not qualify ------------------------------------------------------
def test_resolved_alert_is_resolved_before_anything_is_read() -> None:
    facts = Table(alert=alert(status="resolved"))
    skip(facts, SkipReason.RESOLVED)
    assert facts.asked == []


def test_trigger_outside_the_contract_is_unknown_trigger() -> None:
    facts = Table(alert=replace(alert(), labels={**alert().labels, "rollback_trigger": "cpu"}))
    assert "'cpu'" in skip(facts, SkipReason.UNKNOWN_TRIGGER).detail


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"deployment": "web"}, "namespace"),
        ({"namespace": "shop"}, "deployment, replicaset, pod"),
    ],
)
def test_missing_workload_labels_are_missing_labels(labels: dict[str, str], named: str) -> None:
    facts = Table(alert=alert(**labels))
    assert named in skip(facts, SkipReason.MISSING_LABELS).detail
    assert facts.asked == []


def test_missing_trigger_label_is_missing_labels() -> None:
    labels = {k: v for k, v in alert().labels.items() if k != "rollback_trigger"}
    skip(Table(alert=replace(alert(), labels=labels)), SkipReason.MISSING_LABELS)


@pytest.mark.parametrize(
    "labels",
    [
        {"namespace": "shop/../kube-system", "deployment": "dns"},
        {"namespace": "shop", "deployment": "../kube-system/dns"},
        {"namespace": "shop", "replicaset": "web-2/.."},
        {"namespace": "shop", "pod": "web-2-x/../../y"},
        {"namespace": "Shop", "deployment": "web"},
    ],
)
def test_a_label_that_is_not_a_kubernetes_name_is_invalid_labels_with_no_read(
    labels: dict[str, str],
) -> None:
    facts = Table(alert=alert(**labels))
    result = skip(facts, SkipReason.INVALID_LABELS)
    assert facts.asked == []
    assert any(f"{k}={v!r}" in result.detail for k, v in labels.items())


def test_an_alert_naming_another_cluster_is_wrong_cluster() -> None:
    settings = Settings(cluster=ClusterScope(name="prod-eu"))
    facts = Table(
        alert=alert(namespace="shop", deployment="web", cluster="prod-us"), settings=settings
    )
    skip(facts, SkipReason.WRONG_CLUSTER)
    assert facts.asked == []


def test_without_the_cluster_label_only_a_required_label_is_wrong_cluster() -> None:
    optional = Settings(cluster=ClusterScope(name="prod-eu"))
    act(Table(settings=optional))
    required = Settings(cluster=ClusterScope(name="prod-eu", require_label=True))
    assert "cluster is missing" in skip(Table(settings=required), SkipReason.WRONG_CLUSTER).detail


def test_an_alert_from_beyond_the_clock_skew_is_alert_from_future() -> None:
    facts = Table(alert=alert(namespace="shop", deployment="web", ahead="10m"))
    assert "max_clock_skew 300s" in skip(facts, SkipReason.ALERT_FROM_FUTURE).detail
    assert facts.asked == []


def test_an_alert_within_the_clock_skew_is_decided() -> None:
    act(Table(alert=alert(namespace="shop", deployment="web", replicaset="web-2", ahead="4m")))


# -- namespace, Deployment, opt-in, pause, owner --------------------------------------------
def test_denied_namespace_is_namespace_denied_with_no_read() -> None:
    facts = Table(alert=alert(namespace="kube-system", deployment="dns"))
    skip(facts, SkipReason.NAMESPACE_DENIED)
    assert facts.asked == []


def test_namespace_outside_the_allow_list_is_namespace_denied() -> None:
    facts = Table(settings=Settings(namespaces=Namespaces(allow=("payments",))))
    assert "namespaces.allow" in skip(facts, SkipReason.NAMESPACE_DENIED).detail


def test_no_such_deployment_is_deployment_not_found() -> None:
    facts = Table(cluster=None)
    assert "shop/web not found" in skip(facts, SkipReason.DEPLOYMENT_NOT_FOUND).detail


def test_a_pod_without_a_replicaset_owner_is_deployment_not_found() -> None:
    missing = Resolution("", None, "pod shop/web-x is not controlled by a ReplicaSet")
    facts = Table(alert=alert(namespace="shop", pod="web-x"), resolved=missing)
    skip(facts, SkipReason.DEPLOYMENT_NOT_FOUND)
    assert facts.asked == ["resolution"]


def test_a_deployment_that_says_nothing_in_a_silent_namespace_is_not_opted_in() -> None:
    facts = Table(cluster=world(TWO_REVISIONS_NO_OPT_IN))
    skip(facts, SkipReason.NOT_OPTED_IN)
    assert facts.asked == ["resolution", "deployment", "namespace"]


def test_the_deployments_own_false_wins_over_the_namespace_label() -> None:
    facts = Table(cluster=world(TWO_REVISIONS_OPTED_OUT), namespace_label="true")
    skip(facts, SkipReason.NOT_OPTED_IN)
    assert "namespace" not in facts.asked  # the Deployment decided: no namespace read


def test_a_namespace_label_opts_a_silent_deployment_in() -> None:
    act(Table(cluster=world(TWO_REVISIONS_NO_OPT_IN), namespace_label="true"))


def test_a_paused_deployment_is_paused() -> None:
    skip(Table(cluster=world(TWO_REVISIONS + "paused: true\n")), SkipReason.PAUSED)


def test_a_deployment_its_gitops_owner_keeps_is_gitops_managed() -> None:
    owner = GitOpsFact(refuse="Argo CD Application shop/web manages this Deployment")
    assert "Argo CD" in skip(Table(owner=owner), SkipReason.GITOPS_MANAGED).detail


# -- the revision ---------------------------------------------------------------------------
def test_an_alert_for_an_older_revision_is_not_current_revision() -> None:
    facts = Table(alert=alert(namespace="shop", deployment="web", replicaset="web-1"))
    result = skip(facts, SkipReason.NOT_CURRENT_REVISION)
    assert "current is revision 2" in result.detail and result.alerted is None


def test_no_replicaset_for_the_template_yet_is_not_current_revision() -> None:
    deployment, replicasets = world()
    facts = Table(cluster=(deployment, replicasets[:0]), patient=False)
    skip(facts, SkipReason.NOT_CURRENT_REVISION)


def test_the_revision_this_service_rolled_back_to_is_rollback_of_rollback() -> None:
    annotations = {
        "auto-rollback/enabled": "true",
        "auto-rollback/last-action": last_action(to_replicaset="web-2", age="3m"),
    }
    facts = Table(cluster=world(TWO_REVISIONS + f"annotations: {annotations!r}\n"))
    skip(facts, SkipReason.ROLLBACK_OF_ROLLBACK)


def test_an_alert_older_than_the_rollout_is_alert_predates_rollout() -> None:
    facts = Table(alert=alert(started="10m", namespace="shop", deployment="web"))
    result = skip(facts, SkipReason.ALERT_PREDATES_ROLLOUT)
    assert result.alerted is None  # it did not alert while current: no mark


def test_an_alert_long_after_the_rollout_is_no_recent_rollout_unless_overridden() -> None:
    old = world("revisions: [{image: 'web:1', age: 5h}, {image: 'web:2', age: 2h}]")
    skip(Table(cluster=old), SkipReason.NO_RECENT_ROLLOUT)
    replay = Request(source=Source.REPLAY, overrides=Overrides(ignore_recent_window=True))
    act(Table(cluster=old, request=replay))


def test_a_rollback_within_the_cooldown_is_cooldown_unless_overridden() -> None:
    annotations = {
        "auto-rollback/enabled": "true",
        "auto-rollback/last-action": last_action(to_replicaset="web-0", age="10m"),
    }
    recent = world(TWO_REVISIONS + f"annotations: {annotations!r}\n")
    skip(Table(cluster=recent), SkipReason.COOLDOWN)
    replay = Request(source=Source.REPLAY, overrides=Overrides(ignore_cooldown=True))
    act(Table(cluster=recent, request=replay))


def test_no_older_revision_with_evidence_is_no_healthy_revision_with_an_event() -> None:
    young = world("revisions: [{image: 'web:1', age: 5m}, {image: 'web:2', age: 3m}]")
    result = skip(Table(cluster=young), SkipReason.NO_HEALTHY_REVISION)
    assert "implicates revision 2" in result.no_target_event
    assert result.alerted is not None  # it alerted while current: every replica's tracker sees it


def test_prometheus_no_longer_confirming_is_not_confirmed() -> None:
    gone = ConfirmResult(Confirmation.NOT_CONFIRMED, "the expression returns nothing now")
    skip(Table(confirmed=gone), SkipReason.NOT_CONFIRMED)


def test_prometheus_unable_to_say_is_noted_and_acted_on() -> None:
    unknown = ConfirmResult(Confirmation.UNKNOWN, "Prometheus timed out")
    notes = act(Table(confirmed=unknown)).found.notes
    assert any("not confirmed by Prometheus" in note for note in notes)


# -- the gate -------------------------------------------------------------------------------
def test_max_rollbacks_in_the_window_is_circuit_open() -> None:
    result = skip(Table(gate=GateState(rollbacks=5)), SkipReason.CIRCUIT_OPEN)
    assert "max_rollbacks 5" in result.detail
    act(Table(gate=GateState(rollbacks=4)))


def test_the_same_dry_run_decision_again_is_duplicate() -> None:
    result = skip(Table(dry_run=True, gate=GateState(duplicate_of="d-1")), SkipReason.DUPLICATE)
    assert "d-1" in result.detail


def test_the_first_pass_leaves_the_gate_to_the_gate() -> None:
    act(Table(gate=None))


# -- acting -----------------------------------------------------------------------------------
def test_every_check_passed_is_act_to_the_last_healthy_revision() -> None:
    facts = Table()
    result = act(facts)
    plan = result.plan
    assert (plan.current.name, plan.target.name) == ("web-2", "web-1")
    assert plan.key == ("shop", "web", "web-2") and not plan.dry_run
    assert (result.found.from_revision, result.found.to_revision) == (2, 1)
    assert result.alerted is not None and result.alerted.replicaset == "web-2"
    assert facts.asked == [
        "resolution",
        "deployment",
        "gitops",
        "replicasets",
        "target",
        "confirmation",
    ]


def test_dry_run_is_act_with_a_dry_plan_that_counts_for_the_breaker() -> None:
    plan = act(Table(dry_run=True)).plan
    assert plan.dry_run and plan.counts_dry_run
    replayed = act(Table(dry_run=True, request=Request(source=Source.REPLAY))).plan
    assert replayed.dry_run and not replayed.counts_dry_run


# -- deciding again -------------------------------------------------------------------------
def test_a_newer_revision_than_the_deployment_read_is_redecide() -> None:
    stale = world(TWO_REVISIONS + "current: 1\n")
    result = decide(Table(cluster=stale))
    assert isinstance(result, Redecide) and not result.lagging


def test_a_controller_behind_the_deployment_is_redecide_after_a_pause() -> None:
    # The alert names only the Deployment: which revision it means waits for the numbering.
    lagging = world(TWO_REVISIONS + "current: 1\nbehind: true\n")
    result = decide(Table(alert=alert(namespace="shop", deployment="web"), cluster=lagging))
    assert isinstance(result, Redecide) and result.lagging


def test_a_repeat_for_the_revision_just_rolled_back_from_is_not_current_while_renumbering() -> None:
    # Just after a rollback the template runs web-1 again, but the controller has not yet
    # re-numbered web-1 above web-2: the alert's web-2 is not current, whatever the numbers say.
    lagging = world(TWO_REVISIONS + "current: 1\nbehind: true\n")
    facts = Table(cluster=lagging)
    detail = skip(facts, SkipReason.NOT_CURRENT_REVISION).detail
    assert "web-2" in detail and "re-number" in detail, detail
    assert "target" not in facts.asked and "confirmation" not in facts.asked


def test_a_deployment_only_repeat_just_after_a_rollback_is_rollback_of_rollback_at_once() -> None:
    # The same moment, for an alert that names only the Deployment: it implicates the
    # template's ReplicaSet, which last-action says this service rolled back to.
    annotations = {
        "auto-rollback/enabled": "true",
        "auto-rollback/last-action": last_action(to_replicaset="web-1", age="1s"),
    }
    lagging = world(TWO_REVISIONS + f"current: 1\nbehind: true\nannotations: {annotations!r}\n")
    facts = Table(alert=alert(namespace="shop", deployment="web"), cluster=lagging)
    detail = skip(facts, SkipReason.ROLLBACK_OF_ROLLBACK).detail
    assert "web-1" in detail and "re-number" in detail, detail


def test_the_last_attempt_settles_a_stale_read_for_a_revision_the_template_no_longer_runs() -> None:
    stale = world(TWO_REVISIONS + "current: 1\n")
    skip(Table(cluster=stale, patient=False), SkipReason.NOT_CURRENT_REVISION)
    # An alert that names the ReplicaSet the template runs still decides again.
    named_current = Table(alert=alert(namespace="shop", replicaset="web-1"), cluster=stale)
    assert isinstance(decide(named_current), Redecide)


REVERTED_TO_BAD = """
revisions:
  - {image: "web:1", age: 2h}
  - {image: "web:2", age: 3m, annotations: {"auto-rollback/bad-revision": '{"audit_id": "d-0"}'}}
"""


def test_a_bad_marked_current_revision_is_a_revert_only_if_the_deployment_stayed_as_read() -> None:
    # The ReplicaSets are listed after the Deployment is read. A rollback landing in between
    # (its PUT, then the bad mark on the revision it left) pairs the old template with the new
    # mark, before the controller re-numbers anything: a revert to all appearances.
    held = skip(Table(cluster=world(REVERTED_TO_BAD)), SkipReason.COOLDOWN)
    assert "reverted to since" in held.detail, held.detail
    moved = Table(cluster=world(REVERTED_TO_BAD), moved=True)
    assert isinstance(decide(moved), Redecide)
    assert moved.asked[-1] == "deployment_unmoved"
    # The last attempt decides on what it reads: held, the safe side of a loop.
    skip(Table(cluster=world(REVERTED_TO_BAD), moved=True, patient=False), SkipReason.COOLDOWN)


def test_the_policy_never_swallows_a_failed_read() -> None:
    class Unreachable(Table):
        def replicasets(self) -> list[dict[str, object]]:
            raise TimeoutError("GET replicasets timed out")

    with pytest.raises(TimeoutError):
        decide(Unreachable())


TWO_REVISIONS_NO_OPT_IN = """
revisions: [{image: "web:1", age: 2h}, {image: "web:2", age: 3m}]
annotations: {}
"""
TWO_REVISIONS_OPTED_OUT = """
revisions: [{image: "web:1", age: 2h}, {image: "web:2", age: 3m}]
annotations: {"auto-rollback/enabled": "false"}
"""
TWO_REVISIONS = """
revisions: [{image: "web:1", age: 2h}, {image: "web:2", age: 3m}]
"""


def test_every_skip_reason_of_the_readme_has_a_row_here() -> None:
    # Runs last in this file: every row above has recorded the reason it produced.
    if len(COVERED) < 3:
        pytest.skip("meaningful only after the rows above ran (the whole file)")
    assert set(SkipReason) - COVERED == set()
