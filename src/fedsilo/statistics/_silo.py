"""A silo's side of the statistics phase: its totals (``Totals``), its noise, its ledger, its masks.

Everything a silo computes from its records stays here until it is masked: the hub gets
only ``SecAggClient.mask_words`` of the wide-encoded vector. A silo with fewer training
records than ``minCount`` takes no part and says only that (not its count); in a private
phase it charges its own ledger before anything leaves, and declines when the charge would
cross the job's or its own epsilon ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fedsilo.identity import SigningKey, VerifyKey, sha256_digest
from fedsilo.privacy import add_silo_noise, noise_generator, silo_noise_std
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.secagg import SecAggClient, SecAggConfig

from ._charge import STATISTICS_ROUND, charge_release, release_budget
from ._layout import HISTOGRAM, MOMENTS
from ._plan import StatisticsError, StatisticsPlan
from ._wide import encode_wide
from .totals import RecordTotals, Totals

BELOW_MIN_COUNT = "below_min_count"


class KeptReleases(Protocol):
    """Where a silo keeps the noised totals it released in a private phase, one per pass.

    The ledger charges a run's phase once (it is idempotent on job, silo and round 0), so
    whatever takes part in the phase again (a sidecar whose hub died mid-phase, a new sidecar
    after ``fedsilo run --resume``, a rebuilt pod) must send the same noised totals, never a
    second draw: two draws of noise over the same totals reveal more than the one charge
    pays for. The sidecar keeps them beside its ledger (``StatisticsReleases``).
    """

    def released(self, phase: str) -> tuple[str, npt.NDArray[np.float64]] | None:
        """The digest of the public inputs and the noised vector kept for ``phase``; None if none."""

    def keep(self, phase: str, inputs: str, vector: npt.NDArray[np.float64]) -> None:
        """Keep ``vector`` for ``phase`` durably, before it leaves the silo."""


class StatisticsSilo:
    """One silo in one statistics phase."""

    def __init__(
        self,
        plan: StatisticsPlan,
        name: str,
        records: npt.NDArray[np.floating] | Totals,
        signing_key: SigningKey,
        *,
        ledger: PrivacyLedger | None = None,
        max_epsilon: float | None = None,
        job_ceiling: float | None = None,
        rng: np.random.Generator | None = None,
        kept: KeptReleases | None = None,
    ) -> None:
        self.plan = plan
        self.name = name
        # Records held here are wrapped; a sidecar passes a source that asks its trainer.
        self._totals: Totals = RecordTotals(records) if isinstance(records, np.ndarray) else records
        self._key = signing_key
        self._ledger = ledger
        self._max_epsilon = max_epsilon
        self._job_ceiling = job_ceiling
        self._rng = rng or noise_generator()
        self._kept = kept
        self._client: SecAggClient | None = None

    @property
    def features(self) -> int:
        """The width of this silo's records: all it tells the hub about them when it joins."""
        return self._totals.features

    def decline(self) -> str | None:
        """Why this silo takes no part (a reason code and words, never its record count), or None.

        A private phase charges the silo's ledger here, before anything is computed for the
        hub: the charge is recorded even if the phase later fails, as a release may have happened.
        """
        if self._totals.records < self.plan.min_count:
            return f"{BELOW_MIN_COUNT}: fewer training records than the job's minCount ({self.plan.min_count})"
        if self._ledger is None or not self.plan.private:
            return None
        if self._ledger.charged(self.name, self.plan.job, STATISTICS_ROUND) is None:
            # Only a first charge can cross a ceiling: a phase taken part in again (its hub died) was
            # paid for, and ``charge_release`` below returns that row (or refuses one with other facts).
            check = release_budget(
                self._ledger, self.plan, self.name, job_ceiling=self._job_ceiling, silo_ceiling=self._max_epsilon
            )
            if check is not None and check.exceeds:
                # The ledger's words, which are the hub's and the policy's: one reason reads the same everywhere.
                return "; ".join(check.reasons)
        charge_release(self._ledger, self.plan, self.name)
        return None

    # ----- the two passes -------------------------------------------------------------------

    def moments(self) -> npt.NDArray[np.float64]:
        """Pass 1's vector of this silo's totals (noised in a private phase)."""
        return self._noised(lambda: self._totals.moments(self.plan.columns), MOMENTS, {})

    def histogram(self, ranges: Mapping[int, tuple[float, float]]) -> npt.NDArray[np.float64]:
        """Pass 2's vector: each numeric feature's counts over the public range the hub published."""
        return self._noised(lambda: self._totals.histogram(self.plan.columns, ranges), HISTOGRAM, ranges)

    def _noised(
        self,
        totals: Callable[[], npt.NDArray[np.float64]],
        phase: str,
        ranges: Mapping[int, tuple[float, float]],
    ) -> npt.NDArray[np.float64]:
        """The ``totals`` plus this silo's share of the Gaussian noise (any ``minSilos`` shares make the full noise).

        With ``kept``, a pass released before in this run is sent again as it was released,
        without computing the totals again (a sidecar would ask its trainer to read every
        record for a vector it then drops); one asked for with other public inputs (pass 2's
        ranges differ when other silos took part) is refused, since it would be a second release.
        """
        plan = self.plan
        if plan.noise_multiplier is None:
            return totals()
        size = plan.layout(phase).size
        inputs = _public_inputs(phase, size, ranges)
        released = self._kept.released(phase) if self._kept is not None else None
        if released is not None:
            inputs_then, noised = released
            if inputs_then != inputs or noised.shape != (size,):
                raise StatisticsError(
                    f"{self.name}: the {phase} pass of {plan.job} was released before with other public "
                    "inputs (other silos took part); a second release would cost privacy that the ledger "
                    "charged once. Run the job again as a new run."
                )
            return noised
        std = silo_noise_std(plan.noise_multiplier, plan.sensitivity(phase), plan.min_silos)
        noised = add_silo_noise(totals(), std, self._rng)
        if self._kept is not None:
            self._kept.keep(phase, inputs, noised)
        return noised

    # ----- secure aggregation -----------------------------------------------------------

    def join(self, config: SecAggConfig, peer_keys: Mapping[str, VerifyKey]) -> bytes:
        """Start a pass's secure aggregation: this silo's signed key advertisement."""
        self._client = SecAggClient(config, self.name, self._key, peer_keys)
        return self._client.advertise()

    @property
    def client(self) -> SecAggClient:
        """The pass's secure-aggregation state (after ``join``)."""
        if self._client is None:
            raise RuntimeError("join a pass first")
        return self._client

    def masked(self, vector: npt.NDArray[np.float64]) -> npt.NDArray[np.uint32]:
        """``vector`` wide-encoded and masked: all the hub ever receives of this silo's totals."""
        return self.client.mask_words(encode_wide(vector))


def _public_inputs(phase: str, length: int, ranges: Mapping[int, tuple[float, float]]) -> str:
    """A digest of what a pass's vector is computed for, besides the silo's records."""
    document = {
        "phase": phase,
        "length": length,
        "ranges": sorted([k, *(float(x).hex() for x in v)] for k, v in ranges.items()),
    }
    return sha256_digest(json.dumps(document, sort_keys=True).encode())
