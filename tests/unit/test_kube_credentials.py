"""The client's credential refresh hook runs at most once a second, and a refreshed token is
still what the next request after that second sends (tokens as the sandbox saw them)."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from sandbox.testing import SandboxHandle
from webhook.kube import (
    CREDENTIAL_REFRESH_SECONDS,
    Cluster,
    Transient,
    api_client_from_settings,
)


class RotatingHook:
    """Behaves as kubernetes.config's hooks do: each run sets the token and installs a new
    hook in its own place. Each run hands out the next token."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, configuration: Any) -> None:
        self.runs += 1
        configuration.api_key = {"authorization": f"token-{self.runs}"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.refresh_api_key_hook = lambda c: self(c)


def tokens_seen(sandbox: SandboxHandle) -> list[str | None]:
    return [e["token"] for e in sandbox.server.record.entries() if e["resource"] == "deployments"]


def test_a_refreshed_token_is_used_after_a_second_and_the_hook_runs_once_a_second(
    sandbox: SandboxHandle,
) -> None:
    now = [100.0]
    hook = RotatingHook()
    configuration: Any = kubernetes.client.Configuration(host=sandbox.url)
    # As a loader leaves it: the token it read, and its hook.
    configuration.api_key = {"authorization": "token-0"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.refresh_api_key_hook = hook
    cluster = Cluster(kubernetes.client.ApiClient(configuration), monotonic=lambda: now[0])
    for _ in range(5):
        cluster.list_deployments("default")
    now[0] += CREDENTIAL_REFRESH_SECONDS - 0.01
    cluster.list_deployments("default")
    now[0] += 0.01
    for _ in range(3):
        cluster.list_deployments("default")
    # A pool of its own shares the configuration, and its hook: no second wrapper.
    cluster.with_own_pool().list_deployments("default")

    assert hook.runs == 2
    assert tokens_seen(sandbox) == ["token-1"] * 6 + ["token-2"] * 4


def test_the_kubeconfig_loaders_own_hook_keeps_authenticating_once_wrapped(
    sandbox: SandboxHandle,
) -> None:
    # The library's hook replaces itself on every run; the newest must stay the one wrapped.
    now = [0.0]
    api = api_client_from_settings(kubeconfig=str(sandbox.kubeconfig), context=None)
    assert api.configuration.refresh_api_key_hook is not None
    cluster = Cluster(api, monotonic=lambda: now[0])
    for _ in range(4):
        cluster.list_deployments("default")
        now[0] += 2 * CREDENTIAL_REFRESH_SECONDS
    assert tokens_seen(sandbox) == [sandbox.token] * 4
    assert type(api.configuration.refresh_api_key_hook).__name__ == "_RefreshAtMostEvery"


class FailingOnceHook(RotatingHook):
    """Installs its successor, then raises (a loader whose token file was empty)."""

    def __call__(self, configuration: Any) -> None:
        super().__call__(configuration)
        if self.runs == 1:
            raise RuntimeError("Token file exists but empty.")


def sandbox_configuration(sandbox: SandboxHandle, hook: Any) -> Any:
    configuration: Any = kubernetes.client.Configuration(host=sandbox.url)
    configuration.api_key = {"authorization": "token-0"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.refresh_api_key_hook = hook
    return configuration


def test_the_throttle_outlives_a_hook_that_raised_and_a_bare_hook_put_back(
    sandbox: SandboxHandle,
) -> None:
    now = [0.0]
    hook = FailingOnceHook()
    configuration = sandbox_configuration(sandbox, hook)
    cluster = Cluster(kubernetes.client.ApiClient(configuration), monotonic=lambda: now[0])
    # Nothing sent: a Transient that says so (a 503 and a retry), not an unhandled error.
    with pytest.raises(Transient, match="credentials: Token file exists but empty") as raised:
        cluster.list_deployments("default")
    assert raised.value.ended
    for _ in range(3):
        cluster.list_deployments("default")
    assert hook.runs == 1
    # A thread that read the bare hook before it was wrapped again runs it late and puts a
    # bare hook back: the next request wraps it again (one run for three requests).
    configuration.refresh_api_key_hook = lambda c: hook(c)
    for _ in range(3):
        cluster.list_deployments("default")
    assert hook.runs == 2
    assert tokens_seen(sandbox) == ["token-1"] * 3 + ["token-2"] * 3


def test_a_refused_connection_is_a_request_that_never_left() -> None:
    # Nothing listens there: no connection, nothing sent, so a write cannot land later and
    # the decision may be recorded failed at once (the retry decides anew).
    configuration = kubernetes.client.Configuration(host="http://127.0.0.1:9")
    cluster = Cluster(kubernetes.client.ApiClient(configuration), timeout_seconds=2)
    deployment = {"metadata": {"namespace": "shop", "name": "web", "resourceVersion": "1"}}
    with pytest.raises(Transient) as raised:
        cluster.replace_deployment(deployment)
    assert raised.value.ended and not raised.value.timeout
