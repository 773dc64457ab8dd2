"""A job whose only DP is its statistics charges each silo's ledger: in a silo pod exactly as in ``fedsilo run``.

Both paths end in the same sidecar code (``statistics_member``); what differs is the command
line each gives the sidecar. The pod's comes from the silo operator's render of the sidecar
pod, the local one from ``LocalRun``; each is parsed back as the sidecar parses it, and the
silo's charge is made through the sidecar's own code on the silo's real records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedsilo.api import AggregatorEndpoint, FederatedJob, Manifest, load_manifest
from fedsilo.datasets import load_raw_silo_data
from fedsilo.identity import SigningKey
from fedsilo.launch import LEDGER_DIR, LEDGER_FILE, SidecarArgs
from fedsilo.operator import OperatorConfig, silo_pods
from fedsilo.operator._manifest import job_manifest
from fedsilo.operator._silo_objects import SiloInputs, ledger_claim, sidecar_name
from fedsilo.privacy.ledger import Charge, PrivacyLedger, describe_mechanism, run_name
from fedsilo.runner import LocalRun, RunOptions
from fedsilo.sidecar import SidecarConfig, statistics_member
from fedsilo.statistics import STATISTICS_ROUND, RecordTotals

ROOT = Path(__file__).parents[2]
TABULAR = ROOT / "examples" / "tabular.yaml"
JOB_UID = "0b8f1d2e-0000-4000-8000-0000000000aa"
SILO = "bank-a"


def tabular(**preprocessing: Any) -> Manifest:
    """The tabular example with ``preprocessing`` merged into its spec.data.preprocessing (no DP training)."""
    manifest = load_manifest(TABULAR)
    document = manifest.job.model_dump(by_alias=True, exclude_none=True)
    document["spec"]["data"]["preprocessing"].update(preprocessing)
    return Manifest(FederatedJob.model_validate(document), manifest.silos)


def pod_sidecar(manifest: Manifest) -> tuple[SidecarArgs, dict[str, Any], Any]:
    """The silo operator's sidecar pod for ``SILO``: its parsed command line, its pod spec, its ledger claim."""
    owner = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": manifest.job.metadata.name, "namespace": "hub", "uid": JOB_UID},
    }
    endpoint = AggregatorEndpoint(address="tabular-aggregator.hub.svc.cluster.local:7443", ca_certificate="CA\n")
    inputs = SiloInputs(
        owner, manifest.job, manifest.silo(SILO), "bank-a", job_manifest(manifest.job, manifest.silos), endpoint
    )
    (pod,) = [
        p
        for p in silo_pods(inputs, "10.0.0.7", OperatorConfig())
        if p["metadata"]["name"] == sidecar_name(manifest.job.metadata.name, SILO)
    ]
    (container,) = pod["spec"]["containers"]
    return SidecarArgs.parse(container["args"]), pod["spec"], ledger_claim(inputs)


def local_sidecar(manifest: Manifest, tmp_path: Path) -> tuple[SidecarArgs, str]:
    """``fedsilo run``'s sidecar command line for ``SILO``, and the run's id."""
    run = LocalRun(
        manifest, RunOptions(manifest_path=TABULAR, workdir=tmp_path / "run", ledgers=tmp_path / "local-ledgers")
    )
    args = run.sidecar_args(SILO, tmp_path / "identity", "localhost:7443", "unix:/tmp/link.sock", TABULAR)
    return args, run.run_id


def charge(manifest: Manifest, args: SidecarArgs, ledger: Path, key: SigningKey) -> Charge:
    """The row the sidecar started with ``args`` writes for its statistics, into ``ledger``."""
    config = SidecarConfig(
        job=manifest.job,
        silo=args.silo,
        aggregator=args.aggregator,
        peer_keys={},
        ledger=ledger,
        run_id=args.run_id,
        silo_max_epsilon=manifest.silo(SILO).spec.max_epsilon,
    )
    # The silo's training records, as its trainer loads them.
    records = load_raw_silo_data(manifest.job.spec, 0, len(manifest.job.spec.silos), None).train_x
    with statistics_member(config, key, RecordTotals(records)) as member:
        assert member.decline() is None
    with PrivacyLedger(ledger, read_only=True) as book:
        (row,) = book.history(SILO)
    return row


def test_a_silo_pod_mounts_the_ledger_and_is_charged_the_row_fedsilo_run_charges(tmp_path: Path) -> None:
    manifest = tabular(epsilon=1.0)
    assert manifest.job.spec.privacy.mode.value == "none", "the statistics are this job's only DP"

    pod_args, pod, claim = pod_sidecar(manifest)
    assert claim is not None and claim["metadata"]["name"] == "bank-a-privacy-ledger"
    assert pod_args.ledger == LEDGER_DIR / LEDGER_FILE and pod_args.run_id == JOB_UID
    (container,) = pod["containers"]
    assert {"name": "ledger", "mountPath": str(LEDGER_DIR)} in container["volumeMounts"]
    assert {"name": "ledger", "persistentVolumeClaim": {"claimName": "bank-a-privacy-ledger"}} in pod["volumes"]

    local_args, run_id = local_sidecar(manifest, tmp_path)
    assert local_args.ledger == tmp_path / "local-ledgers" / "silos" / f"{SILO}.sqlite"

    # The silo's own key signs its ledger in both; the pod's mounted file is a fresh one here.
    key = SigningKey.generate()
    in_pod = charge(manifest, pod_args, tmp_path / "pod-ledger.sqlite", key)
    in_run = charge(manifest, local_args, local_args.ledger, key)
    assert in_pod.job == run_name("tabular", JOB_UID) and in_run.job == run_name("tabular", run_id)

    def charged(row: Charge) -> tuple[Any, ...]:
        return (row.silo, row.round, row.mechanism, row.accountant, row.delta, row.epsilon_job, row.epsilon_lifetime)

    assert charged(in_pod) == charged(in_run)
    assert in_pod.round == STATISTICS_ROUND and "(statistics)" in describe_mechanism(in_pod.mechanism)
    assert in_pod.epsilon_job == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "preprocessing",
    [{}, {"scaling": "silo", "categorical": [], "impute": "none", "epsilon": 1.0}],
    ids=["exact statistics", "no statistics phase"],
)
def test_a_job_that_charges_no_silo_mounts_no_ledger_in_either_path(
    preprocessing: dict[str, Any], tmp_path: Path
) -> None:
    manifest = tabular(**preprocessing)
    assert not manifest.job.spec.charges_silos
    pod_args, pod, claim = pod_sidecar(manifest)
    assert claim is None and pod_args.ledger is None
    assert all(volume["name"] != "ledger" for volume in pod["volumes"])
    local_args, _ = local_sidecar(manifest, tmp_path)
    assert local_args.ledger is None
