"""`python -m webhook serve` as a subprocess, the way the serve and durability suites start it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def popen_serve(workdir: Path, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Write `config` to workdir/config.yaml and start `serve` on it, output to workdir/stdout
    and workdir/stderr, in its own process group (so a failed test can end it all)."""
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    ignored = {"ROLLBACK_WEBHOOK_CONFIG", "KUBECONFIG", "XDG_RUNTIME_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    # A HOME of its own: without XDG_RUNTIME_DIR, gunicorn would put its control socket there.
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO)})
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "webhook", "serve", "--config", str(config_file)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
