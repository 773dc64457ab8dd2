"""Homomorphic aggregation, 10 silos, 1M float32 parameters: every step's cost, its size on the
wire, its precision; a whole round beside masked and plain rounds; and TenSEAL's single-key CKKS
on the same vectors, the baseline (OpenFHE, the other candidate, is tried and its outcome shown).

    .venv/bin/python benchmarks/bench_homomorphic.py [--rounds-too]

Targets: encryption per silo at most 1.5 s on one core; ciphertext bytes at most 15x float32.
``--rounds-too`` adds the whole-round comparison over the real mTLS service (minutes).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _harness import measure_in_child, print_figures

from fedsilo.he import (
    EncryptedSum,
    HEParameters,
    JointKey,
    KeyShare,
    decryption_share,
    encrypt_update,
    fuse,
    round_seed,
)

ELEMENTS = 1_000_000
SILOS = 10


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this process (SEAL and TenSEAL run on one thread here): what one core spends,
    which a shared machine's load does not inflate as it does wall time."""
    start = time.process_time()
    result = action()
    return time.process_time() - start, result


def _updates() -> list[np.ndarray]:
    """Each silo's weighted update [w * clipped update..., w], w its records (as a sidecar encrypts it)."""
    rng = np.random.default_rng(0)
    records = rng.integers(500, 5000, SILOS)
    out = []
    for weight in records:
        update = rng.uniform(-0.05, 0.05, ELEMENTS).astype(np.float32)
        out.append(np.concatenate([update.astype(np.float64) * weight, [float(weight)]]))
    return out


def fedsilo_he(updates: list[np.ndarray]) -> dict[str, Any]:
    params = HEParameters()
    seed = round_seed("bench", 1, "sha256:" + "0" * 64)
    shares = {f"silo-{i:02d}": KeyShare(params, seed) for i in range(SILOS)}
    key = JointKey(params, seed, {name: share.public_share for name, share in shares.items()})
    encrypt_s, chunks = [], []
    for update in updates:
        seconds, encrypted = _timed(functools.partial(encrypt_update, params, key, update))
        encrypt_s.append(seconds)
        chunks.append(encrypted)
    total = EncryptedSum(params, params.chunks(ELEMENTS + 1))

    def add_all() -> None:
        for update_chunks in chunks:
            total.add(update_chunks)

    add_s, _ = _timed(add_all)
    summed = total.chunks()
    partial_s, partials = [], {}
    for name, share in shares.items():
        seconds, partials[name] = _timed(functools.partial(decryption_share, share, summed))
        partial_s.append(seconds)
    fuse_s, decoded = _timed(lambda: fuse(params, summed, partials, ELEMENTS + 1))
    plain_sum = np.sum(updates, axis=0)
    mean_error = np.abs(decoded[:-1] / decoded[-1] - plain_sum[:-1] / plain_sum[-1])
    cipher_bytes = sum(len(c) for c in chunks[0])
    return {
        "library": "fedsilo.he (SEAL via TenSEAL sealapi, multiparty n-of-n)",
        "poly_modulus_degree": params.poly_modulus_degree,
        "log2_q": params.modulus_bits,
        "scale_bits": params.scale_bits,
        "encrypt_per_silo_cpu_s": float(np.median(encrypt_s)),
        "ciphertext_bytes_per_silo": cipher_bytes,
        "bytes_vs_float32": cipher_bytes / (ELEMENTS * 4),
        "hub_add_10_cpu_s": add_s,
        "decryption_share_per_silo_cpu_s": float(np.median(partial_s)),
        "decryption_share_bytes": sum(len(p) for p in partials["silo-00"]),
        "fusion_cpu_s": fuse_s,
        "mean_max_abs_error": float(mean_error.max()),
        "mean_rms_error": float(np.sqrt(np.mean(mean_error**2))),
        "error_bound_of_the_mean": params.error_bound(SILOS) / float(plain_sum[-1]),
    }


def tenseal_single_key(updates: list[np.ndarray]) -> dict[str, Any]:
    """The baseline: TenSEAL's own CKKS vectors (one key holder), same ring, scale and vectors."""
    import tenseal as ts

    params = HEParameters()
    # TenSEAL's contexts need key switching, so a special prime beside the 60-bit data prime.
    context = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree, coeff_mod_bit_sizes=[60, 49], n_threads=1)
    context.global_scale = params.scale
    slots = params.slots

    def encrypt(update: np.ndarray) -> list[bytes]:
        return [ts.ckks_vector(context, update[i : i + slots]).serialize() for i in range(0, update.size, slots)]

    encrypt_s, blobs = [], []
    for update in updates:
        seconds, encrypted = _timed(functools.partial(encrypt, update))
        encrypt_s.append(seconds)
        blobs.append(encrypted)

    def add() -> list[Any]:
        sums = [ts.ckks_vector_from(context, b) for b in blobs[0]]
        for silo in blobs[1:]:
            for total, blob in zip(sums, silo, strict=True):
                total += ts.ckks_vector_from(context, blob)
        return sums

    add_s, sums = _timed(add)
    decrypt_s, decoded = _timed(lambda: np.concatenate([np.asarray(v.decrypt()) for v in sums])[: ELEMENTS + 1])
    plain_sum = np.sum(updates, axis=0)
    mean_error = np.abs(decoded[:-1] / decoded[-1] - plain_sum[:-1] / plain_sum[-1])
    cipher_bytes = sum(len(b) for b in blobs[0])
    return {
        "library": f"TenSEAL {ts.__version__} (single key: its holder decrypts every update)",
        "encrypt_per_silo_cpu_s": float(np.median(encrypt_s)),
        "ciphertext_bytes_per_silo": cipher_bytes,
        "bytes_vs_float32": cipher_bytes / (ELEMENTS * 4),
        "hub_add_10_cpu_s": add_s,
        "decrypt_cpu_s": decrypt_s,
        "mean_max_abs_error": float(mean_error.max()),
    }


def openfhe_outcome() -> dict[str, Any]:
    """Whether the OpenFHE wheel imports here; its multiparty CKKS is measured only if it does."""
    try:
        import openfhe  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError as error:
        return {"library": "openfhe (PyPI wheel)", "outcome": f"cannot import: {error}"}
    return {"library": "openfhe (PyPI wheel)", "outcome": "imports; not measured by this script"}


def rounds_side_by_side(parameters: int = ELEMENTS) -> None:
    """A whole round of each mode over the real mTLS service, 10 silos (wall time)."""
    modes = ("plain", "masked", "homomorphic")
    rounds = {mode: measure_in_child(SILOS, parameters, mode, rounds=2) for mode in modes}
    print_figures(
        f"a whole round over the mTLS service, 10 silos, {parameters} parameters (training excluded)",
        [
            {
                "mode": mode,
                "round_s": figures.median_seconds,
                "vs_plain": figures.median_seconds / rounds["plain"].median_seconds,
                "bytes_up_per_silo": int(figures.bytes_up_per_silo),
                "bytes_down_per_silo": int(figures.bytes_down_per_silo),
            }
            for mode, figures in rounds.items()
        ],
    )


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    updates = _updates()
    ours = fedsilo_he(updates)
    print_figures(
        "homomorphic aggregation, 10 silos, 1M float32 (targets: encrypt <= 1.5 s, bytes <= 15x)",
        [{**ours, "encrypt_target_cpu_s": 1.5, "bytes_target": 15.0}],
    )
    baseline = tenseal_single_key(updates)
    print_figures("the same vectors, TenSEAL single-key CKKS (baseline)", [baseline])
    print_figures("OpenFHE", [openfhe_outcome()])
    if "--rounds-too" in sys.argv:
        rounds_side_by_side()


if __name__ == "__main__":
    main()
