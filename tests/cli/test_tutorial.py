"""docs/tutorial.md, executed: every `sh` block in order in one bash (-eu -o pipefail), with
`rollback-webhook` being this checkout, kubectl and curl real, and a HOME of its own. The
expected results the page shows are asserted on the output, so the page cannot rot."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.binaries import require_binary

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def shell_blocks(text: str) -> list[str]:
    return [match.group(1) for match in BLOCK.finditer(text)]


def test_tutorial_has_the_steps_it_promises() -> None:
    blocks = shell_blocks(TUTORIAL.read_text())
    joined = "\n".join(blocks)
    assert len(blocks) >= 8
    for command in ("kubectl ", "curl ", "rollback-webhook history", "rollback-webhook audit"):
        assert command in joined
    assert "rollback-webhook replay" in joined and "--execute" in joined
    assert "CONSOLE_URL" in joined


def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    require_binary("kubectl")
    require_binary("curl")
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "rollback-webhook"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m webhook "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    script = "\n".join(
        f'echo "### step {i}"\n{block}'
        for i, block in enumerate(shell_blocks(TUTORIAL.read_text()), 1)
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ROLLBACK_WEBHOOK_", "KUBECONFIG"))
    }
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{shims}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(tmp_path),
        }
    )
    process = subprocess.Popen(
        ["bash", "-eu", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the demo it starts in the background is in this group
    )
    try:
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None or process.returncode != 0:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    assert process.returncode == 0, output
    for expected in (
        "current [re-adopted from 1]",  # step 3
        "the new revision's ReplicaSet: checkout-",  # step 4
        '"reason": "cooldown"',  # step 5
        "a rollback now would pick revision 4",  # step 4
        "PREVIEW (dry run, nothing changed): shop/checkout: preview: would roll back revision 5 "
        "-> revision 4",
        "EXECUTED: shop/checkout: rolled back revision 5 -> revision 4",
        "\nregistry.local/checkout:1.2\n",
        "login page: HTTP 200",
        "stopping the receiver and the sandbox",  # step 9: the demo ended cleanly
    ):
        assert expected in output, f"{expected!r} not in:\n{output}"
    assert "Traceback" not in output, output
