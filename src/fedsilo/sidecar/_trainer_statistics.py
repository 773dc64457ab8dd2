"""The statistics phase where the data is: the sidecar's totals come from its trainer, over the trainer link.

In a cluster the sidecar holds no records (its trainer pod does, and has no network but
the link), so ``LinkTotals`` asks the trainer for each pass's totals (a ``statistics``
task: ``describe``, ``moments``, ``histogram``); only those vectors cross the link, and
each is checked against the sidecar's own plan before it is noised, masked and sent
(``take_part``). ``statistics_before_training`` runs the whole phase for ``Sidecar.run``
before hello, and hands the fitted transform the hub released to the trainer (a
``preprocess`` task) after checking it against the digest the hub announced, so every silo
applies the identical transform. A silo that declines (below ``minCount``) gets it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from fedsilo.datasets import FittedPreprocessing
from fedsilo.identity import SigningKey, VerifyKey
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import (
    MessageError,
    StatisticsAsk,
    StatisticsStep,
    StatisticsTotals,
    TrainerTask,
    decode_totals,
    rpc,
)
from fedsilo.statistics import Columns, StatisticsError, StatisticsPlan, StatisticsSilo, Totals

from ._config import SidecarConfig
from ._link import TrainerLinkService
from ._releases import StatisticsReleases
from ._statistics import take_part

log = logging.getLogger("fedsilo.sidecar")


class LinkTotals:
    """A silo's totals as its trainer computes them on its records (``fedsilo.statistics.Totals``).

    Asks ``describe`` at once: the width sizes the plan, the record count stays in the silo.
    """

    def __init__(self, link: TrainerLinkService, timeout: float) -> None:
        self._link = link
        self._timeout = timeout
        shape, _ = self._ask(StatisticsAsk(step="describe"), 0)
        self._shape = shape

    @property
    def records(self) -> int:
        """The trainer's training record count."""
        return self._shape.records

    @property
    def features(self) -> int:
        """The width of the trainer's records."""
        return self._shape.features

    def moments(self, plan: Columns) -> npt.NDArray[np.float64]:
        """Pass 1's totals from the trainer."""
        _, vector = self._ask(self._columns_ask("moments", plan), plan.layout("moments").size)
        return vector

    def histogram(self, plan: Columns, ranges: Mapping[int, tuple[float, float]]) -> npt.NDArray[np.float64]:
        """Pass 2's totals from the trainer, over the hub's public ranges."""
        ask = self._columns_ask("histogram", plan, tuple((c, lo, hi) for c, (lo, hi) in sorted(ranges.items())))
        _, vector = self._ask(ask, plan.layout("histogram").size)
        return vector

    @staticmethod
    def _columns_ask(step: str, plan: Columns, ranges: tuple[tuple[int, float, float], ...] = ()) -> StatisticsAsk:
        return StatisticsAsk.model_validate(
            {
                "step": step,
                "numeric": plan.numeric,
                "categorical": plan.categorical,
                "codes": plan.codes,
                "bins": plan.bins,
                "private": plan.private,
                "ranges": ranges,
            }
        )

    def _ask(self, ask: StatisticsAsk, expected: int) -> tuple[StatisticsTotals, npt.NDArray[np.float64]]:
        """One ask and its checked answer; ``MessageError`` naming what the trainer got wrong."""
        self._link.offer(TrainerTask(kind="statistics", round=0, statistics=ask))
        result = self._link.await_result(0, timeout=self._timeout)
        totals = result.header.totals
        if totals is None:
            raise MessageError(f"TrainerReply.totals: the answer to a {ask.step} ask carries no totals")
        if ask.step != "describe" and totals.features != self._shape.features:
            raise MessageError(
                f"StatisticsTotals.features: {totals.features}, but the trainer described {self._shape.features}"
            )
        return totals, decode_totals(totals, result.blob, expected)


def released_preprocessing(step: StatisticsStep) -> FittedPreprocessing:
    """The fitted transform the hub released at the phase's end, read strictly and checked against its digest."""
    if step.failure:
        raise StatisticsError(f"the statistics phase failed: {step.failure}")
    if not step.preprocessing_json:
        raise MessageError("StatisticsStep.preprocessing_json: the phase ended without the fitted transform")
    fitted = FittedPreprocessing.parse(step.preprocessing_json)
    if fitted.digest() != step.preprocessing_digest:
        raise MessageError(
            f"StatisticsStep.preprocessing_json: its digest {fitted.digest()} is not the announced "
            f"{step.preprocessing_digest or '(none)'}"
        )
    return fitted


@contextmanager
def statistics_member(config: SidecarConfig, signing_key: SigningKey, totals: Totals) -> Iterator[StatisticsSilo]:
    """This silo in its job's statistics phase, with its ledger open (and signed by it) when the phase is private.

    The one place a sidecar decides what the phase charges: the run's ledger name, the
    silo's and the job's ceilings, the ledger file it was started with, and, beside it, the
    noised totals released in this run, which every later attempt at the phase sends again.

    Raises:
        ValueError: a private phase without the silo's ledger (``--ledger``).
    """
    spec = config.job.spec
    plan = StatisticsPlan.for_job(config.ledger_job, spec, totals.features)
    ledger = kept = None
    if plan.private:
        if config.ledger is None:
            raise ValueError("the job's statistics are private: give the sidecar its ledger (--ledger PATH)")
        ledger = PrivacyLedger(config.ledger, signing_key)
        kept = StatisticsReleases(config.ledger, config.ledger_job)
    try:
        yield StatisticsSilo(
            plan,
            config.silo,
            totals,
            signing_key,
            ledger=ledger,
            max_epsilon=config.silo_max_epsilon,
            job_ceiling=spec.policy.max_epsilon,
            kept=kept,
        )
    finally:
        if ledger is not None:
            ledger.close()


def statistics_before_training(
    stub: rpc.AggregatorStub,
    link: TrainerLinkService,
    config: SidecarConfig,
    signing_key: SigningKey,
    peer_keys: Mapping[str, VerifyKey],
    *,
    timeout: float,
) -> FittedPreprocessing:
    """Take part in the job's statistics phase with the trainer's totals; the transform, handed to the trainer.

    Taking part again (the hub died, the run resumed) sends the noised totals released the
    first time (one release, as the ledger charges once), not a second draw.

    Raises:
        StatisticsError: the phase failed (the message says why, with the silos left out).
        MessageError: the trainer or the hub sent something malformed.
        ValueError: a private phase without the silo's ledger (``--ledger``).
    """
    with statistics_member(config, signing_key, LinkTotals(link, timeout)) as member:
        step = take_part(stub, member, signing_key, peer_keys, timeout=timeout)
    fitted = released_preprocessing(step)
    link.offer(TrainerTask(kind="preprocess", round=0), fitted.canonical_bytes())
    link.await_result(0, timeout=timeout)
    log.info("statistics phase done; the trainer applies the fitted preprocessing %s", fitted.digest())
    return fitted
