"""Every command with broken inputs: one clear line naming the key, file or object, a non-zero
exit, never a traceback; and check-config refuses every configuration serve refuses.

The commands run as a user runs them (`python -m webhook ...` in a subprocess, HOME without a
kubeconfig), against a dead address or a real sandbox cluster where a cluster is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sandbox.testing import SandboxHandle

DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The user's environment without any of our variables and with a HOME of its own."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLBACK_WEBHOOK_", "KUBE"))}
    return {**clean, "HOME": str(home)}


@pytest.fixture
def base(tmp_path: Path) -> dict[str, object]:
    """A configuration check-config accepts (a kubeconfig for a dead server, a token file)."""
    token = tmp_path / "receiver-token"
    token.write_text("s3cret\n")
    return {
        "dry_run": True,
        "auth": {"receiver": {"bearer_token_file": str(token)}},
        "audit": {"path": str(tmp_path / "audit" / "audit.sqlite")},
        "kubernetes": {
            "kubeconfig": str(_kubeconfig(tmp_path / "dead.kubeconfig", DEAD_URL)),
            "timeout_seconds": 2,
        },
        "prometheus": {"url": DEAD_URL, "retries": 0, "timeout_seconds": 2},
    }


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(env: dict[str, str], tmp_path: Path) -> Run:
    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "webhook", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )

    return run


def _write(tmp_path: Path, document: object, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if document is not None else "")
    return str(path)


def _with(base: dict[str, object], key: str, value: object) -> dict[str, object]:
    """`base` with the dotted `key` set to `value`."""
    document = yaml.safe_load(yaml.safe_dump(base))
    *parents, last = key.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return document


def assert_clear_failure(
    result: subprocess.CompletedProcess[str], *, says: str, lines: int | None = 1
) -> None:
    """Non-zero exit, no traceback, `lines` line(s) on stderr, one of them containing `says`."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    errors = result.stderr.strip().splitlines()
    if lines is not None:
        assert len(errors) == lines, errors
    assert any(says in line for line in errors), errors


# Each broken configuration from the operator's first try, with what the line must name.
BROKEN = [
    pytest.param("server.port", 99999, "server.port: must be at most 65535", id="port-99999"),
    pytest.param(
        "prometheus.url",
        "localhost:9090",
        "prometheus.url: expected http(s)://host[:port][/path], got 'localhost:9090' "
        "(try http://localhost:9090)",
        id="url-without-scheme",
    ),
    pytest.param(
        "kubernetes.kubeconfig",
        "/nonexistent/kubeconfig",
        "kubernetes.kubeconfig: cannot read /nonexistent/kubeconfig",
        id="missing-kubeconfig",
    ),
    pytest.param(
        "kubernetes.context",
        "nope",
        "kubernetes.context: 'nope' is not a context of",
        id="unknown-context",
    ),
    pytest.param(
        "audit.path",
        "/proc/rollback-webhook/audit.sqlite",
        "audit.path: cannot create /proc/rollback-webhook/audit.sqlite",
        id="audit-under-proc",
    ),
    pytest.param(
        "dry_run",
        "false",
        "dry_run: expected true or false, got the string 'false': write false without quotes",
        id="quoted-false",
    ),
    pytest.param(
        "auth.receiver.bearer_token_file",
        "/nonexistent/token",
        "auth.receiver.bearer_token_file: cannot read /nonexistent/token",
        id="missing-token-file",
    ),
    pytest.param(
        "tracker.lease_namespace",
        "Rollback_Webhook",
        "tracker.lease_namespace: 'Rollback_Webhook' is not a valid namespace name",
        id="bad-lease-namespace",
    ),
]


@pytest.mark.parametrize(("key", "value", "says"), BROKEN)
def test_check_config_and_serve_refuse_the_same_broken_config(
    run: Run, tmp_path: Path, base: dict[str, object], key: str, value: object, says: str
) -> None:
    path = _write(tmp_path, _with(base, key, value))
    checked = run("check-config", "--config", path)
    assert_clear_failure(checked, says=says)
    assert checked.stderr.startswith(f"check-config: {path}: ")
    served = run("serve", "--config", path)
    assert_clear_failure(served, says=says)
    # The same problem, word for word: check-config refuses what serve would die on.
    assert served.stderr.removeprefix("serve: ") == checked.stderr.removeprefix("check-config: ")


def test_the_base_config_passes_check_config(run: Run, tmp_path: Path, base: dict[str, object]):
    result = run("check-config", "--config", _write(tmp_path, base), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def test_every_problem_of_a_file_is_reported_at_once(
    run: Run, tmp_path: Path, base: dict[str, object]
) -> None:
    document = base
    for key, value in [
        ("server.port", 99999),
        ("prometheus.url", "localhost:9090"),
        ("kubernetes.kubeconfig", "/nonexistent/kubeconfig"),
        ("audit.path", "/proc/rollback-webhook/audit.sqlite"),
        ("dry_run", "false"),
        ("cooldwon", "1h"),
    ]:
        document = _with(document, key, value)
    result = run("check-config", "--config", _write(tmp_path, document))
    assert_clear_failure(result, says="cooldwon: unknown key", lines=6)
    for key in ("server.port", "prometheus.url", "kubernetes.kubeconfig", "audit.path", "dry_run"):
        assert f": {key}: " in result.stderr


def test_an_empty_config_lists_everything_missing(run: Run, tmp_path: Path) -> None:
    path = _write(tmp_path, None, "empty.yaml")
    for command in ("check-config", "serve"):
        result = run(command, "--config", path)
        assert_clear_failure(result, says="auth.receiver: no bearer_token_file", lines=None)
        lines = result.stderr.strip().splitlines()
        assert all(line.startswith(f"{command}: {path}: ") for line in lines), lines
        # Not only the credential: the kubeconfig this HOME lacks is named too.
        assert any("kubernetes: not in a pod" in line and "/.kube/config" in line for line in lines)


def test_connect_reports_an_unreachable_api_and_prometheus(
    run: Run, tmp_path: Path, base: dict[str, object]
) -> None:
    path = _write(tmp_path, base)
    result = run("check-config", "--config", path, "--connect")
    assert_clear_failure(result, says="kubernetes: the API server does not answer", lines=2)
    assert f"prometheus.url: Prometheus at {DEAD_URL} failed" in result.stderr
    # Without --connect nothing is asked: the same file passes.
    assert run("check-config", "--config", path, "--quiet").returncode == 0


def test_connect_names_a_missing_lease_namespace(
    run: Run, tmp_path: Path, base: dict[str, object], sandbox: SandboxHandle
) -> None:
    document = _with(base, "kubernetes.kubeconfig", str(sandbox.kubeconfig))
    document = _with(document, "prometheus.url", None)
    result = run("check-config", "--config", _write(tmp_path, document), "--connect")
    # The tracker's Lease and the circuit ledger's (on in a pod with SQLite) live there.
    assert_clear_failure(
        result,
        says="tracker.lease_namespace and circuit_ledger.namespace: namespace 'rollback-webhook' "
        "does not exist",
    )
    sandbox.store.create("namespaces", {"metadata": {"name": "rollback-webhook"}, "spec": {}})
    assert run("check-config", "--config", _write(tmp_path, document), "--connect").returncode == 0


def test_history_without_a_kubeconfig(run: Run) -> None:
    assert_clear_failure(run("history", "shop/checkout"), says="history: kubernetes: not in a pod")
    assert_clear_failure(
        run("history", "shop/checkout", "--kubeconfig", "/nonexistent/kubeconfig"),
        says="history: kubernetes.kubeconfig: cannot read /nonexistent/kubeconfig",
    )


def test_history_against_a_dead_api_server(run: Run, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "dead.kubeconfig", DEAD_URL)
    result = run("history", "shop/checkout", "--kubeconfig", str(kubeconfig))
    assert_clear_failure(result, says="history: shop/checkout: GET ")
    assert "connection failed" in result.stderr


def test_history_of_a_missing_deployment(run: Run, sandbox: SandboxHandle) -> None:
    result = run("history", "shop/nothing", "--kubeconfig", str(sandbox.kubeconfig))
    assert_clear_failure(result, says="history: deployment shop/nothing not found")


def test_history_with_a_broken_config(run: Run, tmp_path: Path) -> None:
    path = _write(tmp_path, {"server": {"port": 99999}})
    assert_clear_failure(
        run("history", "shop/checkout", "--config", path), says="server.port: must be at most"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["audit"],
        ["replay", "--audit-id", "x", "--reason", "r"],
        ["resume", "shop/web", "--reason", "r"],
    ],
)
def test_oncall_clients_against_broken_servers(run: Run, tmp_path: Path, command: list[str]):
    name = command[0]
    assert_clear_failure(
        run(*command, "--url", DEAD_URL, "--token", "t"),
        says=f"{name}: cannot reach {DEAD_URL}",
    )
    assert_clear_failure(
        run(*command, "--url", "localhost:8080", "--token", "t"),
        says=f"{name}: --url: expected http:// or https://",
    )
    assert_clear_failure(
        run(*command, "--url", DEAD_URL, "--token-file", str(tmp_path / "none")),
        says=f"{name}: --token-file: cannot read",
    )
    assert_clear_failure(run(*command, "--url", DEAD_URL), says=f"{name}: no on-call token")


def test_sandbox_with_broken_flags(run: Run) -> None:
    assert_clear_failure(run("sandbox", "--port", "99999"), says="sandbox: --port: cannot listen")
    assert_clear_failure(
        run("sandbox", "--port", "0", "--kubeconfig-out", "/proc/x/kubeconfig"),
        says="sandbox: --kubeconfig-out /proc/x/kubeconfig",
    )
    assert_clear_failure(
        run("sandbox", "--port", "0", "--seed", "/nonexistent/seed.yaml"),
        says="sandbox: --seed /nonexistent/seed.yaml",
    )


def test_demo_with_an_unusable_workdir(run: Run) -> None:
    assert_clear_failure(
        run("demo", "--recorded", "--workdir", "/proc/rollback-demo"),
        says="demo: --workdir: cannot use /proc/rollback-demo",
    )


def test_serve_with_a_port_flag_out_of_range(run: Run, tmp_path: Path, base: dict[str, object]):
    result = run("serve", "--config", _write(tmp_path, base), "--port", "99999")
    assert_clear_failure(result, says="serve: --port: must be between 1 and 65535")


def test_every_credential_problem_is_reported_at_once(
    run: Run, tmp_path: Path, base: dict[str, object]
) -> None:
    """Secrets are files mounted from Secrets: a wrong mount path is often wrong for all of
    them, and each must show in the one run, not one per fix."""
    oncall = tmp_path / "oncall"
    oncall.write_text("alice:one\nbob\n")
    document = _with(base, "auth.receiver.bearer_token_file", "/nonexistent/token")
    document = _with(document, "auth.receiver.basic_username", "alertmanager")
    document = _with(document, "auth.oncall_tokens_file", "/nonexistent/oncall")
    result = run("check-config", "--config", _write(tmp_path, document))
    assert_clear_failure(
        result, says="auth.oncall_tokens_file: cannot read /nonexistent/oncall", lines=3
    )
    for says in (
        "auth.receiver.bearer_token_file: cannot read /nonexistent/token",
        "auth.receiver.basic_password_file: basic_username needs a password",
    ):
        assert says in result.stderr
    # A readable tokens file with a bad line is named too, beside the unreadable token.
    document = _with(document, "auth.oncall_tokens_file", str(oncall))
    result = run("check-config", "--config", _write(tmp_path, document))
    assert "on-call tokens line 2: expected name:token" in result.stderr
    assert "auth.receiver.bearer_token_file: cannot read /nonexistent/token" in result.stderr
