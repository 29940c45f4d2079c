"""`serve` on a cluster without the Lease namespace: it says so at start (once, with the
command that fixes it), /readyz answers 503 with that reason, and becomes ready as soon as
the namespace exists and the tracker takes the Lease."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from lab.pipeline.processes import free_port
from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from tests.serve.support import popen_serve
from tests.serve.test_serve import Served
from tests.tracker.support import create_lease_namespace, wait_for


def test_missing_lease_namespace_is_reported_and_not_ready(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    workdir = tmp_path / "serve"
    (workdir / "home").mkdir(parents=True)
    port = free_port()
    config = {
        "audit": {"path": str(workdir / "audit.sqlite")},
        "auth": {"receiver": {"bearer_token_file": str(tmp_path / "token")}},
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
        "server": {"host": "127.0.0.1", "port": port, "threads": 2},
        "tracker": {"resync_seconds": 1, "lease_duration_seconds": 3},
    }
    process = popen_serve(workdir, config)
    served = Served(process, url=f"http://127.0.0.1:{port}", workdir=workdir)
    try:
        # The answer the wait saw (a second request could time out on a busy machine).
        status, _, body = wait_for(
            lambda: (answer := served.get("/readyz"))[0] == 503 and answer,
            seconds=20,
            what="/readyz answered",
        )
        reason = json.loads(body)["error"]
        assert status == 503
        assert "namespace 'rollback-webhook' (tracker.lease_namespace) does not exist" in reason
        assert "kubectl create namespace rollback-webhook" in reason
        # Several election rounds later (every second): the cause is in the log once.
        wait_for(lambda: "cannot create Lease" in served.stderr, seconds=10, what="a warning")
        started_line = [line for line in served.stderr.splitlines() if "ERROR" in line]
        assert any("until then no replica writes health stamps" in x for x in started_line)
        create_lease_namespace(sandbox)
        wait_for(lambda: served.get("/readyz")[0] == 200, seconds=20, what="/readyz ready")
        # /readyz reads the Lease from the cluster; the tracker process logs that it became
        # leader just after writing it.
        wait_for(lambda: "became leader" in served.stderr, seconds=10, what="'became leader'")
        assert served.stderr.count("cannot create Lease") == 1, served.stderr
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
