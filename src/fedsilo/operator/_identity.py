"""Key material the operator creates: a silo's identity and a job aggregator's serving certificate.

Called by the reconcilers when the Secret does not exist yet. The trade-off, stated plainly:
generating a silo's Ed25519 key here means the operator process holds the private key in
memory for the moment between generating it and creating the Secret. It never logs it
(``SigningKey`` hides itself in ``repr``), never writes it anywhere but the one Secret in
the silo's own workload namespace, and cannot read it back: the operator's RBAC on Secrets
is ``create`` and ``delete`` only, in the namespaces it manages. A partner who wants the
key never to exist outside its own tooling creates the Secret itself (``fedsilo identity
create`` + ``kubectl create secret generic``) and registers the public key in
``Silo.spec.identity.publicKey``; the operator then finds the name taken and uses the
registered key.

The public halves go where anyone may read them: a ConfigMap beside the Secret (the
trainer verifies its sidecar with the CA certificate there) and the Silo's status.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

# The file layout write_identity uses, which the sidecar reads from the mounted Secret.
from fedsilo.identity import (
    CA_CERT_FILE,
    PUBLIC_KEY_FILE,
    SIGNING_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    TlsCredentials,
)

from ._names import FINGERPRINT_ANNOTATION, child_name, labels


@dataclass(frozen=True)
class PublicIdentity:
    """What may be published about an identity."""

    public_key: str
    fingerprint: str
    ca_certificate: str


def identity_secret_name(silo: str) -> str:
    """The Secret holding a silo's private key and client certificate."""
    return child_name(silo, "identity")


def identity_public_name(silo: str) -> str:
    """The ConfigMap holding the public half of a silo's identity."""
    return child_name(silo, "identity", "public")


def new_silo_identity(silo: str, kept: tuple[CertificateAuthority, dt.timedelta] | None = None) -> SiloIdentity:
    """A fresh identity, as ``fedsilo identity create`` makes one: a signing key and a client certificate.

    ``kept``: the CA the operator keeps for the silo and the certificate lifetime, for a silo
    whose certificates it renews; otherwise the CA is made here and forgotten.
    """
    if kept is None:
        authority, lifetime = CertificateAuthority.create(f"{silo} identity CA"), None
    else:
        authority, lifetime = kept
    tls = (
        authority.issue(silo, server=False)
        if lifetime is None
        else authority.issue(silo, server=False, lifetime=lifetime)
    )
    return SiloIdentity(SigningKey.generate(), tls)


def public_identity(identity: SiloIdentity) -> PublicIdentity:
    """The publishable half of ``identity``."""
    key = identity.signing_key.public_key
    return PublicIdentity(key.to_base64(), key.fingerprint(), identity.tls.ca_certificate_pem.decode())


def _data(files: dict[str, bytes]) -> dict[str, str]:
    return {name: base64.b64encode(content).decode() for name, content in files.items()}


def identity_secret(silo: str, namespace: str, identity: SiloIdentity, renewed: bool = False) -> dict[str, object]:
    """The silo's identity Secret: immutable, since a new key is a new identity (delete to rotate).

    ``renewed``: the client certificate and its key live in the renewed certificates Secret
    instead (:mod:`._certificates`), so this one holds the signing key and the CA only.
    """
    public = public_identity(identity)
    files = {SIGNING_KEY_FILE: identity.signing_key.private_bytes_pem(), CA_CERT_FILE: identity.tls.ca_certificate_pem}
    if not renewed:
        files |= {TLS_KEY_FILE: identity.tls.private_key_pem, TLS_CERT_FILE: identity.tls.certificate_pem}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": identity_secret_name(silo),
            "namespace": namespace,
            "labels": labels("identity", silo=silo),
            "annotations": {FINGERPRINT_ANNOTATION: public.fingerprint},
        },
        "type": "Opaque",
        "immutable": True,
        "data": _data(files),
    }


def identity_public_config_map(silo: str, namespace: str, public: PublicIdentity) -> dict[str, object]:
    """The public half, readable by the trainer (CA certificate) and by people (key, fingerprint)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": identity_public_name(silo),
            "namespace": namespace,
            "labels": labels("identity", silo=silo),
            "annotations": {FINGERPRINT_ANNOTATION: public.fingerprint},
        },
        "data": {PUBLIC_KEY_FILE: public.public_key + "\n", CA_CERT_FILE: public.ca_certificate},
    }


def aggregator_credentials(service: str, namespace: str, cluster_domain: str) -> TlsCredentials:
    """A serving certificate for the aggregator's Service names, from a CA of the job's own."""
    authority = CertificateAuthority.create(f"{service}.{namespace} CA")
    names = (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    )
    return authority.issue(f"{service}.{namespace}.svc", server=True, dns_names=names)


def tls_secret(
    name: str,
    namespace: str,
    credentials: TlsCredentials,
    object_labels: dict[str, str],
    signing_key: tuple[str, SigningKey] | None = None,
) -> dict[str, object]:
    """A kubernetes.io/tls Secret with the CA beside the pair, as the aggregator's --tls-dir expects.

    ``signing_key`` (file name, key) adds the hub's model-signing key under that name.
    """
    files = {
        TLS_CERT_FILE: credentials.certificate_pem,
        TLS_KEY_FILE: credentials.private_key_pem,
        CA_CERT_FILE: credentials.ca_certificate_pem,
    }
    if signing_key is not None:
        files[signing_key[0]] = signing_key[1].private_bytes_pem()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": object_labels},
        "type": "kubernetes.io/tls",
        "immutable": True,
        "data": _data(files),
    }
