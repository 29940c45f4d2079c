"""`rollback-webhook check-config`: everything `serve` needs, checked before it serves.

The file's keys and values, the credential files, the kubeconfig and context, the audit location;
with --connect also the Kubernetes API, the Leases' namespace and Prometheus. Every problem is
reported at once, one line each. Exit status 0 when serve would start, 2 when it would not.
"""

from __future__ import annotations

import argparse
import json
import sys

from webhook.commands.failures import USAGE, report
from webhook.config import ConfigError, as_dict, read_settings
from webhook.preflight import check

COMMAND = "check-config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file (default: $ROLLBACK_WEBHOOK_CONFIG)")
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also ask the Kubernetes API (and the Leases' namespace) and Prometheus",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing when valid")


def run(args: argparse.Namespace) -> int:
    try:
        settings, problems = read_settings(args.config)
    except ConfigError as exc:  # unreadable, or not YAML: nothing more to check
        report(COMMAND, exc.problems)
        return USAGE
    # The files and the cluster are checked even when some values are wrong (those stay at
    # their defaults here), so one run lists everything serve would trip over.
    result = check(settings, connect=args.connect)
    where = f"{args.config}: " if args.config else ""
    problems = (*problems, *(where + problem for problem in result.problems))
    if problems:
        report(COMMAND, problems)
        return USAGE
    if not args.quiet:
        print(json.dumps(as_dict(settings), indent=2, sort_keys=True))
        print(f"configuration OK (checked: {', '.join(result.checked)})", file=sys.stderr)
    return 0
