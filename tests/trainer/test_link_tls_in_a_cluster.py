"""In a cluster the trainer reaches its sidecar over TCP (separate pods): it verifies the
sidecar's certificate against the silo's CA under the silo's name, so the silo's identity
certificate must be fit to serve, and name the silo."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedsilo.identity import CertificateAuthority
from fedsilo.trainer._process import _channel


def _serve(silo: str, authority: CertificateAuthority) -> tuple[grpc.Server, int]:
    identity = authority.issue(silo, server=False)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    credentials = grpc.ssl_server_credentials([(identity.private_key_pem, identity.certificate_pem)])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


def _handshakes(port: int, ca: bytes, silo: str) -> bool:
    with _channel(f"127.0.0.1:{port}", ca, silo) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
        except grpc.FutureTimeoutError:
            return False
        return True


def test_a_silo_certificate_is_a_client_and_a_server_named_for_the_silo() -> None:
    certificate = x509.load_pem_x509_certificate(
        CertificateAuthority.create("hospital-a identity CA").issue("hospital-a", server=False).certificate_pem
    )
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["hospital-a"]


def test_the_trainer_reaches_its_sidecar_by_address_under_the_silos_name() -> None:
    authority = CertificateAuthority.create("hospital-a identity CA")
    server, port = _serve("hospital-a", authority)
    try:
        assert _handshakes(port, authority.certificate_pem, "hospital-a")
        # Another silo's name, or another silo's CA, and the trainer does not talk to it.
        assert not _handshakes(port, authority.certificate_pem, "hospital-b")
        other = CertificateAuthority.create("hospital-b identity CA")
        assert not _handshakes(port, other.certificate_pem, "hospital-a")
    finally:
        server.stop(None)


def test_a_tcp_sidecar_without_the_silos_ca_is_refused() -> None:
    with pytest.raises(ValueError, match="--sidecar-ca"):
        _channel("10.0.0.7:7000", None, "hospital-a")
