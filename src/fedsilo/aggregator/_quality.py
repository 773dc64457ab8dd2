"""Quality for every partner: each silo's signed score of a model, the worst silo and the spread.

A model that is good on average and bad for one hospital is a failure, so the hub keeps
every silo's score, not only their mean. ``ModelQuality.of`` is built from the evaluation
reports the hub verified (``_evaluation.py``); it rides on ``RoundSummary.quality`` (the
federated model) and ``RoundSummary.personalized`` (each silo's model after fine-tuning),
which the run report, the FederatedJob status (``ModelQuality.status``) and the metrics
read, and into the next round's lineage with the signed claims themselves
(``evaluation_evidence``), so an auditor can check each score against its silo's key.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fedsilo.api import ModelQualityStatus
from fedsilo.protocol import EvaluationReport


@dataclass(frozen=True)
class SiloScore:
    """One silo's signed score of a model on its own held-out split."""

    accuracy: float
    loss: float
    num_samples: int


@dataclass(frozen=True)
class SignedEvaluation:
    """A verified evaluation report with the exact bytes and signature the silo sent."""

    report: EvaluationReport
    claim: bytes
    signature: bytes

    def to_json(self) -> dict[str, str]:
        """The claim as text and the Ed25519 signature in base64: verifiable offline with the silo's key."""
        return {"claim": self.claim.decode(), "signature": base64.b64encode(self.signature).decode("ascii")}


@dataclass(frozen=True)
class ModelQuality:
    """Every silo's score of one model (the model of ``round``), and their spread.

    ``mean_accuracy`` weighs silos by their held-out records (the accuracy over all of them);
    ``accuracy_std`` is the unweighted population standard deviation of the silos' accuracies,
    so a small silo the model fails counts as much as a large one.
    """

    round: int
    stage: Literal["global", "personalized"]
    silos: Mapping[str, SiloScore]

    @classmethod
    def of(
        cls, round_number: int, stage: Literal["global", "personalized"], reports: Mapping[str, EvaluationReport]
    ) -> ModelQuality | None:
        """The quality the reports show; None without a report."""
        if not reports:
            return None
        return cls(
            round_number,
            stage,
            {s: SiloScore(r.accuracy, r.loss, r.num_samples) for s, r in sorted(reports.items())},
        )

    @property
    def records(self) -> int:
        """Held-out records behind the scores (each report's count is at least 1 and bounded)."""
        return sum(s.num_samples for s in self.silos.values())

    @property
    def mean_accuracy(self) -> float:
        """Accuracy over every silo's held-out records."""
        return sum(s.accuracy * s.num_samples for s in self.silos.values()) / self.records

    @property
    def mean_loss(self) -> float:
        """Loss over every silo's held-out records."""
        return sum(s.loss * s.num_samples for s in self.silos.values()) / self.records

    @property
    def worst_silo(self) -> str:
        """The silo the model does worst for (the first by name among equals)."""
        return min(self.silos, key=lambda silo: (self.silos[silo].accuracy, silo))

    @property
    def worst_accuracy(self) -> float:
        """The worst silo's accuracy."""
        return self.silos[self.worst_silo].accuracy

    @property
    def accuracy_std(self) -> float:
        """Population standard deviation of the silos' accuracies."""
        values = [s.accuracy for s in self.silos.values()]
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

    def accuracies(self) -> dict[str, float]:
        """Each silo's accuracy, by name."""
        return {silo: score.accuracy for silo, score in self.silos.items()}

    def to_json(self) -> dict[str, Any]:
        """The figures as the run report and the lineage keep them."""
        return {
            "round": self.round,
            "stage": self.stage,
            "mean_accuracy": self.mean_accuracy,
            "worst_silo": self.worst_silo,
            "worst_accuracy": self.worst_accuracy,
            "accuracy_std": self.accuracy_std,
            "silos": {
                s: {"accuracy": v.accuracy, "loss": v.loss, "num_samples": v.num_samples} for s, v in self.silos.items()
            },
        }

    def status(self) -> ModelQualityStatus:
        """The figures as the FederatedJob status publishes them."""
        return ModelQualityStatus(
            round=self.round,
            stage=self.stage,
            mean_accuracy=self.mean_accuracy,
            worst_silo=self.worst_silo,
            worst_accuracy=self.worst_accuracy,
            # Float rounding can put the spread of identical scores a hair outside [0, 1].
            accuracy_std_dev=min(1.0, self.accuracy_std),
            silos=self.accuracies(),
        )


def evaluation_evidence(quality: ModelQuality | None, signed: Mapping[str, SignedEvaluation]) -> dict[str, Any]:
    """What a lineage keeps of the silos' evaluations of its parent: the figures and each signed claim."""
    if quality is None:
        return {}
    return {**quality.to_json(), "claims": {silo: signed[silo].to_json() for silo in sorted(signed)}}
