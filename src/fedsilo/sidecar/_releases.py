"""The silo's last noisy release of a DP job, kept beside its ledger so a resumed round sends it again.

A hub killed mid-round resumes at its last checkpoint and runs the round again. The silo
has charged that round already and its noisy update may be out; releasing a *new* noisy
update for the round would cost privacy a second time. So ``SiloNoise`` keeps each release
here (the noisy vector and the facts signed with it) *before* ``ChargeLedger`` charges it,
and when the same round of the same run is asked for again, from the same global model,
the guard sends this release again (masked afresh) instead of a new one; both ledgers
recognise the round's charge and charge nothing more (``PrivacyLedger.charge(resumed=True)``).

One file per job run (``<ledger>.releases/<digest of the run name>.safetensors``), replaced
by every round: only the round in flight can be resumed. The file is the silo's own, in
its own trust domain, like its ledger; it never leaves the silo. Tensors are safetensors
with string metadata, never pickle.

The statistics phase is charged once per run as well, so its noised totals are kept the
same way, one file per pass (``StatisticsReleases``), and sent again by whatever takes part
in the phase again: the sidecar after its hub died, a new one after ``fedsilo run
--resume``, a rebuilt pod with the same ledger.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from fedsilo.identity import sha256_digest
from fedsilo.privacy import Mechanism, mechanism_from_json, mechanism_json
from fedsilo.protocol import FloatVector, strict_json
from fedsilo.statistics import StatisticsError


@dataclass(frozen=True)
class KeptRelease:
    """One round's noisy release and the claims that went out with it."""

    round: int
    model_digest: str
    delta: FloatVector
    weight: int
    l2_norm: float
    mechanism: Mechanism
    epsilon_round: float


class ReleaseStore:
    """The kept release of one job run, in the folder beside the silo's ledger."""

    def __init__(self, ledger: Path, ledger_job: str) -> None:
        self.path = _releases_folder(ledger) / f"{_run_stem(ledger_job)}.safetensors"

    def keep(self, release: KeptRelease) -> None:
        """Write ``release`` durably (temporary file, fsync, rename), replacing the round before."""
        data = safetensors_save(
            {"delta": np.ascontiguousarray(release.delta, dtype=np.float32)},
            metadata={
                "round": str(release.round),
                "model_digest": release.model_digest,
                "weight": str(release.weight),
                "l2_norm": repr(release.l2_norm),
                "mechanism": mechanism_json(release.mechanism).decode(),
                "epsilon_round": repr(release.epsilon_round),
            },
        )
        _write_durably(self.path, data)

    def kept(self, round_number: int, model_digest: str) -> KeptRelease | None:
        """The kept release of ``round_number`` trained from ``model_digest``; None if there is none.

        A file that cannot be read is treated as no release (the round stays withheld): it
        is only ever the silo's own, and withholding is the safe answer.
        """
        try:
            data = self.path.read_bytes()
            header = _metadata(data)
            if int(header["round"]) != round_number or header["model_digest"] != model_digest:
                return None
            delta = safetensors_load(data)["delta"]
            return KeptRelease(
                round=round_number,
                model_digest=model_digest,
                delta=delta.astype(np.float32),
                weight=int(header["weight"]),
                l2_norm=float(header["l2_norm"]),
                mechanism=mechanism_from_json(header["mechanism"]),
                epsilon_round=float(header["epsilon_round"]),
            )
        except (OSError, KeyError, ValueError, SafetensorError):
            return None


class StatisticsReleases:
    """The noised totals of one job run's statistics phase, one file per pass, beside the silo's ledger.

    Unlike a round's kept release, a file here that cannot be read is an error, not "no
    release": the pass was released, and drawing it again would be a second release.
    """

    def __init__(self, ledger: Path, ledger_job: str) -> None:
        self._folder = _releases_folder(ledger)
        self._stem = _run_stem(ledger_job)

    def _path(self, phase: str) -> Path:
        return self._folder / f"{self._stem}-statistics-{phase}.safetensors"

    def released(self, phase: str) -> tuple[str, npt.NDArray[np.float64]] | None:
        """The public inputs' digest and the noised totals kept for ``phase``; None if it was not released."""
        path = self._path(phase)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            inputs = _metadata(data)["inputs"]
            totals = safetensors_load(data)["totals"]
        except (KeyError, ValueError, SafetensorError) as error:
            raise StatisticsError(
                f"{path}: the kept statistics release cannot be read ({error}); it was released, so it "
                "is not drawn again. Run the job again as a new run."
            ) from error
        return inputs, totals.astype(np.float64)

    def keep(self, phase: str, inputs: str, vector: npt.NDArray[np.float64]) -> None:
        """Write ``vector`` for ``phase`` durably, before it is masked and sent."""
        data = safetensors_save({"totals": np.ascontiguousarray(vector, dtype=np.float64)}, metadata={"inputs": inputs})
        _write_durably(self._path(phase), data)


def _releases_folder(ledger: Path) -> Path:
    return Path(f"{ledger}.releases")


def _run_stem(ledger_job: str) -> str:
    """A file name for the run (its name may hold any character the job's does)."""
    return sha256_digest(ledger_job.encode())[7:39]


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) so that a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's string metadata (read strictly: ``ValueError`` on anything odd)."""
    length = int.from_bytes(data[:8], "little")
    if len(data) < 8 or length > len(data) - 8:
        raise ValueError("not a safetensors file")
    header = strict_json(data[8 : 8 + length], what="kept release header")
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("the kept release carries no metadata")
    return dict(metadata)
