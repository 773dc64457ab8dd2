"""In a cluster the trainer reaches its sidecar over TCP (separate pods): it verifies the
sidecar's certificate against the silo's CA under the silo's name, so the silo's identity
certificate must be fit to serve, and name the silo. When the silo's CA is rotated, a trainer
that must reconnect dials again with the CAs its ``--sidecar-ca`` file holds now."""

from __future__ import annotations

import datetime as dt
import os
import socket
from concurrent import futures
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, renew_tls, write_identity
from fedsilo.protocol import TrainerTask
from fedsilo.sidecar import TrainerLinkService, start_link_server
from fedsilo.trainer._process import _channel, _Link, _task


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


def _swap(path: Path, content: bytes) -> None:
    """Replace ``path`` at once, as the kubelet swaps a mounted ConfigMap's files."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_bytes(content)
    os.replace(staged, path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_trainer_reconnecting_after_its_silos_ca_was_rotated_dials_with_the_cas_its_file_holds_now(
    tmp_path: Path,
) -> None:
    old, new = CertificateAuthority.create("hospital-a identity CA"), CertificateAuthority.create("rotated")
    identity_dir, ca_file = tmp_path / "identity", tmp_path / "sidecar-ca" / "ca.crt"
    identity = SiloIdentity(SigningKey.generate(), old.issue("hospital-a", server=False))
    write_identity(identity_dir, identity)
    ca_file.parent.mkdir()
    ca_file.write_bytes(old.certificate_pem)
    address = f"127.0.0.1:{_free_port()}"
    service = TrainerLinkService()
    service.offer(TrainerTask(kind="hello", round=0))
    server = start_link_server(service, address, identity.tls, identity_dir)
    link = _Link(address, "hospital-a", ca_file)
    try:
        assert _task(link, "hospital-a", 0, (), patience=30)[0].kind == "hello"
        # The rotation: both CAs published, the sidecar's certificate renewed from the new one, and
        # the sidecar restarted (its container), so the trainer's connection is gone.
        _swap(ca_file, old.certificate_pem + new.certificate_pem)
        renewed = renew_tls(identity_dir, new, "hospital-a", dt.timedelta(hours=1))
        server.stop(grace=None).wait()
        service = TrainerLinkService()
        service.offer(TrainerTask(kind="fit", round=1), b"model")
        server = start_link_server(
            service,
            address,
            replace(identity.tls, certificate_pem=renewed.certificate_pem, private_key_pem=renewed.private_key_pem),
            identity_dir,
        )
        task, blob = _task(link, "hospital-a", 1, (), patience=20)
        assert (task.kind, task.round, blob) == ("fit", 1, b"model")
    finally:
        link.close()
        server.stop(grace=None)
