"""`rollback-webhook resume NS/DEPLOY --reason TEXT`: hand a paused GitOps owner back.

Against a running server (POST /api/v1/resume, on-call token, audited as outcome `resumed`):
what rollback-webhook paused when it rolled the Deployment back (README, GitOps owners) is
undone exactly, so the owner reconciles from Git again. Run it once Git is fixed. Exit status:
0 resumed, 3 nothing was paused there, 1 the server could not be asked or the resume failed,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from webhook.commands.audit import ClientError, add_server_arguments, call

NOTHING_PAUSED = 3
EPILOG = (
    "exit status: 0 resumed, 3 refused with nothing written (nothing paused, a resume already "
    "in progress, or a pause record the owner does not carry), 1 failed or the server failed, "
    "2 usage"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NS/DEPLOY", help="namespace/deployment")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit)")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    namespace, sep, name = args.target.partition("/")
    if not sep or not namespace or not name:
        print(f"resume: expected NS/DEPLOY, got {args.target!r}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("resume: --reason must say why", file=sys.stderr)
        return 2
    body = {"namespace": namespace, "deployment": name, "reason": args.reason}
    try:
        result = call(args, "POST", "/api/v1/resume", body=body)
    except ClientError as exc:
        print(f"resume: {exc}", file=sys.stderr)
        return NOTHING_PAUSED if ": HTTP 409:" in str(exc) else 1
    decision = result["decision"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{decision['outcome'].upper()} {namespace}/{name} ({decision['id']}): "
            f"{decision['detail']}"
        )
    return 0 if decision["outcome"] == "resumed" else 1
