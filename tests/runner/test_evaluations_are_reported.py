"""The status reporter hears how each round's model did, once the silos evaluated it.

The coordinator attaches a round's evaluation to that round's summary only when the next
round closes (the silos evaluate the model they were sent), and the last round's in the
closing evaluation, where it announces that round again. The observer must report every
evaluation once, after its round, and never report a round twice.
"""

from __future__ import annotations

from fedsilo.aggregator import RoundSummary
from fedsilo.api import Denial, JobOutcome, ModelEvaluation, RoundReport
from fedsilo.runner import ReportingObserver


class _Heard:
    """What a status reporter was told, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[str, int]] = []
        self.evaluations: list[ModelEvaluation] = []

    def round_completed(self, report: RoundReport) -> None:
        self.said.append(("round", int(report.round)))

    def model_evaluated(self, evaluation: ModelEvaluation) -> None:
        self.said.append(("evaluated", int(evaluation.round)))
        self.evaluations.append(evaluation)

    def update_denied(self, denial: Denial) -> None:
        pass

    def job_finished(self, outcome: JobOutcome) -> None:
        pass


def _summary(round_number: int) -> RoundSummary:
    return RoundSummary(round_number, ("a", "b"), ("a", "b"), (), {}, 1.0, "sha256:" + "00" * 32)


def test_each_model_evaluation_is_reported_once_after_its_round() -> None:
    heard = _Heard()
    observer = ReportingObserver(heard)
    summaries: list[RoundSummary] = []
    for round_number in (1, 2, 3):
        if summaries:
            # As the coordinator does when a round closes: the previous model's evaluation.
            summaries[-1].accuracy, summaries[-1].loss = 0.5 + round_number / 10, 1.0 / round_number
        summaries.append(_summary(round_number))
        observer.round_finished(summaries[-1])
    # The closing evaluation: the last round's model, and the round announced again.
    summaries[-1].accuracy, summaries[-1].loss = 0.9, 0.2
    observer.round_finished(summaries[-1])
    observer.close(None)

    assert heard.said == [
        ("round", 1),
        ("evaluated", 1),
        ("round", 2),
        ("evaluated", 2),
        ("round", 3),
        ("evaluated", 3),
    ]
    assert [(int(e.round), e.accuracy, e.loss) for e in heard.evaluations] == [
        (1, 0.7, 0.5),
        (2, 0.8, 1.0 / 3),
        (3, 0.9, 0.2),
    ]


def test_a_round_without_evaluations_reports_no_accuracy() -> None:
    heard = _Heard()
    observer = ReportingObserver(heard)
    first, second = _summary(1), _summary(2)
    observer.round_finished(first)
    # No silo evaluated round 1's model (every report lost): nothing to say about it.
    observer.round_finished(second)
    observer.round_finished(second)
    observer.close(None)
    assert heard.said == [("round", 1), ("round", 2)]
