"""A Silo's short-lived client certificate: the operator keeps the silo's CA in the workload
namespace and renews the certificate in the Secret the sidecar mounts before it is due.

The pure parts (when to renew, the sidecar's projected volume) are checked without a cluster;
the rest runs the operator as its own ServiceAccount with only the shipped roles against the
real API server, with a 12-second lifetime so a renewal comes within seconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from fedsilo.api import Silo
from fedsilo.identity import (
    CertificateAuthority,
    certificate_expiry,
    certificate_fingerprint,
    check_certificate_current,
    check_key_pair,
    renewal_due,
    verify_issued_by,
)
from fedsilo.kube import EVENT, SECRET, ApiError, KubeApi, load_access
from fedsilo.operator._certificates import (
    AUTHORITY_SECRET,
    CERTIFICATE_SECRET,
    renewal_reason,
    sidecar_identity_volume,
)
from fedsilo_testing import ControlPlane

from .conftest import Recorded, apply_objects, get, running_operator, service_account_kubeconfig, unique, wait_for
from .test_least_privilege import shipped_rbac

LIFETIME = dt.timedelta(seconds=12)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _issued(lifetime: dt.timedelta = LIFETIME) -> bytes:
    return CertificateAuthority.create("test CA").issue("bank-a", server=False, lifetime=lifetime).certificate_pem


def test_a_fresh_certificate_is_not_renewed_but_one_near_its_renewal_is() -> None:
    issued = _issued()
    now = dt.datetime.now(dt.UTC)
    assert renewal_reason(issued, LIFETIME, now) is None
    assert renewal_reason(issued, LIFETIME, renewal_due(issued) - dt.timedelta(seconds=1)) == "renewal due"
    assert renewal_reason(None, LIFETIME, NOW) == "issued"


def test_a_shortened_lifetime_replaces_a_certificate_that_would_outlive_it() -> None:
    issued = _issued(dt.timedelta(hours=24))
    assert renewal_reason(issued, dt.timedelta(hours=1), dt.datetime.now(dt.UTC)) == "lifetime shortened"
    assert renewal_reason(issued, dt.timedelta(hours=48), dt.datetime.now(dt.UTC)) is None


def test_the_sidecar_reads_the_renewed_pair_beside_the_identitys_signing_key_and_ca() -> None:
    volume = sidecar_identity_volume("bank-a", "bank-a-identity")
    identity, renewed = (source["secret"] for source in volume["projected"]["sources"])
    assert identity["name"] == "bank-a-identity"
    assert {item["path"] for item in identity["items"]} == {"signing-key.pem", "ca.crt"}
    assert renewed["name"] == CERTIFICATE_SECRET
    assert {(item["key"], item["path"]) for item in renewed["items"]} == {
        ("bank-a.tls.crt", "tls.crt"),
        ("bank-a.tls.key", "tls.key"),
    }


def test_the_lifetime_is_read_as_a_duration() -> None:
    silo = Silo.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "Silo",
            "metadata": {"name": "bank-a"},
            "spec": {"identity": {"certificateLifetime": "2h30m"}},
        }
    )
    assert silo.spec.identity.lifetime == dt.timedelta(hours=2, minutes=30)


def test_a_kept_ca_loads_only_with_its_own_key() -> None:
    authority, other = CertificateAuthority.create("a"), CertificateAuthority.create("b")
    loaded = CertificateAuthority.load(authority.private_key_pem(), authority.certificate_pem)
    verify_issued_by(loaded.issue("bank-a", server=False).certificate_pem, authority.certificate_pem)
    with pytest.raises(ValueError, match="not for this private key"):
        CertificateAuthority.load(other.private_key_pem(), authority.certificate_pem)
    leaf = authority.issue("bank-a", server=False)
    with pytest.raises(ValueError, match="not a CA certificate"):
        CertificateAuthority.load(leaf.private_key_pem, leaf.certificate_pem)
    assert "PRIVATE" not in repr(authority)


# -- against the real API server --------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaces(cluster: ControlPlane) -> dict[str, str]:
    names = {role: cluster.create_namespace(unique(role)) for role in ("operator", "hub", "silo")}
    cluster.apply(*shipped_rbac(names["operator"], names["hub"], names["silo"]))
    return names


@pytest.fixture(scope="module")
def renewing(
    cluster: ControlPlane, namespaces: dict[str, str], logged: Recorded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KopfRunner]:
    """The operator, as its ServiceAccount, after a 12-second Silo's certificate was renewed once."""
    kubeconfig = service_account_kubeconfig(
        cluster, namespaces["operator"], "fedsilo-operator", tmp_path_factory.mktemp("certs") / "operator.kubeconfig"
    )
    silo = namespaces["silo"]
    with running_operator([namespaces["hub"], silo], kubeconfig) as runner:
        apply_objects(
            cluster,
            silo,
            {
                "apiVersion": "fedsilo.io/v1alpha1",
                "kind": "Silo",
                "metadata": {"name": "bank-a"},
                "spec": {"identity": {"certificateLifetime": f"{LIFETIME.seconds}s"}},
            },
        )
        wait_for(lambda: _status(cluster, silo).get("renewals", 0) >= 1, "a renewal of the certificate", 60)
        yield runner


def _status(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    certificate: dict[str, Any] = (get(cluster, namespace, "silo", "bank-a").get("status") or {}).get(
        "certificate"
    ) or {}
    return certificate


def _file(admin: KubeApi, namespace: str, secret: str, key: str) -> bytes:
    found = admin.get(SECRET, namespace, secret)
    assert found is not None, secret
    return base64.b64decode(found["data"][key])


@pytest.mark.integration
def test_the_certificate_is_renewed_before_it_is_due_and_chains_to_the_same_ca(
    renewing: KopfRunner, cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    silo = namespaces["silo"]
    ca = get(cluster, silo, "silo", "bank-a")["status"]["identity"]["caCertificate"].encode()
    first = _status(cluster, silo)["fingerprint"]
    certificate = _file(admin, silo, CERTIFICATE_SECRET, "bank-a.tls.crt")
    wait_for(lambda: _status(cluster, silo)["fingerprint"] != first, "a second renewal", 60)
    renewed = _file(admin, silo, CERTIFICATE_SECRET, "bank-a.tls.crt")
    assert renewed != certificate
    for pem in (certificate, renewed):
        verify_issued_by(pem, ca)
    # The renewed certificate was issued (its notAfter less the lifetime) before the old one was due.
    assert certificate_expiry(renewed) - LIFETIME <= renewal_due(certificate)
    check_certificate_current(renewed)
    check_key_pair(_file(admin, silo, CERTIFICATE_SECRET, "bank-a.tls.key"), renewed)
    assert _status(cluster, silo)["fingerprint"] == certificate_fingerprint(renewed)
    # The identity Secret keeps no certificate of its own that would go stale.
    identity = admin.get(SECRET, silo, "bank-a-identity")
    assert identity is not None and set(identity["data"]) == {"signing-key.pem", "ca.crt"}


@pytest.mark.integration
def test_each_renewal_is_an_event_and_an_audit_record_naming_fingerprints_only(
    renewing: KopfRunner, logged: Recorded, cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    silo = namespaces["silo"]
    fingerprint = _status(cluster, silo)["fingerprint"]
    events = get(cluster, silo, "events", "--field-selector", "involvedObject.name=bank-a")["items"]
    renewals = [e for e in events if e["reason"] == "CertificateRenewed"]
    assert renewals and all("sha256:" in e["message"] for e in renewals)
    records = [
        json.loads(line.split("silo certificate ", 1)[1])
        for line in logged.lines
        if line.startswith("fedsilo.audit.certificates silo certificate {")
    ]
    assert any(r["fingerprint"] == fingerprint and r["reason"] == "renewal due" for r in records), records[-3:]
    assert all(r["caFingerprint"] == records[0]["caFingerprint"] for r in records)

    # The CA key is in its Secret, and nowhere anyone else reads: no Event, no status, no log line.
    ca_key = _file(admin, silo, AUTHORITY_SECRET, "bank-a.ca.key")
    key_body = "".join(ca_key.decode().splitlines()[1:-1])
    everything = "\n".join([json.dumps(events), json.dumps(get(cluster, silo, "silo", "bank-a")), *logged.lines])
    for line in ca_key.decode().splitlines()[1:-1]:
        assert line not in everything
    assert key_body not in everything.replace("\\n", "")
    all_events = admin.list(EVENT, silo, {})
    assert not any(line in json.dumps(all_events) for line in ca_key.decode().splitlines()[1:-1])
    assert not any("forbidden" in line.lower() for line in logged.lines), "the shipped roles cover renewal"


@pytest.mark.integration
def test_the_operator_reads_the_ca_secret_by_name_and_no_other(
    renewing: KopfRunner, cluster: ControlPlane, namespaces: dict[str, str], tmp_path: Path
) -> None:
    silo = namespaces["silo"]
    kubeconfig = service_account_kubeconfig(cluster, namespaces["operator"], "fedsilo-operator", tmp_path / "k")
    api = KubeApi(load_access(kubeconfig), "fedsilo-operator")
    assert api.get(SECRET, silo, AUTHORITY_SECRET) is not None
    for name in (CERTIFICATE_SECRET, "bank-a-identity"):
        with pytest.raises(ApiError) as refused:
            api.get(SECRET, silo, name)
        assert refused.value.forbidden, name


@pytest.mark.integration
def test_a_lifetime_set_on_an_identity_made_without_one_is_refused_once_with_a_warning(
    renewing: KopfRunner, cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    silo = namespaces["silo"]
    plain = {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": "bank-b"}, "spec": {}}
    apply_objects(cluster, silo, plain)
    wait_for(
        lambda: ((get(cluster, silo, "silo", "bank-b").get("status") or {}).get("identity") or {}).get("publicKey"),
        "bank-b's identity",
        60,
    )
    apply_objects(cluster, silo, {**plain, "spec": {"identity": {"certificateLifetime": "1h"}}})

    def warned() -> list[dict[str, Any]]:
        events = get(cluster, silo, "events", "--field-selector", "involvedObject.name=bank-b")["items"]
        return [e for e in events if e["reason"] == "CertificateNotRenewable"]

    (warning,) = wait_for(warned, "a CertificateNotRenewable warning", 60)
    assert warning["type"] == "Warning" and "delete the identity Secret" in warning["message"]
    authorities = admin.get(SECRET, silo, AUTHORITY_SECRET)
    assert authorities is not None and not any(key.startswith("bank-b.") for key in authorities["data"])
    assert "certificate" not in (get(cluster, silo, "silo", "bank-b").get("status") or {})


@pytest.mark.integration
def test_deleting_the_silo_removes_its_ca_and_certificate_and_no_other_silos(
    renewing: KopfRunner, cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    silo = namespaces["silo"]
    cluster.kubectl("delete", "-n", silo, "silo", "bank-a", "--timeout=60s")

    def entries() -> set[str]:
        found = set()
        for name in (AUTHORITY_SECRET, CERTIFICATE_SECRET):
            secret = admin.get(SECRET, silo, name)
            found |= {key for key in ((secret or {}).get("data") or {}) if key.startswith("bank-a.")}
        return found

    wait_for(lambda: not entries(), "bank-a's entries removed from both Secrets", 60)
    assert admin.get(SECRET, silo, "bank-a-identity") is None
