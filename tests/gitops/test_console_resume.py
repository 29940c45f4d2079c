"""The console's resume form: a Flux owner paused by a real rollback on the sandbox is handed
back from the Deployment's page, audited with the console user; CSRF, sessions and bad fields."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes
from tests.gitops.support import FLUX_KUSTOMIZATION, deploy_owned, events
from tests.oncall.support import ALICE, BOB, RECEIVER, OnCall
from webhook.audit import SqliteStore
from webhook.gitops import ANNOTATION_GITOPS_PAUSED, FLUX_RECONCILE

PAGE = "/deployments/shop/web"
ACTION = "/deployments/shop/web/resume"


def csrf_of(oncall: OnCall, path: str) -> str:
    found = re.search(
        r'name="csrf_token" value="([^"]+)"', oncall.client.get(path).get_data(as_text=True)
    )
    assert found
    return found.group(1)


def login(oncall: OnCall, token: str = ALICE) -> None:
    csrf = csrf_of(oncall, "/login")
    response = oncall.client.post("/login", data={"csrf_token": csrf, "token": token})
    assert response.status_code == 302


def paused_by_a_rollback(harness: Harness) -> dict[str, Any]:
    """A Flux-owned Deployment rolled back by an alert: the rollback's write paused its owner."""
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=v2, started_ago=minutes(1))
    )
    assert decision["outcome"] == "rolled_back", decision
    assert ANNOTATION_GITOPS_PAUSED in harness.deployment("shop", "web")["metadata"]["annotations"]
    return decision


def page_text(oncall: OnCall, path: str = PAGE) -> str:
    response = oncall.client.get(path)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def resumes(harness: Harness) -> list[dict[str, Any]]:
    return [
        r
        for r in harness.service.audit.query(namespace="shop", limit=50)
        if r["source"] == "resume"
    ]


def test_the_form_resumes_the_owner_paused_by_a_rollback(harness: Harness) -> None:
    rollback = paused_by_a_rollback(harness)
    oncall = OnCall(harness)
    login(oncall)
    page = page_text(oncall)
    assert 'id="resume-form"' in page and "Resume the owner" in page
    csrf = csrf_of(oncall, PAGE)

    answer = oncall.client.post(
        ACTION, data={"csrf_token": csrf, "reason": "Git reverted to web:1"}
    )

    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(PAGE + "?resume=")
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    assert ANNOTATION_GITOPS_PAUSED not in annotations and FLUX_RECONCILE not in annotations
    [row] = resumes(harness)
    assert row["outcome"] == "resumed" and row["actor"] == "alice"
    assert row["detail"].startswith("alice: Git reverted to web:1 | resumed Flux Kustomization")
    assert rollback["id"] in row["detail"]  # the pause it undid, by the rollback's audit id
    [event] = events(harness, "AutoRollbackResumed")
    assert row["id"] in event["message"] and "alice: Git reverted to web:1" in event["message"]
    shown = page_text(oncall, answer.headers["Location"])
    assert "resumed by alice: alice: Git reverted to web:1 | resumed Flux Kustomization" in shown
    assert 'id="resume-form"' not in shown  # nothing paused any more: no button

    # The same form sent again (a second tab): nothing paused, said so, nothing recorded.
    again = oncall.client.post(ACTION, data={"csrf_token": csrf, "reason": "again"})
    assert again.status_code == 303 and again.headers["Location"].endswith("?resume=nothing")
    assert "nothing resumed: shop/web carries no pause by rollback-webhook" in page_text(
        oncall, again.headers["Location"]
    )
    assert len(resumes(harness)) == 1


def test_no_form_without_a_pause_recorded_by_this_service(harness: Harness) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2))], FLUX_KUSTOMIZATION)
    oncall = OnCall(harness)
    login(oncall)
    page = page_text(oncall)
    assert "owner: Flux Kustomization flux-system/apps" in page
    assert 'id="resume-form"' not in page


def test_resume_without_or_with_a_foreign_csrf_token_is_refused(harness: Harness) -> None:
    paused_by_a_rollback(harness)
    oncall = OnCall(harness)
    login(oncall, BOB)
    bob_csrf = csrf_of(oncall, PAGE)
    oncall.client = oncall.app.test_client()  # a fresh browser for Alice
    login(oncall, ALICE)
    for extra in ({}, {"csrf_token": ""}, {"csrf_token": bob_csrf}):
        response = oncall.client.post(ACTION, data={"reason": "r", **extra})
        assert response.status_code == 403 and "CSRF" in response.get_data(as_text=True)
    assert ANNOTATION_GITOPS_PAUSED in harness.deployment("shop", "web")["metadata"]["annotations"]
    assert resumes(harness) == []


def test_no_session_or_a_receiver_token_is_sent_to_login(harness: Harness) -> None:
    paused_by_a_rollback(harness)
    oncall = OnCall(harness)
    for headers in (
        {},
        {"Authorization": f"Bearer {RECEIVER}"},
        {"Authorization": f"Bearer {ALICE}"},
    ):
        response = oncall.client.post(ACTION, data={"reason": "r"}, headers=headers)
        assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert ANNOTATION_GITOPS_PAUSED in harness.deployment("shop", "web")["metadata"]["annotations"]
    assert resumes(harness) == []


def test_bad_fields_are_a_400_naming_the_field(harness: Harness) -> None:
    paused_by_a_rollback(harness)
    oncall = OnCall(harness)
    login(oncall)
    csrf = csrf_of(oncall, PAGE)
    form = "application/x-www-form-urlencoded"
    bodies = [
        f"csrf_token={csrf}",
        f"csrf_token={csrf}&reason=+++",
        f"csrf_token={csrf}&reason=" + "x" * 2001,
        f"csrf_token={csrf}&reason=%ED%A0%80",  # a lone surrogate, as CESU-8
        f"csrf_token={csrf}&reason=ok%FF",
    ]
    for body in bodies:
        response = oncall.client.post(ACTION, data=body, content_type=form)
        assert response.status_code == 400, (body[-20:], response.get_data(as_text=True))
        assert "reason:" in response.get_data(as_text=True)
    bad_name = oncall.client.post(
        "/deployments/shop/Web_X/resume", data={"csrf_token": csrf, "reason": "r"}
    )
    assert bad_name.status_code == 400 and "deployment:" in bad_name.get_data(as_text=True)
    dotted = oncall.client.post(
        "/deployments/a.b/web/resume", data={"csrf_token": csrf, "reason": "r"}
    )
    # No Deployment can live there: refused as the API server would, naming it, nothing recorded.
    assert dotted.status_code == 400 and "namespace:" in dotted.get_data(as_text=True)
    assert ANNOTATION_GITOPS_PAUSED in harness.deployment("shop", "web")["metadata"]["annotations"]
    assert resumes(harness) == []


def test_an_audit_store_down_is_a_503_and_the_owner_stays_paused(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused_by_a_rollback(harness)
    oncall = OnCall(harness)
    login(oncall)
    csrf = csrf_of(oncall, PAGE)
    # The store goes down after the session was checked (the sessions keep their own store).
    (tmp_path / "not-a-directory").write_text("")
    broken = SqliteStore(tmp_path / "not-a-directory" / "audit.sqlite")
    monkeypatch.setattr(harness.service, "audit", broken)
    harness.sandbox.controls.clear_requests()

    answer = oncall.client.post(ACTION, data={"csrf_token": csrf, "reason": "Git reverted"})

    text = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 503, (answer.status_code, text[:300])
    assert "audit store unavailable" in text and "not-a-directory" in text
    # No record, no write: the owner is still paused, by the record on the Deployment.
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    assert ANNOTATION_GITOPS_PAUSED in annotations and FLUX_RECONCILE in annotations
    writes = [r for r in harness.sandbox.controls.requests() if r["verb"] in {"update", "patch"}]
    assert writes == []


def test_a_refusal_other_than_nothing_paused_is_a_page_that_says_why(harness: Harness) -> None:
    """A resume of the Deployment still in progress (its write got no answer): the form's 409
    says so, rather than claiming nothing was paused while the page still shows the pause."""
    paused_by_a_rollback(harness)
    harness.sandbox.controls.fault(
        method="PUT",
        path=r"^/apis/apps/v1/namespaces/shop/deployments/web$",
        action="hang",
        delay=3,
    )
    oncall = OnCall(harness)
    login(oncall)
    csrf = csrf_of(oncall, PAGE)
    first = oncall.client.post(ACTION, data={"csrf_token": csrf, "reason": "Git fixed"})
    assert first.status_code == 503, first.get_data(as_text=True)
    harness.sandbox.controls.clear_faults()

    again = oncall.client.post(ACTION, data={"csrf_token": csrf, "reason": "again"})

    assert again.status_code == 409
    text = html.unescape(again.get_data(as_text=True))
    assert "a resume of shop/web is in progress" in text and "nothing resumed" not in text
    assert ANNOTATION_GITOPS_PAUSED in harness.deployment("shop", "web")["metadata"]["annotations"]
