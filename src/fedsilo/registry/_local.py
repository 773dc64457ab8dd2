"""The local-filesystem model registry: every round's global model with its lineage.

The aggregator writes one safetensors file and one lineage JSON per round; ``fedsilo
models list|show`` reads them. Both files carry the job, the round and content digests, so
a model can be traced to the exact updates (by digest) that produced it. An S3 registry
for the hub's cloud side implements the same ``ModelRegistry`` protocol.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedsilo.identity import sha256_digest
from fedsilo.protocol import TensorLayout, Weights, decode_weights, encode_weights


@dataclass(frozen=True)
class Lineage:
    """Where a global model came from."""

    job: str
    round: int
    model_digest: str
    parent_digest: str | None
    participants: tuple[str, ...]
    update_digests: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    aggregation: str = ""
    created: str = ""
    # The signed heads of the audit log (``audit_head``) and the hub's privacy ledger
    # (``ledger_head``) as the round closed: kept here, outside those files, so a file cut
    # back below them is caught (``fedsilo audit verify --head``).
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRef:
    """A stored model: its lineage and where its tensors are."""

    lineage: Lineage
    path: str


class ModelRegistry(Protocol):
    """Where global models are kept; the aggregator only ever calls ``save``."""

    def save(self, weights: Weights, lineage: Lineage) -> ModelRef:
        """Store a round's global model."""
        ...


class RegistryError(LookupError):
    """A model that is not in the registry."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LocalRegistry:
    """Models under ``root/<job>/round-NNNNN.{safetensors,json}``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _stem(self, job: str, round_number: int) -> Path:
        return self.root / job / f"round-{round_number:05d}"

    def save(self, weights: Weights, lineage: Lineage) -> ModelRef:
        """Write the model, then its lineage (the lineage marks the model complete)."""
        data = encode_weights(weights)
        digest = sha256_digest(data)
        if lineage.model_digest and lineage.model_digest != digest:
            raise ValueError("lineage.model_digest does not match the weights")
        stamped = Lineage(
            **{
                **asdict(lineage),
                "model_digest": digest,
                "created": lineage.created or dt.datetime.now(dt.UTC).isoformat(),
            }
        )
        stem = self._stem(lineage.job, lineage.round)
        stem.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(stem.with_suffix(".safetensors"), data)
        record = asdict(stamped) | {"layout": [[t.name, list(t.shape)] for t in TensorLayout.of(weights).tensors]}
        _atomic_write(stem.with_suffix(".json"), json.dumps(record, indent=2, sort_keys=True).encode())
        return ModelRef(stamped, str(stem.with_suffix(".safetensors")))

    def list(self, job: str | None = None) -> list[ModelRef]:
        """Every stored model, by job then round."""
        pattern = f"{job}/round-*.json" if job else "*/round-*.json"
        return [self._ref(p) for p in sorted(self.root.glob(pattern))]

    def show(self, job: str, round_number: int | None = None) -> ModelRef:
        """One model; the latest round of ``job`` when no round is given."""
        if round_number is None:
            models = self.list(job)
            if not models:
                raise RegistryError(f"no models for job {job!r} under {self.root}")
            return models[-1]
        path = self._stem(job, round_number).with_suffix(".json")
        if not path.exists():
            raise RegistryError(f"no model for job {job!r} round {round_number} under {self.root}")
        return self._ref(path)

    def load(self, ref: ModelRef) -> Weights:
        """The tensors of ``ref``, after checking their digest against the lineage."""
        data = Path(ref.path).read_bytes()
        if sha256_digest(data) != ref.lineage.model_digest:
            raise RegistryError(f"{ref.path} does not match its recorded digest")
        return decode_weights(data)

    @staticmethod
    def _ref(path: Path) -> ModelRef:
        record = json.loads(path.read_text())
        record.pop("layout", None)
        record["participants"] = tuple(record["participants"])
        return ModelRef(Lineage(**record), str(path.with_suffix(".safetensors")))
