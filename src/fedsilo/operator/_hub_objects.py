"""Pure builders of a FederatedJob's hub-side children: the aggregator and everything around it.

The hub reconciler calls :func:`hub_objects` and applies the result; tests call it to check
what a job turns into. For a job ``J`` in namespace ``N``:

- ConfigMap ``J-job``: the job manifest with the silos' public keys, and each silo's own CA
  (one key per silo, :func:`fedsilo.launch.silo_ca_file`);
- ConfigMap ``J-policies``: the Rego bundle and OPA's configuration;
- ServiceAccount, Role and RoleBinding ``J-aggregator``: patch this job's status, create Events;
- Deployment ``J-aggregator``: the aggregator with OPA beside it on loopback;
- Service ``J-aggregator`` and a NetworkPolicy admitting only the gRPC port.

The serving certificate (Secret ``J-aggregator-tls``) is created once by the reconciler,
never applied, because the operator cannot read it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedsilo.api import API_GROUP, FederatedJob
from fedsilo.kube import (
    JOB_NAME_VARIABLE,
    JOB_NAMESPACE_VARIABLE,
    JOB_UID_VARIABLE,
    POD_NAME_VARIABLE,
    Object,
)
from fedsilo.launch import (
    JOB_DIR,
    MANIFEST_FILE,
    OPA_CONFIG_DIR,
    OPA_CONFIG_FILE,
    POLICY_DIR,
    STATE_DIR,
    TLS_DIR,
    AggregatorArgs,
    hub_allocator_environment,
    manifest_without_standing,
    silo_ca_file,
)
from fedsilo.policy import opa_config, opa_run_args

from ._config import AGGREGATOR_METRICS_PORT, GRPC_PORT, OPA_ADDRESS, OPA_DIAGNOSTIC_PORT, OperatorConfig
from ._names import (
    COMPONENT_LABEL,
    JOB_LABEL,
    JOB_NAMESPACE_LABEL,
    SIDECAR,
    SILO_NAMESPACE_LABEL,
    SPEC_DIGEST_ANNOTATION,
    adopt,
    child_name,
    labels,
    selector,
)
from ._podspec import OPA_RESOURCES, container, pod_security_context, tmp_mount, tmp_volume

AGGREGATOR = "aggregator"
#: Room for a job's audit log, round models and ledger (the registry keeps every round's model).
STATE_STORAGE = "2Gi"

#: Policy bundle files by their path in the bundle (``fedsilo/update/policy.rego``).
PolicyFiles = Mapping[str, str]


def load_policy_files(root: Path) -> dict[str, str]:
    """The bundle OPA serves: its manifest, the policies (tests left out) and the data documents."""
    files = {}
    for path in sorted(root.rglob("*")):
        wanted = (
            path.name == ".manifest"
            or path.suffix == ".json"
            or (path.suffix == ".rego" and not path.name.endswith("_test.rego"))
        )
        if path.is_file() and wanted:
            files[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return files


def aggregator_name(job: str) -> str:
    """The Deployment, Service, ServiceAccount, Role and NetworkPolicy of a job's aggregator."""
    return child_name(job, AGGREGATOR)


def job_config_name(job: str) -> str:
    """The ConfigMap with the job manifest on the hub."""
    return child_name(job, "job")


def policies_name(job: str) -> str:
    """The ConfigMap with the policy bundle."""
    return child_name(job, "policies")


def tls_secret_name(job: str) -> str:
    """The Secret with the aggregator's serving certificate."""
    return child_name(job, AGGREGATOR, "tls")


def endpoint_address(job: str, namespace: str, config: OperatorConfig) -> str:
    """host:port where sidecars in the cluster reach the aggregator."""
    return f"{aggregator_name(job)}.{namespace}.svc.{config.cluster_domain}:{GRPC_PORT}"


@dataclass(frozen=True)
class HubInputs:
    """Everything the hub children of one job are built from."""

    owner: Mapping[str, Any]
    job: FederatedJob
    manifest: str
    #: Each silo's own CAs (PEM; two while its CA is rotated) by silo name: the CAs that may issue its certificates.
    silo_cas: Mapping[str, str]
    aggregator_ca: str
    finished: bool


def _config_key(path: str) -> str:
    """A ConfigMap key for a bundle path (keys may not hold '/')."""
    return path.replace("/", ".")


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _meta(name: str, namespace: str, job: str) -> Object:
    return {"name": name, "namespace": namespace, "labels": labels(AGGREGATOR, job)}


def _job_config_map(inputs: HubInputs, namespace: str) -> Object:
    job = inputs.job.metadata.name
    data = {MANIFEST_FILE: inputs.manifest}
    data.update({silo_ca_file(silo): ca for silo, ca in inputs.silo_cas.items()})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(job_config_name(job), namespace, job),
        "data": data,
    }


def _policies_config_map(job: str, namespace: str, policies: PolicyFiles) -> Object:
    data = {_config_key(path): text for path, text in policies.items()}
    data[OPA_CONFIG_FILE] = yaml.safe_dump(opa_config(), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(policies_name(job), namespace, job),
        "data": data,
    }


def _rbac(job: str, namespace: str) -> list[Object]:
    name = aggregator_name(job)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, namespace, job),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(name, namespace, job),
            "rules": [
                # Its own job's status, nothing else of the API.
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["federatedjobs/status"],
                    "resourceNames": [job],
                    "verbs": ["get", "patch"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, namespace, job),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _field_env(name: str, path: str) -> Object:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _deployment(inputs: HubInputs, namespace: str, policies: PolicyFiles, config: OperatorConfig) -> Object:
    job = inputs.job.metadata.name
    name = aggregator_name(job)
    aggregator = container(
        AGGREGATOR,
        # The trainer image: round 0's model is built by the job's model code, which needs
        # PyTorch (and a user's factory) that the fedsilo image leaves out.
        config.trainer_image,
        config.image_pull_policy,
        AggregatorArgs(
            job_config=Path(JOB_DIR / MANIFEST_FILE),
            listen=f"0.0.0.0:{GRPC_PORT}",
            tls_dir=Path(TLS_DIR),
            state_dir=Path(STATE_DIR),
            policy_url=f"http://{OPA_ADDRESS}",
            metrics_port=AGGREGATOR_METRICS_PORT,
        ).argv(),
        ports=[
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": AGGREGATOR_METRICS_PORT, "protocol": "TCP"},
        ],
        env=[
            {"name": JOB_NAME_VARIABLE, "value": job},
            _field_env(JOB_NAMESPACE_VARIABLE, "metadata.namespace"),
            {"name": JOB_UID_VARIABLE, "value": str(inputs.owner["metadata"]["uid"])},
            _field_env(POD_NAME_VARIABLE, "metadata.name"),
            *({"name": name, "value": value} for name, value in hub_allocator_environment().items()),
        ],
        volumeMounts=[
            {"name": "job", "mountPath": str(JOB_DIR), "readOnly": True},
            {"name": "tls", "mountPath": str(TLS_DIR), "readOnly": True},
            {"name": "state", "mountPath": str(STATE_DIR)},
            tmp_mount(),
        ],
        readinessProbe={"tcpSocket": {"port": "grpc"}, "periodSeconds": 5},
        # Building round 0's model imports PyTorch first: minutes on a busy node. The liveness
        # probe starts only once the server listens, so a slow start is not killed (and the
        # restart never ends in the job failing for a SIGTERM).
        startupProbe={"tcpSocket": {"port": "grpc"}, "periodSeconds": 5, "failureThreshold": 120},
        livenessProbe={"tcpSocket": {"port": "grpc"}, "periodSeconds": 20, "failureThreshold": 6},
        resources=inputs.job.spec.resources.aggregator.render(),
    )
    opa = container(
        "opa",
        config.opa_image,
        config.image_pull_policy,
        [
            # The kubelet writes a ConfigMap volume into a hidden, timestamped directory behind the
            # link ..data; OPA would read those names as data paths and follows no linked
            # directory, so it reads the bundle through the link (the slash makes it follow).
            *opa_run_args(
                f"{POLICY_DIR}/..data/", config_file=Path(OPA_CONFIG_DIR / OPA_CONFIG_FILE), address=OPA_ADDRESS
            ),
            "--diagnostic-addr",
            f"0.0.0.0:{OPA_DIAGNOSTIC_PORT}",
        ],
        ports=[{"name": "opa-health", "containerPort": OPA_DIAGNOSTIC_PORT, "protocol": "TCP"}],
        volumeMounts=[
            {"name": "policies", "mountPath": str(POLICY_DIR), "readOnly": True},
            {"name": "opa-config", "mountPath": str(OPA_CONFIG_DIR), "readOnly": True},
        ],
        readinessProbe={"httpGet": {"path": "/health?bundles", "port": "opa-health"}, "periodSeconds": 5},
        livenessProbe={"httpGet": {"path": "/health", "port": "opa-health"}, "periodSeconds": 20},
        resources=OPA_RESOURCES,
    )
    template_labels = labels(AGGREGATOR, job)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, job),
        "spec": {
            # One aggregator per job: it holds the round's state; a second would split the silos.
            "replicas": 0 if inputs.finished else 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(AGGREGATOR, job)},
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": {
                        # Not the silos' standing nor their CAs: the aggregator takes a suspension or a
                        # new key from the updated ConfigMap at its next round boundary, and a rotated
                        # CA from its file within a second, without a restart.
                        SPEC_DIGEST_ANNOTATION: _digest(
                            manifest_without_standing(inputs.manifest),
                            inputs.aggregator_ca,
                            dict(policies),
                        ),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(AGGREGATOR_METRICS_PORT),
                    },
                },
                "spec": {
                    "serviceAccountName": name,
                    # The status reporter is the one API client in the pod.
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [aggregator, opa],
                    "volumes": [
                        {"name": "job", "configMap": {"name": job_config_name(job)}},
                        {"name": "tls", "secret": {"secretName": tls_secret_name(job), "defaultMode": 0o440}},
                        {
                            "name": "policies",
                            "configMap": {
                                "name": policies_name(job),
                                "items": [{"key": _config_key(path), "path": path} for path in policies],
                            },
                        },
                        {
                            "name": "opa-config",
                            "configMap": {
                                "name": policies_name(job),
                                "items": [{"key": OPA_CONFIG_FILE, "path": OPA_CONFIG_FILE}],
                            },
                        },
                        # A claim, not an emptyDir: a restarted aggregator must find its audit log,
                        # registry and privacy ledger (and the outcome that stops it rerunning the job).
                        {"name": "state", "persistentVolumeClaim": {"claimName": state_claim_name(job)}},
                        tmp_volume(),
                    ],
                },
            },
        },
    }


def _service(job: str, namespace: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(aggregator_name(job), namespace, job),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(AGGREGATOR, job),
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
            ],
        },
    }


def _network_policy(job: str, namespace: str, config: OperatorConfig) -> Object:
    """Who may open the aggregator's gRPC port: its job's sidecars and the remote silos' networks.

    In this cluster, a sidecar pod of this job in a namespace labelled as a silo namespace
    (partners label theirs, docs/partner-onboarding.md); silos in other clusters arrive from
    the CIDRs the installation lists (``--remote-silo-cidr``, none by default). mTLS stays the
    gate for who a peer is; this keeps every other pod of the cluster off the port.
    """
    peers: list[Object] = [
        {
            "namespaceSelector": {"matchLabels": {SILO_NAMESPACE_LABEL: "true"}},
            "podSelector": {"matchLabels": {COMPONENT_LABEL: SIDECAR, JOB_LABEL: job, JOB_NAMESPACE_LABEL: namespace}},
        },
        *({"ipBlock": {"cidr": cidr}} for cidr in config.remote_silo_cidrs),
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(aggregator_name(job), namespace, job),
        "spec": {
            "podSelector": {"matchLabels": selector(AGGREGATOR, job)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": GRPC_PORT}]}],
        },
    }


def state_claim_name(job: str) -> str:
    """The PersistentVolumeClaim holding the aggregator's state directory."""
    return child_name(aggregator_name(job), "state")


def state_claim(job: str, namespace: str) -> Object:
    """The aggregator's state volume, owned by the job; created once (a claim's spec is immutable)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(state_claim_name(job), namespace, job),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": STATE_STORAGE}}},
    }


def hub_objects(inputs: HubInputs, policies: PolicyFiles, config: OperatorConfig) -> list[Object]:
    """Every hub-side child of the job, adopted by it, in the order they should be applied."""
    job, namespace = inputs.job.metadata.name, str(inputs.owner["metadata"]["namespace"])
    objects = [
        _job_config_map(inputs, namespace),
        _policies_config_map(job, namespace, policies),
        *_rbac(job, namespace),
        _service(job, namespace),
        _network_policy(job, namespace, config),
        _deployment(inputs, namespace, policies, config),
    ]
    return adopt(objects, inputs.owner)
