"""`rollback-webhook audit` and `replay` against a live server (werkzeug in a thread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.receiver_harness import hours, template_images
from tests.oncall.support import ALICE, OnCall, live_server


@pytest.fixture
def server(oncall: OnCall) -> Iterator[str]:
    with live_server(oncall.app) as url:
        yield url


def cli(url: str, *args: str, token: str = ALICE) -> subprocess.CompletedProcess[str]:
    """The real console script (python -m webhook) with URL and token from the environment."""
    env = {**os.environ, "ROLLBACK_WEBHOOK_URL": url, "ROLLBACK_WEBHOOK_ONCALL_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_audit_table_and_json_then_replay_preview_and_execute(
    oncall: OnCall, server: str, tmp_path: Path
) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )

    table = cli(server, "audit", "--namespace", "shop")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["TIME", "(UTC)", "OUTCOME"]
    assert "skipped" in row and "no_recent_rollout" in row and "shop/web" in row
    assert row.endswith(skip["id"])

    as_json = cli(server, "audit", "--outcome", "skipped", "--json")
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    assert [d["id"] for d in page["decisions"]] == [skip["id"]] and page["next_before"] is None

    preview = cli(
        server,
        "replay",
        "--audit-id",
        skip["id"],
        "--ignore-recent-window",
        "--reason",
        "outside the window by minutes",
    )
    assert preview.returncode == 0, preview.stderr + preview.stdout
    assert preview.stdout.startswith(
        "PREVIEW (dry run, nothing changed): shop/web: preview: "
        "would roll back revision 2 -> revision 1"
    )
    assert "--execute" in preview.stdout
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]

    token_file = tmp_path / "alice.token"
    token_file.write_text(ALICE + "\n")
    done = cli(
        server,
        "replay",
        "--audit-id",
        skip["id"],
        "--ignore-recent-window",
        "--execute",
        "--reason",
        "confirmed",
        "--json",
        "--token-file",
        str(token_file),
        token="",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["decisions"][0]["outcome"] == "rolled_back"
    assert result["decisions"][0]["actor"] == "alice"
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:1"]

    shown = cli(server, "audit", "--id", skip["id"])
    assert shown.returncode == 0, shown.stderr
    assert "replays:" in shown.stdout
    replay_lines = shown.stdout.split("replays:")[1].strip().splitlines()[1:]
    assert ["dry_run" in replay_lines[0], "rolled_back" in replay_lines[1]] == [True, True]
    assert all(f"replay of {skip['id']}" in line and "alice" in line for line in replay_lines)


def test_refused_replay_exits_3_with_the_reason(oncall: OnCall, server: str) -> None:
    rs = oncall.h.deploy(
        "web",
        [("web:1", hours(3)), ("web:2", hours(2))],
        annotations={"auto-rollback/enabled": "false"},
    )
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    result = cli(
        server,
        "replay",
        "--audit-id",
        skip["id"],
        "--execute",
        "--reason",
        "force",
        "--ignore-recent-window",
        "--ignore-cooldown",
    )
    assert result.returncode == 3, result.stderr
    assert "refused: not_opted_in" in result.stdout and "never overridable" in result.stdout


def test_server_errors_are_named(oncall: OnCall, server: str) -> None:
    wrong = cli(server, "audit", token="not-a-token")
    assert wrong.returncode == 1 and "HTTP 401: invalid on-call token" in wrong.stderr
    bad = cli(server, "audit", "--outcome", "exploded")
    assert bad.returncode == 1 and "HTTP 400: outcome" in bad.stderr
    missing = cli(server, "replay", "--audit-id", "d-nope", "--reason", "r")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr and "d-nope" in missing.stderr
    down = cli("http://127.0.0.1:9", "audit")
    assert down.returncode == 1 and "cannot reach http://127.0.0.1:9" in down.stderr
