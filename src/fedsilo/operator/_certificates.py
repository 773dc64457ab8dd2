"""Short-lived client certificates of a silo's sidecar: the operator keeps the silo's CA and renews them.

Called by :class:`fedsilo.operator._silo.SiloReconciler` when it creates an identity for a Silo
with ``spec.identity.certificateLifetime``, and by the ``silo-certificate`` kopf timer
(:mod:`fedsilo.operator._handlers`) that renews the certificate before ``renewal_due``.

Two Secrets per workload namespace, with fixed names so that the RBAC rules can name them
(``resourceNames``): the operator may read exactly one Secret in a silo namespace, the
authorities, and patch exactly these two; every other Secret stays unreadable to it.

- ``fedsilo-silo-authorities``: per silo ``<silo>.ca.key`` and ``<silo>.ca.crt`` (the silo's CA,
  which the hub has registered through the Silo's status), ``<silo>.issued.crt`` (the last
  certificate issued, public, so a restarted operator knows when the next renewal is due) and
  ``<silo>.rotation.json`` (the CA's rotation: the last one done and, during an overlap, the old
  CA's certificate and when it goes). No pod mounts it; its contents never leave the namespace
  and are never logged: Events, status and audit records name certificates by fingerprint only.
- ``fedsilo-silo-certificates``: per silo ``<silo>.tls.crt`` and ``<silo>.tls.key``, projected into
  the sidecar pod as ``tls.crt``/``tls.key`` (:func:`sidecar_identity_volume`). The kubelet
  refreshes a mounted Secret in a running pod by swapping the whole volume at once, so the
  sidecar sees key and certificate change together and redials with them
  (``sidecar/_connection.py``); no pod restarts.

Each silo's entries are written by server-side apply under a field manager of that silo's
own, so silos sharing a workload namespace never remove each other's entries, and removing a
silo's entries is applying none.

The CA itself is rotated as cert-manager and Kubernetes roll a CA over, with an overlap in
which the hub trusts both (spec.identity.certificateAuthority.rotation raised, or two thirds of
the CA's life passed; :meth:`CertificateKeeper.maintain`):

1. a new CA replaces the old one in the authorities Secret (the old key is gone from then on)
   and both CA certificates are published for the silo: the identity's public ConfigMap and
   ``status.identity.caCertificate``, which the hub role copies into the job's ConfigMap, whose
   file the aggregator re-reads without a restart;
2. the next certificate comes from the new CA at its renewal, but no sooner than
   :func:`publication_settle` after step 1, so the hub has the new CA before a sidecar dials with it;
3. when the last certificate from the old CA has expired, the old CA is dropped from the bundle.

Each step is an Event on the Silo and a ``fedsilo.audit.certificates`` record, and
``status.certificateAuthority`` says where the rotation is.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from fedsilo.api import API_VERSION, Silo, SiloAuthorityStatus, SiloCertificateStatus
from fedsilo.identity import (
    CA_CERT_FILE,
    SIGNING_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CertificateAuthority,
    IssuerMismatch,
    TlsCredentials,
    ca_bundle,
    certificate_expiry,
    certificate_fingerprint,
    renewal_due,
    verify_issued_by,
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
#: The CA's status (and the CAs published in status.identity) likewise: a server-side apply of
#: the certificate's part must not remove them.
AUTHORITY_FIELD_MANAGER = "fedsilo-operator-certificate-authority"
#: The kept CA outlives the longest certificate lifetime the API allows (a year) several times over.
AUTHORITY_VALIDITY = dt.timedelta(days=5 * 365)
#: Seconds between the renewal timer's checks of one Silo; a renewal happens at the last check
#: before ``renewal_due``, so the shortest lifetime (10s, a third of it left at renewal) still renews in time.
CHECK_SECONDS = 2.0
#: The longest wait between publishing a new CA and issuing from it: the kubelet refreshes a
#: mounted ConfigMap within about a minute, and the aggregator looks at its files every second.
LONGEST_SETTLE = dt.timedelta(seconds=90)

audit_log = logging.getLogger("fedsilo.audit.certificates")


def publication_settle(lifetime: dt.timedelta) -> dt.timedelta:
    """How long after a new CA is published the first certificate from it may be issued.

    Long enough for the hub's mounted file to follow (``LONGEST_SETTLE``), yet at most a sixth
    of a certificate's life, so a renewal held back for it still comes well before the expiry.
    """
    return min(lifetime / 6, LONGEST_SETTLE)


class CaRotation(BaseModel):
    """The silo CA's rotation as the authorities Secret keeps it (``<silo>.rotation.json``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    #: The last rotation done (spec.identity.certificateAuthority.rotation when it was done).
    rotation: int = 0
    #: When the current CA was published (its first certificate waits ``publication_settle`` after).
    rotated_at: dt.datetime | None = None
    #: During an overlap: the old CA's certificate (PEM), still trusted, and when it goes.
    retiring: str | None = None
    retire_after: dt.datetime | None = None


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


def authority_entry(
    silo: str, namespace: str, authority: CertificateAuthority, issued: bytes | None, rotation: CaRotation
) -> Object:
    """The silo's part of the authorities Secret: its CA key and certificate, the last certificate issued, the rotation."""
    files = {
        _key(silo, "ca.key"): authority.private_key_pem(),
        _key(silo, "ca.crt"): authority.certificate_pem,
        _key(silo, "rotation.json"): rotation.model_dump_json(by_alias=True, exclude_none=True).encode(),
    }
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


def rotation_reason(authority: bytes, rotation: CaRotation, wanted: int, now: dt.datetime) -> str | None:
    """Why the silo's CA (``authority``, PEM) must be rotated now, or None.

    Requested (the spec's counter is above the last rotation done) or due (two thirds of the CA's
    life, as for its certificates). Never during an overlap: the old CA may still have a
    certificate in use, so a rotation asked for meanwhile starts when the overlap ends.
    """
    if rotation.retiring is not None:
        return None
    if wanted > rotation.rotation:
        return "requested"
    if now + dt.timedelta(seconds=CHECK_SECONDS) >= renewal_due(authority):
        return "authority renewal due"
    return None


def renews(silo: Silo) -> bool:
    """Whether the operator renews this silo's certificate (its status says a renewed one is mounted)."""
    return silo.spec.identity.lifetime is not None and bool(
        ((silo.status or {}).get("certificate") or {}).get("secretName")
    )


@dataclass(frozen=True)
class KeptAuthority:
    """A silo's CA as the authorities Secret keeps it, the last certificate issued, and the CA's rotation."""

    authority: CertificateAuthority
    issued: bytes | None
    rotation: CaRotation

    @property
    def bundle(self) -> str:
        """The CAs the hub is to trust for the silo: the old one during an overlap, then the current one."""
        return (self.rotation.retiring or "") + self.authority.certificate_pem.decode()

    def issued_by_current(self) -> bool:
        """Whether the last certificate issued comes from the current CA (not from the one being retired)."""
        if self.issued is None:
            return False
        try:
            verify_issued_by(self.issued, self.authority.certificate_pem)
        except IssuerMismatch:
            return False
        return True

    def authority_status(self) -> SiloAuthorityStatus:
        """What ``status.certificateAuthority`` says of it."""
        pem = self.authority.certificate_pem
        retiring = self.rotation.retiring
        return SiloAuthorityStatus(
            fingerprint=certificate_fingerprint(pem),
            not_after=certificate_expiry(pem).isoformat(),
            rotate_after=renewal_due(pem).isoformat(),
            rotation=self.rotation.rotation,
            retiring=None if retiring is None else certificate_fingerprint(retiring.encode()),
            retire_after=None if self.rotation.retire_after is None else self.rotation.retire_after.isoformat(),
        )


#: Publishes a silo's CA bundle where its trainer and people read it (the identity's public ConfigMap).
PublishBundle = Callable[[str], None]
#: What the timer saw of a Silo: its certificate lifetime, the CA rotation asked for, the CAs published.
_Memo = tuple[dt.timedelta, int, str | None]


class CertificateKeeper:
    """Keeps each silo's CA in its workload namespace and issues its sidecar's certificates."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        # Per (Silo namespace, name): what the timer saw (lifetime, rotation asked, CAs published) and
        # the moment before which nothing is due while it stays so.
        self._quiet_until: dict[tuple[str, str], tuple[_Memo, dt.datetime]] = {}
        self._lock = threading.Lock()

    def kept(self, silo: str, workload: str) -> KeptAuthority | None:
        """The silo's CA, or None if the operator keeps none for it; ValueError if the entry is damaged."""
        secret = self.api.get(SECRET, workload, AUTHORITY_SECRET)
        data = (secret or {}).get("data") or {}
        key, certificate = data.get(_key(silo, "ca.key")), data.get(_key(silo, "ca.crt"))
        if key is None or certificate is None:
            return None
        issued, rotation = data.get(_key(silo, "issued.crt")), data.get(_key(silo, "rotation.json"))
        authority = CertificateAuthority.load(base64.b64decode(key), base64.b64decode(certificate))
        # Kept before rotations existed: no rotation done yet, nothing retiring.
        kept_rotation = CaRotation() if rotation is None else CaRotation.model_validate_json(base64.b64decode(rotation))
        if kept_rotation.retiring is not None:
            ca_bundle(kept_rotation.retiring.encode())  # ValueError if damaged, as for the CA itself
            if kept_rotation.retire_after is None:
                raise ValueError("the rotation names a retiring CA but not when it goes")
        return KeptAuthority(authority, None if issued is None else base64.b64decode(issued), kept_rotation)

    def keep_new(self, silo: str, workload: str, rotation: int) -> KeptAuthority:
        """Create the silo's CA and keep it (before anything it signs exists, so no certificate outlives its CA's key).

        ``rotation`` is the spec's counter: a CA made for it counts as that rotation done.
        """
        authority = CertificateAuthority.create(f"{silo} identity CA", validity=AUTHORITY_VALIDITY)
        kept = KeptAuthority(authority, None, CaRotation(rotation=rotation, rotated_at=dt.datetime.now(dt.UTC)))
        self._keep(silo, workload, kept)
        return kept

    def _keep(self, silo: str, workload: str, kept: KeptAuthority) -> None:
        self.api.apply(
            authority_entry(silo, workload, kept.authority, kept.issued, kept.rotation),
            field_manager=_field_manager(silo),
        )

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
        self._keep(name, workload, KeptAuthority(kept.authority, credentials.certificate_pem, kept.rotation))
        fingerprint = certificate_fingerprint(credentials.certificate_pem)
        ca_fingerprint = certificate_fingerprint(kept.authority.certificate_pem)
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
            "caFingerprint": ca_fingerprint,
            "lifetime": silo.spec.identity.certificate_lifetime,
            "notAfter": expiry.isoformat(),
            "renewAfter": due.isoformat(),
        }
        audit_log.info("silo certificate %s", json.dumps(record, sort_keys=True))
        normal_event(
            body,
            reason="CertificateRenewed" if kept.issued is not None else "CertificateIssued",
            message=f"client certificate {fingerprint} ({reason}) from CA {ca_fingerprint} in Secret "
            f"{workload}/{CERTIFICATE_SECRET}, valid until {expiry.isoformat()}, renewed after {due.isoformat()}",
        )
        before = ((body.get("status") or {}).get("certificate") or {}).get("renewals") or 0
        status = SiloCertificateStatus(
            secret_name=CERTIFICATE_SECRET,
            fingerprint=fingerprint,
            not_after=expiry.isoformat(),
            renew_after=due.isoformat(),
            renewals=int(before) + (kept.issued is not None),
            ca_fingerprint=ca_fingerprint,
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

    def maintain(
        self,
        body: Mapping[str, Any],
        silo: Silo,
        workload: str,
        published_ca: str | None,
        publish_bundle: PublishBundle,
    ) -> Problem | None:
        """The timer's work: retire, rotate, publish and renew as due; what stops it, or None.

        Cheap when nothing is due: the moment of the next step is remembered, and the
        authorities Secret is read only when it may have come, when the spec's rotation or the
        published CAs changed, or after a restart.
        """
        lifetime = silo.spec.identity.lifetime
        if lifetime is None:
            return None
        now = dt.datetime.now(dt.UTC)
        memo = (lifetime, silo.spec.identity.ca_rotation, published_ca)
        with self._lock:
            quiet = self._quiet_until.get((str(silo.metadata.namespace), silo.metadata.name))
        if quiet is not None and quiet[0] == memo and now < quiet[1]:
            return None
        try:
            kept = self.kept(silo.metadata.name, workload)
        except ValueError as damaged:
            return Problem(
                "CertificateNotRenewable",
                f"the silo's CA in Secret {workload}/{AUTHORITY_SECRET} is damaged ({damaged}); "
                "delete the Silo's identity Secret and the Silo's entries there to have a new identity created",
            )
        if kept is None or (published_ca is not None and not _overlaps(published_ca, kept)):
            return Problem(
                "CertificateNotRenewable",
                "the operator keeps no CA for this silo's identity (it was created without "
                "spec.identity.certificateLifetime, or by the partner): its certificate is not renewed; "
                "delete the identity Secret to have the operator create a renewable identity",
            )
        retiring, retire_after = kept.rotation.retiring, kept.rotation.retire_after
        if retiring is not None and retire_after is not None and now >= retire_after:
            kept = self._retire(body, silo, workload, kept, retiring)
        reason = rotation_reason(kept.authority.certificate_pem, kept.rotation, silo.spec.identity.ca_rotation, now)
        if reason is not None:
            kept = self._rotate(body, silo, workload, kept, reason, now)
        self._publish_authorities(body, silo, kept, published_ca, publish_bundle)
        renewal = renewal_reason(kept.issued, lifetime, now)
        switch_at = self._switch_at(kept, lifetime)
        if renewal is not None and (switch_at is None or now >= switch_at):
            credentials = self.issue(body, silo, workload, kept, lifetime, renewal)
            kept = KeptAuthority(kept.authority, credentials.certificate_pem, kept.rotation)
            switch_at = None  # the certificate in use is now the current CA's
        self._quiet(silo, (lifetime, silo.spec.identity.ca_rotation, kept.bundle), _next_step(kept, switch_at))
        return None

    @staticmethod
    def _switch_at(kept: KeptAuthority, lifetime: dt.timedelta) -> dt.datetime | None:
        """While the current certificate is from the old CA: the earliest moment to issue from the new one."""
        if kept.rotation.retiring is None or kept.issued is None or kept.issued_by_current():
            return None
        return (kept.rotation.rotated_at or dt.datetime.now(dt.UTC)) + publication_settle(lifetime)

    def _rotate(
        self, body: Mapping[str, Any], silo: Silo, workload: str, kept: KeptAuthority, reason: str, now: dt.datetime
    ) -> KeptAuthority:
        """Step 1: a new CA replaces the old one, which stays trusted until its last certificate expires."""
        name = silo.metadata.name
        old = kept.authority.certificate_pem
        # Nothing is issued from the old CA after this (its key goes now): its last certificate is the current one.
        retire_after = now if kept.issued is None else certificate_expiry(kept.issued)
        rotation = CaRotation(
            rotation=max(silo.spec.identity.ca_rotation, kept.rotation.rotation),
            rotated_at=now,
            retiring=old.decode(),
            retire_after=retire_after,
        )
        authority = CertificateAuthority.create(f"{name} identity CA", validity=AUTHORITY_VALIDITY)
        rotated = KeptAuthority(authority, kept.issued, rotation)
        self._keep(name, workload, rotated)
        new_fingerprint, old_fingerprint = (
            certificate_fingerprint(authority.certificate_pem),
            certificate_fingerprint(old),
        )
        self._audit(
            silo,
            workload,
            "ca_rotated",
            reason=reason,
            rotation=rotation.rotation,
            caFingerprint=new_fingerprint,
            retiringFingerprint=old_fingerprint,
            retireAfter=retire_after.isoformat(),
        )
        normal_event(
            body,
            reason="CertificateAuthorityRotated",
            message=f"CA {new_fingerprint} made ({reason}, rotation {rotation.rotation}) and trusted beside "
            f"{old_fingerprint}, whose key is gone; the next certificate comes from the new CA at its renewal, and "
            f"{old_fingerprint} is dropped after {retire_after.isoformat()}, when the last certificate it issued expires",
        )
        return rotated

    def _retire(
        self, body: Mapping[str, Any], silo: Silo, workload: str, kept: KeptAuthority, retiring: str
    ) -> KeptAuthority:
        """Step 3: the old CA (``retiring``)'s last certificate has expired; it is no longer trusted for the silo."""
        old_fingerprint = certificate_fingerprint(retiring.encode())
        retired = KeptAuthority(
            kept.authority,
            kept.issued,
            kept.rotation.model_copy(update={"retiring": None, "retire_after": None}),
        )
        self._keep(silo.metadata.name, workload, retired)
        fingerprint = certificate_fingerprint(kept.authority.certificate_pem)
        self._audit(
            silo,
            workload,
            "ca_retired",
            rotation=kept.rotation.rotation,
            caFingerprint=fingerprint,
            retiredFingerprint=old_fingerprint,
        )
        normal_event(
            body,
            reason="CertificateAuthorityRetired",
            message=f"CA {old_fingerprint} dropped: the last certificate it issued has expired; "
            f"the hub trusts {fingerprint} alone for this silo",
        )
        return retired

    def _publish_authorities(
        self,
        body: Mapping[str, Any],
        silo: Silo,
        kept: KeptAuthority,
        published_ca: str | None,
        publish_bundle: PublishBundle,
    ) -> None:
        """Publish the CAs to trust (the public ConfigMap, then status) unless the status already shows them."""
        authority = kept.authority_status().model_dump(by_alias=True, exclude_none=True, mode="json")
        status = body.get("status") or {}
        if published_ca == kept.bundle and status.get("certificateAuthority") == authority:
            return
        publish_bundle(kept.bundle)
        self.api.apply(
            {
                "apiVersion": API_VERSION,
                "kind": SILO.kind,
                "metadata": {"name": silo.metadata.name, "namespace": str(silo.metadata.namespace)},
                "status": {"certificateAuthority": authority, "identity": {"caCertificate": kept.bundle}},
            },
            subresource="status",
            field_manager=AUTHORITY_FIELD_MANAGER,
        )

    @staticmethod
    def _audit(silo: Silo, workload: str, event: str, **fields: object) -> None:
        record = {
            "event": event,
            "silo": silo.metadata.name,
            "namespace": str(silo.metadata.namespace),
            "workloadNamespace": workload,
            "secret": AUTHORITY_SECRET,
            **fields,
        }
        audit_log.info("silo certificate %s", json.dumps(record, sort_keys=True))

    def _quiet(self, silo: Silo, memo: _Memo, until: dt.datetime) -> None:
        # A changed lifetime, rotation or published bundle misses this memo, so it is looked at on the next check.
        with self._lock:
            self._quiet_until[(str(silo.metadata.namespace), silo.metadata.name)] = (memo, until)


def _overlaps(published: str, kept: KeptAuthority) -> bool:
    """Whether the published CAs include one the operator keeps (a stale status may lag one step behind)."""
    try:
        published_cas = set(ca_bundle(published.encode()))
    except ValueError:
        return False
    return bool(published_cas & set(ca_bundle(kept.bundle.encode())))


def _next_step(kept: KeptAuthority, switch_at: dt.datetime | None) -> dt.datetime:
    """Until when nothing is due: the renewal (held back for the switch to a new CA), the old CA's retirement, the CA's rotation."""
    check = dt.timedelta(seconds=CHECK_SECONDS)
    renewal = dt.datetime.now(dt.UTC) if kept.issued is None else renewal_due(kept.issued) - check
    if switch_at is not None:
        renewal = max(renewal, switch_at)
    moments = [renewal, renewal_due(kept.authority.certificate_pem) - check]
    if kept.rotation.retire_after is not None:
        moments.append(kept.rotation.retire_after)
    return min(moments)
