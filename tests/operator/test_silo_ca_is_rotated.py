"""A Silo's CA is rotated by the operator with an overlap in which the hub trusts both CAs.

The pure parts (when to rotate, how long the new CA waits before it issues) are checked
without a cluster. The rest runs the operator, both roles, as its own ServiceAccount with only
the shipped roles against the real API server: a job names a Silo with 12-second certificates,
``spec.identity.certificateAuthority.rotation`` is raised, and the test watches the steps:
both CAs published (Silo status, the identity's public ConfigMap, the job's ``silo-ca`` file),
the next certificate from the new CA, the old CA dropped after the last certificate it issued
has expired; each an Event and an audit record naming fingerprints only, and the aggregator's
Deployment never rolled.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fedsilo.api import WORKLOAD_NAMESPACE_ANNOTATION
from fedsilo.identity import (
    CertificateAuthority,
    ca_bundle,
    certificate_expiry,
    certificate_fingerprint,
    renewal_due,
    verify_issued_by,
)
from fedsilo.kube import CONFIG_MAP, DEPLOYMENT, EVENT, SECRET, KubeApi
from fedsilo.launch import silo_ca_file
from fedsilo.operator._certificates import (
    AUTHORITY_SECRET,
    CERTIFICATE_SECRET,
    LONGEST_SETTLE,
    CaRotation,
    publication_settle,
    rotation_reason,
)
from fedsilo_testing import ControlPlane

from .conftest import Recorded, apply_objects, get, running_operator, service_account_kubeconfig, unique, wait_for
from .test_least_privilege import shipped_rbac

LIFETIME = dt.timedelta(seconds=12)


# -- when ------------------------------------------------------------------------------------------


def test_a_raised_counter_rotates_the_ca_and_so_does_two_thirds_of_its_life() -> None:
    ca = CertificateAuthority.create("a", validity=dt.timedelta(hours=3)).certificate_pem
    now = dt.datetime.now(dt.UTC)
    assert rotation_reason(ca, CaRotation(rotation=1), 1, now) is None
    assert rotation_reason(ca, CaRotation(rotation=1), 2, now) == "requested"
    # Two thirds of the way from the CA's notBefore to its notAfter, as for its certificates.
    due = renewal_due(ca)
    assert dt.timedelta(hours=1, minutes=55) < due - now < dt.timedelta(hours=2)
    assert rotation_reason(ca, CaRotation(rotation=1), 1, due - dt.timedelta(minutes=1)) is None
    assert rotation_reason(ca, CaRotation(rotation=1), 1, due) == "authority renewal due"


def test_no_rotation_starts_while_an_overlap_is_under_way() -> None:
    ca = CertificateAuthority.create("a").certificate_pem
    now = dt.datetime.now(dt.UTC)
    overlap = CaRotation(rotation=1, retiring=ca.decode(), retire_after=now + dt.timedelta(seconds=10))
    assert rotation_reason(ca, overlap, 2, now) is None
    assert rotation_reason(ca, overlap.model_copy(update={"retiring": None, "retire_after": None}), 2, now)


def test_the_new_ca_waits_for_the_hub_a_sixth_of_a_lifetime_at_most_and_never_past_a_minute_and_a_half() -> None:
    assert publication_settle(dt.timedelta(seconds=12)) == dt.timedelta(seconds=2)
    assert publication_settle(dt.timedelta(hours=24)) == LONGEST_SETTLE


def test_a_damaged_rotation_record_is_refused() -> None:
    with pytest.raises(ValueError, match="rotation"):
        CaRotation.model_validate_json(b'{"rotation": "two"}')
    with pytest.raises(ValueError, match="extra"):
        CaRotation.model_validate_json(b'{"rotation": 1, "privateKey": "x"}')


# -- against the real API server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaces(cluster: ControlPlane) -> dict[str, str]:
    names = {role: cluster.create_namespace(unique(role)) for role in ("operator", "hub", "silo")}
    cluster.apply(*shipped_rbac(names["operator"], names["hub"], names["silo"]))
    accepted = f"fedsilo.io/accept-silos={names['hub']}/bank-a,{names['hub']}/bank-b"
    cluster.kubectl("annotate", "namespace", names["silo"], accepted)
    return names


def _silo(name: str, workload: str, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "Silo",
        "metadata": {"name": name, "annotations": {WORKLOAD_NAMESPACE_ANNOTATION: workload}},
        "spec": {"displayName": name, "identity": identity},
    }


JOB = {
    "apiVersion": "fedsilo.io/v1alpha1",
    "kind": "FederatedJob",
    "metadata": {"name": "credit"},
    "spec": {"silos": ["bank-a", "bank-b"], "minSilos": 2, "model": {"builtin": "mlp"}},
}


#: What the test saw of bank-a, every few tenths of a second while its CA was rotated.
Seen = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rotated(
    cluster: ControlPlane,
    admin: KubeApi,
    namespaces: dict[str, str],
    logged: Recorded,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Seen, dict[str, bytes]]]:
    """The operator after it rotated bank-a's CA once: what the test saw meanwhile, and both CA keys."""
    hub, silo = namespaces["hub"], namespaces["silo"]
    kubeconfig = service_account_kubeconfig(
        cluster, namespaces["operator"], "fedsilo-operator", tmp_path_factory.mktemp("rotate") / "operator.kubeconfig"
    )
    lifetime = {"certificateLifetime": f"{LIFETIME.seconds}s"}
    with running_operator([hub, silo], kubeconfig) as runner:
        apply_objects(cluster, hub, _silo("bank-a", silo, lifetime), _silo("bank-b", silo, {}), JOB)
        wait_for(lambda: _job_ca(admin, hub), "bank-a's CA in the job's ConfigMap", 90)
        wait_for(lambda: _status(cluster, hub).get("certificateAuthority"), "status.certificateAuthority", 60)
        keys = {"old": _file(admin, silo, AUTHORITY_SECRET, "bank-a.ca.key")}
        rotation = {**lifetime, "certificateAuthority": {"rotation": 1}}
        apply_objects(cluster, hub, _silo("bank-a", silo, rotation))
        seen: Seen = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = _status(cluster, hub)
            seen.append(
                {
                    "at": dt.datetime.now(dt.UTC),
                    "cas": len(ca_bundle(status["identity"]["caCertificate"].encode())),
                    "bundle": status["identity"]["caCertificate"],
                    "authority": status.get("certificateAuthority") or {},
                    "certificate": status.get("certificate") or {},
                    "job": _job_ca(admin, hub),
                }
            )
            last = seen[-1]
            if last["authority"].get("rotation") == 1 and last["cas"] == 1 and last["job"] == last["bundle"]:
                break
            time.sleep(0.3)
        keys["new"] = _file(admin, silo, AUTHORITY_SECRET, "bank-a.ca.key")
        yield seen, keys
    assert "forbidden" not in runner.output.lower(), "the shipped roles cover rotation"


def _status(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = get(cluster, namespace, "silo", "bank-a").get("status") or {}
    return status


def _job_ca(admin: KubeApi, namespace: str) -> str | None:
    config_map = admin.get(CONFIG_MAP, namespace, "credit-job")
    ca: str | None = ((config_map or {}).get("data") or {}).get(silo_ca_file("bank-a"))
    return ca


def _file(admin: KubeApi, namespace: str, secret: str, key: str) -> bytes:
    found = admin.get(SECRET, namespace, secret)
    assert found is not None, secret
    return base64.b64decode(found["data"][key])


def _events(cluster: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=bank-a")[
        "items"
    ]
    return events


def _records(logged: Recorded) -> list[dict[str, Any]]:
    return [
        json.loads(line.split("silo certificate ", 1)[1])
        for line in logged.lines
        if line.startswith("fedsilo.audit.certificates silo certificate {")
    ]


@pytest.mark.integration
def test_both_cas_are_published_then_the_new_one_issues_then_the_old_one_goes_after_its_last_certificate(
    rotated: tuple[Seen, dict[str, bytes]], cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    seen, _ = rotated
    final = seen[-1]
    assert final["authority"].get("rotation") == 1 and final["cas"] == 1, final
    new_fingerprint = final["authority"]["fingerprint"]
    start = next((i for i, s in enumerate(seen) if s["cas"] == 2), None)
    assert start is not None, "both CAs were never published"
    end = next(i for i in range(start, len(seen)) if seen[i]["cas"] == 1)
    overlap = seen[start:end]
    old_fingerprint = overlap[0]["authority"]["retiring"]
    assert old_fingerprint != new_fingerprint
    # 1. Both published, while the certificate in use was still the old CA's...
    assert any(s["certificate"].get("caFingerprint") == old_fingerprint for s in overlap), overlap[0]
    # ...and in the job's ConfigMap, whose file the aggregator re-reads: the hub trusts both.
    assert any(s["job"] == s["bundle"] for s in overlap)
    # 2. The next certificate came from the new CA during the overlap.
    assert any(s["certificate"].get("caFingerprint") == new_fingerprint for s in overlap)
    # 3. The old CA went only after the last certificate it issued had expired.
    retire_after = dt.datetime.fromisoformat(overlap[0]["authority"]["retireAfter"])
    assert seen[end]["at"] >= retire_after
    assert [certificate_fingerprint(pem) for pem in ca_bundle(final["job"].encode())] == [new_fingerprint]
    assert "retiring" not in final["authority"]

    hub, silo = namespaces["hub"], namespaces["silo"]
    certificate = _file(admin, silo, CERTIFICATE_SECRET, "bank-a.tls.crt")
    verify_issued_by(certificate, final["bundle"].encode())
    assert certificate_expiry(certificate) > retire_after
    # The identity's public ConfigMap (the trainer's CA) follows too.
    public = admin.get(CONFIG_MAP, silo, "bank-a-identity-public")
    assert public is not None and public["data"]["ca.crt"] == final["bundle"]
    # The aggregator was never rolled for it: its pod template is the one it had.
    deployment = admin.get(DEPLOYMENT, hub, "credit-aggregator")
    assert deployment is not None and deployment["metadata"]["generation"] == 1


@pytest.mark.integration
def test_each_step_is_an_event_and_an_audit_record_and_no_ca_key_appears_anywhere(
    rotated: tuple[Seen, dict[str, bytes]],
    logged: Recorded,
    cluster: ControlPlane,
    admin: KubeApi,
    namespaces: dict[str, str],
) -> None:
    seen, keys = rotated
    hub, silo = namespaces["hub"], namespaces["silo"]
    new_fingerprint = seen[-1]["authority"]["fingerprint"]
    old_fingerprint = next(s for s in seen if s["cas"] == 2)["authority"]["retiring"]
    events = _events(cluster, hub)
    reasons = [e["reason"] for e in events]
    assert "CertificateAuthorityRotated" in reasons and "CertificateAuthorityRetired" in reasons, reasons
    rotated_event = next(e for e in events if e["reason"] == "CertificateAuthorityRotated")
    assert new_fingerprint in rotated_event["message"] and old_fingerprint in rotated_event["message"]
    assert "rotation 1" in rotated_event["message"]
    assert any(e["reason"] == "CertificateRenewed" and f"from CA {new_fingerprint}" in e["message"] for e in events), (
        reasons
    )
    retired = next(e for e in events if e["reason"] == "CertificateAuthorityRetired")
    assert old_fingerprint in retired["message"] and new_fingerprint in retired["message"]

    records = _records(logged)
    steps = [
        (r["event"], r.get("reason"))
        for r in records
        if r["event"] in ("ca_rotated", "ca_retired") or r.get("caFingerprint") == new_fingerprint
    ]
    assert steps[0] == ("ca_rotated", "requested"), steps
    assert ("certificate_issued", "renewal due") in steps and steps[-1][0] in ("ca_retired", "certificate_issued")
    assert steps.index(("ca_rotated", "requested")) < steps.index(("certificate_issued", "renewal due"))
    assert any(step[0] == "ca_retired" for step in steps)
    rotated_record = next(r for r in records if r["event"] == "ca_rotated")
    assert rotated_record["retiringFingerprint"] == old_fingerprint and rotated_record["rotation"] == 1

    # The old key is gone from its Secret; neither key is in any Event, status, ConfigMap or log line.
    assert keys["old"] != keys["new"]
    kept = admin.get(SECRET, silo, AUTHORITY_SECRET)
    assert kept is not None
    stored = "".join(base64.b64decode(value).decode() for value in kept["data"].values())
    old_lines = keys["old"].decode().splitlines()[1:-1]
    assert not any(line in stored for line in old_lines)
    everything = "\n".join(
        [
            json.dumps(admin.list(EVENT, hub, {})),
            json.dumps(admin.list(EVENT, silo, {})),
            json.dumps(get(cluster, hub, "silo", "bank-a")),
            json.dumps(admin.list(CONFIG_MAP, hub, {})),
            json.dumps(admin.list(CONFIG_MAP, silo, {})),
            *logged.lines,
        ]
    )
    for key in (keys["old"], keys["new"]):
        for line in key.decode().splitlines()[1:-1]:
            assert line not in everything


@pytest.mark.integration
def test_the_rotation_is_not_repeated_while_the_counter_stays(
    rotated: tuple[Seen, dict[str, bytes]], logged: Recorded
) -> None:
    assert sum(1 for r in _records(logged) if r["event"] == "ca_rotated") == 1
