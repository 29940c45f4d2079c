"""How commands report what went wrong: one line per problem on stderr, key or file first.

Expected failures (a bad configuration, an unreachable API, a missing object) never end in a
traceback; the exit status says which kind it was.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from webhook.config import ConfigError, Settings, load_settings

USAGE = 2  # bad arguments or configuration
FAILED = 1  # the command ran and could not do its job


def report(command: str, problems: Iterable[str]) -> None:
    """Print each problem as `command: problem`, one line each."""
    for problem in problems:
        line = " ".join(str(problem).split())
        print(f"{command}: {line}", file=sys.stderr)


def settings_or_report(command: str, path: str | None) -> Settings | None:
    """The validated settings, or None after reporting every problem of the file."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        report(command, exc.problems)
        return None
