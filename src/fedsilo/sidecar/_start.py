"""A sidecar process from its typed launch arguments: keys, trainer link, config, then the rounds.

``fedsilo sidecar`` (a silo pod, or one silo of ``fedsilo run``) parses its command line
into ``SidecarArgs`` and its manifest, and calls ``run_sidecar``; everything a sidecar
needs is read here, so the command only maps the outcome to an exit code.
"""

from __future__ import annotations

from pathlib import Path

from fedsilo.api import Manifest, load_manifest
from fedsilo.identity import SIGNING_KEY_FILE, SignatureError, VerifyKey, read_identity
from fedsilo.launch import SidecarArgs

from ._config import SidecarConfig
from ._keys import SiloKeys, registered_keys
from ._link import TrainerLinkService, start_link_server
from ._sidecar import Sidecar


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


def run_sidecar(args: SidecarArgs, manifest: Manifest) -> int:
    """Serve the trainer link and take part in every round; 0 when the job finished, 1 when it failed.

    Raises:
        ValueError: an argument is unusable (the message names the flag and the fix).
    """
    aggregator_key = read_aggregator_key(args.aggregator_key) if args.aggregator_key else None
    peer_keys = registered_keys(manifest)
    identity = read_identity(args.identity_dir)
    link = TrainerLinkService.from_environment()
    server = start_link_server(link, args.trainer_listen, identity.tls, args.identity_dir)
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
            trainer_image_digest=args.trainer_image_digest or None,
            identity_dir=args.identity_dir,
        )
        # The key file and the manifest are read again at every round: a rotated key is taken without a restart.
        keys = SiloKeys(
            args.silo,
            identity.signing_key,
            key_file=args.identity_dir / SIGNING_KEY_FILE,
            peers=peer_keys,
            peer_source=lambda: registered_keys(load_manifest(args.job_config)),
        )
        return Sidecar(config, identity, link, keys=keys).run()
    finally:
        server.stop(grace=1)
