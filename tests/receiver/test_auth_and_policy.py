"""Who may post alerts (bearer, basic, none), and the policy knobs a Deployment owner turns:
`require_opt_in: false` and the per-Deployment `auto-rollback/*` annotations (README: safety
policy, HTTP API)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import (
    SERVICE_TOKEN,
    TOKEN,
    Harness,
    hours,
    minutes,
    now,
    template_images,
)
from webhook.auth import Credentials
from webhook.config import (
    RECEIVER_PASSWORD_ENV,
    RECEIVER_TOKEN_ENV,
    ConfigError,
    settings_from_dict,
)
from webhook.revisions import format_k8s_time
from webhook.runtime import build_app, build_service

USER = "alertmanager"
PASSWORD = "basic-secret-password"

MakeHarness = Callable[..., Harness]


@pytest.fixture(autouse=True)
def no_secrets_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials also come from env: a developer's shell must not decide these tests."""
    monkeypatch.delenv(RECEIVER_TOKEN_ENV, raising=False)
    monkeypatch.delenv(RECEIVER_PASSWORD_ENV, raising=False)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post_with(harness: Harness, authorization: str | None, body: Any) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return harness.client.post(
        "/api/v1/alerts", data=json.dumps(body), headers=headers, content_type="application/json"
    )


def nothing_stored(harness: Harness) -> bool:
    return harness.service.audit.payloads() == [] and harness.service.audit.query() == []


@pytest.fixture
def basic_only(make_harness: MakeHarness, tmp_path: Path) -> Harness:
    """A receiver configured with basic auth only (no bearer token file)."""
    (tmp_path / "password").write_text(PASSWORD + "\n")
    return make_harness(
        auth={
            "receiver": {
                "basic_username": USER,
                "basic_password_file": str(tmp_path / "password"),
            },
            "oncall_tokens_file": str(tmp_path / "oncall"),
        }
    )


# -- basic auth ---------------------------------------------------------------------------------
def test_basic_auth_with_the_right_credentials_is_decided(basic_only: Harness) -> None:
    rs = basic_only.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    payload = basic_only.payload(basic_only.alert(namespace="shop", deployment="web"))
    response = post_with(basic_only, basic(USER, PASSWORD), payload)
    assert response.status_code == 200, response.get_json()
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back" and decision["to_replicaset"] == rs[0]
    assert decision["actor"] == "alertmanager"
    stored = basic_only.service.audit.payload(response.get_json()["payload_id"])
    assert stored is not None and stored.actor == "alertmanager"


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (basic(USER, "wrong-password"), "invalid basic credentials"),
        (basic("mallory", PASSWORD), "invalid basic credentials"),
        ("Basic not*base64!", "malformed basic credentials"),
        ("Basic \u00e9", "malformed basic credentials"),  # not ASCII: b64decode's ValueError
        (f"Bearer {TOKEN}", "unsupported Authorization scheme 'bearer'"),
        (None, "missing Authorization header"),
    ],
    ids=[
        "wrong-password",
        "wrong-user",
        "malformed-base64",
        "not-ascii",
        "bearer-when-basic-only",
        "none",
    ],
)
def test_basic_auth_rejections_are_401_naming_the_problem_and_store_nothing(
    basic_only: Harness, authorization: str | None, message: str
) -> None:
    basic_only.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    payload = basic_only.payload(basic_only.alert(namespace="shop", deployment="web"))
    response = post_with(basic_only, authorization, payload)
    assert response.status_code == 401
    assert message in response.get_json()["error"]
    assert response.headers.get("WWW-Authenticate")
    assert nothing_stored(basic_only)
    assert template_images(basic_only.deployment("shop", "web")) == ["web:2"]


def test_basic_only_receiver_challenges_with_basic(basic_only: Harness) -> None:
    response = post_with(basic_only, None, basic_only.payload())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("basic ")


def test_basic_password_may_contain_a_colon(make_harness: MakeHarness, tmp_path: Path) -> None:
    # RFC 7617: the user-id ends at the first colon; the password may hold more of them.
    (tmp_path / "password").write_text("pa:ss:word")
    harness = make_harness(
        auth={
            "receiver": {
                "basic_username": USER,
                "basic_password_file": str(tmp_path / "password"),
            },
        }
    )
    body = harness.payload(harness.alert(namespace="shop", deployment="web"))
    assert post_with(harness, basic(USER, "pa:ss:word"), body).status_code == 200
    assert post_with(harness, basic(USER + ":pa", "ss:word"), body).status_code == 200
    assert post_with(harness, basic(USER, "pa:ss"), body).status_code == 401


def test_bearer_and_basic_both_configured_each_work(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    harness = make_harness(
        auth={
            "receiver": {
                "bearer_token_file": str(tmp_path / "token"),
                "basic_username": USER,
                "basic_password_file": str(tmp_path / "password"),
            },
        }
    )
    body = harness.payload(harness.alert(namespace="shop", deployment="web"))
    assert post_with(harness, f"Bearer {TOKEN}", body).status_code == 200
    assert post_with(harness, basic(USER, PASSWORD), body).status_code == 200
    # Each credential is checked against its own secret, not the other's.
    assert post_with(harness, f"Bearer {PASSWORD}", body).status_code == 401
    assert post_with(harness, basic(USER, TOKEN), body).status_code == 401
    assert len(harness.service.audit.payloads()) == 2


def test_basic_username_without_a_password_stops_start_up(tmp_path: Path) -> None:
    settings = settings_from_dict({"auth": {"receiver": {"basic_username": USER}}})
    with pytest.raises(ConfigError, match=r"^auth\.receiver\.basic_password_file: "):
        Credentials.load(settings)


def test_basic_password_without_a_username_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    settings = settings_from_dict(
        {"auth": {"receiver": {"basic_password_file": str(tmp_path / "password")}}}
    )
    with pytest.raises(ConfigError, match=r"^auth\.receiver\.basic_username: "):
        Credentials.load(settings)


# -- no credentials -----------------------------------------------------------------------------
def test_allow_unauthenticated_accepts_requests_without_authorization(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = make_harness(auth={"receiver": {"allow_unauthenticated": True}})
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    response = harness.post(
        harness.payload(harness.alert(namespace="shop", deployment="web")), token=None
    )
    assert response.status_code == 200, response.get_json()
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back"
    assert decision["actor"] == "unauthenticated"
    with caplog.at_level(logging.WARNING, logger="webhook.runtime"):
        build_app(harness.service)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("auth.receiver.allow_unauthenticated" in r.getMessage() for r in warnings)


def test_allow_unauthenticated_does_not_waive_configured_credentials(
    make_harness: MakeHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # With a token configured, the flag is moot: the token is required and nothing is warned.
    harness = make_harness(
        auth={
            "receiver": {
                "bearer_token_file": str(tmp_path / "token"),
                "allow_unauthenticated": True,
            },
        }
    )
    body = harness.payload(harness.alert(namespace="shop", deployment="web"))
    assert harness.post(body, token=None).status_code == 401
    assert nothing_stored(harness)
    with caplog.at_level(logging.WARNING, logger="webhook.runtime"):
        build_app(harness.service)
    assert not any("allow_unauthenticated" in r.getMessage() for r in caplog.records)


def test_no_credentials_and_no_allow_unauthenticated_stops_start_up() -> None:
    settings = settings_from_dict({"auth": {"receiver": {}}})
    with pytest.raises(ConfigError, match=r"^auth\.receiver: ") as raised:
        Credentials.load(settings)
    assert "allow_unauthenticated" in str(raised.value)


# -- require_opt_in: false ----------------------------------------------------------------------
def test_without_require_opt_in_an_unannotated_deployment_is_acted_on(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness(require_opt_in=False)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))], annotations={})
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_replicaset"] == rs[0]
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]


def test_without_require_opt_in_an_explicit_opt_out_still_wins(make_harness: MakeHarness) -> None:
    harness = make_harness(require_opt_in=False)
    harness.deploy(
        "web",
        [("web:1", hours(2)), ("web:2", minutes(3))],
        annotations={"auto-rollback/enabled": "false"},
    )
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "not_opted_in" and '"false"' in decision["detail"]
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


# -- per-Deployment annotations -----------------------------------------------------------------
def stamp_healthy(harness: Harness, replicaset: str, *, since: timedelta) -> None:
    """What the health tracker writes on a revision that proved healthy (evidence rule 1)."""
    harness.official().patch_namespaced_replica_set(
        replicaset,
        "shop",
        {
            "metadata": {
                "annotations": {"auto-rollback/healthy-since": format_k8s_time(now() - since)}
            }
        },
    )


def rolled_back_ten_minutes_ago(
    harness: Harness, name: str, annotations: dict[str, str]
) -> list[str]:
    """`name` was rolled back from :2 to :1 ten minutes ago by this service (a replica whose
    clock reads ten minutes earlier does the real rollback), then :1 was stamped healthy and a
    human rolled out :3 just now. Returns the ReplicaSet names (:1, :2, :3)."""
    rs = harness.deploy(
        name, [(f"{name}:1", hours(3)), (f"{name}:2", minutes(13))], annotations=annotations
    )
    earlier = build_service(
        harness.settings,
        api_client=harness.sandbox.api_client(SERVICE_TOKEN),
        clock=lambda: now() - minutes(10),
    )
    alert = harness.alert(
        namespace="shop", deployment=name, replicaset=rs[1], started_ago=minutes(12)
    )
    [first] = earlier.receive(json.dumps(harness.payload(alert))).decisions
    assert first.outcome == "rolled_back", first
    stamp_healthy(harness, rs[0], since=minutes(1))
    return [*rs, *harness.deploy(name, [(f"{name}:3", minutes(0))], annotations=annotations)[2:]]


def test_cooldown_annotation_shortens_the_cooldown(harness: Harness) -> None:
    short = {"auto-rollback/enabled": "true", "auto-rollback/cooldown": "5m"}
    web = rolled_back_ten_minutes_ago(harness, "web", short)
    rolled_back_ten_minutes_ago(harness, "api", {"auto-rollback/enabled": "true"})
    [acted, held] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", started_ago=minutes(0)),
        harness.alert(namespace="shop", deployment="api", started_ago=minutes(0)),
    )
    # web: 10 minutes since its rollback is past its own 5m cooldown.
    assert acted["outcome"] == "rolled_back", acted
    assert acted["from_replicaset"] == web[2] and acted["to_replicaset"] == web[0]
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
    # api, same history, no annotation: the default hour still holds it.
    assert held["reason"] == "cooldown" and "3600s" in held["detail"], held
    assert template_images(harness.deployment("shop", "api")) == ["api:3"]


def test_min_healthy_seconds_annotation_lets_a_short_lived_revision_count(
    harness: Harness,
) -> None:
    # web:1 ran one minute before web:2: not healthy by the default 600s, healthy by 30s.
    rs = harness.deploy(
        "web",
        [("web:1", minutes(4)), ("web:2", minutes(3))],
        annotations={"auto-rollback/enabled": "true", "auto-rollback/min-healthy-seconds": "30"},
    )
    harness.deploy("api", [("api:1", minutes(4)), ("api:2", minutes(3))])
    [acted, unproven] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web"),
        harness.alert(namespace="shop", deployment="api"),
    )
    assert acted["outcome"] == "rolled_back", acted
    assert acted["to_replicaset"] == rs[0]
    assert ">= 30s" in acted["detail"]
    assert unproven["reason"] == "no_healthy_revision", unproven


def test_bad_annotation_value_is_ignored_and_noted_in_the_detail(harness: Harness) -> None:
    harness.deploy(
        "web",
        [("web:1", hours(2)), ("web:2", minutes(3))],
        annotations={"auto-rollback/enabled": "true", "auto-rollback/min-healthy-seconds": "soon"},
    )
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    assert decision["outcome"] == "rolled_back", decision
    # The configured default (600s) applied instead, and the detail says what was ignored.
    assert ">= 600s" in decision["detail"]
    assert "ignored auto-rollback/min-healthy-seconds" in decision["detail"]
    assert "'soon'" in decision["detail"]
    row = harness.audit_row(decision["id"])
    assert "ignored auto-rollback/min-healthy-seconds" in row["detail"]


def test_bad_annotation_value_still_applies_the_default(harness: Harness) -> None:
    # web:1 ran one minute: "soon" must not read as 0s (which would prove it healthy).
    harness.deploy(
        "web",
        [("web:1", minutes(4)), ("web:2", minutes(3))],
        annotations={"auto-rollback/enabled": "true", "auto-rollback/min-healthy-seconds": "soon"},
    )
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "no_healthy_revision", decision
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


def test_bad_annotation_is_noted_even_when_the_decision_skips(harness: Harness) -> None:
    # The owner meant a 5-minute cooldown but wrote "5min": the default hour applies, and the
    # skip must tell them why their annotation did nothing.
    typo = {"auto-rollback/enabled": "true", "auto-rollback/cooldown": "5min"}
    rolled_back_ten_minutes_ago(harness, "web", typo)
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", started_ago=minutes(0))
    )
    assert decision["reason"] == "cooldown"
    assert "ignored auto-rollback/cooldown" in decision["detail"]
