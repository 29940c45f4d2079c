"""The `rollback-webhook` command: subcommands and flags only; each runs its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("webhook.commands.serve", "run the receiver under gunicorn (production WSGI server)"),
    "history": ("webhook.commands.history", "show a Deployment's revisions, evidence and target"),
    "replay": ("webhook.commands.replay", "replay a stored or given payload on a running server"),
    "audit": ("webhook.commands.audit", "query the decisions of a running server"),
    "sandbox": ("webhook.sandbox.command", "serve the sandbox cluster and write a kubeconfig"),
    "demo": ("webhook.demo", "show the whole story on the sandbox cluster"),
    "check-config": ("webhook.commands.check_config", "validate a configuration file and exit"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollback-webhook",
        description="Turns Prometheus alerts into safe, audited rollbacks of Deployments.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # not part of this build
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    result: int = args._run(args)
    return result
