"""``fedsilo sidecar`` and ``fedsilo trainer``: the per-silo processes, as pods run them too."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from fedsilo.identity import SignatureError, VerifyKey, read_identity
from fedsilo.launch import SidecarArgs, TrainerArgs
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService, start_link_server
from fedsilo.trainer import run_trainer

from ._exit import EXIT_USAGE
from ._manifests import manifest_or_report

log = logging.getLogger("fedsilo.cli")


def read_aggregator_key(path: Path) -> VerifyKey:
    """The hub's public key from ``--aggregator-key PATH``; ``ValueError`` naming the flag and the fix."""
    try:
        return VerifyKey.from_base64(path.read_text().strip())
    except OSError as error:
        raise ValueError(f"--aggregator-key {path}: cannot read it: {error.strerror}") from None
    except (SignatureError, UnicodeDecodeError) as error:
        raise ValueError(
            f"--aggregator-key {path}: not a base64 Ed25519 public key ({error}); give the hub's aggregator-key.pub"
        ) from None


def _sidecar(parsed: argparse.Namespace) -> int:
    args = SidecarArgs.from_namespace(parsed)
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    try:
        aggregator_key = read_aggregator_key(args.aggregator_key) if args.aggregator_key else None
    except ValueError as error:
        log.error("%s", error)
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
            aggregator_key=aggregator_key,
            ledger=args.ledger,
            run_id=args.run_id,
            silo_max_epsilon=manifest.silo(args.silo).spec.max_epsilon,
        )
        return Sidecar(config, identity, link).run()
    finally:
        server.stop(grace=1)


def _trainer(parsed: argparse.Namespace) -> int:
    args = TrainerArgs.from_namespace(parsed)
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    spec = manifest.job.spec
    data_path = args.data_path or manifest.silo(args.silo).spec.data.path
    ca = args.sidecar_ca.read_bytes() if args.sidecar_ca else None
    return run_trainer(spec, args.silo, args.sidecar, data_path=data_path, ca_certificate_pem=ca)


def register(commands: Any) -> None:
    """Add ``sidecar`` and ``trainer``, with the flags their typed arguments declare."""
    SidecarArgs.register(commands).set_defaults(handler=_sidecar)
    TrainerArgs.register(commands).set_defaults(handler=_trainer)
