"""`rollback-webhook replay (--audit-id ID | --payload FILE) [--execute] --reason TEXT`.

Against a running server: a dry-run preview unless --execute. Exit status: 0 when the replay
rolled back (or, previewing, would), 3 when it was skipped or refused (the reason is printed),
1 when the server could not be asked or said no, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from webhook.commands.audit import (
    DECISION_HEADER,
    ClientError,
    add_server_arguments,
    call,
    decision_rows,
    render_table,
)

REFUSED = 3
EPILOG = (
    "exit status: 0 decided (a preview, or executed), 3 refused (a check no override passes, "
    "or an override not allowed for it), 1 the server or the API failed, 2 usage"
)
# Not imported from webhook.replay: this client must not load the service and kubernetes.
OVERRIDE_FLAGS = ("ignore_recent_window", "ignore_cooldown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--audit-id", help="re-run this decision's alert from its stored payload")
    what.add_argument("--payload", help="an Alertmanager webhook payload (JSON file, - for stdin)")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit)")
    parser.add_argument(
        "--execute", action="store_true", help="really roll back (default: dry-run preview)"
    )
    parser.add_argument(
        "--ignore-recent-window",
        action="store_true",
        help="override: the rollout may be older than recent_rollout_window",
    )
    parser.add_argument(
        "--ignore-cooldown",
        action="store_true",
        help="override: act within the Deployment's cooldown",
    )
    add_server_arguments(parser)


def _payload(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"--payload: cannot read {path} ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ClientError(f"--payload: {path} is not JSON ({exc})") from None


def build_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /api/v1/replay body for the parsed flags."""
    body: dict[str, Any] = {"reason": args.reason, "dry_run": not args.execute}
    if args.audit_id:
        body["audit_id"] = args.audit_id
    else:
        body["payload"] = _payload(args.payload)
    # The --ignore-* flags are the API's override keys (webhook.replay.OVERRIDE_KEYS).
    overrides = {key: True for key in OVERRIDE_FLAGS if getattr(args, key)}
    if overrides:
        body["overrides"] = overrides
    return body


def run(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        print("replay: --reason must say why", file=sys.stderr)
        return 2
    try:
        result = call(args, "POST", "/api/v1/replay", body=build_body(args))
    except ClientError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        mode = "PREVIEW (dry run, nothing changed)" if result["dry_run"] else "EXECUTED"
        print(f"{mode}: {result['summary']}")
        print(render_table(decision_rows(result["decisions"]), DECISION_HEADER))
        for decision in result["decisions"]:
            print(f"{decision['id']}: {decision['detail']}")
        if result["dry_run"] and not result["refused"]:
            print("to roll back for real, run the same command with --execute")
    return REFUSED if result["refused"] else 0
