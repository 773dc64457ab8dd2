"""What the round loop needs from others and tells others: plug-in interfaces and round results.

``JobCoordinator`` (``_coordinator.py``) runs the rounds, ``Admission`` (``_admission.py``)
decides each update; both take their collaborators through these interfaces so the
runner can pass the real gate, ledger book, strategy and observer, and tests their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fedsilo.audit import AuditOperation, SignedHead
from fedsilo.policy import BudgetView, Decision, Refusal, UpdatePolicyInput
from fedsilo.protocol import PolicyVerdict, RoundCompression, UpdateMetadata, Weights

from ._quality import ModelQuality


class UpdateGate(Protocol):
    """The policy decision on one update, and the audit record of what took effect (``fedsilo.policy.PolicyGate``)."""

    def decide(self, policy_input: UpdatePolicyInput) -> Decision:
        """Allow or deny the update described by ``policy_input``; nothing is recorded yet."""
        ...

    def record(self, policy_input: UpdatePolicyInput, decision: Decision) -> None:
        """Record the decision that takes effect, durably, before it does."""
        ...

    def checkpoint(self) -> SignedHead:
        """Sign the audit log's head: published with the round (lineage, status) outside the log."""
        ...

    def refuse(self, *, job: str, round_number: int, silo: str, refusal: Refusal) -> Decision:
        """Record an update refused before a policy input could be built; the deny."""
        ...

    def record_operation(
        self, *, job: str, operation: AuditOperation, round_number: int, reason: str, details: Mapping[str, Any]
    ) -> None:
        """Record a decision about the job itself (a homomorphic round's key ceremony), signed at once."""
        ...


class ServerStrategy(Protocol):
    """The server side of a strategy (see ``fedsilo.strategies``)."""

    def configure_round(self, round_number: int) -> Any:
        """The fit configuration silos train with in ``round_number``."""
        ...

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """The next global model from the sample-weighted mean update."""
        ...

    def state(self) -> dict[str, Any]:
        """What the strategy carries across rounds (named tensors), for the round's checkpoint."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back ``state`` from a checkpoint."""
        ...


@runtime_checkable
class UpdatesStrategy(ServerStrategy, Protocol):
    """A strategy that combines the individual updates (``fedsilo.strategies.RobustStrategy``).

    The coordinator calls ``aggregate_updates`` instead of ``aggregate`` for it, which it
    can only in plain mode; the job's validation refuses such a strategy with masking,
    except the sign vote, which is also a ``TallyStrategy``.
    """

    def aggregate_updates(self, global_weights: Weights, updates: Sequence[Weights]) -> Weights:
        """The next global model from every admitted update ``local - global``, in silo order."""
        ...


@runtime_checkable
class TallyStrategy(ServerStrategy, Protocol):
    """A strategy that steps from a per-coordinate vote tally (``fedsilo.strategies.SignVote``, masked mode).

    The coordinator calls ``aggregate_tally`` when the round's aggregation unmasked a vote
    tally (``Aggregation.tally``).
    """

    def aggregate_tally(self, global_weights: Weights, tally: npt.NDArray[np.int64]) -> Weights:
        """The next global model from the tally (``+1`` votes minus ``-1`` votes), in the model's tensor order."""
        ...


class PrivacyBook(Protocol):
    """Answers the ledger questions the policy input needs (``LedgerBook`` over ``fedsilo.privacy.ledger``)."""

    def check(self, silo: str, metadata: UpdateMetadata) -> None:
        """Raise a ``Refusal`` when the update's signed privacy claims cannot be accepted."""
        ...

    def policy_view(self, silo: str, metadata: UpdateMetadata) -> BudgetView | None:
        """The silo's epsilon in this job now and if this update is accepted; None without a mechanism."""
        ...

    def commit(self, silo: str, metadata: UpdateMetadata) -> float | None:
        """Charge an admitted update; the silo's epsilon in this job after it (None without DP)."""
        ...

    def round_closed(self, round_number: int, silos: tuple[str, ...]) -> None:
        """The round's aggregate took the updates of ``silos``."""
        ...

    def signed_head(self) -> SignedHead | None:
        """The ledger's newest signed head, published with the round outside the ledger."""
        ...


@dataclass
class SiloRoundStats:
    """What one silo did in one round."""

    bytes_up: int = 0
    bytes_down: int = 0
    accepted: bool = False
    reasons: tuple[str, ...] = ()
    epsilon_round: float | None = None
    # The silo's epsilon in this job once this round's update is charged.
    epsilon_spent: float | None = None
    # Plain mode only (the hub sees the update): an anomaly signal against the step the model took.
    # L2 distance from the silo's update to that step, and the cosine of the angle between them.
    update_distance: float | None = None
    update_cosine: float | None = None
    # The norm the silo signed for its admitted update, and its anomaly score over rounds once
    # this round is folded in (``AnomalyScores``); None when the round did not observe the silo.
    l2_norm_claim: float | None = None
    anomaly_score: float | None = None
    # The update's payload upload: its bytes and seconds (what adaptive compression measures).
    upload_bytes: int = 0
    upload_seconds: float = 0.0


@dataclass
class RoundSummary:
    """The outcome of one round, for progress, tables, status and the registry."""

    round: int
    participants: tuple[str, ...]
    accepted: tuple[str, ...]
    dropped: tuple[str, ...]
    denied: dict[str, tuple[str, ...]]
    seconds: float
    model_digest: str
    silos: dict[str, SiloRoundStats] = field(default_factory=dict)
    # Federated evaluation of this round's model (filled in when the next round reports).
    loss: float | None = None
    accuracy: float | None = None
    # Each silo's signed score of this round's model, worst silo and spread (with the mean above);
    # and, after the closing evaluation of a job that fine-tunes, each silo's fine-tuned model's.
    quality: ModelQuality | None = None
    personalized: ModelQuality | None = None
    # The audit log's and the hub ledger's signed heads as the round closed, to publish outside them.
    audit_head: SignedHead | None = None
    ledger_head: SignedHead | None = None
    # Why the round's sum was not applied (the model stayed); None when it counted.
    void: str | None = None
    # The round's compression (level, words, subset) and why the hub chose that level; None: uncompressed.
    compression: RoundCompression | None = None
    compression_reason: str = ""
    # The masked round's neighbour graph (kind, degree, threshold, seed, bound); None in other modes.
    graph: Mapping[str, Any] | None = None
    # Silos that left during the round (their sidecar stopped and said so), with the reason each gave:
    # a subset of ``dropped`` when they left before their update, of ``accepted`` when it still counted.
    left: dict[str, str] = field(default_factory=dict)


class RoundObserver(Protocol):
    """Told about progress: the CLI's progress bar, Kubernetes status, metrics."""

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """A round opened."""
        ...

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """An update was admitted or denied."""
        ...

    def round_finished(self, summary: RoundSummary) -> None:
        """A round closed and its model is stored (metrics of the previous round may update)."""
        ...


class JobFailed(RuntimeError):
    """The job cannot go on (quorum lost, too few survivors to unmask)."""


class RoundFailed(RuntimeError):
    """One round cannot finish but the job can go on: it is recorded and retried with the silos still live.

    Homomorphic mode raises it when a silo of the round's key gives no valid decryption share
    (its share of the key is needed and is nowhere else: docs/homomorphic.md).
    """
