"""What a FederatedJob turns into, checked without a cluster: the pure builders of both roles."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import (
    AggregatorEndpoint,
    FederatedJob,
    Silo,
    SiloDataSpec,
    SiloSuspension,
    load_manifest,
    parse_manifest,
)
from fedsilo.identity import SigningKey, SiloIdentity, read_identity, write_identity
from fedsilo.launch import HUB_MALLOC_ARENAS, MANIFEST_FILE, silo_ca_file
from fedsilo.operator import (
    HubInputs,
    OperatorConfig,
    SiloInputs,
    hub_objects,
    load_policy_files,
    silo_pods,
    silo_support_objects,
)
from fedsilo.operator._conditions import JobFacts, Problem, job_status
from fedsilo.operator._hub import _waiting_for
from fedsilo.operator._hub_objects import state_claim
from fedsilo.operator._identity import identity_secret, new_silo_identity
from fedsilo.operator._manifest import SeenStanding, job_manifest, registered_cas, registered_key
from fedsilo.operator._names import child_name
from fedsilo.operator._silo_objects import ledger_claim
from fedsilo.policy import default_bundle_path

ROOT = Path(__file__).parents[2]
CONFIG = OperatorConfig()
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def owner(name: str = "quickstart", namespace: str = "hub") -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": name, "namespace": namespace, "uid": "0b8f1d2e-0000-4000-8000-000000000001"},
    }


def keyed(silo: Silo) -> Silo:
    key = SigningKey.generate().public_key.to_base64()
    return silo.model_copy(update={"status": {"identity": {"publicKey": key, "caCertificate": "CA\n"}}})


@pytest.fixture(scope="module")
def quickstart() -> tuple[FederatedJob, list[Silo]]:
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    return manifest.job, [keyed(silo) for silo in manifest.silos]


@pytest.fixture(scope="module")
def hub(quickstart: tuple[FederatedJob, list[Silo]]) -> dict[tuple[str, str], dict[str, Any]]:
    job, silos = quickstart
    inputs = HubInputs(owner(), job, job_manifest(job, silos), silo_cas(silos), "AGGREGATOR CA\n", finished=False)
    return {
        (o["kind"], o["metadata"]["name"]): o
        for o in hub_objects(inputs, load_policy_files(default_bundle_path()), CONFIG)
    }


def silo_cas(silos: list[Silo]) -> dict[str, str]:
    """Each silo's own CA, as the hub reads it from the Silo's status."""
    return {silo.metadata.name: f"CA of {silo.metadata.name}\n" for silo in silos}


def test_the_job_config_map_holds_each_silos_own_ca_under_its_own_key(
    hub: dict[tuple[str, str], dict[str, Any]], quickstart: tuple[FederatedJob, list[Silo]]
) -> None:
    data = hub[("ConfigMap", "quickstart-job")]["data"]
    _, silos = quickstart
    # One key per silo, named by the layout the aggregator reads: which CA is whose is kept.
    assert {key: value for key, value in data.items() if key != MANIFEST_FILE} == {
        silo_ca_file(silo.metadata.name): f"CA of {silo.metadata.name}\n" for silo in silos
    }


def test_the_hub_waits_for_every_silos_own_ca_before_it_builds_the_aggregator(
    quickstart: tuple[FederatedJob, list[Silo]],
) -> None:
    job, silos = quickstart
    # A key registered in the spec, but no CA published yet (the partner's ConfigMap is missing).
    first = silos[0].model_copy(update={"status": {"identity": {"publicKey": registered_key(silos[0])}}})
    waiting = _waiting_for(job, {s.metadata.name: s for s in [first, *silos[1:]]}, "hub")
    assert waiting is not None and waiting.reason == "WaitingForSilos"
    assert f"Silo {first.metadata.name} has no CA certificate" in waiting.message
    assert _waiting_for(job, {s.metadata.name: s for s in silos}, "hub") is None


def silo_inputs(quickstart: tuple[FederatedJob, list[Silo]], workload: str = "hub") -> SiloInputs:
    job, silos = quickstart
    endpoint = AggregatorEndpoint(address="quickstart-aggregator.hub.svc.cluster.local:7443", ca_certificate="CA\n")
    return SiloInputs(owner(), job, silos[0], workload, job_manifest(job, silos), endpoint)


def by_kind(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_a_job_turns_into_the_aggregator_its_service_policy_config_and_a_narrow_role(hub: dict[Any, Any]) -> None:
    assert set(hub) == {
        ("ConfigMap", "quickstart-job"),
        ("ConfigMap", "quickstart-policies"),
        ("ServiceAccount", "quickstart-aggregator"),
        ("Role", "quickstart-aggregator"),
        ("RoleBinding", "quickstart-aggregator"),
        ("Service", "quickstart-aggregator"),
        ("NetworkPolicy", "quickstart-aggregator"),
        ("Deployment", "quickstart-aggregator"),
    }
    for child in hub.values():
        (reference,) = child["metadata"]["ownerReferences"]
        assert reference["kind"] == "FederatedJob" and reference["controller"] is True


def test_the_aggregator_may_patch_only_its_own_jobs_status_and_create_events(hub: dict[Any, Any]) -> None:
    rules = hub[("Role", "quickstart-aggregator")]["rules"]
    assert rules == [
        {
            "apiGroups": ["fedsilo.io"],
            "resources": ["federatedjobs/status"],
            "resourceNames": ["quickstart"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_the_aggregator_network_policy_admits_only_its_sidecars_from_silo_namespaces(hub: dict[Any, Any]) -> None:
    spec = hub[("NetworkPolicy", "quickstart-aggregator")]["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"fedsilo.io/silo-namespace": "true"}},
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/component": "sidecar",
                            "fedsilo.io/job": "quickstart",
                            "fedsilo.io/job-namespace": "hub",
                        }
                    },
                }
            ],
            "ports": [{"protocol": "TCP", "port": 7443}],
        }
    ]


def test_the_aggregator_network_policy_admits_the_remote_silos_networks_it_is_given(
    quickstart: tuple[FederatedJob, list[Silo]],
) -> None:
    job, silos = quickstart
    inputs = HubInputs(owner(), job, job_manifest(job, silos), silo_cas(silos), "AGGREGATOR CA\n", finished=False)
    config = replace(CONFIG, remote_silo_cidrs=("192.0.2.0/24", "2001:db8::/32"))
    objects = hub_objects(inputs, load_policy_files(default_bundle_path()), config)
    policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy")
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[1:] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}]


@pytest.mark.parametrize("cidr", ["192.0.2.1/24", "192.0.2.0/33", "hospital-a", ""])
def test_a_remote_silo_network_that_is_no_cidr_is_refused_naming_the_field(cidr: str) -> None:
    with pytest.raises(ValueError, match=r"remote_silo_cidrs: .* is not a network in CIDR notation"):
        replace(CONFIG, remote_silo_cidrs=(cidr,))


def test_the_aggregator_runs_with_opa_beside_it_restricted_and_reporting_its_job(hub: dict[Any, Any]) -> None:
    pod = hub[("Deployment", "quickstart-aggregator")]["spec"]["template"]["spec"]
    aggregator, opa = pod["containers"]
    assert aggregator["args"][:3] == ["aggregator", "--job-config", "/etc/fedsilo/job/job.yaml"]
    assert "--policy-url" in aggregator["args"] and "http://127.0.0.1:8181" in aggregator["args"]
    assert opa["args"][opa["args"].index("--addr") + 1] == "127.0.0.1:8181", "OPA must answer the aggregator only"
    env = {e["name"]: e for e in aggregator["env"]}
    assert env["FEDSILO_JOB_NAME"]["value"] == "quickstart"
    assert env["FEDSILO_JOB_UID"]["value"] == owner()["metadata"]["uid"]
    # Its malloc arenas are bounded from the process's start (docs/big-models.md).
    assert env["MALLOC_ARENA_MAX"]["value"] == str(HUB_MALLOC_ARENAS)
    for container in pod["containers"]:
        assert container["securityContext"] == RESTRICTED_CONTAINER
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m for m in aggregator["volumeMounts"]}
    assert mounts["tls"]["readOnly"] and mounts["job"]["readOnly"]


def test_the_policy_bundle_is_mounted_at_its_own_paths_without_the_tests(hub: dict[Any, Any]) -> None:
    config_map = hub[("ConfigMap", "quickstart-policies")]["data"]
    volume = next(
        v
        for v in hub[("Deployment", "quickstart-aggregator")]["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "policies"
    )
    paths = {item["path"] for item in volume["configMap"]["items"]}
    assert {".manifest", "fedsilo/update/policy.rego", "fedsilo/params/data.json"} <= paths
    assert not any(path.endswith("_test.rego") for path in paths)
    assert all(item["key"] in config_map for item in volume["configMap"]["items"])


def test_the_job_manifest_is_what_fedsilo_run_reads_with_every_public_key(quickstart: Any, hub: dict[Any, Any]) -> None:
    text = hub[("ConfigMap", "quickstart-job")]["data"]["job.yaml"]
    manifest = parse_manifest(text)
    job, silos = quickstart
    assert manifest.job.spec == job.spec
    assert [s.spec.identity.public_key for s in manifest.silos] == [s.status["identity"]["publicKey"] for s in silos]


def test_a_changed_job_rolls_the_aggregator(quickstart: Any, hub: dict[Any, Any]) -> None:
    job, silos = quickstart
    longer = job.model_copy(update={"spec": job.spec.model_copy(update={"rounds": 30})})
    inputs = HubInputs(owner(), longer, job_manifest(longer, silos), silo_cas(silos), "AGGREGATOR CA\n", finished=False)
    changed = by_kind(hub_objects(inputs, load_policy_files(default_bundle_path()), CONFIG))
    digest = "fedsilo.io/spec-digest"
    before = hub[("Deployment", "quickstart-aggregator")]["spec"]["template"]["metadata"]["annotations"][digest]
    after = changed[("Deployment", "quickstart-aggregator")]["spec"]["template"]["metadata"]["annotations"][digest]
    assert before != after


def test_a_suspended_silo_or_a_rotated_key_changes_the_manifest_but_never_restarts_the_aggregator(
    quickstart: Any, hub: dict[Any, Any]
) -> None:
    job, silos = quickstart
    suspended = silos[2].model_copy(
        update={"spec": silos[2].spec.model_copy(update={"suspended": SiloSuspension(reason="under review")})}
    )
    rotated = keyed(silos[0])
    inputs = HubInputs(
        owner(), job, job_manifest(job, [rotated, silos[1], suspended]), silo_cas(silos), "AGGREGATOR CA\n", False
    )
    changed = by_kind(hub_objects(inputs, load_policy_files(default_bundle_path()), CONFIG))
    digest = "fedsilo.io/spec-digest"
    deployment = ("Deployment", "quickstart-aggregator")
    assert (
        changed[deployment]["spec"]["template"]["metadata"]["annotations"][digest]
        == hub[deployment]["spec"]["template"]["metadata"]["annotations"][digest]
    )
    # The aggregator re-reads the mounted manifest at its next round boundary: it holds both changes.
    manifest = parse_manifest(changed[("ConfigMap", "quickstart-job")]["data"][MANIFEST_FILE])
    assert manifest.silo(silos[2].metadata.name).spec.suspended == SiloSuspension(reason="under review")
    assert manifest.silo(silos[0].metadata.name).spec.identity.public_key == registered_key(rotated)
    assert registered_key(rotated) != registered_key(silos[0])


def test_a_silos_rotated_ca_bundle_reaches_its_ca_file_but_never_restarts_the_aggregator(
    quickstart: Any, hub: dict[Any, Any]
) -> None:
    job, silos = quickstart
    rotating = silo_cas(silos)
    first = silos[0].metadata.name
    rotating[first] = f"CA of {first}\nNEW CA of {first}\n"
    inputs = HubInputs(owner(), job, job_manifest(job, silos), rotating, "AGGREGATOR CA\n", finished=False)
    changed = by_kind(hub_objects(inputs, load_policy_files(default_bundle_path()), CONFIG))
    digest = "fedsilo.io/spec-digest"
    deployment = ("Deployment", "quickstart-aggregator")
    # The aggregator follows its CA files in place (SiloTrust): a rotation restarts nothing.
    assert (
        changed[deployment]["spec"]["template"]["metadata"]["annotations"][digest]
        == hub[deployment]["spec"]["template"]["metadata"]["annotations"][digest]
    )
    assert changed[("ConfigMap", "quickstart-job")]["data"][silo_ca_file(first)] == rotating[first]


def test_a_changed_ca_bundle_is_a_change_of_the_silos_standing_that_re_renders_its_jobs(quickstart: Any) -> None:
    _, silos = quickstart
    seen = SeenStanding()
    silo = silos[0]
    assert "ca" in seen.changed(silo)
    assert seen.changed(silo) == frozenset()
    identity = {**silo.status["identity"], "caCertificate": "CA\nNEW CA\n"}
    rotating = silo.model_copy(update={"status": {"identity": identity}})
    assert seen.changed(rotating) == frozenset({"ca"})
    assert registered_cas(rotating) == "CA\nNEW CA\n"


def test_the_trainer_has_no_token_no_secret_and_reads_its_data_read_only(quickstart: Any) -> None:
    inputs = silo_inputs(quickstart)
    data = SiloDataSpec(volume_claim="records", path="a.csv")
    claimed = inputs.silo.model_copy(update={"spec": inputs.silo.spec.model_copy(update={"data": data})})
    inputs = SiloInputs(inputs.owner, inputs.job, claimed, "hub", inputs.manifest, inputs.endpoint)
    pods = by_kind(silo_pods(inputs, "10.0.0.7", CONFIG))
    trainer = pods[("Pod", "quickstart-hospital-a-trainer")]["spec"]
    assert trainer["automountServiceAccountToken"] is False
    assert not any("secret" in volume for volume in trainer["volumes"])
    (container,) = trainer["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    assert all(mount["readOnly"] for mount in container["volumeMounts"] if mount["name"] != "tmp")
    data = next(v for v in trainer["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"] == {"claimName": "records", "readOnly": True}
    assert container["args"][container["args"].index("--sidecar") + 1] == "10.0.0.7:7000"
    assert container["args"][container["args"].index("--data-path") + 1] == "/data/a.csv"


def test_only_the_sidecar_holds_the_identity_secret(quickstart: Any) -> None:
    pods = by_kind(silo_pods(silo_inputs(quickstart), "10.0.0.7", CONFIG))
    sidecar = pods[("Pod", "quickstart-hospital-a-sidecar")]["spec"]
    secrets = [v["secret"]["secretName"] for v in sidecar["volumes"] if "secret" in v]
    assert secrets == ["hospital-a-identity"]
    assert sidecar["automountServiceAccountToken"] is False
    (container,) = sidecar["containers"]
    identity = next(m for m in container["volumeMounts"] if m["name"] == "identity")
    assert identity["readOnly"] is True
    assert (
        container["args"][container["args"].index("--aggregator") + 1]
        == "quickstart-aggregator.hub.svc.cluster.local:7443"
    )


def test_the_trainer_may_reach_only_its_sidecar_and_the_sidecar_only_the_aggregator_and_dns(quickstart: Any) -> None:
    objects = by_kind(silo_support_objects(silo_inputs(quickstart, workload="silo-a"), CONFIG))
    trainer = objects[("NetworkPolicy", "quickstart-hospital-a-trainer")]["spec"]
    sidecar = objects[("NetworkPolicy", "quickstart-hospital-a-sidecar")]["spec"]
    assert trainer["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in trainer
    (egress,) = trainer["egress"]
    assert egress["to"] == [{"podSelector": {"matchLabels": sidecar["podSelector"]["matchLabels"]}}]
    assert egress["ports"] == [{"protocol": "TCP", "port": 7000}]
    (ingress,) = sidecar["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": trainer["podSelector"]["matchLabels"]}}]
    aggregator, dns = sidecar["egress"]
    assert aggregator["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "hub"}}
    assert aggregator["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "aggregator"
    assert aggregator["ports"] == [{"protocol": "TCP", "port": 7443}]
    assert {p["port"] for p in dns["ports"]} == {53}


def test_children_in_another_namespace_than_the_job_are_not_owned(quickstart: Any) -> None:
    elsewhere = silo_support_objects(silo_inputs(quickstart, workload="silo-a"), CONFIG)
    here = silo_support_objects(silo_inputs(quickstart, workload="hub"), CONFIG)
    assert all("ownerReferences" not in o["metadata"] for o in elsewhere)
    assert all(o["metadata"]["ownerReferences"][0]["name"] == "quickstart" for o in here)


def test_a_new_manifest_or_aggregator_ca_replaces_the_pods(quickstart: Any) -> None:
    inputs = silo_inputs(quickstart)
    rotated = SiloInputs(
        inputs.owner,
        inputs.job,
        inputs.silo,
        inputs.workload_namespace,
        inputs.manifest,
        AggregatorEndpoint(address=inputs.endpoint.address, ca_certificate="NEW CA\n"),
    )

    def digests(i: SiloInputs) -> list[str]:
        return [p["metadata"]["annotations"]["fedsilo.io/spec-digest"] for p in silo_pods(i, "10.0.0.7", CONFIG)]

    assert digests(inputs) == digests(inputs)
    assert digests(inputs) != digests(rotated)


def test_the_identity_secret_holds_the_files_the_sidecar_reads(tmp_path: Path) -> None:
    identity = new_silo_identity("hospital-a")
    secret = identity_secret("hospital-a", "silo-a", identity)
    for name, value in secret["data"].items():  # type: ignore[union-attr]
        (tmp_path / name).write_bytes(base64.b64decode(value))
        (tmp_path / name).chmod(0o600)
    assert read_identity(tmp_path).signing_key.public_key == identity.signing_key.public_key
    write_identity(tmp_path / "cli", SiloIdentity(identity.signing_key, identity.tls))
    private = {p.name for p in (tmp_path / "cli").iterdir()} - {"signing-key.pub"}
    assert set(secret["data"]) == private  # type: ignore[arg-type]
    assert secret["immutable"] is True


def test_long_names_are_cut_to_a_dns_label_that_stays_unique() -> None:
    first, second = child_name("j" * 40, "s" * 30, "sidecar"), child_name("j" * 40, "s" * 31, "sidecar")
    assert len(first) <= 63 and len(second) <= 63 and first != second
    assert child_name("quickstart", "hospital-a", "sidecar") == "quickstart-hospital-a-sidecar"


def test_an_unchanged_status_keeps_its_transition_times() -> None:
    facts = JobFacts(generation=1, rounds=15, aggregator_available=True, round=3)
    first = job_status(facts, [])
    assert job_status(facts, first["conditions"]) == first
    assert first["phase"] == "Running"
    ready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "AggregatorServing")


@pytest.mark.parametrize(
    ("facts", "phase", "ready", "degraded"),
    [
        (JobFacts(1, 15, waiting=Problem("WaitingForSilos", "m")), "Pending", "WaitingForSilos", "False"),
        (JobFacts(1, 15, problem=Problem("Forbidden", "m")), "Pending", "Forbidden", "True"),
        (JobFacts(1, 15), "Pending", "AggregatorStarting", "False"),
        (JobFacts(1, 15, aggregator_available=True, result="Succeeded"), "Succeeded", "JobSucceeded", "False"),
        (JobFacts(1, 15, result="Failed", message="quorum lost"), "Failed", "JobFailed", "True"),
    ],
)
def test_phase_and_conditions_follow_the_facts(facts: JobFacts, phase: str, ready: str, degraded: str) -> None:
    status = job_status(facts, [])
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == phase
    assert conditions["Ready"]["reason"] == ready and conditions["Ready"]["status"] == "False"
    assert conditions["Degraded"]["status"] == degraded


def test_the_job_manifest_round_trips_through_yaml(quickstart: Any) -> None:
    job, silos = quickstart
    documents = list(yaml.safe_load_all(job_manifest(job, silos)))
    assert [d["kind"] for d in documents] == ["FederatedJob", "Silo", "Silo", "Silo"]
    assert all(set(d["metadata"]) == {"name"} for d in documents)


def test_a_dp_job_gives_the_sidecar_a_persistent_ledger_that_outlives_the_job(quickstart: Any) -> None:
    job, silos = quickstart
    private = job.model_copy(
        update={
            "spec": job.spec.model_copy(
                update={"privacy": load_manifest(ROOT / "examples" / "private.yaml").job.spec.privacy}
            )
        }
    )
    inputs = silo_inputs((private, silos))
    claim = ledger_claim(inputs)
    assert claim is not None and claim["metadata"]["name"] == "hospital-a-privacy-ledger"
    assert "ownerReferences" not in claim["metadata"], "no job or Silo deletion may take the ledger with it"
    sidecar = by_kind(silo_pods(inputs, "10.0.0.7", CONFIG))[("Pod", "quickstart-hospital-a-sidecar")]["spec"]
    (container,) = sidecar["containers"]
    args = container["args"]
    assert args[args.index("--ledger") + 1] == "/var/lib/fedsilo-ledger/ledger.sqlite"
    assert args[args.index("--run-id") + 1] == owner()["metadata"]["uid"]
    assert args[args.index("--aggregator-ca") + 1] == "/etc/fedsilo/job/aggregator-ca.crt"
    ledger = next(v for v in sidecar["volumes"] if v["name"] == "ledger")
    assert ledger["persistentVolumeClaim"] == {"claimName": "hospital-a-privacy-ledger"}
    # A job without DP has no ledger volume.
    assert ledger_claim(silo_inputs(quickstart)) is None


def test_the_aggregator_keeps_its_state_on_a_claim_so_a_restart_finds_its_audit_log(hub: dict[Any, Any]) -> None:
    pod = hub[("Deployment", "quickstart-aggregator")]["spec"]["template"]["spec"]
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    assert state == {"name": "state", "persistentVolumeClaim": {"claimName": "quickstart-aggregator-state"}}
    claim = state_claim("quickstart", "hub")
    assert claim["metadata"]["name"] == "quickstart-aggregator-state"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_sidecars_verify_models_with_the_key_the_hub_published(quickstart: tuple[FederatedJob, list[Silo]]) -> None:
    hub_key = SigningKey.generate().public_key.to_base64()
    plain = silo_inputs(quickstart)
    signed = replace(plain, endpoint=plain.endpoint.model_copy(update={"model_key": hub_key}))

    def sidecar_args_and_files(inputs: SiloInputs) -> tuple[list[str], dict[str, str]]:
        objects = by_kind([*silo_support_objects(inputs, CONFIG), *silo_pods(inputs, "10.0.0.7", CONFIG)])
        (container,) = objects[("Pod", "quickstart-hospital-a-sidecar")]["spec"]["containers"]
        return container["args"], objects[("ConfigMap", "quickstart-hospital-a-job")]["data"]

    args, files = sidecar_args_and_files(signed)
    assert args[args.index("--aggregator-key") + 1] == "/etc/fedsilo/job/aggregator-key.pub"
    assert files["aggregator-key.pub"] == hub_key + "\n"
    # A hub that published no key (an older operator): the sidecar is not told to verify.
    args, files = sidecar_args_and_files(plain)
    assert "--aggregator-key" not in args and "aggregator-key.pub" not in files
