"""Federated statistics: per-feature totals through masked secure aggregation, and the preprocessing they fit.

Before training (``spec.data.preprocessing``) or as a job of its own (``fedsilo stats``),
every silo computes its totals (counts, sums, sums of squares, histograms on a public
binning, category counts), encodes them exactly in wide fixed point and masks them with
the same ``fedsilo.secagg`` code that masks training updates; the hub unmasks only the
sum. Optional DP noise is charged as a ``statistics`` release to each silo's ledger and,
for every silo whose totals it admits, to the hub's (``charge_release``: one definition). A
silo below ``minCount`` records is left out with its reason; a bin or category below it
is suppressed. ``fit_preprocessing`` turns the released statistics into the transform
every silo and the centralized baseline apply. This package does the arithmetic of both
sides; the aggregator (``StatisticsPhase``) and the sidecar (``take_part``) carry it over
the gRPC service. docs/statistics.md explains it all.
"""

from ._charge import STATISTICS_ROUND as STATISTICS_ROUND
from ._charge import charge_release as charge_release
from ._charge import release_budget as release_budget
from ._charge import release_event as release_event
from ._charge import released_epsilon as released_epsilon
from ._charge import statistics_key as statistics_key
from ._hub import HubView as HubView
from ._hub import StatisticsHub as StatisticsHub
from ._phase import SiloRecords as SiloRecords
from ._phase import job_silos as job_silos
from ._plan import PASSES as PASSES
from ._plan import StatisticsError as StatisticsError
from ._plan import StatisticsPlan as StatisticsPlan
from ._render import statistics_table as statistics_table
from ._render import write_histograms as write_histograms
from ._result import CategoricalStatistics as CategoricalStatistics
from ._result import ExcludedSilo as ExcludedSilo
from ._result import FederatedStatistics as FederatedStatistics
from ._result import NumericStatistics as NumericStatistics
from ._result import fit_preprocessing as fit_preprocessing
from ._silo import BELOW_MIN_COUNT as BELOW_MIN_COUNT
from ._silo import StatisticsSilo as StatisticsSilo
from ._wide import decode_wide as decode_wide
from ._wide import encode_wide as encode_wide
from .totals import Columns as Columns
from .totals import RecordTotals as RecordTotals
from .totals import Totals as Totals

__all__ = [
    "BELOW_MIN_COUNT",
    "PASSES",
    "STATISTICS_ROUND",
    "CategoricalStatistics",
    "Columns",
    "ExcludedSilo",
    "FederatedStatistics",
    "HubView",
    "NumericStatistics",
    "RecordTotals",
    "SiloRecords",
    "StatisticsError",
    "StatisticsHub",
    "StatisticsPlan",
    "StatisticsSilo",
    "Totals",
    "charge_release",
    "decode_wide",
    "encode_wide",
    "fit_preprocessing",
    "job_silos",
    "release_budget",
    "release_event",
    "released_epsilon",
    "statistics_key",
    "statistics_table",
    "write_histograms",
]
