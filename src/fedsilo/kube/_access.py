"""How to reach the API server: address, trust, and credentials, from a kubeconfig or in-cluster.

:class:`fedsilo.kube.KubeApi` and the operator's kopf login handler both build their
connections from one :class:`ClusterAccess`, so the operator's own requests and kopf's
watches always run as the same identity (the test suite runs the operator with a
ServiceAccount token this way). The kubernetes client library only parses the kubeconfig;
requests go through :mod:`fedsilo.kube._client`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

#: Set in every pod whose ServiceAccount token is mounted.
_IN_CLUSTER_VARIABLE = "KUBERNETES_SERVICE_HOST"


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to authenticate to it.

    ``ca_file``, ``cert_file`` and ``key_file`` may be temporary files the kubernetes
    library wrote from inline kubeconfig data.
    """

    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    _configuration: Any = field(repr=False, compare=False)

    def authorization(self) -> str | None:
        """The ``Authorization`` header value, refreshed if the token rotates (in-cluster tokens do)."""
        configuration = self._configuration
        header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
            "authorization"
        )
        return str(header) if header else None


def load_access(kubeconfig: Path | None = None) -> ClusterAccess:
    """Access from ``kubeconfig``; without one, in-cluster inside a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and _IN_CLUSTER_VARIABLE in os.environ:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None,
            client_configuration=configuration,
            persist_config=False,
        )
    return ClusterAccess(
        server=str(configuration.host).rstrip("/"),
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        verify=bool(configuration.verify_ssl),
        _configuration=configuration,
    )
