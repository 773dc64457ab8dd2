"""Where a cluster's pods find their files: mount paths and file names, defined once.

The operator's builders (``fedsilo.operator``) mount ConfigMaps, Secrets and volumes at
these paths and name their keys with these file names; the processes in the pods
(``fedsilo aggregator|sidecar|trainer``) read the same names. A local run
(``fedsilo.runner``) lays its run directory out with the same file names where it has
the same files. Identity files (``tls.crt``, ``tls.key``, ``ca.crt``, the signing key)
are named by :mod:`fedsilo.identity`, which writes and reads them.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final

#: The job ConfigMap (hub and silo side): the job manifest and the CA certificates beside it
#: (on the hub each silo's CA, :func:`silo_ca_file`; in a silo the aggregator's).
JOB_DIR: Final = PurePosixPath("/etc/fedsilo/job")
#: The job manifest (one FederatedJob and its Silos with their public keys), as ConfigMap key and file.
MANIFEST_FILE: Final = "job.yaml"
#: Beside the manifest in a silo: the CA of the aggregator's serving certificate.
AGGREGATOR_CA_FILE: Final = "aggregator-ca.crt"
#: The hub's Ed25519 key that signs audit checkpoints and every global model: in the state
#: directory (and, in a cluster, made by the operator in the serving Secret).
AGGREGATOR_KEY: Final = "aggregator-key.pem"
#: Its public half (base64): beside the key, and beside the manifest in a silo, for the sidecar.
AGGREGATOR_PUBLIC_KEY: Final = "aggregator-key.pub"

#: The aggregator's serving certificate Secret (kubernetes.io/tls: ``tls.crt``, ``tls.key``, ``ca.crt``).
TLS_DIR: Final = PurePosixPath("/etc/fedsilo/tls")
#: The aggregator's state volume: audit log, its signing key, registry, ledger, outcome.
STATE_DIR: Final = PurePosixPath("/var/lib/fedsilo")
#: Under the state directory: the model registry.
REGISTRY_DIR: Final = "registry"
#: Under the state directory: how the job ended, so a restarted aggregator never reruns it.
OUTCOME_FILE: Final = "outcome.json"
#: Under the state directory: the hub's privacy ledger (DP jobs only).
PRIVACY_LEDGER_FILE: Final = "privacy-ledger.sqlite"
#: OPA's bundle and its configuration, beside the aggregator.
POLICY_DIR: Final = PurePosixPath("/policies")
OPA_CONFIG_DIR: Final = PurePosixPath("/etc/opa")
OPA_CONFIG_FILE: Final = "opa-config.yaml"

#: The sidecar's identity Secret (file names from :mod:`fedsilo.identity`).
IDENTITY_DIR: Final = PurePosixPath("/etc/fedsilo/identity")
#: The sidecar's privacy ledger volume (one claim per silo, kept across jobs).
LEDGER_DIR: Final = PurePosixPath("/var/lib/fedsilo-ledger")
LEDGER_FILE: Final = "ledger.sqlite"
#: In the trainer pod: the CA that signed the sidecar's certificate (from the silo's public ConfigMap).
SIDECAR_CA_DIR: Final = PurePosixPath("/etc/fedsilo/sidecar-ca")
#: In the trainer pod: the silo's data claim, read-only; relative data paths are under it.
DATA_DIR: Final = PurePosixPath("/data")


def silo_ca_file(silo: str) -> str:
    """The file (and hub job ConfigMap key) holding ``silo``'s own CA certificate, beside the manifest.

    One file per silo, not one bundle: the aggregator accepts a client certificate for a silo
    only if that silo's CA issued it, so it must know which CA is whose. A silo name is a DNS
    label, so the name is a valid ConfigMap key and never another file's name.
    """
    return f"silo-ca.{silo}.crt"
