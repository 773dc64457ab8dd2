"""X.509 material for mutual TLS: a certificate authority and the leaf certificates it issues.

The local run creates an ephemeral CA per run (``fedsilo run``); ``fedsilo identity create``
issues a silo's client certificate. A client certificate's common name is the silo name,
which the aggregator matches against the name in each signed update.

Client certificates may be short-lived (``lifetime``), as cert-manager issues them: the
side that holds the CA renews a certificate once ``renewal_due`` (two thirds of its life,
cert-manager's default ``renewBefore``) has passed, the sidecar dials new connections with
the renewed files, and the hub refuses a certificate past its ``notAfter`` on every call
(``certificate_expiry``), not only at the TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)
# Certificates start a little in the past so a peer whose clock is slightly behind takes them;
# never more than a tenth of a short certificate's life, which would eat into it.
_BACKDATE = dt.timedelta(minutes=5)
#: Renew when this share of a certificate's life has passed (cert-manager: renewBefore = 1/3 of it).
RENEW_AFTER_FRACTION = 2 / 3


class CertificateExpired(ValueError):
    """A certificate used after its ``notAfter``."""


@dataclass(frozen=True)
class TlsCredentials:
    """PEM bytes a gRPC endpoint needs: its key, its certificate chain, and the CA to trust."""

    private_key_pem: bytes
    certificate_pem: bytes
    ca_certificate_pem: bytes

    def __repr__(self) -> str:
        return "TlsCredentials(<private key hidden>)"


class CertificateAuthority:
    """An ECDSA P-256 CA that signs server and client certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.certificate.subject.rfc4514_string()!r}, <private key hidden>)"

    @classmethod
    def create(cls, common_name: str = "fedsilo run CA", validity: dt.timedelta = _VALIDITY) -> CertificateAuthority:
        """A new self-signed CA valid for ``validity`` (30 days unless a keeper of the CA renews leaves for longer)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate, which every endpoint trusts."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """The CA's private key (PKCS#8 PEM), for the one Secret that keeps it; never log or publish it."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def load(cls, private_key_pem: bytes, certificate_pem: bytes) -> CertificateAuthority:
        """A CA kept by ``private_key_pem``; ValueError unless both parse, the key is P-256 and matches the certificate."""
        check_key_pair(private_key_pem, certificate_pem)
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("a CA key must be an ECDSA P-256 private key")
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise ValueError("the certificate has no basic constraints, so it is not a CA certificate") from None
        if not constraints.ca:
            raise ValueError("the certificate is not a CA certificate")
        return cls(key, certificate)

    def issue(
        self,
        common_name: str,
        *,
        server: bool,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        lifetime: dt.timedelta = _VALIDITY,
    ) -> TlsCredentials:
        """A leaf certificate for a server (aggregator) or a silo (its sidecar).

        A silo's certificate is the aggregator's client, and in a cluster also the server of
        the silo's own trainer link, which its trainer verifies against the silo's CA under
        the silo's name: so it serves both purposes and names the silo. ``lifetime``: how long
        it is valid from now (short-lived client certificates are renewed by their holder's side).
        """
        if lifetime <= dt.timedelta(0):
            raise ValueError(f"a certificate's lifetime must be positive, not {lifetime}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = (
            [ExtendedKeyUsageOID.SERVER_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        )
        if not server and common_name not in dns_names:
            dns_names = (common_name, *dns_names)
        alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - min(_BACKDATE, lifetime / 10))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return TlsCredentials(
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            ca_certificate_pem=self.certificate_pem,
        )


def certificate_fingerprint(certificate_pem: bytes) -> str:
    """``sha256:`` and the hex SHA-256 of the certificate's DER: what logs and Events name a certificate by."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def certificate_common_name(certificate_pem: bytes) -> str:
    """The subject common name of a PEM certificate."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        raise ValueError("certificate has no common name")
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


@functools.lru_cache(maxsize=1024)
def certificate_expiry(certificate_pem: bytes) -> dt.datetime:
    """The ``notAfter`` of a PEM certificate (cached: the hub asks on every call of every silo)."""
    return x509.load_pem_x509_certificate(certificate_pem).not_valid_after_utc


def check_certificate_current(certificate_pem: bytes, now: dt.datetime | None = None) -> None:
    """Raise ``CertificateExpired`` (saying when) if ``certificate_pem`` is past its ``notAfter``."""
    expiry = certificate_expiry(certificate_pem)
    now = now or dt.datetime.now(dt.UTC)
    if now >= expiry:
        late = (now - expiry).total_seconds()
        raise CertificateExpired(f"expired at {expiry.isoformat()} ({late:.0f}s ago)")


def renewal_due(certificate_pem: bytes) -> dt.datetime:
    """When the certificate is to be renewed: ``RENEW_AFTER_FRACTION`` of the way from issue to expiry."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    return start + (end - start) * RENEW_AFTER_FRACTION


def check_key_pair(private_key_pem: bytes, certificate_pem: bytes) -> None:
    """Raise ``ValueError`` unless the certificate is for this private key (a renewal read half-way gives neither)."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a PEM key and certificate ({error})") from None
    mine = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        raise ValueError("the certificate is not for this private key")


class IssuerMismatch(ValueError):
    """A certificate that none of the named CAs issued."""


def ca_bundle(bundle_pem: bytes) -> tuple[bytes, ...]:
    """The CA certificates of a PEM bundle, each as PEM, in order; ValueError unless there is one and each is a CA.

    A silo's trusted CAs travel as one bundle: one CA, or two while its CA is being rotated
    (the hub trusts both until the last certificate from the old one has expired).
    """
    try:
        certificates = x509.load_pem_x509_certificates(bundle_pem)
    except ValueError as error:
        raise ValueError(f"not a PEM bundle of certificates ({error})") from None
    for certificate in certificates:
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ValueError(f"{certificate.subject.rfc4514_string()} is not a CA certificate")
    return tuple(certificate.public_bytes(serialization.Encoding.PEM) for certificate in certificates)


def verify_issued_by(certificate_pem: bytes, ca_certificate_pem: bytes) -> None:
    """Raise ``IssuerMismatch`` unless the key of a CA in ``ca_certificate_pem`` (one or a bundle) signed ``certificate_pem``.

    TLS already proved the certificate chains to *some* trusted CA; this proves it chains to
    a CA registered for the name it carries, so one partner's CA cannot mint another's.
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        issuers = x509.load_pem_x509_certificates(ca_certificate_pem)
    except (ValueError, TypeError) as error:
        raise IssuerMismatch(f"not issued by the registered CA ({type(error).__name__})") from None
    for issuer in issuers:
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise IssuerMismatch("not issued by the registered CA (InvalidSignature)")
