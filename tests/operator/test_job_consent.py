"""Consent on both sides, against the real API server: the hub refuses a job naming a silo outside its
spec.consent (a condition and a Warning Event naming the silo and what it lacks, nothing created),
and the silo role, on its own, starts no pod for such a job (a Warning Event on the job and the
ConsentRefused condition on the Silo); once the silo's owner consents, both go on."""

from __future__ import annotations

from typing import Any

import pytest

from fedsilo.kube import KubeApi
from fedsilo.operator import OperatorRole
from fedsilo_testing import ControlPlane

from .conftest import apply_objects, children, condition, get, running_operator, unique, wait_for

pytestmark = pytest.mark.integration

SILOS = ("hospital-a", "hospital-b")


def job(name: str, purpose: str) -> dict[str, Any]:
    spec = {
        "silos": list(SILOS),
        "minSilos": 2,
        "purpose": purpose,
        "aggregation": {"mode": "plain"},
        "policy": {"dataClass": "internal"},
        "model": {"builtin": "logistic_regression"},
    }
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "FederatedJob", "metadata": {"name": name}, "spec": spec}


def silo(name: str, purposes: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if purposes is not None:
        spec["consent"] = {"dataClasses": ["internal"], "purposes": purposes}
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": name}, "spec": spec}


def consent_to_marketing(cluster: ControlPlane, namespace: str) -> None:
    """hospital-a's owner adds the purpose the job ``ads`` asks for to its Silo's consent."""
    consent = {"purposes": ["sepsis-research", "marketing"]}
    cluster.merge_patch(namespace, "silo", "hospital-a", {"spec": {"consent": consent}})


def warnings(cluster: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    events = get(cluster, namespace, "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in events if e["type"] == "Warning"]


def test_the_hub_refuses_a_job_naming_a_silo_without_consent_until_it_consents(
    cluster: ControlPlane, admin: KubeApi
) -> None:
    namespace = cluster.create_namespace(unique("consent-hub"))
    # Both roles: the silo role gives the Silos the identities the hub waits for once it may go on.
    with running_operator([namespace], cluster.kubeconfig):
        apply_objects(cluster, namespace, silo("hospital-a", ["sepsis-research"]), silo("hospital-b"))
        apply_objects(cluster, namespace, job("ads", "marketing"))
        refused = wait_for(
            lambda: (
                (c := condition(get(cluster, namespace, "federatedjob", "ads"), "Ready"))
                and c["reason"] == "ConsentMissing"
                and c
            ),
            "the job's ConsentMissing condition",
            timeout=60,
        )
        assert refused["status"] == "False"
        assert "Silo hospital-a has not consented to the purpose marketing" in refused["message"]
        assert "hospital-b" not in refused["message"], "a silo that manages no consent is not blamed"
        assert any(
            e["reason"] == "ConsentMissing" and "hospital-a" in e["message"]
            for e in warnings(cluster, namespace, "ads")
        )
        assert not [key for key in children(admin, namespace) if key[1].startswith("ads-")], "nothing is created"

        # The silo's owner consents: the hub goes on and builds the job's aggregator.
        consent_to_marketing(cluster, namespace)
        wait_for(
            lambda: ("Deployment", "ads-aggregator") in children(admin, namespace),
            "the aggregator after consent",
            timeout=90,
        )


def test_the_silo_role_starts_no_pod_for_a_job_its_silo_has_not_consented_to(
    cluster: ControlPlane, admin: KubeApi
) -> None:
    namespace = cluster.create_namespace(unique("consent-silo"))
    with running_operator([namespace], cluster.kubeconfig, role=OperatorRole.SILO):
        apply_objects(cluster, namespace, silo("hospital-a", ["sepsis-research"]), silo("hospital-b"))
        for name in SILOS:
            wait_for(
                lambda n=name: ("Secret", f"{n}-identity") in children(admin, namespace),
                f"{name}'s identity",
                timeout=90,
            )
        apply_objects(cluster, namespace, job("ads", "marketing"))
        # As a hub that did not check (or another hub) would: publish the endpoint; the silo side decides alone.
        endpoint = {"address": f"ads-aggregator.{namespace}.svc.cluster.local:7443", "caCertificate": "CA\n"}
        cluster.merge_patch(namespace, "federatedjob", "ads", {"status": {"endpoint": endpoint}}, subresource="status")
        refused = wait_for(
            lambda: condition(get(cluster, namespace, "silo", "hospital-a"), "ConsentRefused"),
            "the Silo's ConsentRefused condition",
            timeout=60,
        )
        assert refused["status"] == "True" and refused["reason"] == "ConsentMissing"
        assert "job ads" in refused["message"]
        assert "Silo hospital-a has not consented to the purpose marketing" in refused["message"]
        assert any("starts no pod for job ads" in e["message"] for e in warnings(cluster, namespace, "ads"))
        assert not [key for key in children(admin, namespace) if key[0] == "Pod"], "no pod for a refused job"

        consent_to_marketing(cluster, namespace)
        wait_for(
            lambda: ("Pod", "ads-hospital-a-trainer") in children(admin, namespace),
            "the pods after consent",
            timeout=90,
        )
        cleared = wait_for(
            lambda: (
                (c := condition(get(cluster, namespace, "silo", "hospital-a"), "ConsentRefused"))
                and c["status"] == "False"
                and c
            ),
            "the ConsentRefused condition cleared",
        )
        assert cleared["reason"] == "AsExpected"
