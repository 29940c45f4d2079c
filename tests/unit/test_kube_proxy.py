"""A proxy named in the kubeconfig carries the service's Kubernetes requests: webhook.kube sends
directly on the API server's connection pool only without one."""

from __future__ import annotations

import socket
import threading

import kubernetes.client

from webhook.kube import Cluster, Transient


def test_requests_go_through_the_configured_proxy() -> None:
    seen: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                seen.append(connection.recv(65536))
                body = b'{"kind": "Deployment", "metadata": {"name": "web"}}'
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        configuration = kubernetes.client.Configuration(host="http://api.invalid:6443")
        configuration.proxy = proxy
        cluster = Cluster(kubernetes.client.ApiClient(configuration), timeout_seconds=5)
        try:
            found = cluster.get_deployment("shop", "web")
        except Transient as exc:  # pragma: no cover - shown in the assertion below
            found = {"error": str(exc)}
        thread.join(timeout=5)
    assert found["metadata"]["name"] == "web", found
    # A proxied request names the whole URL; a direct one would have gone to api.invalid.
    assert seen and seen[0].startswith(
        b"GET http://api.invalid:6443/apis/apps/v1/namespaces/shop/deployments/web HTTP/1.1"
    ), seen
