"""Where a running hub learns of suspensions and rotated keys: the job manifest, re-read at round boundaries.

``fedsilo aggregator`` reads the manifest the operator mounts from the job's ConfigMap (the
operator re-renders it when a Silo's ``spec.suspended`` or public key changes, and the
kubelet updates the mounted file in place); ``fedsilo run`` reads the manifest the user ran,
so editing a Silo's ``spec.suspended`` in it between rounds suspends or readmits that silo.
Only the named silos' standing is taken from the file: the job itself is fixed when the
run starts, and a file that no longer validates leaves the standing as it was (the
coordinator logs why).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fedsilo.aggregator import SiloStanding, StandingSource
from fedsilo.api import load_manifest
from fedsilo.identity import VerifyKey


def manifest_standing(path: Path, job: str, fixed_keys: Mapping[str, VerifyKey] | None = None) -> StandingSource:
    """A source that reads each silo's standing from the manifest at ``path`` of job ``job``.

    ``fixed_keys``: the local run's keys, made per run and not in the user's manifest; the
    file then gives only the suspensions. Without it every silo's key is its
    ``spec.identity.publicKey`` there.
    """

    def read() -> dict[str, SiloStanding]:
        manifest = load_manifest(path)  # ManifestError lists every problem of the file
        if manifest.job.metadata.name != job:
            raise ValueError(f"{path} now holds job {manifest.job.metadata.name!r}, not {job!r}")
        standing = {}
        for silo in manifest.silos:
            name = silo.metadata.name
            registered = silo.spec.identity.public_key
            if fixed_keys is not None:
                key = fixed_keys[name]
            elif registered:
                key = VerifyKey.from_base64(registered)
            else:
                raise ValueError(f"{path}: Silo/{name} has no spec.identity.publicKey")
            suspended = silo.spec.suspended
            standing[name] = SiloStanding(key, suspended.reason if suspended is not None else None)
        return standing

    return read
