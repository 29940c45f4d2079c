"""Concurrency: racing read-modify-replace writers on one object, as optimistic
concurrency on a real apiserver (etcd guaranteed update) behaves."""

from __future__ import annotations

import socket
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.server import SandboxServer
from sandbox.testing import SandboxHandle


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }


def counter_of(metadata: client.V1ObjectMeta | None) -> dict[str, str]:
    """The annotations holding the shared counter, which every write carries."""
    assert metadata is not None and metadata.annotations is not None
    assert "counter" in metadata.annotations, metadata.annotations
    return metadata.annotations


def test_eight_threads_read_modify_replace_lose_no_update(sandbox: SandboxHandle) -> None:
    seed = client.AppsV1Api(sandbox.api_client())
    seed.create_namespaced_deployment(
        "default",
        client.V1Deployment.model_validate(
            {
                **deployment("web"),
                "metadata": {"name": "web", "annotations": {"counter": "0"}},
            }
        ),
    )
    per_thread = 5
    successes: list[tuple[int, int]] = []  # (resourceVersion written, counter value)
    conflicts: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        apps = client.AppsV1Api(sandbox.api_client())
        done = 0
        while done < per_thread:
            current = apps.read_namespaced_deployment("web", "default")
            annotations = counter_of(current.metadata)
            value = int(annotations["counter"]) + 1
            annotations["counter"] = str(value)
            try:
                written = apps.replace_namespaced_deployment("web", "default", current)
            except ApiException as error:
                assert error.status == 409
                with lock:
                    conflicts.append(1)
                continue
            assert written.metadata is not None and written.metadata.resource_version
            with lock:
                successes.append((int(written.metadata.resource_version), value))
            done += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    final = seed.read_namespaced_deployment("web", "default")
    # No lost update: every success incremented the counter exactly once.
    assert int(counter_of(final.metadata)["counter"]) == 8 * per_thread
    values = sorted(value for _, value in successes)
    assert values == list(range(1, 8 * per_thread + 1))
    # Each success bumped the resourceVersion: written versions are distinct and grow with value.
    by_value = [rv for rv, _ in sorted(successes, key=lambda pair: pair[1])]
    assert by_value == sorted(by_value) and len(set(by_value)) == len(by_value)
    assert conflicts, "eight racing writers should have produced at least one 409"


def test_a_burst_of_connections_waits_in_the_listen_queue_not_for_a_syn_retransmit() -> None:
    # Not serving yet, so every connection waits in the kernel's accept queue. With
    # socketserver's default backlog (5) the 7th SYN was dropped and its client waited out
    # the 1 s retransmit: a storm's p99 at 10 Deployments was 1.04 s in 2 runs of 12.
    server = SandboxServer()
    host, port = server.url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        for _ in range(32):  # as many as the receiver's pool holds (32)
            sockets.append(socket.create_connection((host, int(port)), timeout=0.5))
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    assert len(sockets) == 32
