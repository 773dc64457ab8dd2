"""From the coordinator's progress to a :class:`~fedsilo.api.StatusReporter`: the job's status in a cluster.

The coordinator speaks :class:`~fedsilo.aggregator.RoundObserver` (rounds opened, updates
decided, rounds closed); a status reporter such as ``fedsilo.kube.KubeStatusReporter``
speaks cumulative :class:`~fedsilo.api.RoundReport` figures, denials and the outcome.
:class:`ReportingObserver` translates, and :class:`RecordingRegistry` remembers where each
round's model was stored so the status can point at it.

Why a worker thread: the coordinator calls its observer while holding the round's lock,
and a report is an API call that may take seconds when the API server is slow. The
observer only queues; one thread delivers in order. ``close`` delivers the outcome and
waits (bounded) for the queue to drain.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Mapping

from fedsilo.aggregator import RoundSummary
from fedsilo.api import (
    CompressionStatus,
    Denial,
    EvidenceHead,
    JobEvidence,
    JobOutcome,
    ModelReference,
    RoundNumber,
    RoundReport,
    SiloName,
    StatusReporter,
)
from fedsilo.audit import SignedHead
from fedsilo.protocol import PolicyVerdict, Weights
from fedsilo.registry import Lineage, ModelRef, ModelRegistry, ModelSeal

log = logging.getLogger("fedsilo.hub")

#: Seconds ``close`` waits for queued reports before it gives up on them.
DRAIN_SECONDS = 30.0


class RecordingRegistry:
    """A :class:`~fedsilo.registry.ModelRegistry` that remembers where each round's model went."""

    def __init__(self, inner: ModelRegistry) -> None:
        self.inner = inner
        self._stored: dict[int, ModelRef] = {}
        self._lock = threading.Lock()

    def save(
        self, weights: Weights, lineage: Lineage, seal: ModelSeal | None = None, *, encoded: bytes | None = None
    ) -> ModelRef:
        """Store through the inner registry and remember the reference."""
        ref = self.inner.save(weights, lineage, seal, encoded=encoded)
        with self._lock:
            self._stored[lineage.round] = ref
        return ref

    def stored(self, round_number: int) -> ModelRef | None:
        """Where round ``round_number``'s model was stored, if it was."""
        with self._lock:
            return self._stored.get(round_number)


class ReportingObserver:
    """Reports rounds, denials and the outcome of one job to a status reporter, from its own thread.

    Figures are cumulative (denials so far, epsilon spent so far), so a report the reporter
    failed to deliver is healed by the next one. Each round is reported once, when it
    closes.

    Per-silo quality is published as it arrives: a round's model is scored by the silos in the
    next round (or the closing evaluation), so each announcement publishes the newest scores
    of any summary it has seen that were not published yet (``model_evaluated``).

    Epsilon spent is the hub ledger's composed total for the silo (``SiloRoundStats.epsilon_spent``),
    never a sum of per-round epsilons: composing the mechanisms is what the accountant is for.
    """

    def __init__(
        self,
        reporter: StatusReporter,
        models: RecordingRegistry | None = None,
        epsilon_spent: Mapping[str, float] | None = None,
    ) -> None:
        """``epsilon_spent``: each silo's epsilon in the job before the first round reported here.

        What the hub's ledger held when the observer started (the statistics release's charges, a
        restarted hub's earlier rounds): a silo keeps that figure until a round of its is charged.
        """
        self._reporter = reporter
        self._models = models
        self._reported: set[int] = set()
        self._denials: dict[int, int] = {}
        self._epsilon: dict[SiloName, float] = {SiloName(s): v for s, v in (epsilon_spent or {}).items()}
        self._rounds_completed = 0
        # Summaries seen so far (the coordinator fills in their scores later), and what was published.
        self._summaries: dict[int, RoundSummary] = {}
        self._published_quality: set[tuple[int, str]] = set()
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._deliver, name="status-reporter", daemon=True)
        self._worker.start()

    # ----- RoundObserver ----------------------------------------------------------------

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Nothing to report: the status shows closed rounds only."""

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Report a denial (an Event naming the silo and the reasons)."""
        if verdict.accepted:
            return
        denial = Denial(RoundNumber(round_number), SiloName(silo), tuple(verdict.reasons), verdict.policy_revision)
        self._queue.put(lambda: self._reporter.update_denied(denial))

    def round_finished(self, summary: RoundSummary) -> None:
        """Report the round's cumulative figures the first time it is announced, and any new per-silo scores."""
        self._summaries[summary.round] = summary
        self._publish_quality()
        if summary.round in self._reported:
            return
        self._reported.add(summary.round)
        self._rounds_completed = max(self._rounds_completed, summary.round)
        self._denials[summary.round] = len(summary.denied)
        for silo, stats in summary.silos.items():
            if silo in summary.accepted and stats.epsilon_spent is not None:
                self._epsilon[SiloName(silo)] = stats.epsilon_spent
        stored = self._models.stored(summary.round) if self._models is not None else None
        report = RoundReport(
            round=RoundNumber(summary.round),
            participants=tuple(SiloName(s) for s in summary.accepted),
            dropouts=tuple(SiloName(s) for s in summary.participants if s not in summary.accepted),
            denials_total=sum(self._denials.values()),
            epsilon_spent=dict(self._epsilon),
            anomaly_scores={
                SiloName(silo): stats.anomaly_score
                for silo, stats in summary.silos.items()
                if stats.anomaly_score is not None
            },
            latest_model=ModelReference(uri=stored.path, round=summary.round, digest=summary.model_digest)
            if stored is not None
            else None,
            void=summary.void,
            left={SiloName(silo): reason for silo, reason in summary.left.items()},
            evidence=JobEvidence(
                audit_head=_status_head(summary.audit_head),
                ledger_head=_status_head(summary.ledger_head),
            ),
            compression=_status_compression(summary),
        )
        self._queue.put(lambda: self._reporter.round_completed(report))

    def _publish_quality(self) -> None:
        """Queue the newest scores not yet published: the federated model's, then the personalized ones."""
        scored = [s for s in self._summaries.values() if s.quality is not None]
        if not scored:
            return
        newest = max(scored, key=lambda s: s.round)
        for quality in (newest.quality, newest.personalized):
            if quality is None or (quality.round, quality.stage) in self._published_quality:
                continue
            self._published_quality.add((quality.round, quality.stage))
            self._queue.put(functools.partial(self._reporter.model_evaluated, quality.status()))

    # ----- the end ----------------------------------------------------------------------

    @property
    def rounds_completed(self) -> int:
        """The last round that closed."""
        return self._rounds_completed

    def close(self, outcome: JobOutcome | None) -> None:
        """Report ``outcome`` (None: the job was interrupted, so it has none), then drain the queue."""
        if outcome is not None:
            self._queue.put(lambda: self._reporter.job_finished(outcome))
        self._queue.put(None)
        self._worker.join(DRAIN_SECONDS)
        if self._worker.is_alive():
            log.warning("status reports still queued after %.0fs; giving up on them", DRAIN_SECONDS)

    def _deliver(self) -> None:
        while (report := self._queue.get()) is not None:
            try:
                report()
            # A reporter must not raise, but a bug in one must not silence every later report.
            except Exception:
                log.exception("status report failed")


def _status_head(head: SignedHead | None) -> EvidenceHead | None:
    """A signed head as the status publishes it (the same camelCase fields ``--head`` reads back)."""
    return None if head is None else EvidenceHead.model_validate(head.to_json())


def _status_compression(summary: RoundSummary) -> CompressionStatus | None:
    settings = summary.compression
    if settings is None:
        return None
    return CompressionStatus(
        bits=settings.bits,
        word_bits=settings.word_bits,
        subset_size=settings.subset_size,
        top_k=settings.top_k,
        reason=summary.compression_reason[:1024],
    )
