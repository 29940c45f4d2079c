"""`rollback-webhook history` on a sandbox: ACTIVE SINCE only where it is known, the first skip
reason the receiver would give, and `-w` redrawing as the Deployment changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.receiver_harness import Harness, hours, minutes
from tests.serve.support import REPO


def history(harness: Harness, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", "history", target, *extra],
        capture_output=True,
        text=True,
        env=_env(harness),
        cwd=REPO,
        timeout=60,
        check=False,
    )


def _env(harness: Harness) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_WEBHOOK_")}
    return {**env, "KUBECONFIG": str(harness.sandbox.kubeconfig)}


def test_a_readopted_revision_that_was_replaced_has_no_invented_activation(harness: Harness):
    # v1, v2, v1 again (its ReplicaSet re-adopted as revision 3), then v3 replaces it.
    harness.deploy(
        "web",
        [("web:1", hours(5)), ("web:2", hours(4)), ("web:1", hours(3)), ("web:3", minutes(5))],
    )
    result = history(harness, "shop/web", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["revision"]: row for row in json.loads(result.stdout)["revisions"]}
    current, readopted = rows[4], rows[3]
    assert current["verdict"] == "current" and current["images"] == ["web:3"]
    assert current["active_since"] is not None
    assert readopted["images"] == ["web:1"]
    assert any(mark.startswith("re-adopted from") for mark in readopted["marks"])
    # Before: the current template's write time, hours after this revision stopped running.
    assert readopted["active_since"] is None
    table = history(harness, "shop/web").stdout
    assert "(ACTIVE SINCE -: re-adopted once and replaced since" in table


def test_a_deployment_not_opted_in_is_skipped_as_the_receiver_skips_it(harness: Harness):
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))], annotations={})
    result = history(harness, "shop/web")
    assert result.returncode == 0, result.stderr
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert decision["reason"] == "not_opted_in"
    assert f"a rollback now would be skipped: {decision['reason']} (" in result.stdout
    assert "no_healthy_revision" not in result.stdout


def test_an_opted_in_deployment_names_the_revision_a_rollback_picks(harness: Harness):
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    result = history(harness, "shop/web")
    assert f"a rollback now would pick revision 1 ({rs[0]})" in result.stdout, result.stdout


def test_watch_redraws_when_the_deployment_changes(harness: Harness, tmp_path: Path) -> None:
    harness.deploy("web", [("web:1", hours(2))])
    out = tmp_path / "watch.out"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook", "history", "shop/web", "-w", "--interval", "0.2"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(harness),
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 20
        while "web:1" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        harness.deploy("web", [("web:2", minutes(0))])
        while "web:2" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = out.read_text()
        assert "web:2" in text, text
        # The first table, then one redraw under a time stamp (stdout is not a terminal).
        assert text.count("shop/web") == 2 and text.count("\n--- ") == 1, text
        time.sleep(1)  # unchanged Deployment: nothing more is printed
        assert out.read_text() == text
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
