"""`rollback-webhook demo`: the whole story on the sandbox cluster, in about a minute.

v1 of shop/checkout is healthy, v2 rolls out and crash-loops, the restart-rate alert fires in
a real prometheus, goes through a real alertmanager to the receiver, which rolls back to v1;
then the `history` table and the audit. Without prometheus and alertmanager on PATH it says
so and posts the recorded Alertmanager payload (payload.json beside this file) instead.
Nothing is left running afterwards. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from lab.demo.report import Printer
from lab.demo.scenario import decisions_to_file
from lab.pipeline import PipelineUnavailable
from lab.pipeline.configs import rules_dir
from lab.pipeline.processes import require_binaries

DEFAULT_TIMEOUT_SECONDS = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's flags."""
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep configs, logs, audit and kubeconfig here (default: a temporary directory, "
        "removed at the end)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the story, leave the sandbox and the receiver running to explore by hand "
        "(prints the commands; Ctrl-C stops them); keeps the workdir",
    )
    parser.add_argument(
        "--recorded",
        action="store_true",
        help="skip prometheus and alertmanager even if installed: post the recorded payload",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for the rollback (default %(default)s)",
    )
    parser.add_argument("--record-payload", type=Path, help=argparse.SUPPRESS)


def _unavailable() -> str | None:
    try:
        require_binaries()
        rules_dir()
    except PipelineUnavailable as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the bad revision was rolled back, 1 when not, 130 on Ctrl-C."""
    printer = Printer()
    keep = args.workdir is not None or args.keep
    try:
        workdir = (
            Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rollback-demo-"))
        )
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / ".writable").touch()
    except OSError as exc:
        print(f"demo: --workdir: cannot use {args.workdir} ({exc.strerror})", file=sys.stderr)
        return 2
    printer.step("rollback-webhook demo: a bad rollout, its alert, and the rollback")
    try:
        with decisions_to_file(workdir / "decisions.jsonl"):
            why = "--recorded given" if args.recorded else _unavailable()
            if why is None:
                from lab.demo.real import run_real

                return run_real(
                    printer,
                    workdir=workdir,
                    timeout=args.timeout,
                    record_payload=args.record_payload,
                    explore=args.keep,
                )
            from lab.demo.recorded import run_recorded

            return run_recorded(printer, workdir=workdir, why=why, explore=args.keep)
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started has been stopped", file=sys.stderr)
        return 130
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            printer.step(f"kept {workdir} (configs, logs, decisions.jsonl, audit)")
