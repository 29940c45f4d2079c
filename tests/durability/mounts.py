"""Mounts the durability tests make under the audit (root only: skip elsewhere, fail under
CI=true), unmounted after."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.binaries import in_ci


@contextmanager
def mounted(mount: Path, *args: str, what: str) -> Iterator[Path]:
    """`mount ARGS MOUNT`; `what` names it in the skip or failure ("mount a tmpfs")."""
    made = subprocess.run(["mount", *args, str(mount)], capture_output=True)
    if made.returncode != 0:
        message = f"cannot {what} ({made.stderr.decode().strip()}): needs root"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
