"""`rollback-webhook history NS/DEPLOY`: revisions, evidence, verdicts and the rollback pick.

`-w` redraws the table whenever it changes (a rollout, a rollback, a new mark), like
`kubectl get -w`, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from webhook.commands.failures import FAILED, USAGE, report, settings_or_report
from webhook.config import ConfigError

COMMAND = "history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NS/DEPLOY", help="namespace/deployment")
    parser.add_argument("--config", help="YAML file (default: $ROLLBACK_WEBHOOK_CONFIG)")
    parser.add_argument("--kubeconfig", help="kubeconfig (overrides kubernetes.kubeconfig)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    parser.add_argument(
        "-w", "--watch", action="store_true", help="redraw when the Deployment changes"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between reads with -w (default 2)"
    )


def run(args: argparse.Namespace) -> int:
    namespace, sep, name = args.target.partition("/")
    if not sep or not namespace or not name:
        report(COMMAND, [f"expected NS/DEPLOY, got {args.target!r}"])
        return USAGE
    if args.interval <= 0:
        report(COMMAND, [f"--interval: must be greater than 0, got {args.interval:g}"])
        return USAGE
    settings = settings_or_report(COMMAND, args.config)
    if settings is None:
        return USAGE
    from webhook.history import build_history, render_table
    from webhook.kube import Cluster, KubeError, NotFound, api_client_from_settings
    from webhook.runtime import build_prometheus
    from webhook.service import evidence_sources, utc_now

    try:
        api = api_client_from_settings(
            kubeconfig=args.kubeconfig or settings.kubernetes.kubeconfig,
            context=args.context or settings.kubernetes.context,
        )
    except ConfigError as exc:
        report(COMMAND, exc.problems)
        return USAGE
    cluster = Cluster(api, timeout_seconds=settings.kubernetes.timeout_seconds)
    sources = evidence_sources(build_prometheus(settings, utc_now))

    def draw() -> str:
        history = build_history(
            cluster=cluster, settings=settings, namespace=namespace, name=name, sources=sources
        )
        if args.json:
            return json.dumps(history.as_dict(), indent=2)
        return render_table(history)

    try:
        text = draw()
    except NotFound:
        report(COMMAND, [f"deployment {namespace}/{name} not found"])
        return FAILED
    except KubeError as exc:
        report(COMMAND, [f"{namespace}/{name}: {exc}"])
        return FAILED
    print(text, flush=True)
    if not args.watch:
        return 0
    return _watch(draw, first=text, interval=args.interval, errors=(KubeError,))


def _watch(draw: Any, *, first: str, interval: float, errors: tuple[type[Exception], ...]) -> int:
    """Print the table again each time it differs from the last one shown."""
    shown, trouble = first, ""
    try:
        while True:
            time.sleep(interval)
            try:
                text = draw()
            except errors as exc:
                # A blip (the API restarting) is reported once and the watch goes on.
                if str(exc) != trouble:
                    trouble = str(exc)
                    report(COMMAND, [f"(watch continues) {exc}"])
                continue
            trouble = ""
            if text != shown:
                shown = text
                # On a terminal the table is redrawn in place; in a pipe or a log each
                # version follows the last under a time stamp.
                if sys.stdout.isatty():
                    print("\033[H\033[2J", end="")
                else:
                    print(f"\n--- {time.strftime('%H:%M:%S')}")
                print(text, flush=True)
    except KeyboardInterrupt:
        return 0
