"""``fedsilo sidecar`` and ``fedsilo trainer``: the per-silo processes, as pods run them too."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from fedsilo.identity import VerifyKey, read_identity
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService, start_link_server
from fedsilo.trainer import run_trainer

from ._exit import EXIT_USAGE
from ._manifests import manifest_or_report

log = logging.getLogger("fedsilo.cli")


def _sidecar(args: argparse.Namespace) -> int:
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    peer_keys = {
        s.metadata.name: VerifyKey.from_base64(s.spec.identity.public_key)
        for s in manifest.silos
        if s.spec.identity.public_key
    }
    identity = read_identity(args.identity_dir)
    link = TrainerLinkService.from_environment()
    server = start_link_server(link, args.trainer_listen, identity.tls)
    try:
        config = SidecarConfig(
            job=manifest.job,
            silo=args.silo,
            aggregator=args.aggregator,
            peer_keys=peer_keys,
            aggregator_ca_pem=args.aggregator_ca.read_bytes() if args.aggregator_ca else None,
            ledger=args.ledger,
            run_id=args.run_id,
            silo_max_epsilon=manifest.silo(args.silo).spec.max_epsilon,
        )
        return Sidecar(config, identity, link).run()
    finally:
        server.stop(grace=1)


def _trainer(args: argparse.Namespace) -> int:
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    spec = manifest.job.spec
    data_path = args.data_path or manifest.silo(args.silo).spec.data.path
    ca = args.sidecar_ca.read_bytes() if args.sidecar_ca else None
    return run_trainer(spec, args.silo, args.sidecar, data_path=data_path, ca_certificate_pem=ca)


def register(commands: Any) -> None:
    """Add ``sidecar`` and ``trainer``."""
    sidecar = commands.add_parser("sidecar", help="run a silo's sidecar (its only network path)")
    sidecar.add_argument("--job-config", type=Path, required=True, help="manifest with the job and its silos")
    sidecar.add_argument("--silo", required=True, help="this silo's name")
    sidecar.add_argument("--aggregator", required=True, help="HOST:PORT of the aggregator (mTLS)")
    sidecar.add_argument("--identity-dir", type=Path, required=True, help="signing key and TLS files")
    sidecar.add_argument("--trainer-listen", required=True, help="unix:PATH, or HOST:PORT (TLS) in a cluster")
    sidecar.add_argument(
        "--aggregator-ca", type=Path, help="CA of the aggregator's serving certificate (default: the identity's CA)"
    )
    sidecar.add_argument("--ledger", type=Path, help="the silo's privacy ledger (SQLite); required for DP jobs")
    sidecar.add_argument("--run-id", default="", help="names this run of the job in the ledger (e.g. its UID)")
    sidecar.set_defaults(handler=_sidecar)
    trainer = commands.add_parser("trainer", help="run a silo's trainer (talks only to its sidecar)")
    trainer.add_argument("--job-config", type=Path, required=True, help="manifest with the job and its silos")
    trainer.add_argument("--silo", required=True, help="this silo's name")
    trainer.add_argument("--sidecar", required=True, help="unix:PATH or HOST:PORT of the sidecar's trainer link")
    trainer.add_argument("--data-path", help="csv or npz file with this silo's records")
    trainer.add_argument("--sidecar-ca", type=Path, help="CA certificate to verify a TCP sidecar")
    trainer.set_defaults(handler=_trainer)
