"""The operator (both roles, as cluster-admin) against the real API server, driven by kubectl.

Every namespace here enforces Pod Security "restricted", so every pod the operator gets
created is one the API server admitted under that profile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from fedsilo.api import (
    Denial,
    EvidenceHead,
    JobEvidence,
    JobOutcome,
    ModelQualityStatus,
    ModelReference,
    RoundNumber,
    RoundReport,
    SiloName,
    load_manifest,
)
from fedsilo.audit import FORMAT, SignedHead, sign_head
from fedsilo.identity import SigningKey
from fedsilo.kube import PERSISTENT_VOLUME_CLAIM, POD, SECRET, ApiError, KubeApi, KubeStatusReporter, load_access
from fedsilo.kube._reporter import FIELD_MANAGER as AGGREGATOR_FIELD_MANAGER
from fedsilo.operator import WORKLOAD_NAMESPACE_ANNOTATION, OperatorConfig, load_policy_files
from fedsilo.operator._admission import JobAdmission, admission_bundle, with_parameters
from fedsilo.operator._handlers import FIELD_MANAGER as OPERATOR_FIELD_MANAGER
from fedsilo.operator._hub import HubReconciler
from fedsilo.operator._names import JOB_LABEL
from fedsilo.policy import EmbeddedRegoEngine, default_bundle_path
from fedsilo_testing import ControlPlane, KubectlError

from .conftest import (
    EXAMPLES,
    TWO_SILO_MASKING,
    apply_file,
    apply_objects,
    children,
    condition,
    get,
    hub_children,
    mark_available,
    reconciles,
    running_operator,
    service_account_kubeconfig,
    silo_children,
    unique,
    versions,
    wait_for,
    wait_for_condition,
)

pytestmark = pytest.mark.integration

QUICKSTART = EXAMPLES / "quickstart.yaml"
SCENARIOS = (
    "quickstart",
    "custom",
    "again",
    "report",
    "delete",
    "hub",
    "silo-a",
    "silo-b",
    "misc",
    "suspend",
    "rebuild",
    "stale",
    "queued",
)


@pytest.fixture(scope="module")
def namespaces(cluster: ControlPlane) -> dict[str, str]:
    return {scenario: cluster.create_namespace(unique(scenario)) for scenario in SCENARIOS}


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, namespaces: dict[str, str]) -> Iterator[KopfRunner]:
    with running_operator(namespaces.values(), cluster.kubeconfig) as runner:
        yield runner


def expected_objects(path: Path) -> set[tuple[str, str]]:
    manifest = load_manifest(path)
    job = manifest.job.metadata.name
    expected = hub_children(job)
    for silo in manifest.silos:
        expected |= silo_children(job, silo.metadata.name)
    return expected


def apply_and_wait(cluster: ControlPlane, admin: KubeApi, namespace: str, path: Path) -> dict[tuple[str, str], Any]:
    apply_file(cluster, namespace, path)
    expected = expected_objects(path)
    return wait_for(
        lambda: (found := children(admin, namespace)) and set(found) >= expected and found,
        f"the children of {path.name} in {namespace}",
    )


@pytest.fixture(scope="module")
def quickstart(cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner) -> str:
    namespace = namespaces["quickstart"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    return namespace


@pytest.mark.parametrize(
    ("example", "scenario"), [(QUICKSTART, "quickstart"), (EXAMPLES / "custom_model" / "job.yaml", "custom")]
)
def test_applying_an_example_creates_exactly_the_expected_objects(
    cluster: ControlPlane,
    admin: KubeApi,
    namespaces: dict[str, str],
    operator: KopfRunner,
    example: Path,
    scenario: str,
) -> None:
    namespace = namespaces[scenario]
    found = apply_and_wait(cluster, admin, namespace, example)
    assert set(found) == expected_objects(example)


def test_children_are_owned_by_their_job_and_identities_by_their_silo(admin: KubeApi, quickstart: str) -> None:
    for (kind, name), obj in children(admin, quickstart).items():
        (owner,) = obj["metadata"]["ownerReferences"]
        expected = (
            ("Silo", name.removesuffix("-identity").removesuffix("-identity-public"))
            if "identity" in name
            else ("FederatedJob", "quickstart")
        )
        assert (owner["kind"], owner["name"]) == expected, (kind, name)
        assert owner["controller"] is True


def test_the_stored_pods_keep_the_trainer_off_the_network_and_away_from_secrets(
    admin: KubeApi, quickstart: str
) -> None:
    found = children(admin, quickstart)
    trainer = found[("Pod", "quickstart-hospital-a-trainer")]["spec"]
    sidecar = found[("Pod", "quickstart-hospital-a-sidecar")]["spec"]
    assert trainer["automountServiceAccountToken"] is False and sidecar["automountServiceAccountToken"] is False
    assert not any("secret" in volume or "projected" in volume for volume in trainer["volumes"])
    assert [v["secret"]["secretName"] for v in sidecar["volumes"] if "secret" in v] == ["hospital-a-identity"]
    for pod in (trainer, sidecar):
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"] == {
            "type": "RuntimeDefault"
        }
    policy = found[("NetworkPolicy", "quickstart-hospital-a-trainer")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy.get("ingress", []) == []
    (egress,) = policy["egress"]
    assert egress["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "sidecar"
    service = found[("Service", "quickstart-hospital-a-sidecar")]["spec"]["clusterIP"]
    (trainer_container,) = trainer["containers"]
    assert f"{service}:7000" in trainer_container["args"], "the trainer dials its sidecar by IP, with no DNS"
    # The aggregator's gRPC port admits only this job's sidecars, from namespaces marked as silos'
    # (no remote-silo CIDRs are configured here).
    aggregator = found[("NetworkPolicy", "quickstart-aggregator")]["spec"]
    (rule,) = aggregator["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7443}]
    (source,) = rule["from"]
    assert source["namespaceSelector"] == {"matchLabels": {"fedsilo.io/silo-namespace": "true"}}
    assert source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "sidecar"
    assert source["podSelector"]["matchLabels"]["fedsilo.io/job"] == "quickstart"


def test_every_pod_the_operator_makes_is_admitted_under_pod_security_restricted(
    cluster: ControlPlane, admin: KubeApi, quickstart: str
) -> None:
    labels = get(cluster, "", "namespace", quickstart)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    found = children(admin, quickstart)
    assert sum(kind == "Pod" for kind, _ in found) == 6, "the API server admitted every silo pod"
    template = found[("Deployment", "quickstart-aggregator")]["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "aggregator-as-a-pod", **template["metadata"]},
        "spec": template["spec"],
    }
    cluster.kubectl("create", "--dry-run=server", "-n", quickstart, "-f", "-", input=json.dumps(pod))
    # The control: the same namespace refuses a pod without the restricted settings.
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(KubectlError, match="violates PodSecurity"):
        cluster.kubectl("create", "--dry-run=server", "-n", quickstart, "-f", "-", input=json.dumps(bare))


def test_the_job_is_ready_once_its_aggregator_is_available(cluster: ControlPlane, quickstart: str) -> None:
    # The status (with the endpoint) is written just after the children: wait for it, not for them.
    job = wait_for(
        lambda: (j := get(cluster, quickstart, "federatedjob", "quickstart")) and j["status"].get("endpoint") and j,
        "the published endpoint",
    )
    assert condition(job, "Ready")["status"] == "False" and job["status"]["phase"] == "Pending"
    assert job["status"]["endpoint"]["address"] == f"quickstart-aggregator.{quickstart}.svc.cluster.local:7443"
    mark_available(cluster, quickstart, "quickstart-aggregator")
    job = wait_for_condition(cluster, quickstart, "quickstart", "Ready")
    assert job["status"]["phase"] == "Running"
    assert condition(job, "Ready")["observedGeneration"] == job["metadata"]["generation"]
    silo = get(cluster, quickstart, "silo", "hospital-a")
    assert condition(silo, "Ready")["status"] == "True"
    assert silo["status"]["identity"]["fingerprint"].startswith("sha256:")
    assert wait_for(
        lambda: [j["name"] for j in get(cluster, quickstart, "silo", "hospital-a")["status"].get("jobs", [])],
        "the silo lists its job",
    ) == ["quickstart"]


def test_reconciling_again_changes_nothing(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    namespace = namespaces["again"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    wait_for(
        lambda: get(cluster, namespace, "federatedjob", "quickstart").get("status", {}).get("endpoint"), "the endpoint"
    )
    before = versions(admin, [namespace])
    job_before = get(cluster, namespace, "federatedjob", "quickstart")["status"]
    hub, silo = reconciles("federatedjob", "hub"), reconciles("federatedjob", "silo-workloads")
    apply_file(cluster, namespace, QUICKSTART)  # unchanged: no event at all
    cluster.kubectl("annotate", "-n", namespace, "federatedjob", "quickstart", "example.com/touched=yes")
    wait_for(
        lambda: reconciles("federatedjob", "hub") > hub and reconciles("federatedjob", "silo-workloads") > silo,
        "both roles reconciled the touched job",
    )
    assert versions(admin, [namespace]) == before
    assert get(cluster, namespace, "federatedjob", "quickstart")["status"] == job_before


def test_editing_the_job_propagates_to_every_child(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str]
) -> None:
    namespace = namespaces["again"]
    before = children(admin, namespace)
    cluster.kubectl(
        "patch", "-n", namespace, "federatedjob", "quickstart", "--type=merge", "-p", '{"spec":{"rounds":20}}'
    )
    wait_for(
        lambda: "rounds: 20" in children(admin, namespace)[("ConfigMap", "quickstart-job")]["data"]["job.yaml"],
        "the job manifest on the hub has the new round count",
    )

    def replaced() -> bool:
        now = children(admin, namespace)
        pod = ("Pod", "quickstart-hospital-b-trainer")
        return pod in now and now[pod]["metadata"]["uid"] != before[pod]["metadata"]["uid"]

    wait_for(replaced, "the trainer pod rebuilt from the new manifest")
    after = children(admin, namespace)
    assert "rounds: 20" in after[("ConfigMap", "quickstart-hospital-b-job")]["data"]["job.yaml"]
    digest = "fedsilo.io/spec-digest"
    deployment = ("Deployment", "quickstart-aggregator")
    template = lambda found: found[deployment]["spec"]["template"]["metadata"]["annotations"][digest]  # noqa: E731
    assert template(after) != template(before), "the aggregator rolls to the new configuration"

    # The silo list is what every partner agreed to: it cannot change under a running job.
    silos = '{"spec":{"silos":["hospital-b","hospital-c","hospital-d"]}}'
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("patch", "-n", namespace, "federatedjob", "quickstart", "--type=merge", "-p", silos)
    assert "spec.silos cannot change once the job exists" in refused.value.stderr
    assert silo_children("quickstart", "hospital-a") <= set(children(admin, namespace)), "hospital-a keeps its pods"


def test_the_aggregator_reports_progress_through_its_narrow_grant(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner, tmp_path: Path
) -> None:
    namespace = namespaces["report"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    mark_available(cluster, namespace, "quickstart-aggregator")
    job = wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", "quickstart")) and j["status"].get("phase") == "Running" and j
        ),
        "Running",
    )
    kubeconfig = service_account_kubeconfig(
        cluster, namespace, "quickstart-aggregator", tmp_path / "aggregator.kubeconfig"
    )
    api = KubeApi(load_access(kubeconfig), AGGREGATOR_FIELD_MANAGER)
    reporter = KubeStatusReporter(api, "quickstart", namespace, job["metadata"]["uid"], "quickstart-aggregator-0")

    a, b, c = (SiloName(name) for name in ("hospital-a", "hospital-b", "hospital-c"))
    model = ModelReference(uri="file:///var/lib/fedsilo/models/quickstart/1", round=1, digest="sha256:" + "ab" * 32)
    reporter.update_denied(Denial(RoundNumber(1), c, ("l2 norm 31.0 above the cap 20.0",), "fedsilo-policies-test"))
    # The audit log's signed head goes out with the round, outside the log (fedsilo audit verify --head).
    head = sign_head(SigningKey.generate(), FORMAT, "checkpoint", 7, "sha256:" + "cd" * 32)
    evidence = JobEvidence(audit_head=EvidenceHead.model_validate(head.to_json()))
    # hospital-c's sidecar was stopped and left the round (a signed Leave) before its update.
    reporter.round_completed(
        RoundReport(RoundNumber(1), (a, b), (c,), 1, {a: 0.5, b: 0.25}, model, evidence, left={c: "stopped"})
    )
    status = wait_for(
        lambda: (s := get(cluster, namespace, "federatedjob", "quickstart")["status"]) and s.get("round") == 1 and s,
        "the round in the job's status",
    )
    assert (status["participation"], status["denials"], status["maxEpsilonSpent"]) == ("2/3", 1, 0.5)
    assert status["dropouts"] == status["left"] == ["hospital-c"]
    assert status["latestModel"]["digest"] == model.digest and status["phase"] == "Running"
    assert SignedHead.parse(json.dumps(status["evidence"]["auditHead"])) == head
    # The silos' signed scores of round 1's model arrive a round later: per-silo accuracy, worst silo, spread.
    reporter.model_evaluated(
        ModelQualityStatus(
            round=1,
            stage="global",
            mean_accuracy=0.8,
            worst_silo=b,
            worst_accuracy=0.6,
            accuracy_std_dev=0.14,
            silos={a: 0.9, b: 0.6, c: 0.9},
        )
    )
    quality = wait_for(
        lambda: get(cluster, namespace, "federatedjob", "quickstart")["status"].get("quality"), "the job's quality"
    )
    assert (quality["worstSilo"], quality["silos"][b], quality["accuracyStdDev"]) == ("hospital-b", 0.6, 0.14)
    # The federated model's mean is the job's accuracy too, the figure kubectl get shows.
    status = get(cluster, namespace, "federatedjob", "quickstart")["status"]
    assert (status["accuracy"], status["accuracyRound"]) == (0.8, 1)
    assert get(cluster, namespace, "federatedjob", "quickstart")["status"]["round"] == 1
    events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=quickstart")["items"]
    reasons = {e["reason"]: e for e in events}
    assert "hospital-c" in reasons["UpdateDenied"]["message"] and reasons["UpdateDenied"]["type"] == "Warning"
    assert "Round 1: 2/3 silos accepted; dropped: hospital-c; left: hospital-c" in reasons["RoundCompleted"]["message"]
    assert "accuracy 0.8000, worst silo hospital-b at 0.6000" in reasons["ModelEvaluated"]["message"]
    assert wait_for(
        lambda: get(cluster, namespace, "silo", "hospital-a")["status"].get("epsilonSpent") == 0.5,
        "epsilon on the Silo",
    )
    # The Silo keeps its own copy of the job's signed audit head.
    assert wait_for(
        lambda: (
            get(cluster, namespace, "silo", "hospital-a")["status"]["jobs"][0].get("evidence", {}).get("auditHead")
            == head.to_json()
        ),
        "the audit head on the Silo",
    )

    # The grant is narrow: no other job's status, no Secrets.
    other = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "other", "namespace": namespace},
        "status": {"round": 9},
    }
    with pytest.raises(ApiError) as refused:
        api.apply(other, subresource="status")
    assert refused.value.forbidden
    with pytest.raises(ApiError) as refused:
        api.get(SECRET, namespace, "hospital-a-identity")
    assert refused.value.forbidden

    job_pods = {JOB_LABEL: "quickstart"}
    assert admin.list(POD, namespace, job_pods), "the silos' pods, before the job ends"
    reporter.job_finished(JobOutcome(succeeded=True, rounds_completed=15, message="15 rounds completed"))
    job = wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", "quickstart"))
            and j["status"].get("phase") == "Succeeded"
            and j
        ),
        "the job succeeded",
    )
    assert condition(job, "Ready")["reason"] == "JobSucceeded"
    assert wait_for(
        lambda: get(cluster, namespace, "deployment", "quickstart-aggregator")["spec"]["replicas"] == 0,
        "the finished job's aggregator scaled to zero",
    )
    # Nothing is left for the silos to join: their pods that still run (none here ended) are deleted.
    assert wait_for(lambda: not admin.list(POD, namespace, job_pods), "the ended job's silo pods deleted")


def silo_in(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "Silo",
        "metadata": {"name": name, "annotations": {WORKLOAD_NAMESPACE_ANNOTATION: namespace}},
        "spec": {"displayName": name},
    }


def test_silos_run_in_their_own_namespaces_and_are_cleaned_up_there(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    hub, silo_a, silo_b = namespaces["hub"], namespaces["silo-a"], namespaces["silo-b"]
    job = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "spread"},
        "spec": {"silos": ["north", "south"], "minSilos": 2, "model": {"builtin": "logistic_regression"}},
    }
    # Each workload namespace accepts its silo (docs/namespaces.md); without it nothing runs there.
    cluster.kubectl("annotate", "namespace", silo_a, f"fedsilo.io/accept-silos={hub}/north")
    cluster.kubectl("annotate", "namespace", silo_b, f"fedsilo.io/accept-silos={hub}/south")
    apply_objects(cluster, hub, silo_in(silo_a, "north"), silo_in(silo_b, "south"), job)
    wait_for(
        lambda: set(children(admin, silo_a)) == silo_children("spread", "north"), "north's objects in its namespace"
    )
    wait_for(
        lambda: set(children(admin, silo_b)) == silo_children("spread", "south"), "south's objects in its namespace"
    )
    assert set(children(admin, hub)) == hub_children("spread"), "no silo secret in the hub namespace"
    for obj in children(admin, silo_a).values():
        assert "ownerReferences" not in obj["metadata"], "owner references cannot cross namespaces"
    policy = children(admin, silo_a)[("NetworkPolicy", "spread-north-sidecar")]["spec"]
    assert policy["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": hub}

    cluster.kubectl("delete", "-n", hub, "federatedjob", "spread", "--timeout=60s")
    identity = {("Secret", "north-identity"), ("ConfigMap", "north-identity-public")}
    assert set(children(admin, silo_a)) == identity, "the job's pods are gone, the identity stays with the Silo"
    assert set(children(admin, hub)) == set()
    cluster.kubectl("delete", "-n", hub, "silo", "north", "south", "--timeout=60s")
    assert children(admin, silo_a) == {} and children(admin, silo_b) == {}


def test_deleting_a_job_and_its_silos_removes_every_child_without_a_garbage_collector(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    namespace = namespaces["delete"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    claim = admin.get(PERSISTENT_VOLUME_CLAIM, namespace, "quickstart-aggregator-state")
    assert claim is not None and claim["metadata"]["ownerReferences"][0]["kind"] == "FederatedJob"
    cluster.kubectl("delete", "-n", namespace, "federatedjob", "quickstart", "--timeout=60s")
    # Deleted by the operator. Without a controller-manager the API server's pvc-protection
    # finalizer keeps it visible as terminating; a real cluster then removes it.
    claim = admin.get(PERSISTENT_VOLUME_CLAIM, namespace, "quickstart-aggregator-state")
    assert claim is None or claim["metadata"].get("deletionTimestamp")
    identities = {key for key in children(admin, namespace) if "identity" in key[1]}
    assert set(children(admin, namespace)) == identities and len(identities) == 6
    cluster.kubectl("delete", "-n", namespace, "-f", str(QUICKSTART), "--ignore-not-found", "--timeout=60s")
    assert children(admin, namespace) == {}


def test_a_silo_in_a_namespace_the_operator_does_not_manage_is_left_to_its_own_operator_untouched(
    cluster: ControlPlane, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    """Another partner's Silo beside ours (its workload namespace is that partner's): no status,
    no kopf annotation, no finalizer, nothing created; that partner's operator owns it."""
    namespace, elsewhere = namespaces["misc"], cluster.create_namespace(unique("elsewhere"))
    apply_objects(cluster, namespace, silo_in(elsewhere, "stray"))
    # A Silo of the operator's own, applied after: once it is handled, so was the stray's event.
    apply_objects(cluster, namespace, silo_in(namespace, "neighbour"))
    wait_for(lambda: (s := get(cluster, namespace, "silo", "neighbour")) and condition(s, "Ready"), "our Silo handled")
    stray = get(cluster, namespace, "silo", "stray")
    assert "status" not in stray, stray["status"]
    assert not stray["metadata"].get("finalizers"), stray["metadata"]["finalizers"]
    ours = {key for key in stray["metadata"]["annotations"] if "fedsilo.io" in key}
    assert ours == {WORKLOAD_NAMESPACE_ANNOTATION}, "no kopf state on another operator's Silo"
    assert secret_absent(cluster, elsewhere)
    cluster.kubectl("delete", "-n", namespace, "silo", "stray", "neighbour", "--timeout=60s")


def test_a_silo_the_api_server_let_through_is_reported_invalid_not_touched(
    cluster: ControlPlane, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    namespace = namespaces["misc"]
    try:
        apply_objects(cluster, namespace, silo_in("kube-system", "intruder"))
    except KubectlError as refused:
        # The admission policy (deploy/admission) is in force in this session: it refuses first.
        assert "names a system namespace" in refused.stderr
        return
    silo = wait_for(
        lambda: (s := get(cluster, namespace, "silo", "intruder")) and condition(s, "Ready") and s, "the conditions"
    )
    assert condition(silo, "Ready")["reason"] == "InvalidSilo"
    assert "names a system namespace" in condition(silo, "Ready")["message"]
    assert secret_absent(cluster, "kube-system", "intruder")


def secret_absent(cluster: ControlPlane, namespace: str, silo: str = "stray") -> bool:
    found = cluster.kubectl("get", "secret", f"{silo}-identity", "-n", namespace, "--ignore-not-found", "-o", "name")
    return found.stdout.strip() == ""


def test_suspending_a_silo_is_an_event_and_a_new_manifest_for_the_running_aggregator(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    namespace = namespaces["suspend"]
    before = apply_and_wait(cluster, admin, namespace, QUICKSTART)
    deployment = ("Deployment", "quickstart-aggregator")
    digest = "fedsilo.io/spec-digest"
    patch = '{"spec":{"suspended":{"reason":"norms drifted; under review"}}}'
    cluster.kubectl("patch", "-n", namespace, "silo", "hospital-c", "--type=merge", "-p", patch)
    wait_for(
        lambda: (
            "norms drifted; under review"
            in children(admin, namespace)[("ConfigMap", "quickstart-job")]["data"]["job.yaml"]
        ),
        "the suspension in the manifest the aggregator re-reads",
    )

    def event(reason: str) -> dict[str, Any] | None:
        found = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=hospital-c")["items"]
        return next((e for e in found if e["reason"] == reason), None)

    suspended = wait_for(lambda: event("Suspended"), "the Suspended Event on the Silo", timeout=120)
    assert suspended["type"] == "Warning" and "norms drifted; under review" in suspended["message"]
    cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "silo",
        "hospital-c",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/spec/suspended"}]',
    )
    assert wait_for(lambda: event("Readmitted"), "the Readmitted Event on the Silo", timeout=120)["type"] == "Normal"
    after = children(admin, namespace)
    # Not rolled: the aggregator takes the standing at its next round boundary, in place.
    template = lambda found: found[deployment]["spec"]["template"]["metadata"]["annotations"][digest]  # noqa: E731
    assert template(after) == template(before)
    assert after[deployment]["metadata"]["generation"] == before[deployment]["metadata"]["generation"]


def test_a_deleted_silo_pod_is_rebuilt(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner
) -> None:
    namespace = namespaces["rebuild"]
    before = apply_and_wait(cluster, admin, namespace, QUICKSTART)
    mark_available(cluster, namespace, "quickstart-aggregator")
    trainer = ("Pod", "quickstart-hospital-b-trainer")
    cluster.kubectl("delete", "pod", trainer[1], "-n", namespace, "--wait=true")

    def rebuilt() -> bool:
        now = children(admin, namespace)
        return trainer in now and now[trainer]["metadata"]["uid"] != before[trainer]["metadata"]["uid"]

    # The silo operator checks its pods every 15 s.
    wait_for(rebuilt, "the deleted trainer pod rebuilt", timeout=90)

    def said(reason: str) -> list[dict[str, Any]]:
        events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=quickstart")["items"]
        return [event for event in events if event["reason"] == reason]

    # Posted, not only logged: the operator posts its log's warnings only, so a kopf.info was lost.
    (rebuilt_event,) = wait_for(lambda: said("PodsRebuilt"), "the PodsRebuilt Event on the job")
    assert rebuilt_event["type"] == "Normal" and "hospital-b" in rebuilt_event["message"]
    assert said("CertificateCreated"), "the serving certificate's Event on the job"


def test_a_phase_written_from_a_stale_event_keeps_the_published_endpoint(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], operator: KopfRunner, tmp_path: Path
) -> None:
    # Seen on the real cluster: the hub refreshed the phase from a job event older than the
    # endpoint's publication, its apply left the endpoint out and so removed it, and the silo
    # operators waited for an endpoint for the rest of the job (a deleted pod was never rebuilt).
    namespace = namespaces["stale"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    published = wait_for(
        lambda: (s := get(cluster, namespace, "federatedjob", "quickstart")["status"]) and s.get("endpoint") and s,
        "the endpoint published",
    )
    # What the phase writer applies from a body that has no endpoint yet: phase and conditions only.
    stale = {key: published[key] for key in ("observedGeneration", "phase", "conditions")}
    operator_api = KubeApi(load_access(cluster.kubeconfig), OPERATOR_FIELD_MANAGER)
    operator_api.apply(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "quickstart", "namespace": namespace},
            "status": stale,
        },
        subresource="status",
    )
    after = get(cluster, namespace, "federatedjob", "quickstart")["status"]
    assert after.get("endpoint") == published["endpoint"]
    assert after.get("admission") == published["admission"]


def test_a_reconcile_queued_behind_the_publication_does_not_decide_admission_again(
    cluster: ControlPlane,
    admin: KubeApi,
    namespaces: dict[str, str],
    operator: KopfRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Seen in CI: two reconciles of one job were queued before the endpoint was published; the
    # second, with its older body, decided admission again and re-published it with a new
    # decidedAt (and a second audit record of the same decision).
    namespace = namespaces["queued"]
    apply_and_wait(cluster, admin, namespace, QUICKSTART)
    published = wait_for(
        lambda: (
            (job := get(cluster, namespace, "federatedjob", "quickstart")) and job["status"].get("endpoint") and job
        ),
        "the endpoint published",
    )
    # The body of an event from before the publication.
    unpublished = ("endpoint", "admission")
    queued = {**published, "status": {k: v for k, v in published["status"].items() if k not in unpublished}}
    operator_api = KubeApi(load_access(cluster.kubeconfig), OPERATOR_FIELD_MANAGER)
    parameters = TWO_SILO_MASKING
    hub = HubReconciler(
        operator_api,
        OperatorConfig(namespaces=frozenset([namespace]), policy_parameters=parameters),
        with_parameters(load_policy_files(default_bundle_path()), parameters),
        JobAdmission(EmbeddedRegoEngine(admission_bundle(parameters))),
    )
    with caplog.at_level(logging.INFO, logger="fedsilo.audit.admission"):
        caplog.clear()
        hub.reconcile(queued, True, lambda where, name: get(cluster, where, "silo", name))
    assert not [r for r in caplog.records if r.name == "fedsilo.audit.admission"], "admission decided again"
    after = get(cluster, namespace, "federatedjob", "quickstart")["status"]
    assert after["endpoint"] == published["status"]["endpoint"]
    assert after["admission"] == published["status"]["admission"]
