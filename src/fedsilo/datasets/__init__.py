"""Data sets without downloads, and their partition across silos for local simulation."""

from ._load import load_pooled_data as load_pooled_data
from ._load import load_silo_data as load_silo_data
from ._partition import MIN_RECORDS as MIN_RECORDS
from ._partition import partition as partition
from ._sources import DataError as DataError
from ._types import SiloData as SiloData

__all__ = ["MIN_RECORDS", "DataError", "SiloData", "load_pooled_data", "load_silo_data", "partition"]
