"""`demo --keep`: after the story, the sandbox and the receiver stay up to be explored by hand.

Prints the commands (kubectl, history, audit, replay, a hand-sent alert with curl, the console
URL and an on-call token), each runnable as is from another terminal, then waits for Ctrl-C
(or SIGTERM) and stops everything it started.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from lab.demo.report import Printer
from lab.demo.scenario import WORKLOAD

ONCALL_NAME = "you"


def oncall_tokens(workdir: Path) -> tuple[Path, Path]:
    """(the receiver's on-call tokens file, a file with just your token): written once."""
    token = "oncall-" + secrets.token_hex(12)
    tokens = workdir / "oncall-tokens"
    tokens.write_text(f"{ONCALL_NAME}:{token}\n")
    mine = workdir / "oncall.token"
    mine.write_text(token + "\n")
    for path in (tokens, mine):
        path.chmod(0o600)
    return tokens, mine


def _alert_file(workdir: Path, replicaset: str) -> Path:
    """An Alertmanager payload for the current revision, to send by hand with curl."""
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "HandSentAlert",
            "rollback_trigger": "restart_rate",
            "namespace": WORKLOAD.namespace,
            "deployment": WORKLOAD.name,
            "replicaset": replicaset,
        },
        "annotations": {"summary": "sent by hand with curl"},
        "startsAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
    }
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HandSentAlert"}',
        "status": "firing",
        "receiver": "rollback-webhook",
        "groupLabels": {"alertname": "HandSentAlert"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [alert],
    }
    path = workdir / "hand-sent-alert.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def explore(
    printer: Printer,
    *,
    workdir: Path,
    kubeconfig: Path,
    base_url: str,
    receiver_token_file: Path,
    oncall_token_file: Path,
    prometheus_url: str | None,
    current_replicaset: str,
    last_decision: str | None,
) -> None:
    """Print how to explore what runs, then block until Ctrl-C or SIGTERM."""
    config: dict[str, Any] = {"kubernetes": {"kubeconfig": str(kubeconfig)}}
    if prometheus_url:
        config["prometheus"] = {"url": prometheus_url}
    config_file = workdir / "explore.yaml"
    config_file.write_text(yaml.safe_dump(config))
    alert = _alert_file(workdir, current_replicaset)
    q = shlex.quote
    target = f"{WORKLOAD.namespace}/{WORKLOAD.name}"
    server = f"--url {base_url} --token-file {q(str(oncall_token_file))}"
    lines = [
        f"export KUBECONFIG={q(str(kubeconfig))}",
        f"kubectl get deployments,replicasets -n {WORKLOAD.namespace} -o wide",
        f"kubectl rollout history deployment/{WORKLOAD.name} -n {WORKLOAD.namespace}",
        f"rollback-webhook history {target} --config {q(str(config_file))}",
        f"rollback-webhook history {target} --config {q(str(config_file))} -w   # live",
        f"rollback-webhook audit {server}",
    ]
    if last_decision:
        lines.append(
            f"rollback-webhook replay --audit-id {last_decision} --reason 'trying replay' {server}"
        )
    lines.append(
        f'curl -sS -H "Authorization: Bearer $(cat {q(str(receiver_token_file))})" '
        f"-H 'Content-Type: application/json' --data @{q(str(alert))} {base_url}/api/v1/alerts"
    )
    token = oncall_token_file.read_text().strip()
    # For scripts and docs/tutorial.md: `source explore.env` sets what the commands above read
    # (written last: its presence means everything is up).
    environment = {
        "KUBECONFIG": str(kubeconfig),
        "ROLLBACK_WEBHOOK_CONFIG": str(config_file),
        "ROLLBACK_WEBHOOK_URL": base_url,
        "ROLLBACK_WEBHOOK_ONCALL_TOKEN": token,
        "RECEIVER_TOKEN_FILE": str(receiver_token_file),
        "CONSOLE_URL": base_url + "/",
    }
    # Renamed into place whole: a script polling for the file never sources half of it.
    env_file = workdir / "explore.env"
    partial = workdir / "explore.env.partial"
    partial.write_text("".join(f"export {k}={q(v)}\n" for k, v in environment.items()))
    partial.replace(env_file)
    printer.section(
        "explore it (the sandbox and the receiver keep running; Ctrl-C here stops them)",
        "\n".join(
            [
                *lines,
                "",
                f"console: {base_url}/  (log in with the on-call token {token}, "
                f"also in {oncall_token_file})",
                f"Deployment page: {base_url}/deployments/{target}",
                f"files: {workdir} (source {env_file} to set KUBECONFIG and the rest)",
            ]
        ),
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def keep_exploring(
    printer: Printer,
    receiver: Any,
    sandbox: Any,
    *,
    workdir: Path,
    oncall: Path,
    prometheus_url: str | None = None,
) -> None:
    """`explore` for a lab ReceiverServer and SandboxHandle."""
    from lab.pipeline.receiver import ALERTS_PATH

    current = WORKLOAD.replicaset_for(sandbox, WORKLOAD.images(sandbox)[0])["metadata"]["name"]
    rows = receiver.service.audit.query(
        namespace=WORKLOAD.namespace, deployment=WORKLOAD.name, limit=50
    )
    # The newest decision a replay can run: a resolved alert is never replayed, and the
    # resolved notification follows the rollback, so the newest row is usually that one.
    rows = [row for row in rows if row.get("reason") != "resolved"]
    explore(
        printer,
        workdir=workdir,
        kubeconfig=sandbox.kubeconfig,
        base_url=receiver.url.removesuffix(ALERTS_PATH),
        receiver_token_file=receiver.token_file,
        oncall_token_file=oncall,
        prometheus_url=prometheus_url,
        current_replicaset=str(current),
        last_decision=str(rows[0]["id"]) if rows else None,
    )
