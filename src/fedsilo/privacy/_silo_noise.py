"""Silo-level distributed DP: each sidecar adds its share of Gaussian noise to its clipped update.

In silo mode the protected unit is a silo's whole contribution to a round: the sidecar
clips the update to the job's norm cap C, then adds the noise from here before masking.
The hub only ever sees the masked *sum* of at least ``minSilos`` updates, so no single
silo needs to add the full noise: each adds std sigma*C/sqrt(minSilos), and because
independent Gaussian variances add up, the sum over n >= minSilos silos carries noise of
std sigma*C*sqrt(n/minSilos) >= sigma*C. Releasing that sum is the Gaussian mechanism with
sensitivity C and noise multiplier sigma, which one ``GaussianEvent`` per round charges.

Trust assumption, stated plainly: the guarantee holds against the hub and anyone who
sees only the aggregate, provided the silos in the sum are honest about their noise.
A silo that skips its share, or a coalition of k silos that learns the sum and subtracts
the noise it added itself, faces only std sigma*C*sqrt((n-k)/minSilos) from the others;
with n = minSilos that is below the configured sigma*C. Silos that distrust each other
should raise the job's minSilos above the quorum they actually need, or use record mode.
The noise is float64 from numpy's PCG64 seeded with 128 bits from ``secrets``: the
floating-point Gaussian sampling every mainstream DP library uses, which does not defend
against attacks on the low-order bits of floats (Mironov 2012).
"""

from __future__ import annotations

import math
import secrets

import numpy as np
from numpy.typing import ArrayLike, NDArray


def silo_noise_std(noise_multiplier: float, norm_cap: float, min_silos: int) -> float:
    """The std each silo adds so that any sum of ``min_silos`` or more updates has std >= sigma * C."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a positive finite number, not {noise_multiplier!r}")
    if not (math.isfinite(norm_cap) and norm_cap > 0):
        raise ValueError(f"norm_cap must be a positive finite number, not {norm_cap!r}")
    if isinstance(min_silos, bool) or not isinstance(min_silos, int) or min_silos < 1:
        raise ValueError(f"min_silos must be a positive integer, not {min_silos!r}")
    return noise_multiplier * norm_cap / math.sqrt(min_silos)


def noise_generator() -> np.random.Generator:
    """A generator for production noise, seeded from the operating system's CSPRNG."""
    return np.random.default_rng(secrets.randbits(128))


def add_silo_noise(vector: ArrayLike, std: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """``vector`` (already clipped) plus independent N(0, std^2) noise on every coordinate, as float64.

    Tests pass a seeded ``rng``; the sidecar passes ``noise_generator()``.
    """
    # Zero noise would be a silent no-op; a job without noise has privacy mode none instead.
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite number, not {std!r}")
    values = np.asarray(vector, dtype=np.float64)
    return values + rng.normal(0.0, std, size=values.shape)
