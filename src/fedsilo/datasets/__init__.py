"""Data sets without downloads, and their partition across silos for local simulation.

The trainer process calls ``load_silo_data`` for its own silo's records; the
centralized baseline calls ``load_pooled_data`` for the union of all silos' records.
Sources: the Synthetic(alpha, beta) generator of the FedProx paper, scikit-learn's
bundled digits and breast-cancer sets, a generated tabular workload on very different
scales, and a user's csv or npz file. ``FittedPreprocessing`` is the transform the
federated statistics phase fits and every silo and the baseline apply.
"""

from ._load import load_pooled_data as load_pooled_data
from ._load import load_raw_silo_data as load_raw_silo_data
from ._load import load_silo_data as load_silo_data
from ._partition import MIN_RECORDS as MIN_RECORDS
from ._partition import partition as partition
from ._preprocess import PREPROCESSING_FILE as PREPROCESSING_FILE
from ._preprocess import FittedCategorical as FittedCategorical
from ._preprocess import FittedNumeric as FittedNumeric
from ._preprocess import FittedPreprocessing as FittedPreprocessing
from ._sources import DataError as DataError
from ._types import SiloData as SiloData

__all__ = [
    "MIN_RECORDS",
    "PREPROCESSING_FILE",
    "DataError",
    "FittedCategorical",
    "FittedNumeric",
    "FittedPreprocessing",
    "SiloData",
    "load_pooled_data",
    "load_raw_silo_data",
    "load_silo_data",
    "partition",
]
