"""Crash-consistent rounds: the checkpoint the hub writes after every completed round, read back to resume.

``JobCoordinator`` writes one checkpoint when a round closes, after the round's model is in
the registry and before the next round opens; ``fedsilo run --resume`` and a restarted
``fedsilo aggregator`` pod read the newest one and go on from the round after it, and
``fedsilo models rollback`` / ``fedsilo unlearn`` (``fedsilo.runner``) pick an older one.

The format (``fedsilo.checkpoint/v1``) is defined here once. A checkpoint of round N is two
files in ``<state dir>/checkpoints/``:

- ``round-NNNNN.safetensors``: the global model as ``model/<tensor>`` and the strategy's
  state (FedAdam's moments, ...) as ``strategy/<name>``; safetensors, never pickle;
- ``round-NNNNN.json``: a :class:`CheckpointDocument` (strict JSON) naming the tensors
  file's SHA-256, the model's digest and the hub's seal on it, the ledger run the charges
  are keyed by, the audit log's and hub ledger's signed heads as the round closed, every
  completed round's summary (who contributed what: the lineage unlearning relies on) and
  the silos a job was told to forget.

Both are written to a temporary file, fsynced and renamed, the JSON last: it is the commit
marker, so a process killed at any instant leaves either the whole checkpoint or the
previous one. Secure aggregation keeps nothing across a round boundary (every round, and
every retry of a round, agrees fresh keys), so a checkpoint holds no masking state.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load

from fedsilo.audit import SignedHead
from fedsilo.identity import sha256_digest
from fedsilo.protocol import (
    MAX_LEAVE_REASON_LENGTH,
    MessageError,
    StrictMessage,
    Weights,
    encode_weights,
    safetensors_parts,
)
from fedsilo.registry import ModelSeal

from ._contracts import RoundSummary, SiloRoundStats

FORMAT: Literal["fedsilo.checkpoint/v1"] = "fedsilo.checkpoint/v1"
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^round-(\d{5,})\.json$")
_MODEL_PREFIX = "model/"
_STRATEGY_PREFIX = "strategy/"

_Name = Annotated[str, Field(min_length=1, max_length=253)]
_Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
_Round = Annotated[int, Field(ge=0, le=1_000_000)]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do about it."""


class SiloStatsRecord(StrictMessage):
    """One silo's part in one completed round (``SiloRoundStats``)."""

    bytes_up: Annotated[int, Field(ge=0)]
    bytes_down: Annotated[int, Field(ge=0)]
    accepted: bool
    reasons: tuple[str, ...]
    epsilon_round: float | None
    epsilon_spent: float | None
    update_distance: float | None
    update_cosine: float | None
    l2_norm_claim: float | None = None
    anomaly_score: float | None = None
    upload_bytes: Annotated[int, Field(ge=0)] = 0
    upload_seconds: Annotated[float, Field(ge=0)] = 0.0


class RoundRecord(StrictMessage):
    """A completed round as the checkpoint keeps it (``RoundSummary``): who was asked, whose update counted."""

    round: Annotated[int, Field(ge=1, le=1_000_000)]
    participants: tuple[_Name, ...]
    accepted: tuple[_Name, ...]
    dropped: tuple[_Name, ...]
    denied: dict[_Name, tuple[str, ...]]
    seconds: Annotated[float, Field(ge=0)]
    model_digest: _Digest
    loss: float | None
    accuracy: float | None
    silos: dict[_Name, SiloStatsRecord]
    audit_head: SignedHead | None
    ledger_head: SignedHead | None
    void: str | None = None
    compression_reason: str = ""
    # Silos that left during the round and why (absent from checkpoints written before leaves existed).
    left: dict[_Name, Annotated[str, Field(max_length=MAX_LEAVE_REASON_LENGTH)]] = Field(default_factory=dict)

    # What a summary reports but a resumed hub does not need: the silos' scores (in each
    # model's lineage), the round's compression settings and its masking graph (in its report and
    # audit records; the graph is redrawn from the job and round).
    _NOT_KEPT: ClassVar[tuple[str, ...]] = ("quality", "personalized", "compression", "graph")

    @classmethod
    def of(cls, summary: RoundSummary) -> RoundRecord:
        """The record of a summary."""
        document = asdict(summary)
        for name in cls._NOT_KEPT:
            document.pop(name, None)
        document["silos"] = {name: SiloStatsRecord(**asdict(stats)) for name, stats in summary.silos.items()}
        document["audit_head"], document["ledger_head"] = summary.audit_head, summary.ledger_head
        return cls(**document)

    def summary(self) -> RoundSummary:
        """Back to the coordinator's summary."""
        stats = {name: SiloRoundStats(**record.model_dump()) for name, record in self.silos.items()}
        fields = self.model_dump(exclude={"silos", "audit_head", "ledger_head"})
        return RoundSummary(**fields, silos=stats, audit_head=self.audit_head, ledger_head=self.ledger_head)


class SealRecord(StrictMessage):
    """The hub's seal on the checkpoint's model (``ModelSeal``): the claim's text and the signature in base64."""

    claim: Annotated[str, Field(min_length=1, max_length=4096)]
    signature: Annotated[str, Field(min_length=1, max_length=256)]


class CheckpointDocument(StrictMessage):
    """The JSON half of a checkpoint; ``tensors_digest`` ties it to its tensors file."""

    # A long job's summaries outgrow the default bound on a message from a silo.
    max_bytes: ClassVar[int] = 64 << 20

    format: Literal["fedsilo.checkpoint/v1"]
    job: _Name
    round: _Round
    #: The run name both ledgers key this run's charges by (``fedsilo.privacy.ledger.run_name``).
    ledger_run: Annotated[str, Field(min_length=1, max_length=512)]
    tensors_file: Annotated[str, Field(pattern=r"^round-\d{5,}\.safetensors$")]
    tensors_digest: _Digest
    model_tensors: tuple[Annotated[str, Field(min_length=1, max_length=512)], ...]
    model_digest: _Digest
    model_seal: SealRecord
    strategy: Annotated[str, Field(min_length=1, max_length=64)]
    rounds: tuple[RoundRecord, ...]
    #: Silos the job was told to forget (``fedsilo unlearn``): a resumed run leaves them out.
    excluded: tuple[_Name, ...] = ()
    written: Annotated[str, Field(max_length=64)]

    def contributors(self) -> frozenset[str]:
        """Every silo whose update went into this checkpoint's model, through any round before it."""
        return frozenset(silo for record in self.rounds for silo in record.accepted)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back: its document, the model, the strategy's state and where it lives."""

    document: CheckpointDocument
    weights: Weights
    strategy_state: dict[str, npt.NDArray[np.floating]]
    path: Path

    @property
    def round(self) -> int:
        """The last completed round; the resumed job opens the one after it."""
        return self.document.round

    @property
    def seal(self) -> ModelSeal:
        """The hub's seal on the model, as the round plans carry it."""
        return ModelSeal(self.document.model_seal.claim.encode(), base64.b64decode(self.document.model_seal.signature))

    def summaries(self) -> list[RoundSummary]:
        """Every completed round's summary, oldest first."""
        return [record.summary() for record in self.document.rounds]


def _write_durably(path: Path, parts: Sequence[bytes | memoryview]) -> None:
    """Write ``parts`` one after another to ``path`` atomically: a temporary file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.writelines(parts)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class Checkpoints:
    """The checkpoints of one job under ``<state dir>/checkpoints``.

    ``ledger_run`` and ``excluded`` are the run's, written into every checkpoint so a resumed
    hub charges under the same run name and keeps a forgotten silo out.
    """

    def __init__(self, state_dir: Path, *, ledger_run: str, excluded: Sequence[str] = ()) -> None:
        self.directory = state_dir / CHECKPOINT_DIR
        self.ledger_run = ledger_run
        self.excluded = tuple(excluded)

    def path(self, round_number: int) -> Path:
        """The JSON file of round ``round_number``'s checkpoint."""
        return self.directory / f"round-{round_number:05d}.json"

    def write(
        self,
        job: str,
        strategy: str,
        weights: Weights,
        strategy_state: Mapping[str, npt.NDArray[np.floating]],
        seal: ModelSeal,
        summaries: Sequence[RoundSummary],
    ) -> Path:
        """Commit the checkpoint of the last round in ``summaries`` (round 0 when empty); its JSON path."""
        round_number = summaries[-1].round if summaries else 0
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {_MODEL_PREFIX + name: np.ascontiguousarray(value) for name, value in weights.items()}
        tensors |= {_STRATEGY_PREFIX + name: np.ascontiguousarray(value) for name, value in strategy_state.items()}
        # safetensors' bytes, streamed to the file from the tensors themselves: never a whole copy.
        parts = safetensors_parts(tensors)
        json_path = self.path(round_number)
        tensors_path = json_path.with_suffix(".safetensors")
        last = summaries[-1] if summaries else None
        document = CheckpointDocument(
            format=FORMAT,
            job=job,
            round=round_number,
            ledger_run=self.ledger_run,
            tensors_file=tensors_path.name,
            tensors_digest=sha256_digest(*parts),
            model_tensors=tuple(weights),
            model_digest=last.model_digest if last is not None else sha256_digest(encode_weights(weights)),
            model_seal=SealRecord(**seal.to_json()),
            strategy=strategy,
            rounds=tuple(RoundRecord.of(summary) for summary in summaries),
            excluded=self.excluded,
            written=dt.datetime.now(dt.UTC).isoformat(),
        )
        _write_durably(tensors_path, parts)
        _write_durably(json_path, [document.canonical_bytes()])
        return json_path

    def rounds(self) -> list[int]:
        """The rounds that have a committed checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(path.name) for path in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def load(self, round_number: int) -> Checkpoint:
        """Round ``round_number``'s checkpoint; ``CheckpointError`` if there is none or it does not hold."""
        path = self.path(round_number)
        if not path.is_file():
            have = ", ".join(map(str, self.rounds())) or "none"
            raise CheckpointError(
                f"no checkpoint of round {round_number} in {self.directory} (checkpointed rounds: {have})"
            )
        return read_checkpoint(path)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, or None before the first round closed."""
        rounds = self.rounds()
        return self.load(rounds[-1]) if rounds else None


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and check one checkpoint's JSON file and its tensors file.

    Raises:
        CheckpointError: a file is missing, malformed, or does not match what the JSON says
            (digest, tensor names, model digest, seal); the message names the file and the
            way out (an older checkpoint with ``fedsilo models rollback``).
    """
    fix = (
        f"it was changed or damaged after it was written; move it aside, or roll back to an earlier round "
        f"('fedsilo models rollback RUN_DIR --to-round N' with N below {path.stem.removeprefix('round-')})"
    )
    try:
        document = CheckpointDocument.parse(path.read_bytes())
    except OSError as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    except MessageError as error:
        raise CheckpointError(f"checkpoint {path} is not a valid {FORMAT} document ({error}): {fix}") from None
    if path.name != f"round-{document.round:05d}.json":
        raise CheckpointError(f"checkpoint {path} holds round {document.round}, not the round its name says: {fix}")
    tensors_path = path.with_name(document.tensors_file)
    try:
        data = tensors_path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"checkpoint tensors {tensors_path} cannot be read ({error}): {fix}") from None
    if sha256_digest(data) != document.tensors_digest:
        raise CheckpointError(f"checkpoint tensors {tensors_path} do not match the digest in {path.name}: {fix}")
    try:
        tensors = safetensors_load(data)
    except SafetensorError as error:
        raise CheckpointError(f"checkpoint tensors {tensors_path} are not safetensors ({error}): {fix}") from None
    weights: Weights = {}
    for name in document.model_tensors:
        value = tensors.get(_MODEL_PREFIX + name)
        if value is None or value.dtype != np.float32:
            raise CheckpointError(f"checkpoint tensors {tensors_path} lack float32 model tensor {name!r}: {fix}")
        weights[name] = value
    state = {k.removeprefix(_STRATEGY_PREFIX): v for k, v in tensors.items() if k.startswith(_STRATEGY_PREFIX)}
    named = {_MODEL_PREFIX + name for name in weights}
    unknown = sorted(k for k in tensors if not k.startswith(_STRATEGY_PREFIX) and k not in named)
    if unknown:
        raise CheckpointError(
            f"checkpoint tensors {tensors_path} hold tensors the document does not name {unknown}: {fix}"
        )
    if sha256_digest(encode_weights(weights)) != document.model_digest:
        raise CheckpointError(f"the model in {tensors_path} is not the model {path.name} names: {fix}")
    try:
        base64.b64decode(document.model_seal.signature, validate=True)
    except binascii.Error as error:
        raise CheckpointError(f"checkpoint {path} carries a malformed model seal ({error}): {fix}") from None
    numbers = [record.round for record in document.rounds]
    if numbers != list(range(1, document.round + 1)):
        raise CheckpointError(
            f"checkpoint {path} is of round {document.round} but records rounds {numbers}, not 1..{document.round}: {fix}"
        )
    if document.rounds and document.rounds[-1].model_digest != document.model_digest:
        raise CheckpointError(f"checkpoint {path}: its last round's model is not the checkpoint's model: {fix}")
    return Checkpoint(document, weights, state, path)
