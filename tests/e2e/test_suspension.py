"""A silo suspended between rounds of a real local run is denied from the next round and readmitted when lifted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedsilo.aggregator import RoundObserver, RoundSummary
from fedsilo.api import load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun, RunOptions

from .conftest import quick_manifest

REASON = "norms drifted; under review (ticket 4411)"


@dataclass(frozen=True)
class EditBetweenRounds:
    """Edits the run's manifest as a platform team would, when a round has finished (before the next opens).

    A ``hub_setup``: it observes the rounds in the hub's own process, where a finished round is
    told before the next one opens (the runner hears of it later, over a pipe).
    """

    path: Path
    #: Round finished -> hospital-c's suspension to write (None: lift it).
    edits: dict[int, dict[str, Any] | None]

    def __call__(self, attempt: int) -> RoundObserver:
        return self

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        pass

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        if summary.round not in self.edits:
            return
        documents = list(yaml.safe_load_all(self.path.read_text()))
        for document in documents:
            if document["kind"] == "Silo" and document["metadata"]["name"] == "hospital-c":
                suspension = self.edits[summary.round]
                if suspension is None:
                    document["spec"].pop("suspended", None)
                else:
                    document["spec"]["suspended"] = suspension
        self.path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def test_a_silo_suspended_between_rounds_is_denied_then_readmitted_and_a_broken_edit_changes_nothing(
    tmp_path: Path,
) -> None:
    # A long timeout: silos on a loaded machine take a while to start; rounds close as soon as all have sent.
    path = quick_manifest(tmp_path, rounds=4, minSilos=2, roundTimeoutSeconds=300)
    # After round 1 a blank reason, which does not validate: the run logs it and round 2 admits every silo.
    # After round 2 a real suspension, denied in round 3; after round 3 it is lifted.
    editor = EditBetweenRounds(path, {1: {"reason": "   "}, 2: {"reason": REASON}, 3: None})
    run = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=tmp_path / "run", registry=tmp_path / "registry", baseline=False),
        hub_setup=editor,
    )
    report = run.execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    everyone = ["hospital-a", "hospital-b", "hospital-c"]
    assert sorted(rounds[1].accepted) == everyone
    assert sorted(rounds[2].accepted) == everyone, "a broken edit leaves the standing as it was"
    assert sorted(rounds[3].accepted) == ["hospital-a", "hospital-b"]
    assert rounds[3].denied["hospital-c"] == [f"silo_suspended: hospital-c is suspended since round 3: {REASON}"]
    assert sorted(rounds[4].accepted) == everyone
    # The audit log records the policy's denial with the suspension's reason.
    records = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    denials = [r for r in records if r["kind"] == "decision" and r["decision"] == "deny"]
    assert [(r["round"], r["silo"]) for r in denials] == [(3, "hospital-c")]
    assert REASON in denials[0]["reasons"][0]
