"""Short-lived client certificates of a silo's sidecar: the operator keeps the silo's CA and renews them.

Called by :class:`fedsilo.operator._silo.SiloReconciler` when it creates an identity for a Silo
with ``spec.identity.certificateLifetime``, and by the ``silo-certificate`` kopf timer
(:mod:`fedsilo.operator._handlers`) that renews the certificate before ``renewal_due``.

Two Secrets per workload namespace, with fixed names so that the RBAC rules can name them
(``resourceNames``): the operator may read exactly one Secret in a silo namespace, the
authorities, and patch exactly these two; every other Secret stays unreadable to it.

- ``fedsilo-silo-authorities``: per silo ``<silo>.ca.key`` and ``<silo>.ca.crt`` (the silo's CA,
  which the hub has registered through the Silo's status) and ``<silo>.issued.crt`` (the last
  certificate issued, public, so a restarted operator knows when the next renewal is due). No
  pod mounts it; its contents never leave the namespace and are never logged: Events, status
  and audit records name certificates by fingerprint only.
- ``fedsilo-silo-certificates``: per silo ``<silo>.tls.crt`` and ``<silo>.tls.key``, projected into
  the sidecar pod as ``tls.crt``/``tls.key`` (:func:`sidecar_identity_volume`). The kubelet
  refreshes a mounted Secret in a running pod by swapping the whole volume at once, so the
  sidecar sees key and certificate change together and redials with them
  (``sidecar/_connection.py``); no pod restarts.

Each silo's entries are written by server-side apply under a field manager of that silo's
own, so silos sharing a workload namespace never remove each other's entries, and removing a
silo's entries is applying none.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedsilo.api import API_VERSION, Silo, SiloCertificateStatus
from fedsilo.identity import (
    CA_CERT_FILE,
    SIGNING_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CertificateAuthority,
    TlsCredentials,
    certificate_expiry,
    certificate_fingerprint,
    renewal_due,
)
from fedsilo.kube import SECRET, SILO, KubeApi, Object

from ._conditions import Problem
from ._names import labels, normal_event

#: The Secret keeping each silo's CA in a workload namespace (read by the operator only).
AUTHORITY_SECRET = "fedsilo-silo-authorities"  # noqa: S105 (a Secret's name, not a secret)
#: The Secret holding each silo's current client certificate and key (mounted by its sidecar).
CERTIFICATE_SECRET = "fedsilo-silo-certificates"  # noqa: S105 (a Secret's name, not a secret)
#: The status part written here has a field manager of its own, beside the identity's.
CERTIFICATE_FIELD_MANAGER = "fedsilo-operator-certificate"
#: The kept CA outlives the longest certificate lifetime the API allows (a year) several times over.
AUTHORITY_VALIDITY = dt.timedelta(days=5 * 365)
#: Seconds between the renewal timer's checks of one Silo; a renewal happens at the last check
#: before ``renewal_due``, so the shortest lifetime (10s, a third of it left at renewal) still renews in time.
CHECK_SECONDS = 2.0

audit_log = logging.getLogger("fedsilo.audit.certificates")


def _key(silo: str, part: str) -> str:
    return f"{silo}.{part}"


def _field_manager(silo: str) -> str:
    return f"fedsilo-certificates-{silo}"


def _data(files: Mapping[str, bytes]) -> dict[str, str]:
    return {name: base64.b64encode(content).decode() for name, content in files.items()}


def _secret(name: str, namespace: str, files: Mapping[str, bytes]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels("identity")},
        "type": "Opaque",
        "data": _data(files),
    }


def authority_entry(silo: str, namespace: str, authority: CertificateAuthority, issued: bytes | None) -> Object:
    """The silo's part of the authorities Secret: its CA key and certificate, and the last certificate issued."""
    files = {_key(silo, "ca.key"): authority.private_key_pem(), _key(silo, "ca.crt"): authority.certificate_pem}
    if issued is not None:
        files[_key(silo, "issued.crt")] = issued
    return _secret(AUTHORITY_SECRET, namespace, files)


def certificate_entry(silo: str, namespace: str, credentials: TlsCredentials) -> Object:
    """The silo's part of the certificates Secret its sidecar mounts."""
    files = {
        _key(silo, TLS_CERT_FILE): credentials.certificate_pem,
        _key(silo, TLS_KEY_FILE): credentials.private_key_pem,
    }
    return _secret(CERTIFICATE_SECRET, namespace, files)


def sidecar_identity_volume(silo: str, identity_secret: str) -> Object:
    """The sidecar's identity folder: signing key and CA from the identity Secret, the renewed pair beside them."""
    return {
        "name": "identity",
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {
                    "secret": {
                        "name": identity_secret,
                        "items": [{"key": name, "path": name} for name in (SIGNING_KEY_FILE, CA_CERT_FILE)],
                    }
                },
                {
                    "secret": {
                        "name": CERTIFICATE_SECRET,
                        "items": [{"key": _key(silo, name), "path": name} for name in (TLS_CERT_FILE, TLS_KEY_FILE)],
                    }
                },
            ],
        },
    }


def renewal_reason(issued: bytes | None, lifetime: dt.timedelta, now: dt.datetime) -> str | None:
    """Why the silo needs a new certificate now, or None.

    Renewed at the last check before ``renewal_due``; also when none was issued, and when the
    current one outlives a new one (the Silo's lifetime was shortened, which takes effect now).
    """
    check = dt.timedelta(seconds=CHECK_SECONDS)
    if issued is None:
        return "issued"
    if now + check >= renewal_due(issued):
        return "renewal due"
    if certificate_expiry(issued) > now + lifetime + check:
        return "lifetime shortened"
    return None


def renews(silo: Silo) -> bool:
    """Whether the operator renews this silo's certificate (its status says a renewed one is mounted)."""
    return silo.spec.identity.lifetime is not None and bool(
        ((silo.status or {}).get("certificate") or {}).get("secretName")
    )


@dataclass(frozen=True)
class KeptAuthority:
    """A silo's CA as the authorities Secret keeps it, and the last certificate issued from it."""

    authority: CertificateAuthority
    issued: bytes | None


class CertificateKeeper:
    """Keeps each silo's CA in its workload namespace and issues its sidecar's certificates."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        # Per (Silo namespace, name): the lifetime and the moment before which nothing is due.
        self._quiet_until: dict[tuple[str, str], tuple[dt.timedelta, dt.datetime]] = {}
        self._lock = threading.Lock()

    def kept(self, silo: str, workload: str) -> KeptAuthority | None:
        """The silo's CA, or None if the operator keeps none for it; ValueError if the entry is damaged."""
        secret = self.api.get(SECRET, workload, AUTHORITY_SECRET)
        data = (secret or {}).get("data") or {}
        key, certificate = data.get(_key(silo, "ca.key")), data.get(_key(silo, "ca.crt"))
        if key is None or certificate is None:
            return None
        issued = data.get(_key(silo, "issued.crt"))
        authority = CertificateAuthority.load(base64.b64decode(key), base64.b64decode(certificate))
        return KeptAuthority(authority, None if issued is None else base64.b64decode(issued))

    def keep_new(self, silo: str, workload: str) -> CertificateAuthority:
        """Create the silo's CA and keep it (before anything it signs exists, so no certificate outlives its CA's key)."""
        authority = CertificateAuthority.create(f"{silo} identity CA", validity=AUTHORITY_VALIDITY)
        self.api.apply(authority_entry(silo, workload, authority, None), field_manager=_field_manager(silo))
        return authority

    def forget(self, silo: str, workload: str, namespace: str) -> None:
        """Remove the silo's entries from both Secrets (the Silo is gone, and its identity with it)."""
        for name in (AUTHORITY_SECRET, CERTIFICATE_SECRET):
            self.api.apply(_secret(name, workload, {}), field_manager=_field_manager(silo))
        with self._lock:
            self._quiet_until.pop((namespace, silo), None)

    def issue(
        self,
        body: Mapping[str, Any],
        silo: Silo,
        workload: str,
        kept: KeptAuthority,
        lifetime: dt.timedelta,
        reason: str,
    ) -> TlsCredentials:
        """Issue the silo a certificate, put it where its sidecar reads it, and say so (Event, audit record, status)."""
        credentials = kept.authority.issue(silo.metadata.name, server=False, lifetime=lifetime)
        self.publish(body, silo, workload, kept, lifetime, credentials, reason)
        return credentials

    def publish(
        self,
        body: Mapping[str, Any],
        silo: Silo,
        workload: str,
        kept: KeptAuthority,
        lifetime: dt.timedelta,
        credentials: TlsCredentials,
        reason: str,
    ) -> None:
        """Put ``credentials`` where the sidecar reads them, record them as issued, and say so."""
        name = silo.metadata.name
        # The sidecar's copy first: a crash before the record below only means one more renewal.
        self.api.apply(certificate_entry(name, workload, credentials), field_manager=_field_manager(name))
        self.api.apply(
            authority_entry(name, workload, kept.authority, credentials.certificate_pem),
            field_manager=_field_manager(name),
        )
        fingerprint = certificate_fingerprint(credentials.certificate_pem)
        expiry, due = certificate_expiry(credentials.certificate_pem), renewal_due(credentials.certificate_pem)
        record = {
            "event": "certificate_issued",
            "reason": reason,
            "silo": name,
            "namespace": str(silo.metadata.namespace),
            "workloadNamespace": workload,
            "secret": CERTIFICATE_SECRET,
            "fingerprint": fingerprint,
            "previousFingerprint": None if kept.issued is None else certificate_fingerprint(kept.issued),
            "caFingerprint": certificate_fingerprint(kept.authority.certificate_pem),
            "lifetime": silo.spec.identity.certificate_lifetime,
            "notAfter": expiry.isoformat(),
            "renewAfter": due.isoformat(),
        }
        audit_log.info("silo certificate %s", json.dumps(record, sort_keys=True))
        normal_event(
            body,
            reason="CertificateRenewed" if kept.issued is not None else "CertificateIssued",
            message=f"client certificate {fingerprint} ({reason}) in Secret {workload}/{CERTIFICATE_SECRET}, "
            f"valid until {expiry.isoformat()}, renewed after {due.isoformat()}",
        )
        before = ((body.get("status") or {}).get("certificate") or {}).get("renewals") or 0
        status = SiloCertificateStatus(
            secret_name=CERTIFICATE_SECRET,
            fingerprint=fingerprint,
            not_after=expiry.isoformat(),
            renew_after=due.isoformat(),
            renewals=int(before) + (kept.issued is not None),
        )
        self.api.apply(
            {
                "apiVersion": API_VERSION,
                "kind": SILO.kind,
                "metadata": {"name": name, "namespace": str(silo.metadata.namespace)},
                "status": {"certificate": status.model_dump(by_alias=True, exclude_none=True, mode="json")},
            },
            subresource="status",
            field_manager=CERTIFICATE_FIELD_MANAGER,
        )
        self._quiet(silo, lifetime, credentials.certificate_pem)

    def renew_if_due(
        self, body: Mapping[str, Any], silo: Silo, workload: str, published_ca: str | None
    ) -> Problem | None:
        """The timer's work: renew the certificate if due; what stops renewal, or None.

        Cheap when nothing is due: the moment of the next renewal is remembered, and the
        authorities Secret is read only when it may have come (or after a restart).
        """
        lifetime = silo.spec.identity.lifetime
        if lifetime is None:
            return None
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            quiet = self._quiet_until.get((str(silo.metadata.namespace), silo.metadata.name))
        if quiet is not None and quiet[0] == lifetime and now < quiet[1]:
            return None
        try:
            kept = self.kept(silo.metadata.name, workload)
        except ValueError as damaged:
            return Problem(
                "CertificateNotRenewable",
                f"the silo's CA in Secret {workload}/{AUTHORITY_SECRET} is damaged ({damaged}); "
                "delete the Silo's identity Secret and the Silo's entries there to have a new identity created",
            )
        if kept is None or (published_ca is not None and kept.authority.certificate_pem.decode() != published_ca):
            return Problem(
                "CertificateNotRenewable",
                "the operator keeps no CA for this silo's identity (it was created without "
                "spec.identity.certificateLifetime, or by the partner): its certificate is not renewed; "
                "delete the identity Secret to have the operator create a renewable identity",
            )
        reason = renewal_reason(kept.issued, lifetime, now)
        if reason is not None:
            self.issue(body, silo, workload, kept, lifetime, reason)
        elif kept.issued is not None:
            self._quiet(silo, lifetime, kept.issued)
        return None

    def _quiet(self, silo: Silo, lifetime: dt.timedelta, issued: bytes) -> None:
        # A changed lifetime misses this memo, so a shortened one is looked at on the next check.
        until = renewal_due(issued) - dt.timedelta(seconds=CHECK_SECONDS)
        with self._lock:
            self._quiet_until[(str(silo.metadata.namespace), silo.metadata.name)] = (lifetime, until)
