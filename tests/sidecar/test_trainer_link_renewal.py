"""The trainer link presents the renewed certificate from the next connection on, without a restart.

In a cluster the silo operator renews the sidecar's short-lived certificate in the mounted
Secret; the trainer checks the link's certificate at every TLS handshake, so a link still
serving the first certificate would lock its trainer out once that one expired.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

from cryptography import x509

from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, renew_tls, write_identity
from fedsilo.sidecar import TrainerLinkService, start_link_server

LIFETIME = dt.timedelta(hours=1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _presented(port: int, ca_pem: bytes) -> x509.Certificate:
    """The certificate the link presents to a client that trusts the silo's CA, as the trainer does."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="bank-a") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _pem(certificate_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(certificate_pem)


def test_the_link_presents_a_renewed_certificate_at_the_next_handshake(tmp_path: Path) -> None:
    authority = CertificateAuthority.create("bank-a identity CA")
    identity = SiloIdentity(SigningKey.generate(), authority.issue("bank-a", server=False, lifetime=LIFETIME))
    write_identity(tmp_path, identity)
    port = _free_port()
    server = start_link_server(TrainerLinkService(), f"127.0.0.1:{port}", identity.tls, tmp_path)
    try:
        assert _presented(port, authority.certificate_pem) == _pem(identity.tls.certificate_pem)
        renewed = renew_tls(tmp_path, authority, "bank-a", LIFETIME)
        assert _presented(port, authority.certificate_pem) == _pem(renewed.certificate_pem)
        # A half-written renewal (a key without its certificate) is not taken: the last pair stays.
        (tmp_path / "tls.key").write_bytes(authority.issue("bank-a", server=False).private_key_pem)
        assert _presented(port, authority.certificate_pem) == _pem(renewed.certificate_pem)
    finally:
        server.stop(grace=None)
