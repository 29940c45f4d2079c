"""Every command documents itself: `rollback-webhook COMMAND --help` works for each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from webhook.cli import COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", command, "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"rollback-webhook {command}" in result.stdout


def test_top_level_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
