"""The typed command lines: what a starter writes is what the command line reads back."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
from pathlib import Path

import pytest
import yaml

from fedsilo.api import FederatedJob, Silo
from fedsilo.cli._app import _parser
from fedsilo.launch import AggregatorArgs, LaunchArgs, SidecarArgs, TrainerArgs, render_job_manifest

ROOT = Path(__file__).parents[2]

EXAMPLES: list[LaunchArgs] = [
    AggregatorArgs(Path("/etc/job.yaml"), "0.0.0.0:7443", Path("/tls"), Path("/state"), "http://127.0.0.1:8181"),
    AggregatorArgs(Path("j.yaml"), "127.0.0.1:0", Path("t"), Path("s"), "http://opa", metrics_port=9090),
    SidecarArgs(Path("j.yaml"), "hospital-a", "localhost:1", Path("id"), "unix:/tmp/x.sock"),
    SidecarArgs(
        Path("j.yaml"),
        "hospital-a",
        "agg:7443",
        Path("id"),
        "0.0.0.0:7000",
        aggregator_ca=Path("ca.crt"),
        ledger=Path("l.sqlite"),
        run_id="uid-1",
    ),
    TrainerArgs(Path("j.yaml"), "hospital-b", "unix:/tmp/x.sock"),
    TrainerArgs(Path("j.yaml"), "hospital-b", "10.0.0.1:7000", sidecar_ca=Path("ca.crt"), data_path="/data/b.csv"),
]


@pytest.mark.parametrize("args", EXAMPLES, ids=lambda a: " ".join(a.argv()))
def test_every_command_line_reads_back_as_the_value_that_wrote_it(args: LaunchArgs) -> None:
    assert type(args).parse(args.argv()) == args


def test_optional_flags_at_their_default_are_left_out() -> None:
    argv = SidecarArgs(Path("j"), "s", "a:1", Path("i"), "unix:x").argv()
    assert argv == [
        "sidecar",
        "--job-config",
        "j",
        "--silo",
        "s",
        "--aggregator",
        "a:1",
        "--identity-dir",
        "i",
        "--trainer-listen",
        "unix:x",
    ]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["trainer", "--silo", "x"], "--job-config"),
        (["trainer", "--job-config", "j", "--silo", "x", "--sidecar", "s", "--bogus", "1"], "--bogus"),
        (["sidecar", "--job-config", "j"], "trainer"),
        (
            [
                "aggregator",
                "--job-config",
                "j",
                "--listen",
                "l",
                "--tls-dir",
                "t",
                "--state-dir",
                "s",
                "--policy-url",
                "u",
                "--metrics-port",
                "many",
            ],
            "--metrics-port",
        ),
        ([], "trainer"),
    ],
)
def test_a_bad_command_line_is_refused_naming_the_flag(argv: list[str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        TrainerArgs.parse(argv) if not argv or argv[0] != "aggregator" else AggregatorArgs.parse(argv)


@pytest.mark.parametrize("kind", [AggregatorArgs, SidecarArgs, TrainerArgs])
def test_the_command_line_offers_exactly_the_flags_of_the_typed_arguments(kind: type[LaunchArgs]) -> None:
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    offered = {flag for action in commands.choices[kind.COMMAND]._actions for flag in action.option_strings}
    assert offered - {"-h", "--help"} == {"--" + f.name.replace("_", "-") for f in dataclasses.fields(kind)}


def test_the_manifest_lists_the_silos_in_the_jobs_order_with_their_keys_and_names_only() -> None:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "quickstart.yaml").read_text()))
    job = FederatedJob.model_validate(documents[0])
    silos = [Silo.model_validate(d) for d in reversed(documents[1:])]
    # Distinct, well-formed keys (base64 of 32 bytes), one per silo.
    keyed = {
        s.metadata.name: base64.b64encode(hashlib.sha256(s.metadata.name.encode()).digest()).decode() for s in silos
    }
    rendered = list(yaml.safe_load_all(render_job_manifest(job, silos, public_key=lambda s: keyed[s.metadata.name])))
    assert [d["metadata"] for d in rendered] == [{"name": n} for n in [job.metadata.name, *job.spec.silos]]
    assert [d["spec"]["identity"]["publicKey"] for d in rendered[1:]] == [keyed[n] for n in job.spec.silos]
    assert all("status" not in d for d in rendered)
