"""`rollback-webhook check-config`: validate a configuration file (and its secret files)."""

from __future__ import annotations

import argparse
import json
import sys

from webhook.auth import Credentials
from webhook.config import ConfigError, as_dict, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file (default: $ROLLBACK_WEBHOOK_CONFIG)")
    parser.add_argument("--quiet", action="store_true", help="print nothing when valid")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        Credentials.load(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(json.dumps(as_dict(settings), indent=2, sort_keys=True))
        print("configuration OK", file=sys.stderr)
    return 0
