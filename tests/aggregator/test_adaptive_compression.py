"""Adaptive compression: the hub picks the finest level whose upload fits the bytes budget and,
from the throughput it measured, the target time of the slowest silo; one level for all silos."""

from __future__ import annotations

from typing import Any

from fedsilo.aggregator import CompressionPlanner, SiloRoundStats
from fedsilo.api import FederatedJob
from fedsilo.compression import masked_payload_size

from .conftest import job_document

LENGTH = 10_000
SILOS = ("a", "b", "c")
RECORDS = dict.fromkeys(SILOS, 100)


def _planner(**adaptive: Any) -> CompressionPlanner:
    document = job_document(list(SILOS), aggregation={"mode": "masked"}, compression={"adaptive": adaptive})
    return CompressionPlanner(FederatedJob.model_validate(document).spec, LENGTH)


def test_the_budget_picks_the_finest_level_that_fits() -> None:
    # 3 silos: 2 bits of headroom; 16-bit levels take 18 bits, 8-bit 10, 4-bit 6.
    budget = (LENGTH * 10 + 7) // 8
    choice = _planner(bytesBudget=budget).plan(1, SILOS, RECORDS)
    assert (choice.settings.bits, choice.settings.word_bits) == (8, 10)
    assert choice.payload_bytes == masked_payload_size(choice.settings, LENGTH) == budget
    assert choice.reason.startswith("8 bits: the finest level within the budget")


def test_the_slowest_measured_link_sets_the_level_for_every_silo() -> None:
    planner = _planner(targetRoundSeconds=1.0)
    first = planner.plan(1, SILOS, RECORDS)
    assert first.settings.bits == 16 and "no upload measured yet" in first.reason
    # a and b upload 100 kB/s, c only 10 kB/s: 16-bit (22.5 kB) and 8-bit (12.5 kB) miss 1 s for c.
    planner.observe(
        {
            "a": SiloRoundStats(upload_bytes=100_000, upload_seconds=1.0),
            "b": SiloRoundStats(upload_bytes=50_000, upload_seconds=0.5),
            "c": SiloRoundStats(upload_bytes=10_000, upload_seconds=1.0),
        }
    )
    second = planner.plan(2, SILOS, RECORDS)
    assert second.settings.bits == 4 and "slowest upload 10 KiB/s" in second.reason
    # Without the slow silo in the round, the finest level fits again.
    assert planner.plan(3, ("a", "b"), RECORDS).settings.bits == 16


def test_when_no_level_fits_the_coarsest_is_taken_and_said_so() -> None:
    choice = _planner(bytesBudget=1024, levels=[8, 4]).plan(1, SILOS, RECORDS)
    assert choice.settings.bits == 4 and "no level fits; the coarsest" in choice.reason
