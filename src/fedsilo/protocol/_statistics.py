"""The statistics phase's messages: what a silo signs about its part, and what the hub tells it next.

The sidecar's statistics client (``fedsilo.sidecar``) builds ``StatisticsClaims``, signs the
canonical bytes with the silo's Ed25519 key, and the aggregator parses the same bytes
strictly before it trusts a value in them (``fedsilo.aggregator``), as for update metadata.
``StatisticsStep`` is the hub's answer between steps (``_convert`` carries it on the wire).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ._messages import MAX_VECTOR_LENGTH, Digest, Nonce, ObjectName
from ._strict import MessageError, StrictMessage, canonical_json, strict_json

#: The step a claim is for: the join, or one pass's masked upload.
StatisticsStepName = Literal["join", "moments", "histogram"]
# A run's name (``job/run-id``, ``fedsilo.privacy.ledger.run_name``): the job's object name and an id.
RunName = Annotated[
    str, Field(min_length=1, max_length=160, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[A-Za-z0-9_.-]+)?$")
]
# Record widths no tabular data set comes near; it keeps a hostile join from sizing a huge plan.
MAX_FEATURES: Final = 100_000
# A decline's reason: a reason code, a colon, and words.
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[a-z][a-z0-9_]*: ")]


class StatisticsClaims(StrictMessage):
    """One silo's signed statement in one statistics phase.

    ``join``: the width of its records (``features``; the hub sizes the plan from it, as
    every silo does from its own records) and, when it takes no part, why (``declined``:
    a reason code and words, never its record count). ``moments`` / ``histogram``: the
    length and digest of the masked words that follow.
    """

    job: RunName
    silo: ObjectName
    step: StatisticsStepName
    nonce: Nonce
    features: Annotated[int, Field(ge=1, le=MAX_FEATURES)] | None = None
    declined: Reason | None = None
    vector_length: Annotated[int, Field(ge=1, le=MAX_VECTOR_LENGTH)] | None = None
    payload_digest: Digest | None = None

    @model_validator(mode="after")
    def _fits_its_step(self) -> StatisticsClaims:
        joining = self.step == "join"
        if joining and self.features is None:
            raise ValueError("features: a join names the width of the silo's records")
        if joining and (self.vector_length is not None or self.payload_digest is not None):
            raise ValueError("vector_length, payload_digest: a join carries no payload")
        if not joining and (self.vector_length is None or self.payload_digest is None):
            raise ValueError(
                f"vector_length, payload_digest: a {self.step} upload names its payload's length and digest"
            )
        if not joining and (self.features is not None or self.declined is not None):
            raise ValueError(f"features, declined: only a join carries them, not a {self.step} upload")
        return self


@dataclass(frozen=True)
class StatisticsStep:
    """What the hub tells every silo between steps: the pass to run next, or how the phase ended.

    ``ranges`` are pass 2's public ranges per numeric feature, ``(column, low, high)``,
    derived from pass 1's totals alone; ``pass_number`` is 0 once the phase finished
    (``failure`` empty: the digests name what it released) or failed (``failure`` says why).
    """

    pass_number: int
    participants: tuple[str, ...] = ()
    ranges: tuple[tuple[int, float, float], ...] = ()
    failure: str = ""
    statistics_digest: str = ""
    preprocessing_digest: str = ""
    # The fitted transform itself (canonical JSON), for every silo to hand its trainer.
    preprocessing_json: str = ""

    def range_map(self) -> dict[int, tuple[float, float]]:
        """The ranges by column, as the silos' histogram pass reads them."""
        return {column: (low, high) for column, low, high in self.ranges}


def ranges_to_json(ranges: tuple[tuple[int, float, float], ...]) -> str:
    """Canonical JSON of pass 2's ranges: ``{"<column>": [low, high]}``."""
    return canonical_json({str(column): [low, high] for column, low, high in ranges}).decode()


def ranges_from_json(text: str) -> tuple[tuple[int, float, float], ...]:
    """Pass 2's ranges from the hub's JSON, strictly: integer columns, finite ``low < high``."""
    document = strict_json(text or "{}", what="StatisticsStep.ranges_json")
    if not isinstance(document, dict):
        raise MessageError("StatisticsStep.ranges_json: must be an object of column -> [low, high]")
    out = []
    for key, pair in document.items():
        if not key.isdigit() or len(key) > 6:
            raise MessageError(f"StatisticsStep.ranges_json: {key!r} is not a column number")
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
            or not pair[0] < pair[1]
        ):
            raise MessageError(f"StatisticsStep.ranges_json: column {key} must be [low, high] numbers with low < high")
        out.append((int(key), float(pair[0]), float(pair[1])))
    return tuple(sorted(out))


def masked_words_digest(words: npt.NDArray[np.uint32]) -> str:
    """``sha256:<hex>`` of masked words as they travel (little-endian): what a silo signs and the hub checks."""
    return "sha256:" + hashlib.sha256(np.asarray(words, dtype="<u4").tobytes()).hexdigest()
