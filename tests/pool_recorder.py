"""Noting every HTTP request a Kubernetes client sends, at its connection pools.

The service's transport (webhook.kube) sends on the urllib3 connection pool of the API server,
and the client's REST layer does too: a pool is where every request of either path passes. The
client's PoolManager is left a plain PoolManager (the service sends directly only on one); only
the pools it makes are of a recording kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes.client
import urllib3

# (method, request target: path and query, HTTP status or None when no answer came)
OnRequest = Callable[[str, str, "int | None"], None]


def _recording(base: type, on_request: OnRequest) -> type:
    class Recording(base):
        def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            status = None
            try:
                response = super().urlopen(method, url, *args, **kwargs)
                status = response.status
                return response
            finally:
                on_request(method.upper(), url, status)

    return Recording


def record_requests(api: kubernetes.client.ApiClient, on_request: OnRequest) -> None:
    """From now on, every request `api` (or a webhook.kube.Cluster built on it) sends is told
    to `on_request`. Pools made before are dropped, so none of them escapes."""
    manager = api.rest_client.pool_manager
    manager.pool_classes_by_scheme = {
        "http": _recording(urllib3.HTTPConnectionPool, on_request),
        "https": _recording(urllib3.HTTPSConnectionPool, on_request),
    }
    manager.clear()
