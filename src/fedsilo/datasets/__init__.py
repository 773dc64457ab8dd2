"""Data sets without downloads, and their partition across silos for local simulation.

The trainer process calls ``load_silo_data`` for its own silo's records; the
centralized baseline calls ``load_pooled_data`` for the union of all silos' records.
Sources: the Synthetic(alpha, beta) generator of the FedProx paper, scikit-learn's
bundled digits and breast-cancer sets, and a user's csv or npz file.
"""

from ._load import load_pooled_data as load_pooled_data
from ._load import load_silo_data as load_silo_data
from ._partition import MIN_RECORDS as MIN_RECORDS
from ._partition import partition as partition
from ._sources import DataError as DataError
from ._types import SiloData as SiloData

__all__ = ["MIN_RECORDS", "DataError", "SiloData", "load_pooled_data", "load_silo_data", "partition"]
