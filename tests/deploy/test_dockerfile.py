"""The image: two stages, a pinned base, a numeric non-root user, the command the manifests run."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.binaries import require_binary
from tests.deploy.render import REPO, Obj, webhook_container

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing():
    hadolint = require_binary("hadolint")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_two_stages_on_a_pinned_base():
    steps = instructions()
    assert sum(word == "FROM" for word, _ in steps) == 2
    base = next(rest for word, rest in steps if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    # An exact release (X.Y.Z) and variant: never "latest" nor a floating "3.11".
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    runtime = final_stage()
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the runtime stage copies only the venv"
    assert not [rest for word, rest in runtime if word == "RUN" and "pip install" in rest]


def test_the_image_runs_as_a_numeric_non_root_user():
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: kubelet verifies only numeric"


@pytest.mark.kubectl
def test_the_default_command_is_the_one_the_manifests_run(rendered: dict[str, list[Obj]]):
    runtime = dict(final_stage())
    assert runtime["ENTRYPOINT"] == '["rollback-webhook"]'
    container = webhook_container(rendered["dry-run"])
    assert "command" not in container, "the Deployment must not override the image entrypoint"
    cmd = runtime["CMD"].strip("[]").replace('"', "").split(", ")
    assert cmd == container["args"]


def test_the_build_context_is_only_what_the_image_needs():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "everything is excluded unless listed"
    allowed = sorted(line[1:] for line in ignore if line.startswith("!"))
    assert allowed == ["README.md", "pyproject.toml", "webhook/"]
    copied = [rest for word, rest in instructions() if word == "COPY" and "--from" not in rest]
    sources = sorted(part.rstrip("/") for rest in copied for part in rest.split()[:-1])
    assert sources == ["README.md", "pyproject.toml", "webhook"]
