"""What the operator is configured with: images, the namespaces it manages, cluster conventions.

Built once by :func:`fedsilo.operator.run_operator` (from the ``fedsilo operator`` command
line) and passed to the pure builders, so a builder's output depends on its arguments only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from fedsilo import __version__
from fedsilo.launch import OperatorRole as OperatorRole

from ._admission import PolicyParameters

#: The aggregator's mTLS gRPC port, the only one its NetworkPolicy admits.
GRPC_PORT = 7443
#: The sidecar's port for its trainer (TLS), the only one the sidecar's policy admits.
TRAINER_LINK_PORT = 7000
AGGREGATOR_METRICS_PORT = 9090
#: OPA listens on loopback only: nothing but the aggregator in the same pod may ask it.
OPA_ADDRESS = "127.0.0.1:8181"
#: OPA's health endpoint for the kubelet's probes (no policy data is served there).
OPA_DIAGNOSTIC_PORT = 8282


@dataclass(frozen=True)
class OperatorConfig:
    """Images and cluster conventions the builders use.

    ``namespaces`` are the namespaces the operator watches and may create workloads in;
    empty means every namespace (cluster-wide). A Silo whose workload namespace is not
    among them is reported, never acted on.
    """

    namespaces: frozenset[str] = field(default_factory=frozenset)
    image: str = f"ghcr.io/fedsilo/fedsilo:{__version__}"
    trainer_image: str = f"ghcr.io/fedsilo/trainer:{__version__}"
    opa_image: str = "openpolicyagent/opa:1.22.2-static"
    image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    dns_namespace: str = "kube-system"
    dns_pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    #: Networks (CIDRs) of silos in other clusters, whose sidecars reach the aggregators from
    #: outside this cluster; the aggregators' NetworkPolicy admits them beside the sidecars of
    #: this cluster's silo namespaces. Empty: every silo runs in this cluster.
    remote_silo_cidrs: tuple[str, ...] = ()
    #: The installation's job-policy parameters (``--policy-params``); unset fields keep the bundle's.
    policy_parameters: PolicyParameters = field(default_factory=PolicyParameters)

    def __post_init__(self) -> None:
        # A typo here would otherwise surface as a NetworkPolicy the API server refuses, job by job.
        for cidr in self.remote_silo_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as error:
                raise ValueError(
                    f"remote_silo_cidrs: {cidr!r} is not a network in CIDR notation ({error}); "
                    "write it as address/prefix with no host bits set, e.g. 192.0.2.0/24"
                ) from None

    def manages(self, namespace: str) -> bool:
        """Whether the operator may create objects in ``namespace``."""
        return not self.namespaces or namespace in self.namespaces
