"""``fedsilo identity create``: a silo's long-term Ed25519 key and mTLS client certificate.

The private files are written 0600 and never printed; the command prints only the public
key, which is what a Silo object registers in ``spec.identity.publicKey``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, write_identity

from ._exit import EXIT_OK, EXIT_USAGE


def _create(args: argparse.Namespace) -> int:
    directory: Path = args.out / args.silo
    if directory.exists() and any(directory.iterdir()) and not args.force:
        print(f"error: {directory} already holds an identity; pass --force to replace it", file=sys.stderr)
        return EXIT_USAGE
    ca = CertificateAuthority.create(f"{args.silo} identity CA")
    key = SigningKey.generate()
    write_identity(directory, SiloIdentity(key, ca.issue(args.silo, server=False)))
    print(f"wrote {directory} (private files mode 0600)")
    print(f"register on Silo/{args.silo}:  spec.identity.publicKey: {key.public_key.to_base64()}")
    print(f"fingerprint: {key.public_key.fingerprint()}")
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``identity create``."""
    identity = commands.add_parser("identity", help="silo identities (Ed25519 signing key, mTLS certificate)")
    sub = identity.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a silo's identity files")
    create.add_argument("--silo", required=True, help="silo name (becomes the certificate's common name)")
    create.add_argument("--out", type=Path, default=Path("identities"), help="parent folder (default identities/)")
    create.add_argument("--force", action="store_true", help="replace an existing identity")
    create.set_defaults(handler=_create)
