"""The demo without prometheus and alertmanager: the receiver gets the Alertmanager payload
the real pipeline once sent for this very story (lab/demo/payload.json), over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from lab.demo.explore import keep_exploring, oncall_tokens
from lab.demo.report import Printer
from lab.demo.scenario import FAULT, NEXT_STEP, V1, V2, WORKLOAD, set_the_scene, show_outcome
from lab.pipeline.receiver import ReceiverServer
from sandbox.testing import SandboxHandle

PAYLOAD_RESOURCE = "payload.json"
POST_TIMEOUT_SECONDS = 30.0


def recorded_payload() -> dict[str, Any]:
    """The recorded Alertmanager payload shipped with the package."""
    text = resources.files("lab.demo").joinpath(PAYLOAD_RESOURCE).read_text("utf-8")
    payload: dict[str, Any] = json.loads(text)
    return payload


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def replayable(payload: dict[str, Any], *, replicaset: str, now: datetime) -> dict[str, Any]:
    """The recording moved to this run: startsAt becomes `now` (after this run's rollout, or
    the receiver would rightly say alert_predates_rollout) and the replicaset label names this
    run's v2 ReplicaSet (the same name unless the demo's template changed)."""
    moved = json.loads(json.dumps(payload))
    for alert in moved["alerts"]:
        alert["startsAt"] = _rfc3339(now)
        alert["labels"]["replicaset"] = replicaset
    for block in ("groupLabels", "commonLabels"):
        if "replicaset" in moved.get(block, {}):
            moved[block]["replicaset"] = replicaset
    return moved


def _post(url: str, token: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def run_recorded(printer: Printer, *, workdir: Path, why: str, explore: bool = False) -> int:
    """Tell the story with the recorded payload instead of prometheus and alertmanager."""
    printer.step(f"{why}: posting the recorded Alertmanager payload instead of running them")
    sandbox = SandboxHandle.start(workdir=workdir)
    try:
        printer.step(f"sandbox cluster at {sandbox.url}")
        tokens, mine = oncall_tokens(workdir)
        receiver = ReceiverServer(
            name="receiver",
            workdir=workdir,
            api_client=sandbox.api_client(),
            overrides={"auth": {"oncall_tokens_file": str(tokens)}},
        )
        receiver.start()
        try:
            printer.step(f"receiver listening at {receiver.url}")
            set_the_scene(printer, sandbox)
            WORKLOAD.roll_out(sandbox, image=V2, fault=FAULT)
            bad_rs = WORKLOAD.replicaset_for(sandbox, V2)["metadata"]["name"]
            printer.step(f"v2: rolling out {V2}; its pods crash-loop (sandbox fault {FAULT})")
            recording = recorded_payload()
            recorded_rs = recording["alerts"][0]["labels"].get("replicaset")
            payload = replayable(recording, replicaset=bad_rs, now=datetime.now(UTC))
            names = ", ".join(sorted({a["labels"]["alertname"] for a in payload["alerts"]}))
            printer.step(
                f"alertmanager (recorded): POST {receiver.url} with {names} for "
                f"{WORKLOAD.namespace}/{WORKLOAD.name} replicaset {bad_rs}"
                + ("" if recorded_rs == bad_rs else f" (recorded for {recorded_rs})")
                + ", startsAt moved to now"
            )
            status, answer = _post(receiver.url, receiver.token, payload)
            for decision in answer.get("decisions", []):
                printer.step(
                    f"receiver answered {status}: {decision['outcome']}"
                    + (f" ({decision['reason']})" if decision.get("reason") else "")
                    + f": {decision.get('detail', '')}"
                )
            if status != 200:
                printer.step(f"receiver answered {status}: {answer}")
                return 1
            ok = WORKLOAD.images(sandbox) == [V1]
            printer.step(
                f"{WORKLOAD.namespace}/{WORKLOAD.name} runs {V1} again"
                if ok
                else f"{WORKLOAD.namespace}/{WORKLOAD.name} still runs {WORKLOAD.images(sandbox)}"
            )
            show_outcome(printer, receiver.service)
            if explore:
                keep_exploring(printer, receiver, sandbox, workdir=workdir, oncall=mine)
            printer.step("stopping the receiver and the sandbox")
            if not explore:
                printer.step(NEXT_STEP)
            return 0 if ok else 1
        finally:
            receiver.stop()
    finally:
        sandbox.stop()
