"""Each silo's signed score of a model reaches the summary, the lineage and the status, and only its own.

Silos are played by raw gRPC clients over mutual TLS against a real hub: they report their
scores as signed ``EvaluationReport``s, and one of them tries to put words in another's mouth.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedsilo.api import Denial, JobOutcome, ModelQualityStatus, RoundReport
from fedsilo.identity import SignatureError, SigningKey
from fedsilo.protocol import EvaluationReport, canonical_json, pb, plan_from_proto, verdict_from_proto
from fedsilo.runner import ReportingObserver

from .conftest import LENGTH, Hub, Silo, running_hub


def _payload() -> np.ndarray:
    payload = np.full(LENGTH, 10.0, np.float32)
    payload[-1] = 100
    return payload


def _report(
    sender: Silo, round_number: int, accuracy: float, *, key: SigningKey | None = None, **changes: Any
) -> tuple[str, ...]:
    """A signed evaluation report; the hub's reasons (empty when accepted)."""
    document = {
        "job": "admission",
        "round": round_number,
        "silo": sender.name,
        "nonce": secrets.token_hex(16),
        "loss": 1.0 - accuracy,
        "accuracy": accuracy,
        "num_samples": 50,
        "stage": "global",
    } | changes
    data = canonical_json(document)
    signature = (key or sender.key).sign(data)
    verdict = verdict_from_proto(
        sender.stub.ReportEvaluation(pb.SignedMetadata(metadata_json=data, signature=signature))
    )
    return () if verdict.accepted else verdict.reasons


def _closing_round(hub: Hub) -> int:
    waits = [
        s.stub.WaitRound.future(pb.WaitRoundRequest(job="admission", silo=s.name, after_round=1))
        for s in hub.silos.values()
    ]
    plans = [plan_from_proto(w.result(timeout=30)) for w in waits]
    assert {p.round for p in plans} == {2}
    assert all(p.evaluate_only for p in plans)
    return 2


def _lineage(hub: Hub, round_number: int) -> dict[str, Any]:
    path = hub.workdir / "registry" / "admission" / f"round-{round_number:05d}.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.fixture
def scored(tmp_path: Path) -> Iterator[Hub]:
    """A one-round job whose silos scored the initial model (round 1) and the final one (closing round)."""
    with running_hub(tmp_path, ["a", "b", "c"]) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        assert hub.open_round() == 1
        for silo, accuracy in ((a, 0.30), (b, 0.20), (c, 0.25)):
            assert _report(silo, 1, accuracy) == ()
        for silo in (a, b, c):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        closing = _closing_round(hub)
        for silo, accuracy in ((a, 0.90), (b, 0.40), (c, 0.80)):
            assert _report(silo, closing, accuracy) == ()
        hub.thread.join(30)
        assert "error" not in hub.outcome
        yield hub


def test_every_silo_score_and_the_worst_silo_and_spread_reach_the_summary(scored: Hub) -> None:
    quality = scored.coordinator.summaries[0].quality
    assert quality is not None and quality.round == 1
    assert quality.accuracies() == {"a": 0.90, "b": 0.40, "c": 0.80}
    assert quality.worst_silo == "b" and quality.worst_accuracy == 0.40
    assert quality.mean_accuracy == pytest.approx(0.70)
    assert quality.accuracy_std == pytest.approx(float(np.std([0.90, 0.40, 0.80])))
    # The status view holds the same figures, bounded.
    status = quality.status()
    assert status.worst_silo == "b" and status.silos == {"a": 0.90, "b": 0.40, "c": 0.80}
    assert status.accuracy_std_dev == pytest.approx(quality.accuracy_std)


def test_the_lineage_keeps_each_silo_signed_claim_which_verifies_with_that_silo_key(scored: Hub) -> None:
    evidence = _lineage(scored, 1)["metrics"]["parent_evaluation"]
    assert evidence["round"] == 0 and evidence["worst_silo"] == "b"
    assert evidence["silos"]["a"]["accuracy"] == 0.30
    for name, claim in evidence["claims"].items():
        data, signature = claim["claim"].encode(), base64.b64decode(claim["signature"])
        scored.silos[name].key.public_key.verify(signature, data)
        report = EvaluationReport.parse(data)
        assert report.silo == name and report.accuracy == evidence["silos"][name]["accuracy"]
    # A claim edited in the lineage no longer verifies with its silo's key.
    edited = evidence["claims"]["b"]["claim"].replace('"accuracy":0.2', '"accuracy":0.9').encode()
    assert edited != evidence["claims"]["b"]["claim"].encode()
    with pytest.raises(SignatureError):
        scored.silos["b"].key.public_key.verify(base64.b64decode(evidence["claims"]["b"]["signature"]), edited)


def test_a_silo_cannot_report_a_score_for_another_silo(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"]) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        # a signs a flattering score in b's name with its own key: the claim is not b's.
        assert _report(a, 1, 0.99, silo="b")[0].startswith("identity_mismatch")
        # a signs b's name with a key of its own making: the signature is not b's registered key.
        assert _report(a, 1, 0.99, key=SigningKey.generate())[0].startswith("signature_invalid")
        # A fine-tuned model's score belongs to the closing evaluation only.
        assert _report(a, 1, 0.99, stage="personalized")[0].startswith("metadata_invalid")
        assert _report(b, 1, 0.10) == ()
        assert _report(a, 1, 0.95) == ()
        assert _report(c, 1, 0.50) == ()
        for silo in (a, b, c):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        hub.first_summary()
        evidence = _lineage(hub, 1)["metrics"]["parent_evaluation"]
        # a's lie about itself stands as its own claim; b's score is b's.
        assert evidence["silos"]["b"]["accuracy"] == 0.10
        assert evidence["silos"]["a"]["accuracy"] == 0.95
        assert evidence["worst_silo"] == "b"


def test_the_closing_evaluation_waits_for_the_scores_after_fine_tuning(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], personalization={"fineTuneEpochs": 2}) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        for silo in (a, b, c):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        closing = _closing_round(hub)
        for silo, before, after in ((a, 0.8, 0.9), (b, 0.3, 0.7), (c, 0.6, 0.6)):
            assert _report(silo, closing, before) == ()
            assert _report(silo, closing, after, stage="personalized") == ()
        hub.thread.join(30)
        summary = hub.coordinator.summaries[0]
        assert summary.quality is not None and summary.personalized is not None
        assert summary.quality.worst_accuracy == 0.3
        assert summary.personalized.accuracies() == {"a": 0.9, "b": 0.7, "c": 0.6}
        assert summary.personalized.worst_silo == "c"


class _Quality:
    """A status reporter that keeps the per-silo scores it was told."""

    def __init__(self) -> None:
        self.published: list[ModelQualityStatus] = []

    def round_completed(self, report: RoundReport) -> None:
        pass

    def update_denied(self, denial: Denial) -> None:
        pass

    def job_finished(self, outcome: JobOutcome) -> None:
        pass

    def model_evaluated(self, quality: ModelQualityStatus) -> None:
        self.published.append(quality)


def test_the_status_gets_each_model_scores_once_as_they_arrive(scored: Hub) -> None:
    reports = _Quality()
    observer = ReportingObserver(reports)
    summary = scored.coordinator.summaries[0]
    # The coordinator announces the round when it closes, and again after the closing evaluation.
    observer.round_finished(summary)
    observer.round_finished(summary)
    observer.close(None)
    assert [(q.round, q.stage, q.worst_silo) for q in reports.published] == [(1, "global", "b")]
    assert reports.published[0].silos == {"a": 0.90, "b": 0.40, "c": 0.80}
    # What the status carries passes the CRD's own schema model.
    document = reports.published[0].model_dump(by_alias=True, mode="json")
    assert set(document) == {"round", "stage", "meanAccuracy", "worstSilo", "worstAccuracy", "accuracyStdDev", "silos"}
