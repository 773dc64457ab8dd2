"""The hub's trust in each silo's CAs while a silo's CA is rotated: several CAs per silo, still bound to it.

``SiloTrust`` as ``fedsilo aggregator`` builds it from the ``silo-ca.<silo>.crt`` files: it
follows a file the kubelet swaps, keeps what it trusted when a file is caught half-written,
tells a certificate from a rotated-out CA from one another partner's CA minted, and records
each change by fingerprint. The gRPC edge's answers to both refusals are tested with a real
hub in ``tests/sidecar/test_ca_rotation_without_restart.py``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from fedsilo.aggregator import IssuerRetired, SiloTrust, TrustFilesError
from fedsilo.identity import CertificateAuthority, IssuerMismatch, ca_bundle, certificate_fingerprint
from fedsilo.launch import silo_ca_file


def _swap(path: Path, content: bytes) -> None:
    """Replace ``path`` at once, as the kubelet swaps a mounted ConfigMap's files."""
    staged = path.with_suffix(".staged")
    staged.write_bytes(content)
    os.replace(staged, path)


def _files(directory: Path, cas: dict[str, CertificateAuthority]) -> dict[str, Path]:
    files = {}
    for silo, ca in cas.items():
        files[silo] = directory / silo_ca_file(silo)
        files[silo].write_bytes(ca.certificate_pem)
    return files


def _settle(trust: SiloTrust) -> None:
    time.sleep(0.06)
    trust.refresh()


@pytest.fixture
def cas() -> dict[str, CertificateAuthority]:
    return {"a": CertificateAuthority.create("a CA"), "b": CertificateAuthority.create("b CA")}


def test_both_cas_of_a_rotating_silo_are_trusted_for_it_and_for_no_other_silo(
    tmp_path: Path, cas: dict[str, CertificateAuthority]
) -> None:
    files = _files(tmp_path, cas)
    trust = SiloTrust.from_files(files, recheck_seconds=0.05)
    new = CertificateAuthority.create("a CA, rotated")
    _swap(files["a"], cas["a"].certificate_pem + new.certificate_pem)
    _settle(trust)
    for issuer in (cas["a"], new):
        trust.check("a", issuer.issue("a", server=False).certificate_pem)
    # The new CA is a's alone: a certificate it mints in b's name is refused, as one from a's old CA is.
    for issuer in (cas["a"], new):
        with pytest.raises(IssuerMismatch) as refused:
            trust.check("b", issuer.issue("b", server=False).certificate_pem)
        assert not isinstance(refused.value, IssuerRetired)
    assert trust.fingerprints()["a"] == [
        certificate_fingerprint(cas["a"].certificate_pem),
        certificate_fingerprint(new.certificate_pem),
    ]
    # The TLS handshake lets in every silo's CAs; the binding above is what keeps each to its silo.
    assert set(ca_bundle(trust.roots())) == {cas["a"].certificate_pem, new.certificate_pem, cas["b"].certificate_pem}


def test_a_certificate_from_a_dropped_ca_is_refused_as_rotated_out_not_as_minted_by_another(
    tmp_path: Path, cas: dict[str, CertificateAuthority]
) -> None:
    files = _files(tmp_path, cas)
    trust = SiloTrust.from_files(files, recheck_seconds=0.05)
    old = cas["a"].issue("a", server=False).certificate_pem
    new = CertificateAuthority.create("a CA, rotated")
    _swap(files["a"], new.certificate_pem)
    _settle(trust)
    with pytest.raises(IssuerRetired, match="rotated out") as refused:
        trust.check("a", old)
    assert certificate_fingerprint(new.certificate_pem) in str(refused.value)
    trust.check("a", new.issue("a", server=False).certificate_pem)
    # b's CA never was a's: still "another CA", not "rotated".
    with pytest.raises(IssuerMismatch) as other:
        trust.check("a", cas["b"].issue("a", server=False).certificate_pem)
    assert not isinstance(other.value, IssuerRetired)
    assert cas["a"].certificate_pem not in ca_bundle(trust.roots())


def test_a_file_caught_empty_or_damaged_leaves_the_silos_cas_as_they_were(
    tmp_path: Path, cas: dict[str, CertificateAuthority], caplog: pytest.LogCaptureFixture
) -> None:
    files = _files(tmp_path, cas)
    trust = SiloTrust.from_files(files, recheck_seconds=0.05)
    certificate = cas["a"].issue("a", server=False).certificate_pem
    leaf = cas["a"].issue("a", server=False).certificate_pem
    for damaged in (b"", b"-----BEGIN CERTIFICATE-----\nnot base64\n", leaf):
        _swap(files["a"], damaged)
        with caplog.at_level(logging.WARNING, logger="fedsilo.aggregator"):
            _settle(trust)
        trust.check("a", certificate)
        assert f"CAs of silo a kept as they were: {files['a']}" in caplog.text
        caplog.clear()


def test_the_files_are_read_again_only_after_the_recheck_interval(
    tmp_path: Path, cas: dict[str, CertificateAuthority]
) -> None:
    files = _files(tmp_path, cas)
    trust = SiloTrust.from_files(files, recheck_seconds=3600)
    new = CertificateAuthority.create("a CA, rotated")
    _swap(files["a"], new.certificate_pem)
    trust.refresh()
    # Still the CA read at the start: a stat per silo per interval, not per call.
    trust.check("a", cas["a"].issue("a", server=False).certificate_pem)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (None, "no CA certificate for silo a"),
        (b"  \n", "no CA certificate for silo a"),
        (b"not a certificate", "is not a bundle of CA certificates"),
        ("leaf", "is not a CA certificate"),
    ],
)
def test_a_missing_empty_or_wrong_ca_file_at_start_is_refused_naming_the_silo_and_file(
    tmp_path: Path, cas: dict[str, CertificateAuthority], content: bytes | str | None, named: str
) -> None:
    files = _files(tmp_path, cas)
    if content is None:
        files["a"].unlink()
    elif content == "leaf":
        files["a"].write_bytes(cas["a"].issue("a", server=False).certificate_pem)
    else:
        assert isinstance(content, bytes)
        files["a"].write_bytes(content)
    with pytest.raises(TrustFilesError, match=named) as refused:
        SiloTrust.from_files(files)
    assert str(files["a"]) in str(refused.value)


def test_each_change_of_trust_is_an_audit_record_of_fingerprints_only(
    tmp_path: Path, cas: dict[str, CertificateAuthority], caplog: pytest.LogCaptureFixture
) -> None:
    files = _files(tmp_path, cas)
    with caplog.at_level(logging.INFO, logger="fedsilo.audit.trust"):
        trust = SiloTrust.from_files(files, recheck_seconds=0.05)
        new = CertificateAuthority.create("a CA, rotated")
        _swap(files["a"], cas["a"].certificate_pem + new.certificate_pem)
        _settle(trust)
        _swap(files["a"], new.certificate_pem)
        _settle(trust)
    records = [
        json.loads(r.getMessage().split("silo trust ", 1)[1]) for r in caplog.records if r.name == "fedsilo.audit.trust"
    ]
    old_fp, new_fp = certificate_fingerprint(cas["a"].certificate_pem), certificate_fingerprint(new.certificate_pem)
    assert [(r["silo"], r["reason"]) for r in records] == [
        ("a", "trusted"),
        ("b", "trusted"),
        ("a", "changed"),
        ("a", "changed"),
    ]
    assert records[2]["added"] == [new_fp] and records[2]["trusted"] == [old_fp, new_fp]
    assert records[3]["removed"] == [old_fp] and records[3]["trusted"] == [new_fp]
    assert all(r["file"] == str(files[r["silo"]]) for r in records)
    assert "BEGIN" not in caplog.text
