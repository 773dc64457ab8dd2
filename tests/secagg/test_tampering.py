"""Tampered or forged protocol messages are refused, each with its own error and reason.

The relay of ``run_local_round`` plays a network attacker (or a malicious hub) that changes
one message; the round goes on without the silo that refused, as a real one would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsilo.api import SiloName
from fedsilo.secagg import (
    Confirmations,
    Dropout,
    DropPoint,
    EncryptedShare,
    KeyAdvertisement,
    KeyBroadcast,
    MalformedMessage,
    MaskedChunk,
    PayloadRejected,
    ProtectedSecretRequest,
    ProtocolStateError,
    ReconstructionFailed,
    RevealedShare,
    SecAggAbort,
    Share,
    ShareDelivery,
    ShareRejected,
    SignatureRejected,
    SurvivorConfirmation,
    UnmaskRequest,
    UnmaskResponse,
    run_local_round,
)

from .conftest import expected_sum, make_config, random_inputs

CONFIG = make_config(5, 3, 50)
A, B, C, D, E = CONFIG.silos


def _flip(data: bytes, position: int = -1) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 1
    return bytes(flipped)


def _run(relay, config=CONFIG, **kwargs):
    inputs = random_inputs(config, np.random.default_rng(7))
    return run_local_round(config, inputs, relay=relay, **kwargs), inputs


def _when(message: str, silo: SiloName, upstream: bool, change):
    def relay(hop, data):
        if hop.message == message and hop.silo == silo and hop.upstream == upstream:
            return change(data)
        return data

    return relay


def test_an_advertisement_tampered_on_its_way_to_the_hub_is_refused_and_its_silo_left_out() -> None:
    def change(data):
        advert = KeyAdvertisement.from_bytes(data)
        return dataclasses.replace(advert, masking_key=_flip(advert.masking_key)).to_bytes()

    outcome, inputs = _run(_when("KeyAdvertisement", C, True, change))
    error = outcome.refusals[C]
    assert isinstance(error, SignatureRejected)
    assert error.reason == f"advertise keys: {C}'s advertisement is not signed by its registered key"
    assert outcome.result.dropped[C] == error.reason
    np.testing.assert_array_equal(outcome.result.encoded_sum, expected_sum(CONFIG, inputs, {A, B, D, E}))


def test_an_advertisement_tampered_by_the_hub_is_refused_by_the_silo_that_receives_it() -> None:
    def change(data):
        broadcast = KeyBroadcast.from_bytes(data)
        adverts = list(broadcast.adverts)
        adverts[1] = dataclasses.replace(adverts[1], encryption_key=_flip(adverts[1].encryption_key))
        return KeyBroadcast(tuple(adverts)).to_bytes()

    outcome, _ = _run(_when("KeyBroadcast", A, False, change))
    error = outcome.refusals[A]
    assert isinstance(error, SignatureRejected)
    assert error.reason == f"share keys: the key advertisement of {B} is not signed by its registered key"
    assert A not in outcome.result.survivors


def test_a_tampered_share_ciphertext_fails_authentication() -> None:
    def change(data):
        delivery = ShareDelivery.from_bytes(data)
        shares = [
            dataclasses.replace(s, ciphertext=_flip(s.ciphertext, 20)) if s.sender == B else s for s in delivery.shares
        ]
        return ShareDelivery(delivery.receiver, tuple(shares)).to_bytes()

    outcome, _ = _run(_when("ShareDelivery", A, False, change))
    error = outcome.refusals[A]
    assert isinstance(error, ShareRejected)
    assert f"the share ciphertext from {B} failed authentication" in error.reason


def test_a_share_relabelled_as_from_another_peer_fails_authentication() -> None:
    def change(data):
        delivery = ShareDelivery.from_bytes(data)
        by_sender = {s.sender: s for s in delivery.shares}
        swapped = dict(by_sender)
        swapped[B] = EncryptedShare(B, A, by_sender[C].ciphertext)
        swapped[C] = EncryptedShare(C, A, by_sender[B].ciphertext)
        return ShareDelivery(A, tuple(swapped[s] for s in sorted(swapped))).to_bytes()

    outcome, _ = _run(_when("ShareDelivery", A, False, change))
    assert isinstance(outcome.refusals[A], ShareRejected)
    assert "failed authentication" in outcome.refusals[A].reason


def test_a_tampered_masked_chunk_is_caught_by_the_payload_digest_and_subtracted_again() -> None:
    seen = {"count": 0}

    def change(data):
        seen["count"] += 1
        return _flip(data) if seen["count"] == 2 else data

    outcome, inputs = _run(_when("MaskedChunk", B, True, change))
    error = outcome.refusals[B]
    assert isinstance(error, PayloadRejected)
    assert f"{B}'s payload digest sha256:" in error.reason and "the masked payload was altered" in error.reason
    assert outcome.result.survivors == {A, C, D, E}
    np.testing.assert_array_equal(outcome.result.encoded_sum, expected_sum(CONFIG, inputs, {A, C, D, E}))


def test_a_chunk_out_of_order_leaves_the_silo_out() -> None:
    def change(data):
        chunk = MaskedChunk.from_bytes(data)
        return MaskedChunk(chunk.silo, chunk.offset + 16, chunk.words).to_bytes() if chunk.offset == 16 else data

    outcome, inputs = _run(_when("MaskedChunk", D, True, change))
    assert isinstance(outcome.refusals[D], PayloadRejected)
    assert "sent a chunk at word 32, expected 16" in outcome.refusals[D].reason
    np.testing.assert_array_equal(outcome.result.encoded_sum, expected_sum(CONFIG, inputs, {A, B, C, E}))


def test_a_silo_refuses_to_reveal_both_shares_of_one_silo() -> None:
    def change(data):
        request = UnmaskRequest.from_bytes(data)
        return UnmaskRequest(request.survivors, (B,)).to_bytes()

    outcome, _ = _run(_when("UnmaskRequest", A, False, change))
    error = outcome.refusals[A]
    assert isinstance(error, ProtectedSecretRequest)
    assert f"both the seed share and the masking-key share of {B}" in error.reason


def test_a_hub_that_asks_every_silo_for_both_shares_gets_nothing_and_the_round_aborts() -> None:
    def relay(hop, data):
        if hop.message == "UnmaskRequest":
            request = UnmaskRequest.from_bytes(data)
            return UnmaskRequest(request.survivors, (C,)).to_bytes()
        return data

    inputs = random_inputs(CONFIG, np.random.default_rng(8))
    with pytest.raises(SecAggAbort, match="only 0 survivors confirmed"):
        run_local_round(CONFIG, inputs, relay=relay)


def test_a_silo_that_saw_another_survivor_set_is_caught_by_the_consistency_check(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    request = five.server.unmask_request()
    # A malicious hub shows silo A a survivor set without E, hoping to get E's masking key from A.
    forged = UnmaskRequest(tuple(s for s in request.survivors if s != E), (E,))
    with pytest.raises(SignatureRejected, match="not its signature on the survivor set"):
        five.server.receive_confirmation(A, five.clients[A].confirm(forged))
    honest = [five.clients[s].confirm(request) for s in (B, C, D)]
    # Shown a "confirmation" that is not a survivor's signature on the set B signed, B reveals nothing.
    with pytest.raises(SignatureRejected, match=f"{A} did not sign the survivor set this silo saw"):
        five.clients[B].unmask(Confirmations((SurvivorConfirmation(A, bytes(64)), *honest)))
    assert five.clients[C].unmask(Confirmations(tuple(honest))).silo == C


def test_too_few_confirmations_make_a_silo_refuse_to_reveal(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    request = five.server.unmask_request()
    confirmations = [five.clients[s].confirm(request) for s in (A, B)]
    with pytest.raises(SecAggAbort, match="only 2 survivors confirmed the survivor set; the threshold is 3"):
        five.clients[A].unmask(Confirmations(tuple(confirmations)))


def test_a_revealed_share_at_another_silos_point_is_refused() -> None:
    def change(data):
        response = UnmaskResponse.from_bytes(data)
        moved = tuple(RevealedShare(r.owner, Share(r.share.x % 5 + 1, r.share.y)) for r in response.seed_shares)
        return UnmaskResponse(response.silo, moved, response.key_shares).to_bytes()

    outcome, _ = _run(_when("UnmaskResponse", A, True, change))
    error = outcome.refusals[A]
    assert isinstance(error, ShareRejected)
    assert "(a share from the wrong peer)" in error.reason


def _corrupt_first_seed_share(data: bytes) -> bytes:
    response = UnmaskResponse.from_bytes(data)
    first, *rest = response.seed_shares
    wrong = RevealedShare(first.owner, Share(first.share.x, (first.share.y + 1) % 2**521))
    return UnmaskResponse(response.silo, (wrong, *rest), response.key_shares).to_bytes()


def test_a_wrong_share_among_more_than_t_is_detected() -> None:
    with pytest.raises(ReconstructionFailed, match=r"shares of .* self-mask seed disagree"):
        _run(_when("UnmaskResponse", A, True, _corrupt_first_seed_share))


def test_a_wrong_share_among_exactly_t_rebuilds_a_seed_its_owner_never_committed_to() -> None:
    dropouts = {D: Dropout(DropPoint.AFTER_CONFIRM), E: Dropout(DropPoint.AFTER_CONFIRM)}
    with pytest.raises(ReconstructionFailed, match="rebuild a value it did not commit to"):
        _run(_when("UnmaskResponse", A, True, _corrupt_first_seed_share), dropouts=dropouts)


def test_a_wrong_masking_key_share_rebuilds_a_key_that_was_never_advertised() -> None:
    def change(data):
        response = UnmaskResponse.from_bytes(data)
        first, *rest = response.key_shares
        wrong = RevealedShare(first.owner, Share(first.share.x, (first.share.y + 1) % 2**521))
        return UnmaskResponse(response.silo, response.seed_shares, (wrong, *rest)).to_bytes()

    dropouts = {D: Dropout(DropPoint.AFTER_SHARE_KEYS), E: Dropout(DropPoint.AFTER_CONFIRM)}
    with pytest.raises(ReconstructionFailed, match="rebuild a key other than the one it advertised"):
        _run(_when("UnmaskResponse", A, True, change), dropouts=dropouts)


def test_a_truncated_message_is_malformed_and_its_sender_left_out() -> None:
    outcome, _ = _run(_when("ShareKeys", C, True, lambda data: data[:-3]))
    assert isinstance(outcome.refusals[C], MalformedMessage)
    assert "truncated" in outcome.refusals[C].reason
    assert outcome.result.dropped[C] == "share keys: sent no valid shares in time"


def test_an_advertisement_sent_twice_or_by_another_silo_is_refused(five) -> None:
    advert = five.clients[A].advertise()
    five.server.receive_advertise(A, advert)
    with pytest.raises(ProtocolStateError, match=f"{A} already advertised its keys"):
        five.server.receive_advertise(A, advert)
    with pytest.raises(SignatureRejected, match=f"{B} sent an advertisement of {A}"):
        five.server.receive_advertise(B, advert)
    assert five.server.excluded == {B: f"advertise keys: {B} sent an advertisement of {A}"}
