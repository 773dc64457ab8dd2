"""The local-filesystem model registry: every round's global model with its lineage.

The aggregator writes one safetensors file and one lineage JSON per round; ``fedsilo
models list|show|verify`` reads them. Both files carry the job, the round and content
digests, so a model can be traced to the exact updates (by digest) that produced it. The
lineage JSON also keeps the hub's seal on the model (``ModelSeal``: the signed
``GlobalModelClaim`` naming the model's, its parent's and the lineage's digests), so
``verify_model`` checks a stored model offline with nothing but the hub's public key. An
S3 registry for the hub's cloud side implements the same ``ModelRegistry`` protocol.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedsilo.identity import SignatureError, VerifyKey, sha256_digest
from fedsilo.protocol import (
    GlobalModelClaim,
    MessageError,
    TensorLayout,
    Weights,
    decode_weights,
    encode_weights,
)


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


def lineage_digest(lineage: Lineage) -> str:
    """The digest the hub signs of ``lineage``: canonical JSON of every field, as the registry stores them."""
    return sha256_digest(json.dumps(asdict(lineage), sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True)
class ModelSeal:
    """The hub's signature on a global model: ``GlobalModelClaim`` canonical bytes and the Ed25519 signature."""

    claim: bytes
    signature: bytes

    def to_json(self) -> dict[str, str]:
        """The form the lineage JSON keeps (the claim as text, the signature in base64)."""
        return {"claim": self.claim.decode(), "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def from_json(cls, document: Any) -> ModelSeal:
        """Read back ``to_json``; ``ValueError`` naming what is malformed."""
        if not isinstance(document, dict) or set(document) != {"claim", "signature"}:
            raise ValueError("seal must be an object with exactly 'claim' and 'signature'")
        claim, signature = document["claim"], document["signature"]
        if not isinstance(claim, str) or not isinstance(signature, str):
            raise ValueError("seal.claim and seal.signature must be strings")
        try:
            return cls(claim.encode(), base64.b64decode(signature, validate=True))
        except binascii.Error as error:
            raise ValueError(f"seal.signature is not base64: {error}") from None


@dataclass(frozen=True)
class ModelRef:
    """A stored model: its lineage, where its tensors are, and the hub's seal (None if stored unsigned)."""

    lineage: Lineage
    path: str
    seal: ModelSeal | None = None


class ModelRegistry(Protocol):
    """Where global models are kept; the aggregator only ever calls ``save``."""

    def save(
        self, weights: Weights, lineage: Lineage, seal: ModelSeal | None = None, *, encoded: bytes | None = None
    ) -> ModelRef:
        """Store a round's global model with the hub's seal on it.

        ``encoded``: ``encode_weights(weights)`` when the caller has it already (the hub, which
        serves those bytes), so that a model is not encoded twice at once.
        """
        ...


class RegistryError(LookupError):
    """A model that is not in the registry."""


class ModelVerificationError(RegistryError):
    """A stored model whose seal, digests or lineage do not hold; names the job and round."""

    def __init__(self, job: str, round_number: int, problem: str) -> None:
        self.job = job
        self.round = round_number
        self.problem = problem
        super().__init__(f"job {job} round {round_number}: {problem}")


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

    def save(
        self, weights: Weights, lineage: Lineage, seal: ModelSeal | None = None, *, encoded: bytes | None = None
    ) -> ModelRef:
        """Write the model, then its lineage and seal (the lineage marks the model complete)."""
        data = encode_weights(weights) if encoded is None else encoded
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
        if seal is not None:
            record["seal"] = seal.to_json()
        _atomic_write(stem.with_suffix(".json"), json.dumps(record, indent=2, sort_keys=True).encode())
        return ModelRef(stamped, str(stem.with_suffix(".safetensors")), seal)

    def save_preprocessing(self, job: str, document: bytes) -> str:
        """Keep a job's fitted preprocessing by its digest, beside its models; the digest, which lineages name.

        Content-addressed (``<job>/preprocessing/<hex>.json``): a rerun with other statistics
        adds a file instead of changing the one an earlier model's lineage names.
        """
        digest = sha256_digest(document)
        path = preprocessing_path(self._stem(job, 0).parent, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, document)
        return digest

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

    def verify(
        self, key: VerifyKey, job: str | None = None
    ) -> tuple[builtins.list[ModelRef], builtins.list[ModelVerificationError]]:
        """Every stored model (of ``job``) checked with ``verify_model``: those that hold, and one problem per other.

        A record that cannot even be read is a problem of its round too (named from its file),
        so one tampered file never hides the verdict on the others.
        """
        verified: builtins.list[ModelRef] = []
        problems: builtins.list[ModelVerificationError] = []
        previous: dict[str, ModelRef] = {}
        pattern = f"{job}/round-*.json" if job else "*/round-*.json"
        for path in sorted(self.root.glob(pattern)):
            job_name, round_number = path.parent.name, int(path.stem.removeprefix("round-"))
            try:
                ref = self._ref(path)
            except (OSError, ValueError, TypeError, KeyError) as error:
                problems.append(ModelVerificationError(job_name, round_number, f"the lineage cannot be read: {error}"))
                previous.pop(job_name, None)
                continue
            before = previous.get(job_name)
            parent = before if before is not None and before.lineage.round == ref.lineage.round - 1 else None
            previous[job_name] = ref
            try:
                verify_model(ref, key, parent)
            except ModelVerificationError as problem:
                problems.append(problem)
            else:
                verified.append(ref)
        return verified, problems

    @staticmethod
    def _ref(path: Path) -> ModelRef:
        record = json.loads(path.read_text())
        record.pop("layout", None)
        sealed = record.pop("seal", None)
        record["participants"] = tuple(record["participants"])
        lineage = Lineage(**record)
        try:
            seal = None if sealed is None else ModelSeal.from_json(sealed)
        except ValueError:
            # Listing still shows the model; ``verify_model`` reports it as carrying no seal.
            seal = None
        return ModelRef(lineage, str(path.with_suffix(".safetensors")), seal)


def preprocessing_path(job_dir: Path, digest: str) -> Path:
    """Where a job's fitted preprocessing of ``digest`` is kept."""
    return job_dir / "preprocessing" / f"{digest.removeprefix('sha256:')}.json"


def verify_model(ref: ModelRef, key: VerifyKey, parent: ModelRef | None = None) -> None:
    """Check one stored model offline; ``ModelVerificationError`` names its round and what failed.

    The seal's signature must be the hub's (``key``), its claim must name this job, round,
    model (the digest of the file as it is now), parent and lineage (the digest of the
    record as it is now), and ``parent`` (the model of the round before, when stored) must
    be the one the lineage names: a model, a record or a chain edited after the hub sealed
    them fails here.
    """
    lineage = ref.lineage

    def fail(problem: str) -> ModelVerificationError:
        return ModelVerificationError(lineage.job, lineage.round, problem)

    if ref.seal is None:
        raise fail("the model carries no readable seal (stored unsigned, or the seal was altered)")
    try:
        key.verify(ref.seal.signature, ref.seal.claim)
        claim = GlobalModelClaim.parse(ref.seal.claim)
    except SignatureError as error:
        raise fail(f"the seal's signature does not verify with key {key.fingerprint()}: {error.reason}") from None
    except MessageError as error:
        raise fail(f"the seal's claim is malformed: {error}") from None
    try:
        data = Path(ref.path).read_bytes()
    except OSError as error:
        raise fail(f"the model file cannot be read: {error}") from None
    checks = (
        ("job", claim.job, lineage.job),
        ("round", claim.round, lineage.round),
        ("model digest (of the file)", claim.model_digest, sha256_digest(data)),
        ("model digest (of the lineage)", claim.model_digest, lineage.model_digest),
        ("parent digest", claim.parent_digest, lineage.parent_digest),
        ("lineage digest", claim.lineage_digest, lineage_digest(lineage)),
    )
    for what, signed, found in checks:
        if signed != found:
            raise fail(f"{what} is {found}, the hub signed {signed}")
    named = lineage.evidence.get("preprocessing")
    if named is not None:
        # The seal covers the lineage, so the digest is the hub's; the file must still be the one it names.
        try:
            kept = preprocessing_path(Path(ref.path).parent, str(named)).read_bytes()
        except OSError as error:
            raise fail(f"the fitted preprocessing the lineage names cannot be read: {error}") from None
        if sha256_digest(kept) != named:
            raise fail(f"the fitted preprocessing is {sha256_digest(kept)}, the lineage names {named}")
    if parent is not None and lineage.parent_digest != parent.lineage.model_digest:
        raise fail(
            f"the parent is {lineage.parent_digest}, but round {parent.lineage.round} stored {parent.lineage.model_digest}"
        )
