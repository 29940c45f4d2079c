"""`rollback-webhook audit`: query the decisions of a running server (table for people, --json).

Also home of the small HTTP client the on-call commands share (`replay` imports it): the URL
and on-call token come from flags or env, errors name the server's own message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from webhook.contract import Outcome

URL_ENV = "ROLLBACK_WEBHOOK_URL"
TOKEN_ENV = "ROLLBACK_WEBHOOK_ONCALL_TOKEN"  # noqa: S105 - a variable name
DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The server could not be asked, or answered with an error; the message says which."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """--url, --token, --token-file, --timeout, --json: shared by `audit` and `replay`."""
    parser.add_argument("--url", help=f"server base URL (default: ${URL_ENV} or {DEFAULT_URL})")
    parser.add_argument(
        "--token",
        help=f"on-call token (default: ${TOKEN_ENV}; prefer --token-file, argv is visible)",
    )
    parser.add_argument("--token-file", help="file holding the on-call token")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ClientError(
                f"--token-file: cannot read {args.token_file} ({exc.strerror})"
            ) from None
        if not token:
            raise ClientError(f"--token-file: {args.token_file} is empty")
        return token
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ClientError(f"no on-call token: give --token-file, --token or ${TOKEN_ENV}")
    return str(token)


def call(
    args: argparse.Namespace, method: str, path: str, *, body: Any = None, query: Any = None
) -> Any:
    """One JSON request to the server; ClientError carries the status and the server's error."""
    base = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ClientError(f"--url: expected http:// or https://, got {base!r}")
    url = base + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {"Authorization": f"Bearer {_token(args)}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    # The scheme is checked above: only http(s), never file: or custom handlers.
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text[:300]
        raise ClientError(f"{method} {path}: HTTP {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach {base}: {exc.reason}") from None
    except (TimeoutError, ValueError) as exc:
        raise ClientError(f"{method} {path}: {exc}") from None


def render_table(rows: list[list[str]], header: list[str]) -> str:
    """Columns padded to their widest cell; the last column left ragged."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def revisions(decision: dict[str, Any]) -> str:
    start, end = decision.get("from_revision"), decision.get("to_revision")
    if start is None:
        return "-"
    return f"{start}->{end}" if end is not None else str(start)


def decision_rows(decisions: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per decision (what `audit` and `replay` print for people)."""
    return [
        [
            str(d["time"])[:19].replace("T", " "),
            d["outcome"]
            + (" (dry run)" if d["dry_run"] and d["outcome"] != Outcome.DRY_RUN else ""),
            d.get("reason") or "-",
            f"{d['namespace'] or '-'}/{d['deployment'] or '-'}",
            revisions(d),
            d["source"] + (f" of {d['replay_of']}" if d.get("replay_of") else ""),
            d.get("actor") or "-",
            d["id"],
        ]
        for d in decisions
    ]


DECISION_HEADER = [
    "TIME (UTC)",
    "OUTCOME",
    "REASON",
    "NAMESPACE/DEPLOYMENT",
    "REV",
    "SOURCE",
    "ACTOR",
    "ID",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", help="show one decision with its payload and its replays")
    parser.add_argument("--namespace", help="only this namespace")
    parser.add_argument("--deployment", help="only this Deployment")
    parser.add_argument(
        "--outcome", help="rolled_back, dry_run, skipped, failed, reverted or resumed"
    )
    parser.add_argument("--since", help="RFC 3339 time or a duration such as 2h")
    parser.add_argument("--limit", type=int, help="decisions per page (1-500, default 50)")
    parser.add_argument("--before", help="page past this decision id (printed after a page)")
    add_server_arguments(parser)


def _show_one(args: argparse.Namespace) -> int:
    detail = call(args, "GET", f"/api/v1/audit/{urllib.parse.quote(args.id, safe='')}")
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    decision = detail["decision"]
    for key in (
        "id",
        "time",
        "outcome",
        "reason",
        "detail",
        "source",
        "actor",
        "replay_of",
        "namespace",
        "deployment",
        "from_revision",
        "to_revision",
        "alertname",
        "trigger",
        "starts_at",
        "dry_run",
        "overrides",
        "payload_id",
    ):
        print(f"{key + ':':15} {decision.get(key)}")
    print("labels:")
    for key, value in sorted(decision["labels"].items()):
        print(f"  {key}={value}")
    if detail["replays"]:
        print("replays:")
        print(render_table(decision_rows(detail["replays"]), DECISION_HEADER))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.id:
            return _show_one(args)
        query = {
            key: value
            for key in ("namespace", "deployment", "outcome", "since", "limit", "before")
            if (value := getattr(args, key)) is not None
        }
        page = call(args, "GET", "/api/v1/audit", query=query)
    except ClientError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    if not page["decisions"]:
        print("no decisions match")
        return 0
    print(render_table(decision_rows(page["decisions"]), DECISION_HEADER))
    if page["next_before"]:
        print(f"(more: --before {page['next_before']})")
    return 0
