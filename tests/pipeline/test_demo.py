"""`rollback-webhook demo` as a user runs it: a subprocess from the checkout, a clean exit,
the story in the output, and no process left behind (every child's command line names the
work directory, so a survivor would show up in /proc)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.binaries import require_binary
from webhook.commands.audit import DECISION_HEADER

REPO = Path(__file__).resolve().parents[2]
DEMO_LIMIT_SECONDS = 120  # issue 6: under two minutes


Completed = subprocess.CompletedProcess[str]


def _run_demo(workdir: Path, *, path: str | None = None) -> tuple[Completed, float]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "demo", "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_LIMIT_SECONDS + 30,
        check=False,
    )
    return result, time.monotonic() - started


def _fresh_clone_with_own_python(tmp_path: Path) -> tuple[Path, Path]:
    """A `git clone` of this checkout and a venv on top of the installed packages, so the
    README's command installs the clone into that venv and not over the suite's package."""
    git = require_binary("git")
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        timeout=120,
    )
    return clone, venv / "bin" / "python"


def _survivors(workdir: Path) -> list[str]:
    """Command lines of live processes that mention the work directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(workdir) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _assert_story(output: str) -> None:
    assert "v1: shop/checkout runs registry.local/checkout:1.0" in output
    assert "v2: rolling out registry.local/checkout:1.1" in output
    assert "shop/checkout runs registry.local/checkout:1.0 again" in output
    assert "== rollback-webhook history shop/checkout" in output
    assert "current [re-adopted from 1]" in output
    assert "== rollback-webhook audit --namespace shop --deployment checkout" in output
    # The columns `rollback-webhook audit` prints (padded to the widest cell, so any spacing).
    header = r"\s+".join(re.escape(column) for column in DECISION_HEADER)
    assert re.search(header, output), output[-3000:]
    assert "Why v1 is now revision 3, not 1" in output
    assert "next: rollback-webhook demo --keep" in output
    assert "rolled_back" in output


@pytest.mark.pipeline
def test_demo_runs_the_real_pipeline_and_leaves_nothing_running(tmp_path: Path) -> None:
    """The README's first command, scripts/demo.sh, from a fresh clone: set-up, then the demo."""
    require_binary("prometheus")
    require_binary("prometheus-alertmanager", "alertmanager")
    clone, python = _fresh_clone_with_own_python(tmp_path)
    workdir = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/demo.sh", "--workdir", str(workdir)],
        cwd=clone,
        env={**os.environ, "PYTHON": str(python)},
        capture_output=True,
        text=True,
        timeout=DEMO_LIMIT_SECONDS + 120,
        check=False,
    )
    took = time.monotonic() - started
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    _assert_story(output)
    # pending lasts `for:` (3 s), so the 0.5 s progress poll sees it whatever the load
    assert "prometheus: RolloutRestartRateHigh pending" in output
    assert "receiver: rolled_back for RolloutRestartRateHigh" in output
    assert "every process the demo started has exited" in output
    assert took < DEMO_LIMIT_SECONDS
    assert _survivors(workdir) == []
    # The decisions went to the file, one JSON line each, not into the story.
    assert '"event": "decision"' not in output
    assert '"event": "decision"' in (workdir / "decisions.jsonl").read_text()


def test_demo_without_prometheus_posts_the_recorded_payload(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    workdir = tmp_path / "demo"
    result, _ = _run_demo(workdir, path=str(empty_bin))
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "not on PATH: prometheus" in output
    assert "posting the recorded Alertmanager payload" in output
    # The recording names this run's ReplicaSet: the demo's template has not drifted from it.
    assert "(recorded for" not in output
    assert "receiver answered 200: rolled_back" in output
    _assert_story(output)
    assert _survivors(workdir) == []
