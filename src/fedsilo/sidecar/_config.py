"""What one sidecar is told at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsilo.api import FederatedJob
from fedsilo.identity import VerifyKey
from fedsilo.privacy.ledger import run_name


@dataclass(frozen=True)
class SidecarConfig:
    """Everything one sidecar needs to know."""

    job: FederatedJob
    silo: str
    aggregator: str
    peer_keys: Mapping[str, VerifyKey]
    # The CA that issued the aggregator's serving certificate; None: the identity's own CA
    # (a local run, where one CA issues everything).
    aggregator_ca_pem: bytes | None = None
    # The job's hub key (the aggregator's audit key), which signs every global model: the
    # sidecar trains on no model it does not verify with it. None (a cluster whose operator
    # does not publish the key yet) leaves models unverified, with a warning at start.
    aggregator_key: VerifyKey | None = None
    # How long to keep trying to reach the aggregator before giving up.
    connect_timeout: float = 60.0
    # The silo's privacy ledger (SQLite); required when the job runs with differential privacy.
    ledger: Path | None = None
    # Tells this run of the job apart from earlier runs of the same name in the ledger.
    run_id: str = ""
    # The silo's lifetime epsilon ceiling (Silo.spec.maxEpsilon), enforced across all its jobs.
    silo_max_epsilon: float | None = None
    # The identity folder (the mounted key Secret), read again between rounds for a renewed mTLS
    # certificate; None: the credentials the sidecar started with are kept.
    identity_dir: Path | None = None
    # The digest of the trainer's image (``sha256:...``) where known, signed in every update.
    trainer_image_digest: str | None = None

    @property
    def ledger_job(self) -> str:
        """The job as the ledger names it: one name per run, so a rerun is a new job of the silo's lifetime."""
        return run_name(self.job.metadata.name, self.run_id)
