"""Every container the operator creates asks for and is capped at CPU and memory: the defaults,
or what the job's spec.resources says; the admission policy-parameter file merges into the
aggregator's policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedsilo.api import AggregatorEndpoint, FederatedJob, Silo, load_manifest
from fedsilo.api._types import DEFAULT_AGGREGATOR_RESOURCES, DEFAULT_SIDECAR_RESOURCES, DEFAULT_TRAINER_RESOURCES
from fedsilo.identity import SigningKey
from fedsilo.operator import HubInputs, OperatorConfig, PolicyParameters, SiloInputs, hub_objects, silo_pods
from fedsilo.operator._admission import PARAMS_FILE, with_parameters
from fedsilo.operator._hub_objects import load_policy_files
from fedsilo.operator._manifest import job_manifest
from fedsilo.policy import default_bundle_path

ROOT = Path(__file__).parents[2]
CONFIG = OperatorConfig()
OWNER = {
    "apiVersion": "fedsilo.io/v1alpha1",
    "kind": "FederatedJob",
    "metadata": {"name": "quickstart", "namespace": "hub", "uid": "u-1"},
}


def keyed(silo: Silo) -> Silo:
    key = SigningKey.generate().public_key.to_base64()
    return silo.model_copy(update={"status": {"identity": {"publicKey": key, "caCertificate": "CA\n"}}})


def containers(job: FederatedJob, silos: list[Silo]) -> dict[str, dict[str, Any]]:
    manifest = job_manifest(job, silos)
    hub = hub_objects(
        HubInputs(OWNER, job, manifest, {s.metadata.name: "CA\n" for s in silos}, "CA\n", False),
        load_policy_files(default_bundle_path()),
        CONFIG,
    )
    endpoint = AggregatorEndpoint(address="q-aggregator.hub.svc:7443", ca_certificate="CA\n")
    pods = silo_pods(SiloInputs(OWNER, job, silos[0], "hub", manifest, endpoint), "10.0.0.7", CONFIG)
    found = {}
    for obj in [*hub, *pods]:
        spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj.get("spec", {})
        for container in spec.get("containers", []) if isinstance(spec, dict) else []:
            found[container["name"]] = container
    return found


@pytest.fixture(scope="module")
def quickstart() -> tuple[FederatedJob, list[Silo]]:
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    return manifest.job, [keyed(silo) for silo in manifest.silos]


def test_every_container_has_requests_and_limits_by_default(quickstart: tuple[FederatedJob, list[Silo]]) -> None:
    found = containers(*quickstart)
    assert set(found) == {"aggregator", "opa", "sidecar", "trainer"}
    for name, container in found.items():
        for part in ("requests", "limits"):
            assert set(container["resources"][part]) == {"cpu", "memory"}, (name, part)
    assert found["aggregator"]["resources"] == DEFAULT_AGGREGATOR_RESOURCES.render()
    assert found["sidecar"]["resources"] == DEFAULT_SIDECAR_RESOURCES.render()
    assert found["trainer"]["resources"] == DEFAULT_TRAINER_RESOURCES.render()


def test_a_job_sets_its_own_trainer_resources(quickstart: tuple[FederatedJob, list[Silo]]) -> None:
    job, silos = quickstart
    document = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    wanted = {"requests": {"cpu": "2", "memory": "6Gi"}, "limits": {"cpu": "8", "memory": "12Gi"}}
    document["spec"]["resources"] = {"trainer": wanted}
    found = containers(FederatedJob.model_validate(document), silos)
    assert found["trainer"]["resources"] == wanted
    assert found["sidecar"]["resources"] == DEFAULT_SIDECAR_RESOURCES.render(), "the others keep their defaults"


def test_installation_parameters_reach_the_aggregators_policies() -> None:
    files = with_parameters(load_policy_files(default_bundle_path()), PolicyParameters(masked_min_silos=5))
    params = json.loads(files[PARAMS_FILE])
    assert params["masked_min_silos"] == 5 and params["organization_max_epsilon"] == 10.0
