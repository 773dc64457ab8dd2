"""A mistake in the values fails the install with a message naming the value: unknown keys at
any depth, wrong types, out-of-range numbers, and the silo chart's identity rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CHARTS, HUB_CHART, SILO_CHART, Helm

SILO = ["silo.name=hospital-a"]


def refusal(helm: Helm, chart: Path, *sets: str) -> str:
    """helm template's error for ``sets``; fails the test if the chart renders."""
    result = helm.template(chart, sets=[*(SILO if chart == SILO_CHART else []), *sets], check=False)
    assert result.returncode != 0, f"{chart.name} rendered with {sets}"
    return result.stderr


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
@pytest.mark.parametrize(
    ("pair", "where", "what"),
    [
        ("replicaCont=2", "at ''", "additional properties 'replicaCont' not allowed"),
        ("image.tga=latest", "at '/image'", "additional properties 'tga' not allowed"),
        ("metrics.service.typ=NodePort", "at '/metrics/service'", "additional properties 'typ' not allowed"),
        ("securityContext.capabilities.dorp={ALL}", "at '/securityContext/capabilities'", "'dorp' not allowed"),
        ("resources.request.cpu=1", "at '/resources'", "additional properties 'request' not allowed"),
    ],
    ids=["top-level", "nested", "two-deep", "three-deep", "resources"],
)
def test_a_misspelled_key_is_refused_naming_the_key_and_where(
    helm: Helm, chart: Path, pair: str, where: str, what: str
) -> None:
    message = refusal(helm, chart, pair)
    assert where in message and what in message, message


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
@pytest.mark.parametrize(
    ("pair", "where", "what"),
    [
        ("replicaCount=two", "at '/replicaCount'", "got string, want integer"),
        ("replicaCount=0", "at '/replicaCount'", "minimum"),
        ("metrics.enabled=yes", "at '/metrics/enabled'", "got string, want boolean"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'", "value must be one of"),
        ("image.digest=latest", "at '/image/digest'", "does not match pattern"),
        ("livenessPort=70000", "at '/livenessPort'", "maximum"),
    ],
    ids=["string-for-integer", "below-minimum", "string-for-boolean", "not-in-enum", "bad-digest", "port-range"],
)
def test_a_wrongly_typed_or_out_of_range_value_is_refused(
    helm: Helm, chart: Path, pair: str, where: str, what: str
) -> None:
    message = refusal(helm, chart, pair)
    assert where in message and what in message, message


@pytest.mark.parametrize(
    ("pairs", "where", "what"),
    [
        (["role=silo"], "at '/role'", "value must be one of"),
        (["namespaces={Kube_System}"], "at '/namespaces/0'", "does not match pattern"),
        (["policy.maxEpsilon=-1"], "at '/policy/maxEpsilon'", "exclusiveMinimum"),
        (["policy.allowedAggregation.secret={masked}"], "at '/policy/allowedAggregation'", "'secret' not allowed"),
        (["admissionPolicies.validationActions={Block}"], "at '/admissionPolicies/validationActions/0'", "one of"),
        (["crds.enabled=no"], "at '/crds/enabled'", "want boolean"),
        (["remoteSiloCIDRs={partner.example.com}"], "at '/remoteSiloCIDRs/0'", "does not match pattern"),
    ],
    ids=[
        "role",
        "namespace-name",
        "negative-epsilon",
        "unknown-data-class",
        "validation-action",
        "crds-flag",
        "remote-silo-cidr",
    ],
)
def test_hub_specific_values_are_checked(helm: Helm, pairs: list[str], where: str, what: str) -> None:
    message = refusal(helm, HUB_CHART, *pairs)
    assert where in message and what in message, message


@pytest.mark.parametrize(
    ("pairs", "what"),
    [
        (["silo.maxEpsilon=0"], "at '/silo/maxEpsilon'"),
        (["silo.name=Hospital_A"], "at '/silo/name'"),
        (["silo.name=" + "a" * 48], "at '/silo/name'"),
        (["silo.ceiling=3"], "additional properties 'ceiling' not allowed"),
        (["workloadNamespace=Not A Namespace"], "at '/workloadNamespace'"),
        (["identity.publicKey=abc"], "at '/identity/publicKey'"),
        (["networkPolicy.apiServer.cidrs={example.com}"], "at '/networkPolicy/apiServer/cidrs/0'"),
    ],
    ids=["zero-ceiling", "name-pattern", "name-too-long", "unknown-silo-key", "namespace", "key-format", "cidr"],
)
def test_silo_specific_values_are_checked(helm: Helm, pairs: list[str], what: str) -> None:
    message = refusal(helm, SILO_CHART, *pairs)
    assert what in message, message


def test_the_hub_in_both_roles_asks_for_the_silo_namespaces(helm: Helm) -> None:
    message = refusal(helm, HUB_CHART, "role=both")
    assert 'role "both" needs siloNamespaces' in message, message


def test_the_silo_chart_will_not_cut_off_the_hubs_namespace(helm: Helm) -> None:
    message = refusal(helm, SILO_CHART, "silo.namespace=fedsilo-hub", "workloadNamespace=fedsilo-hub")
    assert "a default-deny NetworkPolicy there would cut them off" in message, message
    allowed = helm.template(
        SILO_CHART,
        sets=[*SILO, "silo.namespace=fedsilo-hub", "workloadNamespace=fedsilo-hub", "networkPolicy.enabled=false"],
    )
    assert "kind: NetworkPolicy" not in allowed.stdout


def test_the_silo_chart_asks_for_the_silo_name(helm: Helm) -> None:
    result = helm.template(SILO_CHART, check=False)
    assert result.returncode != 0
    assert "silo.name is required" in result.stderr and "--set silo.name=" in result.stderr


KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("pairs", "what"),
    [
        (
            ["identity.existingSecret=my-key", f"identity.publicKey={KEY}", f"identity.caCertificate={CA}"],
            'identity.existingSecret is "my-key" but the operator reads the Secret named "hospital-a-identity"',
        ),
        (["identity.existingSecret=hospital-a-identity"], "needs identity.publicKey and identity.caCertificate"),
        ([f"identity.publicKey={KEY}"], "used only with identity.existingSecret"),
    ],
    ids=["secret-name", "public-half-missing", "key-without-secret"],
)
def test_an_inconsistent_identity_is_refused_with_the_fix(helm: Helm, pairs: list[str], what: str) -> None:
    message = refusal(helm, SILO_CHART, *pairs)
    assert what in message, message


def test_every_schema_level_refuses_unknown_keys() -> None:
    """``additionalProperties: false`` on every object the schemas describe property by property."""

    def open_objects(node: object, path: str) -> list[str]:
        found: list[str] = []
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                found.append(path or "/")
            for key, child in node.items():
                found += open_objects(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                found += open_objects(child, f"{path}/{index}")
        return found

    for chart in CHARTS:
        assert open_objects(json.loads((chart / "values.schema.json").read_text()), "") == [], chart.name


def test_the_remote_silo_networks_reach_the_operator_as_flags(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, sets=["remoteSiloCIDRs={192.0.2.0/24,198.51.100.0/24}"])
    args = objects.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [arg for arg in args if arg.startswith("--remote-silo-cidr")] == [
        "--remote-silo-cidr=192.0.2.0/24",
        "--remote-silo-cidr=198.51.100.0/24",
    ]
