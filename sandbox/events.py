"""Events the sandbox's deployment-controller records, as client-go's event recorder writes
them, so `kubectl describe deployment` lists the scaling it did."""

from __future__ import annotations

from typing import Any

from sandbox.store import Store, format_time


def record_event(store: Store, obj: dict[str, Any], *, reason: str, message: str) -> None:
    """A Normal core/v1 Event from the deployment-controller about `obj`, shaped as
    client-go's event recorder writes it (what `kubectl describe` lists)."""
    meta = obj["metadata"]
    now = store.now()
    when = format_time(now)
    # The recorder names events <object>.<unix nanos in hex>; the resourceVersion keeps
    # names unique when as_of pins the time.
    suffix = f"{int(now.timestamp() * 1e9) + store.resource_version:x}"
    store.create(  # a new dict of strings: the store may keep it as it is
        "events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "apps/v1"),
                "kind": obj.get("kind", "Deployment"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": "deployment-controller"},
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
            "type": "Normal",
            "eventTime": None,
            "reportingComponent": "deployment-controller",
            "reportingInstance": "",
        },
        adopt=True,
    )
