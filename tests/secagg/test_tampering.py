"""Tampered protocol messages are rejected, each with its own reason."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from fedsilo.secagg import SecAggError


def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_a_tampered_key_advertisement_is_left_out_by_the_hub(five) -> None:
    posted = {s: five.clients[s].advertise() for s in "abcde"}
    document = json.loads(posted["c"])
    document["advert"]["masking_key"] = _flip_b64(document["advert"]["masking_key"])
    posted["c"] = json.dumps(document).encode()
    replies = five.server.advertise(posted)
    assert "c" not in replies
    assert "not signed by" in five.server.excluded["c"] or "signature" in five.server.excluded["c"]


def test_a_tampered_advertisement_relayed_by_the_hub_is_refused_by_silos(five) -> None:
    replies = five.server.advertise({s: five.clients[s].advertise() for s in "abcde"})
    document = json.loads(replies["a"])
    document["adverts"][1]["encryption_key"] = _flip_b64(document["adverts"][1]["encryption_key"])
    with pytest.raises(SecAggError, match="advertisement of b is not signed by its registered key"):
        five.clients["a"].receive_adverts(json.dumps(document).encode())


def test_a_tampered_share_ciphertext_is_detected_at_unmasking(five) -> None:
    five.advertise(list("abcde"))
    replies = five.server.share_keys({s: five.clients[s].share_keys() for s in "abcde"})
    document = json.loads(replies["a"])
    document["ciphertexts"]["b"] = _flip_b64(document["ciphertexts"]["b"])
    five.clients["a"].receive_shares(json.dumps(document).encode())
    for silo in "bcde":
        five.clients[silo].receive_shares(replies[silo])
    five.mask(list("abcde"), np.random.default_rng(5))
    five.send(list("abcde"))
    request = five.server.unmask_request()
    with pytest.raises(SecAggError, match="share ciphertext from b failed authentication"):
        five.clients["a"].unmask(request)


def test_an_input_from_a_silo_that_shared_no_keys_is_refused(five) -> None:
    five.advertise(list("abcde"))
    five.share(list("abcd"))
    with pytest.raises(SecAggError, match="did not share keys"):
        five.server.add_input("e", np.zeros(five.config.vector_length, np.uint32))


def test_a_silo_answers_only_one_unmask_request(five) -> None:
    five.advertise(list("abcde"))
    five.share(list("abcde"))
    five.mask(list("abcde"), np.random.default_rng(6))
    five.send(list("abcde"))
    request = five.server.unmask_request()
    five.clients["a"].unmask(request)
    with pytest.raises(SecAggError, match="already answered"):
        five.clients["a"].unmask(request)
