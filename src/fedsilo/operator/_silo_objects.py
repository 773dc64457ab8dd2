"""Pure builders of a silo's workloads for one job: trainer pod, sidecar pod, and their fences.

The silo reconciler applies :func:`silo_support_objects` first (it needs the sidecar
Service's cluster IP), then creates :func:`silo_pods`. For job ``J`` and silo ``S`` in the
silo's workload namespace:

- ConfigMap ``J-S-job``: the job manifest and the aggregator's CA certificate;
- Service ``J-S-sidecar``: the trainer's one destination;
- Pod ``J-S-sidecar``: holds the identity Secret, dials the aggregator, serves its trainer;
- Pod ``J-S-trainer``: the data read-only, no service-account token, no network but the sidecar;
- NetworkPolicies ``J-S-trainer`` (egress to its sidecar only, no ingress) and ``J-S-sidecar``
  (ingress from its trainer only; egress to the job's aggregator and DNS only).

Containers of one pod share a network namespace, so the trainer and the sidecar are two
pods: only then can a NetworkPolicy keep the trainer off the network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedsilo.api import AggregatorEndpoint, FederatedJob, Silo
from fedsilo.identity import CA_CERT_FILE
from fedsilo.kube import Object
from fedsilo.launch import (
    AGGREGATOR_CA_FILE,
    AGGREGATOR_PUBLIC_KEY,
    DATA_DIR,
    IDENTITY_DIR,
    JOB_DIR,
    LEDGER_DIR,
    LEDGER_FILE,
    MANIFEST_FILE,
    SIDECAR_CA_DIR,
    SidecarArgs,
    TrainerArgs,
)

from ._certificates import renews, sidecar_identity_volume
from ._config import GRPC_PORT, TRAINER_LINK_PORT, OperatorConfig
from ._hub_objects import AGGREGATOR
from ._identity import identity_public_name, identity_secret_name
from ._names import SIDECAR, SPEC_DIGEST_ANNOTATION, adopt, child_name, labels, selector
from ._podspec import container, pod_security_context, tmp_mount, tmp_volume

TRAINER = "trainer"
#: Room for a silo's privacy ledger: a few hundred bytes per charged round.
LEDGER_STORAGE = "256Mi"
#: An image reference pinned by digest (``repository@sha256:<64 hex>``): its digest is what ran.
IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def ledger_claim_name(silo: str) -> str:
    """The PersistentVolumeClaim holding ``silo``'s privacy ledger (one per silo, for all its jobs)."""
    return child_name(silo, "privacy-ledger")


def ledger_claim(inputs: SiloInputs) -> Object | None:
    """The silo's ledger volume when the job charges the silo (DP training or DP statistics); None otherwise.

    Owned by nothing and never deleted by the operator: the ledger is the silo's record of
    its lifetime epsilon, which must outlive every job (and a deleted Silo object too).
    """
    if not inputs.job.spec.charges_silos:
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": ledger_claim_name(inputs.silo_name),
            "namespace": inputs.workload_namespace,
            "labels": labels("privacy-ledger", silo=inputs.silo_name),
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": LEDGER_STORAGE}}},
    }


def sidecar_name(job: str, silo: str) -> str:
    """The sidecar Pod, its Service and its NetworkPolicy."""
    return child_name(job, silo, SIDECAR)


def trainer_name(job: str, silo: str) -> str:
    """The trainer Pod and its NetworkPolicy."""
    return child_name(job, silo, TRAINER)


def silo_job_config_name(job: str, silo: str) -> str:
    """The ConfigMap with the job manifest in the silo's namespace."""
    return child_name(job, silo, "job")


@dataclass(frozen=True)
class SiloInputs:
    """Everything one silo's workloads for one job are built from."""

    owner: Mapping[str, Any]
    job: FederatedJob
    silo: Silo
    workload_namespace: str
    manifest: str
    endpoint: AggregatorEndpoint

    @property
    def job_name(self) -> str:
        """The job's name."""
        return self.job.metadata.name

    @property
    def silo_name(self) -> str:
        """The silo's name."""
        return self.silo.metadata.name

    @property
    def job_namespace(self) -> str:
        """Where the job (and its aggregator) live."""
        return str(self.owner["metadata"]["namespace"])

    def labels(self, component: str) -> dict[str, str]:
        """Labels of a child of this silo for this job."""
        return labels(component, self.job_name, self.silo_name, self.job_namespace)

    def selector(self, component: str) -> dict[str, str]:
        """The labels picking this silo's ``component`` pod for this job."""
        return selector(component, self.job_name, self.silo_name, self.job_namespace)

    def meta(self, name: str, component: str) -> Object:
        """Object metadata in the workload namespace."""
        return {"name": name, "namespace": self.workload_namespace, "labels": self.labels(component)}


def _adopt_if_local(objects: list[Object], inputs: SiloInputs) -> list[Object]:
    # An owner reference cannot cross namespaces (the garbage collector would delete the
    # child at once); the job's finalizer removes such children instead.
    if inputs.workload_namespace == inputs.job_namespace:
        adopt(objects, inputs.owner)
    return objects


def data_path(inputs: SiloInputs) -> str | None:
    """The data file the trainer reads: the silo's own path, else the job's; relative paths are under /data."""
    path = inputs.silo.spec.data.path or inputs.job.spec.data.path
    if path is None:
        return None
    return path if path.startswith("/") else f"{DATA_DIR}/{path}"


def silo_support_objects(inputs: SiloInputs, config: OperatorConfig) -> list[Object]:
    """The ConfigMap, sidecar Service and both NetworkPolicies, adopted when in the job's namespace."""
    job, silo = inputs.job_name, inputs.silo_name
    data = {MANIFEST_FILE: inputs.manifest, AGGREGATOR_CA_FILE: inputs.endpoint.ca_certificate}
    if inputs.endpoint.model_key:
        data[AGGREGATOR_PUBLIC_KEY] = inputs.endpoint.model_key + "\n"
    config_map: Object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": inputs.meta(silo_job_config_name(job, silo), SIDECAR),
        "data": data,
    }
    service: Object = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": inputs.meta(sidecar_name(job, silo), SIDECAR),
        "spec": {
            "type": "ClusterIP",
            "selector": inputs.selector(SIDECAR),
            "ports": [
                {
                    "name": "trainer-link",
                    "port": TRAINER_LINK_PORT,
                    "targetPort": "trainer-link",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                }
            ],
        },
    }
    return _adopt_if_local([config_map, service, *network_policies(inputs, config)], inputs)


def network_policies(inputs: SiloInputs, config: OperatorConfig) -> list[Object]:
    """The trainer's and the sidecar's fences."""
    job, silo = inputs.job_name, inputs.silo_name
    trainer_link = [{"protocol": "TCP", "port": TRAINER_LINK_PORT}]
    trainer_policy: Object = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": inputs.meta(trainer_name(job, silo), TRAINER),
        "spec": {
            "podSelector": {"matchLabels": inputs.selector(TRAINER)},
            # The trainer dials its sidecar and accepts nothing: Ingress with no rule admits no
            # one. (An empty "ingress" list would mean the same, but the API server drops it and
            # every apply would then write the object again.)
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": inputs.selector(SIDECAR)}}], "ports": trainer_link}],
        },
    }
    aggregator_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": inputs.job_namespace}},
        "podSelector": {"matchLabels": selector(AGGREGATOR, job)},
    }
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": config.dns_namespace}},
        "podSelector": {"matchLabels": dict(config.dns_pod_labels)},
    }
    sidecar_policy: Object = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": inputs.meta(sidecar_name(job, silo), SIDECAR),
        "spec": {
            "podSelector": {"matchLabels": inputs.selector(SIDECAR)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": inputs.selector(TRAINER)}}], "ports": trainer_link}],
            "egress": [
                {"to": [aggregator_peer], "ports": [{"protocol": "TCP", "port": GRPC_PORT}]},
                {"to": [dns_peer], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            ],
        },
    }
    return [trainer_policy, sidecar_policy]


def _pod(inputs: SiloInputs, name: str, component: str, spec: Object) -> Object:
    # Pods are immutable in the fields that matter; the digest tells the reconciler when
    # the live pod was built from something else and must be replaced.
    built_from = [spec, inputs.manifest, inputs.endpoint.ca_certificate]
    digest = "sha256:" + hashlib.sha256(json.dumps(built_from, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**inputs.meta(name, component), "annotations": {SPEC_DIGEST_ANNOTATION: digest}},
        "spec": spec,
    }


def _pod_spec(containers: list[Object], volumes: list[Object]) -> Object:
    return {
        # Neither process talks to the Kubernetes API: no token in either pod.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "OnFailure",
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": [*volumes, tmp_volume()],
    }


def silo_pods(inputs: SiloInputs, sidecar_address: str, config: OperatorConfig) -> list[Object]:
    """The sidecar and trainer pods; the trainer dials ``sidecar_address`` (the Service's cluster IP)."""
    job, silo = inputs.job_name, inputs.silo_name
    job_volume = {"name": "job", "configMap": {"name": silo_job_config_name(job, silo)}}
    job_mount = {"name": "job", "mountPath": str(JOB_DIR), "readOnly": True}
    manifest = Path(JOB_DIR / MANIFEST_FILE)
    ledger = ledger_claim(inputs)
    sidecar_args = SidecarArgs(
        job_config=manifest,
        silo=silo,
        aggregator=inputs.endpoint.address,
        identity_dir=Path(IDENTITY_DIR),
        trainer_listen=f"0.0.0.0:{TRAINER_LINK_PORT}",
        # The aggregator's serving CA, from the hub's endpoint: the identity's CA is the silo's own.
        aggregator_ca=Path(JOB_DIR / AGGREGATOR_CA_FILE),
        # The hub's model-signing key, where the hub published one: no unsigned model is trained on.
        aggregator_key=Path(JOB_DIR / AGGREGATOR_PUBLIC_KEY) if inputs.endpoint.model_key else None,
        # The job's UID names this run in the ledger (a job recreated under the same name is a new
        # one) and in the statistics phase, whose context the aggregator names the same way.
        run_id=str(inputs.owner["metadata"]["uid"]),
    )
    ledger_mounts: list[Object] = []
    ledger_volumes: list[Object] = []
    if ledger is not None:
        sidecar_args = replace(sidecar_args, ledger=Path(LEDGER_DIR / LEDGER_FILE))
        ledger_mounts = [{"name": "ledger", "mountPath": str(LEDGER_DIR)}]
        ledger_volumes = [{"name": "ledger", "persistentVolumeClaim": {"claimName": ledger["metadata"]["name"]}}]
    if IMAGE_DIGEST.search(config.trainer_image):
        # A trainer image pinned by digest: the sidecar signs it into every update.
        sidecar_args = replace(sidecar_args, trainer_image_digest=config.trainer_image.rsplit("@", 1)[1])

    sidecar = container(
        SIDECAR,
        config.image,
        config.image_pull_policy,
        sidecar_args.argv(),
        ports=[{"name": "trainer-link", "containerPort": TRAINER_LINK_PORT, "protocol": "TCP"}],
        volumeMounts=[
            job_mount,
            {"name": "identity", "mountPath": str(IDENTITY_DIR), "readOnly": True},
            tmp_mount(),
            *ledger_mounts,
        ],
        readinessProbe={"tcpSocket": {"port": "trainer-link"}, "periodSeconds": 5},
        resources=inputs.job.spec.resources.sidecar.render(),
    )
    sidecar_volumes = [
        job_volume,
        # A renewed certificate comes from the Secret the operator updates; the kubelet refreshes it in place.
        sidecar_identity_volume(silo, identity_secret_name(silo))
        if renews(inputs.silo)
        else {"name": "identity", "secret": {"secretName": identity_secret_name(silo), "defaultMode": 0o440}},
        *ledger_volumes,
    ]

    trainer_args = TrainerArgs(
        job_config=manifest,
        silo=silo,
        sidecar=f"{sidecar_address}:{TRAINER_LINK_PORT}",
        sidecar_ca=Path(SIDECAR_CA_DIR / CA_CERT_FILE),
        data_path=data_path(inputs),
    )
    trainer_mounts = [
        job_mount,
        {"name": "sidecar-ca", "mountPath": str(SIDECAR_CA_DIR), "readOnly": True},
        tmp_mount(),
    ]
    trainer_volumes = [
        job_volume,
        {
            "name": "sidecar-ca",
            "configMap": {"name": identity_public_name(silo), "items": [{"key": CA_CERT_FILE, "path": CA_CERT_FILE}]},
        },
    ]
    claim = inputs.silo.spec.data.volume_claim
    if claim:
        trainer_mounts.append({"name": "data", "mountPath": str(DATA_DIR), "readOnly": True})
        trainer_volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    trainer = container(
        TRAINER,
        config.trainer_image,
        config.image_pull_policy,
        trainer_args.argv(),
        volumeMounts=trainer_mounts,
        resources=inputs.job.spec.resources.trainer.render(),
    )

    pods = [
        _pod(inputs, sidecar_name(job, silo), SIDECAR, _pod_spec([sidecar], sidecar_volumes)),
        _pod(inputs, trainer_name(job, silo), TRAINER, _pod_spec([trainer], trainer_volumes)),
    ]
    return _adopt_if_local(pods, inputs)
