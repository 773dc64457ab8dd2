"""Both charts lint clean (``--strict``) and render the defaults and every scenario of their
``ci/`` folder into the objects each scenario promises."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from fedsilo.cli._app import _parser
from fedsilo.operator import OperatorConfig, OperatorRole, peering_name

from .conftest import (
    CHARTS,
    CI,
    HUB_CHART,
    ROOT,
    SCENARIOS,
    SILO_CHART,
    Helm,
    container_args,
    scenario_files,
    scenario_id,
)


@pytest.mark.parametrize("values", SCENARIOS)
def test_each_scenario_lints_clean_in_strict_mode(helm: Helm, values: Path) -> None:
    chart = values.parent.parent
    result = helm.run("lint", "--strict", str(chart), "--values", str(values))
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
def test_each_chart_keeps_at_least_three_scenarios_beside_its_defaults(chart: Path) -> None:
    names = [path.name for path in scenario_files(chart)]
    assert len([name for name in names if name != "default-values.yaml"]) >= 3, names
    assert "default-values.yaml" in names


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
def test_the_app_version_is_the_package_version(chart: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text())
    assert metadata["appVersion"] == version
    assert metadata["kubeVersion"].startswith(">=")


def undocumented_values(text: str) -> list[str]:
    """Leaf keys of a values file with no comment right above them or above an enclosing block.

    A block such as ``podSecurityContext`` documented as a whole covers its Kubernetes fields.
    """
    undocumented: list[str] = []
    # (indent, documented) of the blocks enclosing the current line.
    enclosing: list[tuple[int, bool]] = []
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            previous = stripped or previous
            continue
        indent = len(line) - len(line.lstrip())
        while enclosing and enclosing[-1][0] >= indent:
            enclosing.pop()
        documented = previous.startswith("#") or any(covered for _, covered in enclosing)
        if stripped.endswith(":"):
            enclosing.append((indent, documented))
        elif not documented:
            undocumented.append(f"line {number}: {stripped}")
        previous = stripped
    return undocumented


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
def test_every_value_is_commented(chart: Path) -> None:
    assert undocumented_values((chart / "values.yaml").read_text()) == []


def test_a_value_without_a_comment_is_found() -> None:
    assert undocumented_values("# documented\na: 1\nblock:\n  # fine\n  b: 2\n  c: 3\n") == ["line 6: c: 3"]


def test_hub_defaults_run_one_hub_operator_in_its_own_namespace(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, namespace="fedsilo-system")
    args = container_args(objects)
    assert args[:2] == ["operator", "--role=hub"]
    assert "--namespace=fedsilo-system" in args
    assert "--no-peering" in args, "one replica needs no peering object"
    assert {crd["metadata"]["name"] for crd in objects.of("CustomResourceDefinition")} == {
        "federatedjobs.fedsilo.io",
        "silos.fedsilo.io",
    }
    for crd in objects.of("CustomResourceDefinition"):
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert objects.one("Service")["spec"]["ports"][0]["port"] == 8080
    assert not objects.of("KopfPeering") and not objects.of("ValidatingAdmissionPolicy")
    assert not objects.of("ClusterRoleBinding"), "the operator holds nothing cluster-wide"
    image = objects.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/fedsilo/fedsilo:0.1.0"
    assert "--opa-image=openpolicyagent/opa:1.22.2-static" in args


def test_hub_crds_can_be_left_out_or_deleted_on_uninstall(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "crds-disabled-values.yaml")
    assert not objects.of("CustomResourceDefinition")
    args = container_args(objects)
    assert {"--namespace=fedsilo-hub", "--namespace=research-hub"} <= set(args)
    assert "--namespace=fedsilo-system" not in args, "listed namespaces replace the release's"
    not_kept = helm.render(HUB_CHART, sets=["crds.keep=false"])
    assert all("annotations" not in crd["metadata"] for crd in not_kept.of("CustomResourceDefinition"))


def test_two_hub_replicas_share_a_peering_object_in_every_watched_namespace(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "two-replicas-values.yaml")
    assert objects.one("Deployment")["spec"]["replicas"] == 2
    assert "--no-peering" not in container_args(objects)
    peering = objects.one("KopfPeering")
    assert (peering["metadata"]["name"], peering["metadata"]["namespace"]) == ("fedsilo-hub", "fedsilo-hub")
    assert objects.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_hub_admission_scenario_renders_the_policy_and_the_job_limits(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "admission-policies-values.yaml", namespace="fedsilo-system")
    policy = objects.one("ValidatingAdmissionPolicy")
    binding = objects.one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    forbidden = policy["spec"]["validations"][1]["expression"]
    assert '"monitoring"' in forbidden and '"fedsilo-system"' in forbidden, "the listed and the release's namespace"
    params = yaml.safe_load(objects.one("ConfigMap")["data"]["params.json"])
    assert params == {
        "organization_max_epsilon": 5.0,
        "masked_min_silos": 4,
        "allowed_aggregation": {
            "public": ["masked", "homomorphic", "plain"],
            "internal": ["masked", "homomorphic"],
            "sensitive": ["masked", "homomorphic"],
        },
        "epsilon_ceiling_required": ["internal", "sensitive"],
    }
    assert "--policy-params=/etc/fedsilo/policy/params.json" in container_args(objects)


def test_hub_policy_parameter_keys_are_the_bundles_own(helm: Helm) -> None:
    """Each chart value maps onto a key policies/fedsilo/params/data.json defines."""
    bundle = yaml.safe_load((ROOT / "policies" / "fedsilo" / "params" / "data.json").read_text())
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "admission-policies-values.yaml")
    params = yaml.safe_load(objects.one("ConfigMap")["data"]["params.json"])
    assert set(params) <= set(bundle)
    assert not helm.render(HUB_CHART).of("ConfigMap"), "no parameters set: the bundle's own apply"


def test_one_cluster_scenario_runs_both_roles_over_every_namespace(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "one-cluster-values.yaml")
    args = container_args(objects)
    assert "--role=both" in args
    watched = {arg.split("=", 1)[1] for arg in args if arg.startswith("--namespace=")}
    assert watched == {"fedsilo-hub", "hospital-a", "hospital-b", "hospital-c"}
    bound = {(role["metadata"]["namespace"], role["metadata"]["name"].rsplit("-", 1)[1]) for role in objects.of("Role")}
    assert bound == {(namespace, "operator") for namespace in watched} | {("fedsilo-hub", "hub")} | {
        (silo, "silo") for silo in ("hospital-a", "hospital-b", "hospital-c")
    }


def test_silo_defaults_enroll_one_silo_with_a_generated_identity(helm: Helm) -> None:
    objects = helm.render(SILO_CHART, CI[SILO_CHART] / "default-values.yaml", namespace="hospital-a")
    silo = objects.one("Silo")
    assert silo["metadata"] == {**silo["metadata"], "name": "hospital-a", "namespace": "hospital-a"}
    assert "annotations" not in silo["metadata"], "identity and pods beside the Silo"
    assert silo["spec"] == {}
    args = container_args(objects)
    assert args[:2] == ["operator", "--role=silo"]
    assert [arg for arg in args if arg.startswith("--namespace=")] == ["--namespace=hospital-a"]
    assert not objects.of("ConfigMap"), "the operator publishes a generated identity itself"
    deny = next(p for p in objects.of("NetworkPolicy") if p["metadata"]["name"].endswith("-default-deny"))
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert deny["metadata"]["namespace"] == "hospital-a"
    assert not objects.of("CustomResourceDefinition"), "the silo chart's CRDs are in Helm's crds/ folder"


def test_silo_with_its_own_secret_publishes_the_public_half_and_registers_the_key(helm: Helm) -> None:
    values = yaml.safe_load((CI[SILO_CHART] / "existing-secret-values.yaml").read_text())
    objects = helm.render(SILO_CHART, CI[SILO_CHART] / "existing-secret-values.yaml", namespace="hospital-b")
    assert objects.one("Silo")["spec"]["identity"] == {"publicKey": values["identity"]["publicKey"]}
    public = objects.one("ConfigMap")
    assert public["metadata"]["name"] == "hospital-b-identity-public"
    assert public["data"]["signing-key.pub"].strip() == values["identity"]["publicKey"]
    assert public["data"]["ca.crt"].strip() == values["identity"]["caCertificate"].strip()
    assert not objects.of("Secret"), "the chart never holds the private key"


def test_private_silo_carries_its_ceiling_and_data_claim(helm: Helm) -> None:
    objects = helm.render(SILO_CHART, CI[SILO_CHART] / "private-values.yaml", namespace="bank-a")
    assert objects.one("Silo")["spec"] == {
        "displayName": "Bank A",
        "maxEpsilon": 8.0,
        "data": {"volumeClaim": "bank-a-records", "path": "/data/records.npz"},
    }
    args = container_args(objects)
    assert "--no-peering" not in args
    # Named as the operator names it from its --instance: another partner's release peers apart.
    (instance,) = (arg.removeprefix("--instance=") for arg in args if arg.startswith("--instance="))
    assert instance == "t-fedsilo-silo"
    assert [(p["metadata"]["name"], p["metadata"]["namespace"]) for p in objects.of("KopfPeering")] == [
        (peering_name(OperatorRole.SILO, instance), "bank-a")
    ]


def test_silo_across_namespaces_points_the_silo_at_its_workload_namespace(helm: Helm) -> None:
    objects = helm.render(SILO_CHART, CI[SILO_CHART] / "several-namespaces-values.yaml", namespace="plant-a-system")
    silo = objects.one("Silo")
    assert silo["metadata"]["namespace"] == "fedsilo-hub"
    assert silo["metadata"]["annotations"] == {"fedsilo.io/workload-namespace": "plant-a"}
    args = container_args(objects)
    assert [arg for arg in args if arg.startswith("--namespace=")] == ["--namespace=fedsilo-hub", "--namespace=plant-a"]
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"].rsplit("-", 1)[1]) for r in objects.of("Role")}
    assert roles == {("fedsilo-hub", "operator"), ("plant-a", "operator"), ("plant-a", "silo")}
    policies = {(p["metadata"]["name"], p["metadata"]["namespace"]) for p in objects.of("NetworkPolicy")}
    assert policies == {("t-fedsilo-silo-default-deny", "plant-a"), ("t-fedsilo-silo-operator", "plant-a-system")}
    operator_policy = next(p for p in objects.of("NetworkPolicy") if p["metadata"]["name"].endswith("-operator"))
    assert operator_policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    image = objects.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    assert image == f"registry.example.com/fedsilo/fedsilo:0.1.0@{digest}"
    assert f"--image=registry.example.com/fedsilo/fedsilo:0.1.0@{digest}" in args


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
def test_the_chart_defaults_are_the_operators_own(helm: Helm, chart: Path) -> None:
    """Images and cluster domain: what the operator uses without flags is what the chart passes."""
    defaults = OperatorConfig()
    args = container_args(helm.render(chart, sets=["silo.name=a"] if chart == SILO_CHART else []))
    assert f"--image={defaults.image}" in args
    assert f"--trainer-image={defaults.trainer_image}" in args
    assert f"--image-pull-policy={defaults.image_pull_policy}" in args
    assert f"--cluster-domain={defaults.cluster_domain}" in args
    if chart == HUB_CHART:
        assert f"--opa-image={defaults.opa_image}" in args


def scenario_params() -> list[object]:
    """Every scenario of every chart."""
    return [pytest.param(path, id=scenario_id(path)) for chart in CHARTS for path in scenario_files(chart)]


@pytest.mark.parametrize("values", scenario_params())
def test_the_operator_command_line_accepts_what_each_scenario_passes(helm: Helm, values: Path) -> None:
    chart = values.parent.parent
    objects = helm.render(chart, values)
    args = _parser().parse_args(container_args(objects))
    watched = {arg.split("=", 1)[1] for arg in container_args(objects) if arg.startswith("--namespace=")}
    assert (args.command, set(args.namespace)) == ("operator", watched)
    deployment = objects.one("Deployment")["spec"]
    assert args.no_peering == (deployment["replicas"] == 1)
    # Standalone operators must never overlap during an update; peers may.
    assert deployment["strategy"]["type"] == ("Recreate" if args.no_peering else "RollingUpdate")
