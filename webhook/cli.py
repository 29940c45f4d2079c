"""The `rollback-webhook` command: subcommands and flags only; each runs its own module.

Only the chosen subcommand's module is imported, so one command's dependencies (or a bug in it)
never break another, and `serve` starts without loading the sandbox or the demo. `sandbox` and
`demo` live in the lab packages beside the product (`sandbox`, `lab`): they are there when the
project is installed from its repository (`pip install -e .`), never in the released wheel.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from webhook.config import ConfigError

# subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("webhook.commands.serve", "run the receiver under gunicorn (production WSGI server)"),
    "history": ("webhook.commands.history", "show a Deployment's revisions, evidence and target"),
    "replay": ("webhook.commands.replay", "replay a stored or given payload on a running server"),
    "audit": ("webhook.commands.audit", "query the decisions of a running server"),
    "sandbox": ("sandbox.command", "serve the sandbox cluster and write a kubeconfig"),
    "demo": ("lab.demo", "show the whole story on the sandbox cluster"),
    "check-config": ("webhook.commands.check_config", "validate a configuration file and exit"),
    "resume": ("webhook.commands.resume", "hand a GitOps owner paused by a rollback back"),
}


# Packages of the repository's lab, beside the product: absent from an installed wheel.
LAB_PACKAGES = frozenset({"sandbox", "lab"})


def top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollback-webhook",
        description="Turns Prometheus alerts into safe, audited rollbacks of Deployments.",
        epilog="Run 'rollback-webhook COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of one subcommand, with its module."""
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"rollback-webhook {name}",
        description=help_text,
        epilog=getattr(module, "EPILOG", None),
    )
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv) if argv is not None else sys.argv[1:]
    if not args or args[0] not in COMMANDS:
        top_parser().parse_args(args)  # prints help or the error, exits
        return 2
    try:
        parser, module = command_parser(args[0])
    except ModuleNotFoundError as error:
        top = COMMANDS[args[0]][0].split(".")[0]
        if top in LAB_PACKAGES and error.name == top:
            print(
                f"rollback-webhook {args[0]}: needs the '{top}' package, which ships with the "
                "repository, not with the released package: run it from a checkout "
                "installed with scripts/bootstrap.sh (pip install -e .)",
                file=sys.stderr,
            )
            return 2
        raise
    namespace = parser.parse_args(args[1:])
    try:
        result: int = module.run(namespace)  # type: ignore[attr-defined]
    except ConfigError as error:
        # Commands report their own problems; this keeps any they miss to one line each.
        for problem in error.problems:
            print(f"rollback-webhook {args[0]}: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`audit ... | head`): stop quietly, as other Unix tools do.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
    return result
