"""`rollback-webhook history NS/DEPLOY`: revisions, evidence, verdicts and the rollback pick."""

from __future__ import annotations

import argparse
import json
import sys

from webhook.config import ConfigError, load_settings
from webhook.kube import KubeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NS/DEPLOY", help="namespace/deployment")
    parser.add_argument("--config", help="YAML file (default: $ROLLBACK_WEBHOOK_CONFIG)")
    parser.add_argument("--kubeconfig", help="kubeconfig (overrides kubernetes.kubeconfig)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")


def run(args: argparse.Namespace) -> int:
    namespace, sep, name = args.target.partition("/")
    if not sep or not namespace or not name:
        print(f"history: expected NS/DEPLOY, got {args.target!r}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from webhook.history import build_history, render_table
    from webhook.kube import Cluster, api_client_from_settings
    from webhook.runtime import build_prometheus
    from webhook.service import evidence_sources, utc_now

    api = api_client_from_settings(
        kubeconfig=args.kubeconfig or settings.kubernetes.kubeconfig,
        context=args.context or settings.kubernetes.context,
    )
    cluster = Cluster(api, timeout_seconds=settings.kubernetes.timeout_seconds)
    sources = evidence_sources(build_prometheus(settings, utc_now))
    try:
        history = build_history(
            cluster=cluster, settings=settings, namespace=namespace, name=name, sources=sources
        )
    except KubeError as exc:
        print(f"history: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(history.as_dict(), indent=2))
    else:
        print(render_table(history))
    return 0
