"""The fitted preprocessing every silo and the centralized baseline apply identically.

``fedsilo.statistics`` fits a ``FittedPreprocessing`` from federated totals (never from
one silo's records); the local run writes it beside the job's models in the registry and
hands its file to every trainer, and ``load_silo_data`` / ``load_pooled_data`` apply it.
It crosses a trust boundary (the hub writes it, silos read it), so it is a
``StrictMessage``: strict JSON, bounded fields, and one canonical digest that the model
lineage names and the hub's seal covers.

Applied to a record: missing numeric values become the fitted fill (global mean or
median), numeric features become ``(x - center) / scale`` (standardize: mean and standard
deviation; minmax: lower bound and range; none or silo: 0 and 1), and each categorical
column becomes one-hot columns over the shared vocabulary, in the vocabulary's order,
after the numeric ones. A code outside the vocabulary (rare, unseen, missing) is all zeros.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from fedsilo.api import Scaling
from fedsilo.protocol import MessageError, StrictMessage

from ._sources import DataError

FORMAT = "fedsilo.preprocessing/v1"
#: Where the local run keeps a job's fitted preprocessing, beside the job's models in the registry.
PREPROCESSING_FILE = "preprocessing.json"

_Column = Annotated[int, Field(ge=0, le=100_000)]
_Real = Annotated[float, Field(ge=-1e300, le=1e300)]


class FittedNumeric(StrictMessage):
    """One numeric feature: ``(x - center) / scale`` after a missing value becomes ``fill``."""

    column: _Column
    center: _Real
    scale: Annotated[float, Field(gt=0, le=1e300)]
    fill: _Real | None = None


class FittedCategorical(StrictMessage):
    """One categorical feature: one-hot columns over ``vocabulary`` (category codes, in column order)."""

    column: _Column
    vocabulary: tuple[Annotated[int, Field(ge=0, le=100_000)], ...] = Field(max_length=1024)


class FittedPreprocessing(StrictMessage):
    """The transform a statistics phase fitted for one job; the registry keeps it next to the model."""

    max_bytes: ClassVar[int] = 1 << 20

    format: Literal["fedsilo.preprocessing/v1"]
    job: Annotated[str, Field(min_length=1, max_length=63)]
    scaling: Scaling
    num_features: Annotated[int, Field(ge=1, le=100_000)]
    numeric: tuple[FittedNumeric, ...] = Field(max_length=100_000)
    categorical: tuple[FittedCategorical, ...] = Field(max_length=64)
    #: Digest of the statistics document the transform was fitted from.
    statistics_digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]

    @model_validator(mode="after")
    def _covers_every_column_once(self) -> FittedPreprocessing:
        columns = [f.column for f in self.numeric] + [c.column for c in self.categorical]
        if sorted(columns) != list(range(self.num_features)):
            raise ValueError(f"numeric and categorical must name each of the {self.num_features} columns exactly once")
        for category in self.categorical:
            if len(set(category.vocabulary)) != len(category.vocabulary):
                raise ValueError(f"the vocabulary of column {category.column} repeats a code")
        return self

    @property
    def output_features(self) -> int:
        """Values per record after the transform."""
        return len(self.numeric) + sum(len(c.vocabulary) for c in self.categorical)

    def digest(self) -> str:
        """``sha256:...`` of the canonical bytes: what the model lineage names and the hub's seal covers."""
        # hashlib, not fedsilo.identity: the trainer reads this file and imports no key material.
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def apply(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The transformed records; ``DataError`` if they do not have the fitted shape."""
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise DataError(
                f"the preprocessing was fitted for records of {self.num_features} features; these have shape "
                f"{tuple(x.shape[1:])}"
            )
        out = np.zeros((len(x), self.output_features), dtype=np.float32)
        for position, feature in enumerate(self.numeric):
            values = x[:, feature.column].astype(np.float64)
            if feature.fill is not None:
                values = np.where(np.isnan(values), feature.fill, values)
            out[:, position] = (values - feature.center) / feature.scale
        offset = len(self.numeric)
        for category in self.categorical:
            codes = x[:, category.column]
            for slot, code in enumerate(category.vocabulary):
                out[:, offset + slot] = codes == code
            offset += len(category.vocabulary)
        if np.isnan(out).any():
            raise DataError(
                "records hold missing values the preprocessing does not fill; set spec.data.preprocessing.impute "
                "to mean or median"
            )
        return out

    def write(self, path: Path) -> Path:
        """Write the canonical document to ``path`` (what the digest covers)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.canonical_bytes())
        return path

    @classmethod
    def read(cls, path: Path | str) -> FittedPreprocessing:
        """Read a fitted preprocessing file strictly; ``DataError`` naming the file and the problem."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot read the fitted preprocessing ({error})") from error
        try:
            return cls.parse(data)
        except MessageError as error:
            raise DataError(f"{path}: not a fitted preprocessing document ({error})") from error
