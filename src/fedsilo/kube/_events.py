"""Kubernetes Events about fedsilo objects: what ``kubectl describe`` shows under Events.

Built here for both writers, the operator (reconcile problems, identities created) and
the aggregator's status reporter (every round, every denial).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from ._client import Object

EventType = Literal["Normal", "Warning"]

#: The API server rejects longer messages.
_MAX_MESSAGE = 1024


def event(
    involved: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    type: EventType,
    component: str,
    instance: str = "",
) -> Object:
    """A core/v1 Event about ``involved`` (a full object or a reference with apiVersion, kind, metadata)."""
    meta = involved["metadata"]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": type,
        "source": {"component": component},
        "reportingComponent": f"fedsilo.io/{component}",
        "reportingInstance": instance or component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
