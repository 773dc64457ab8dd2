"""A silo that takes part in its statistics phase again (the hub died mid-phase) releases nothing new and pays once.

The sidecar keeps the noised totals it released beside its ledger, so whatever takes part
again in the same run (the same sidecar after its hub died, a new one after `fedsilo run
--resume` or a rebuilt pod) sends them again rather than a second draw; its ledger holds one
charge for the run's phase, and a ceiling the first charge fitted under does not shut the silo
out of the second attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.api import load_manifest
from fedsilo.datasets import load_raw_silo_data
from fedsilo.identity import SigningKey
from fedsilo.privacy.ledger import PrivacyLedger, run_name
from fedsilo.runner import run_statistics
from fedsilo.sidecar import SidecarConfig, statistics_member
from fedsilo.statistics import STATISTICS_ROUND, Columns, RecordTotals, StatisticsError, StatisticsSilo

from .conftest import silos_of, tabular_spec

ROOT = Path(__file__).parents[2]


class CountedTotals(RecordTotals):
    """Records held in this process that count how often a pass's totals are computed from them."""

    computed = 0

    def moments(self, plan: Columns) -> npt.NDArray[np.float64]:
        CountedTotals.computed += 1
        return super().moments(plan)

    def histogram(self, plan: Columns, ranges: Mapping[int, tuple[float, float]]) -> npt.NDArray[np.float64]:
        CountedTotals.computed += 1
        return super().histogram(plan, ranges)


def _member_factory(tmp_path: Path) -> Callable[[str], AbstractContextManager[StatisticsSilo]]:
    """A private phase's member, as a new sidecar process of run ``run_id`` makes it (same ledger)."""
    manifest = load_manifest(ROOT / "examples" / "tabular.yaml")
    document = manifest.job.model_dump(by_alias=True, exclude_none=True)
    document["spec"]["data"]["preprocessing"]["epsilon"] = 1.0
    job = type(manifest.job).model_validate(document)
    records = load_raw_silo_data(job.spec, 0, len(job.spec.silos), None).train_x
    key = SigningKey.generate()

    def member(run_id: str) -> AbstractContextManager[StatisticsSilo]:
        config = SidecarConfig(
            job=job, silo="bank-a", aggregator="localhost:1", peer_keys={}, ledger=tmp_path / "a.sqlite", run_id=run_id
        )
        return statistics_member(config, key, CountedTotals(records))

    return member


def _ranges(member: StatisticsSilo, width: float) -> dict[int, tuple[float, float]]:
    return {column: (-width, width) for column in member.plan.columns.numeric}


def test_a_new_sidecar_of_the_same_run_sends_the_noised_totals_it_released_and_a_new_run_draws_afresh(
    tmp_path: Path,
) -> None:
    # What `fedsilo run --resume` or a rebuilt silo pod does: a new process, the same run and ledger.
    member = _member_factory(tmp_path)
    released = []
    CountedTotals.computed = 0
    for run_id in ("r1", "r1", "r2"):
        with member(run_id) as silo:
            assert silo.decline() is None
            released.append((silo.moments(), silo.histogram(_ranges(silo, 5.0))))
        if run_id == "r1":
            # The first takes both passes from its records; the second reads none of them again.
            assert CountedTotals.computed == 2
    (moments, histogram), (moments_again, histogram_again), (moments_new_run, _) = released
    assert np.array_equal(moments, moments_again) and np.array_equal(histogram, histogram_again)
    assert not np.array_equal(moments, moments_new_run)
    with PrivacyLedger(tmp_path / "a.sqlite", read_only=True) as ledger:
        assert [(charge.job, charge.round) for charge in ledger.history("bank-a")] == [
            (run_name("tabular", "r1"), STATISTICS_ROUND),
            (run_name("tabular", "r2"), STATISTICS_ROUND),
        ]


def test_a_pass_asked_for_again_with_other_public_inputs_is_refused_not_drawn_again(tmp_path: Path) -> None:
    # Pass 2's ranges come from pass 1's sum: other ranges mean other silos took part this time.
    member = _member_factory(tmp_path)
    with member("r1") as silo:
        assert silo.decline() is None
        silo.histogram(_ranges(silo, 5.0))
    with member("r1") as silo, pytest.raises(StatisticsError, match="released before with other public inputs"):
        silo.histogram(_ranges(silo, 6.0))


def test_a_kept_release_that_cannot_be_read_is_an_error_not_a_second_draw(tmp_path: Path) -> None:
    member = _member_factory(tmp_path)
    with member("r1") as silo:
        assert silo.decline() is None
        silo.moments()
    (kept,) = (tmp_path / "a.sqlite.releases").glob("*-statistics-moments.safetensors")
    assert kept.stat().st_mode & 0o077 == 0, "the silo's own file, like its ledger"
    kept.write_bytes(b"not a safetensors file")
    with member("r1") as silo, pytest.raises(StatisticsError, match="cannot be read"):
        silo.moments()


def test_a_phase_taken_part_in_again_is_charged_once_even_next_to_the_ceiling(tmp_path: Path) -> None:
    spec = tabular_spec({"scaling": "standardize", "epsilon": 1.0})
    ledgers = {name: tmp_path / f"{name}.sqlite" for name in spec.silos}
    # Room for one statistics charge, not for two: a second charge would shut every silo out.
    silos = silos_of(spec, ledgers=ledgers, ceilings=dict.fromkeys(spec.silos, 1.5))
    for _ in range(2):
        assert run_statistics("again/run-1", spec, silos).statistics.excluded == ()
    for name, path in ledgers.items():
        with PrivacyLedger(path, read_only=True) as ledger:
            (charge,) = ledger.history(name)
        assert charge.round == STATISTICS_ROUND and charge.epsilon_job <= 1.0 + 1e-3
