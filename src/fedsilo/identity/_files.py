"""A silo's identity on disk: the layout ``fedsilo identity create`` writes and the sidecar reads.

The same file names are the keys of the Kubernetes Secret the operator mounts into a
sidecar pod, so a local run and a cluster read identities the same way. Secret files are
0600; the public key is also written separately so it can be registered on a Silo object.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ._crypto import SigningKey, load_signing_key, save_signing_key, write_private_file
from ._pki import CertificateAuthority, TlsCredentials

SIGNING_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
CA_CERT_FILE = "ca.crt"


@dataclass(frozen=True)
class SiloIdentity:
    """What a sidecar holds: the silo's signing key and its mTLS client credentials."""

    signing_key: SigningKey
    tls: TlsCredentials

    def __repr__(self) -> str:
        return f"SiloIdentity({self.signing_key!r})"


def write_identity(directory: Path, identity: SiloIdentity) -> None:
    """Write ``identity`` to ``directory``: secrets 0600, public parts 0644."""
    directory.mkdir(parents=True, exist_ok=True)
    save_signing_key(identity.signing_key, directory / SIGNING_KEY_FILE)
    write_private_file(directory / TLS_KEY_FILE, identity.tls.private_key_pem)
    (directory / TLS_CERT_FILE).write_bytes(identity.tls.certificate_pem)
    (directory / CA_CERT_FILE).write_bytes(identity.tls.ca_certificate_pem)
    (directory / PUBLIC_KEY_FILE).write_text(identity.signing_key.public_key.to_base64() + "\n")


def read_tls(directory: Path) -> TlsCredentials:
    """The mTLS files of an identity folder as they are now (a renewed certificate included)."""
    return TlsCredentials(
        private_key_pem=(directory / TLS_KEY_FILE).read_bytes(),
        certificate_pem=(directory / TLS_CERT_FILE).read_bytes(),
        ca_certificate_pem=(directory / CA_CERT_FILE).read_bytes(),
    )


def renew_tls(directory: Path, authority: CertificateAuthority, silo: str, lifetime: dt.timedelta) -> TlsCredentials:
    """Issue ``silo`` a new client certificate and key valid for ``lifetime`` and put them in ``directory``.

    Called by the side that holds the silo's CA (never the hub). Each file is replaced by a
    rename, the key first: a reader between the two sees the new key with the old
    certificate, which ``check_key_pair`` refuses, and reads again later.
    """
    credentials = authority.issue(silo, server=False, lifetime=lifetime)
    for name, data in ((TLS_KEY_FILE, credentials.private_key_pem), (TLS_CERT_FILE, credentials.certificate_pem)):
        staged = directory / f".{name}.new"
        write_private_file(staged, data)
        os.replace(staged, directory / name)
    return credentials


def read_identity(directory: Path) -> SiloIdentity:
    """Read an identity written by ``write_identity`` (or mounted from its Secret)."""
    missing = [
        name
        for name in (SIGNING_KEY_FILE, TLS_KEY_FILE, TLS_CERT_FILE, CA_CERT_FILE)
        if not (directory / name).exists()
    ]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; create it with 'fedsilo identity create'")
    return SiloIdentity(signing_key=load_signing_key(directory / SIGNING_KEY_FILE), tls=read_tls(directory))
