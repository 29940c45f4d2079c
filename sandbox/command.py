"""`rollback-webhook sandbox`: serve the sandbox cluster and write a kubeconfig for it."""

from __future__ import annotations

import argparse
import gc
import logging
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sandbox.apply import apply_objects, parse_manifests
from sandbox.kubeconfig import write_kubeconfig
from sandbox.server import SandboxServer

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the `sandbox` subcommand."""
    parser.add_argument(
        "--port",
        type=int,
        default=8001,
        help="loopback port to serve on (0 picks a free one; default 8001)",
    )
    parser.add_argument(
        "--seed",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="YAML manifest(s) to apply at start (repeatable)",
    )
    parser.add_argument(
        "--kubeconfig-out",
        type=Path,
        default=Path("sandbox.kubeconfig"),
        metavar="PATH",
        help="where to write a kubeconfig for kubectl (default ./sandbox.kubeconfig)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="bearer token to put in the kubeconfig (default: a random one)",
    )
    parser.add_argument(
        "--kube-version",
        default="v1.30.0",
        help="version /version reports; picks the kubectl the dispatcher runs",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = SandboxServer(port=args.port, kube_version=args.kube_version)
    except (OSError, OverflowError) as error:  # OverflowError: a port past 65535
        print(f"sandbox: --port: cannot listen on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    for seed in args.seed:
        try:
            stored = apply_objects(server.store, parse_manifests(seed.read_text()))
        except (OSError, ValueError) as error:
            print(f"sandbox: --seed {seed}: {error}", file=sys.stderr)
            server.stop()
            return 2
        LOG.info("seeded %d object(s) from %s", len(stored), seed)
    token = args.token or "sandbox-" + secrets.token_hex(8)
    try:
        kubeconfig = write_kubeconfig(args.kubeconfig_out, server=server.url, token=token)
    except OSError as error:
        print(f"sandbox: --kubeconfig-out {args.kubeconfig_out}: {error.strerror}", file=sys.stderr)
        server.stop()
        return 2
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # What is loaded by now (modules, the client's models: ~100k objects) lives as long as
    # the process; out of the collector's sight, a full collection no longer walks it inside
    # whichever write triggers it (70-80 ms of one PUT in a 60-rollback storm, ~4 ms with it).
    gc.collect()
    gc.freeze()
    server.start()
    print(f"sandbox cluster serving at {server.url} (Kubernetes {args.kube_version})", flush=True)
    print(f"kubeconfig: {kubeconfig}   try: kubectl --kubeconfig {kubeconfig} get ns", flush=True)
    print(f"test controls: {server.url}/sandbox/v1/ (docs/sandbox.md)", flush=True)
    done.wait()
    server.stop()
    return 0
