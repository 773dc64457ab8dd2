"""Shared keys for the homomorphic tests: one ceremony of three silos, its joint key and signing keys."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from fedsilo.he import HEParameters, JointKey, KeyCeremony, KeyShare, sign_key_share, verified_joint_key
from fedsilo.identity import SigningKey, VerifyKey

JOB = "he-job"
SILOS = ("hospital-a", "hospital-b", "hospital-c")


@dataclass
class Federation:
    """Three silos after a completed ceremony: their key shares, identities and the joint key."""

    params: HEParameters
    seed: bytes
    shares: dict[str, KeyShare]
    signing: dict[str, SigningKey]
    verify: dict[str, VerifyKey]
    key: JointKey


def run_ceremony(params: HEParameters, silos: tuple[str, ...] = SILOS) -> Federation:
    """A whole ceremony as the hub relays it and each silo checks it."""
    seed = os.urandom(32)
    signing = {silo: SigningKey.generate() for silo in silos}
    verify = {silo: key.public_key for silo, key in signing.items()}
    shares = {silo: KeyShare(params, seed) for silo in silos}
    ceremony = KeyCeremony(params, JOB, seed, verify)
    for silo in silos:
        ceremony.submit(sign_key_share(signing[silo], JOB, silo, seed, shares[silo].public_share), silo)
    keys = {silo: verified_joint_key(params, JOB, seed, ceremony.transcript(), verify) for silo in silos}
    assert len({key.key_id for key in keys.values()}) == 1
    return Federation(params, seed, shares, signing, verify, keys[silos[0]])


@pytest.fixture(scope="session")
def federation() -> Federation:
    return run_ceremony(HEParameters())
