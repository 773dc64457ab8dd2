"""No single party can decrypt: the hub's state plus any one silo's share yields noise; all shares yield the sum."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as seal

from fedsilo.he import EncryptedSum, decode_with, decryption_share, encrypt_update, fuse, load_chunk

from .conftest import SILOS, Federation

LENGTH = 3000


@pytest.fixture(scope="module")
def encrypted(federation: Federation) -> tuple[np.ndarray, list[bytes]]:
    """One silo's update, encrypted and summed alone: the hardest case, the sum is that update."""
    update = np.random.default_rng(7).uniform(-1.0, 1.0, LENGTH)
    total = EncryptedSum(federation.params, federation.params.chunks(LENGTH))
    total.add(encrypt_update(federation.params, federation.key, update))
    return update, total.chunks()


@pytest.mark.parametrize("silo", SILOS)
def test_the_hub_with_one_silos_share_decrypts_only_noise(
    federation: Federation, encrypted: tuple[np.ndarray, list[bytes]], silo: str
) -> None:
    update, chunks = encrypted
    params = federation.params
    encoder = seal.CKKSEncoder(params.context)
    decoded = []
    for data in chunks:
        # Everything the hub holds (the summed chunk) decrypted with everything one silo holds.
        plain = federation.shares[silo].decrypt_alone(load_chunk(params, data))
        decoded.append(np.asarray(encoder.decode_double(plain)))
    guess = np.concatenate(decoded)[:LENGTH]
    # Noise of the size of q / scale, uncorrelated with the update.
    assert np.median(np.abs(guess - update)) > 1e3
    assert abs(np.corrcoef(guess, update)[0, 1]) < 0.1


@pytest.mark.parametrize("missing", SILOS)
def test_fusing_without_one_silos_decryption_share_yields_noise(
    federation: Federation, encrypted: tuple[np.ndarray, list[bytes]], missing: str
) -> None:
    update, chunks = encrypted
    shares = {s: decryption_share(federation.shares[s], chunks) for s in SILOS if s != missing}
    guess = fuse(federation.params, chunks, shares, LENGTH)
    assert np.median(np.abs(guess - update)) > 1e3


def test_every_silos_share_together_decrypt_the_sum(
    federation: Federation, encrypted: tuple[np.ndarray, list[bytes]]
) -> None:
    update, chunks = encrypted
    decoded = decode_with(federation.params, federation.shares.values(), chunks, LENGTH)
    assert np.max(np.abs(decoded - update)) <= federation.params.error_bound(len(SILOS))
