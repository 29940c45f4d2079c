"""The thing users install is the product alone: the wheel and the image hold `webhook` only,
and `rollback-webhook serve --help` runs from the wheel in a clean virtualenv (no lab, no
sandbox, no checkout on sys.path). Slow: it builds a wheel and installs its dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_PARTS = {"sandbox", "pipeline", "demo", "benchmark", "benchmarks", "lab", "tests", "rules"}

pytestmark = pytest.mark.slow


def _source_tree(into: Path) -> Path:
    """The repository's tracked files, as a fresh clone has them (no build or egg-info dirs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if source.is_file():
            target = into / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _source_tree(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", ".", "-w", str(out)],
        cwd=src,
        check=True,
        timeout=300,
    )
    [built] = out.glob("rollback_webhook-*.whl")
    return built


def test_the_wheel_holds_the_product_package_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"webhook"}
    for name in names:
        parts = {re.sub(r"\.py$", "", part) for part in name.split("/")}
        assert not parts & LAB_PARTS, f"{name} is lab equipment, not product"
    assert "webhook/policy.py" in names and "webhook/templates/base.html" in names


def test_serve_help_runs_from_the_wheel_in_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # No --system-site-packages: the wheel's own dependencies come from the index (or pip's
    # cache), so a dependency missing from pyproject fails here.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    shown = subprocess.run(
        [str(venv / "bin" / "rollback-webhook"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "usage: rollback-webhook serve" in shown.stdout
    isolated = subprocess.run(
        [str(python), "-c", "import webhook, sys; import sandbox"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "No module named 'sandbox'" in isolated.stderr  # the lab is not there at all


def test_the_dockerfile_copies_only_the_product_into_the_image() -> None:
    copies = [
        line.split()[1:]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from=" not in line
    ]
    sources = {Path(src).as_posix().rstrip("/") for *srcs, _dest in copies for src in srcs}
    assert sources == {"pyproject.toml", "README.md", "webhook"}
