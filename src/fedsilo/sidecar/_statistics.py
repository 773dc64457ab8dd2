"""A silo's part in the statistics phase over the aggregator's gRPC service: totals made here, sent masked and signed.

``take_part`` runs one silo through the phase (``fedsilo.statistics.StatisticsSilo`` does the
arithmetic): it charges the silo's own ledger or declines (``decline``), joins with signed
claims, and per pass advertises keys, exchanges sealed shares, masks its totals with the
same ``SecAggClient`` that masks updates, uploads the masked words with signed claims
(their length and digest), and reveals what the hub asks for. The records and the
unmasked totals never leave this function's silo; the hub gets adverts, sealed shares,
masked words and Shamir shares. Called per silo by ``fedsilo.runner`` (``fedsilo stats``
and the statistics phase of ``fedsilo run``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.identity import SigningKey, VerifyKey
from fedsilo.protocol import (
    StatisticsClaims,
    StatisticsStep,
    masked_words_digest,
    round_ref,
    rpc,
    secagg_envelope,
    signed_metadata,
    statistics_step_from_proto,
    update_stream,
)
from fedsilo.secagg import CHUNK_WORDS
from fedsilo.statistics import PASSES, StatisticsSilo

log = logging.getLogger("fedsilo.sidecar")

# The join, then four steps (advertise, share, submit, unmask) per pass: how many step
# timeouts a declined silo's join may wait for the phase to end.
DECLINED_WAIT_STEPS = 1 + 4 * len(PASSES)


def _signed(claims: StatisticsClaims, key: SigningKey) -> tuple[bytes, bytes]:
    body = claims.canonical_bytes()
    return body, key.sign(body)


def _chunks(words: npt.NDArray[np.uint32]) -> Iterator[tuple[int, npt.NDArray[np.uint32]]]:
    for offset in range(0, words.size, CHUNK_WORDS):
        yield offset, words[offset : offset + CHUNK_WORDS]


def take_part(
    stub: rpc.AggregatorStub,
    member: StatisticsSilo,
    signing_key: SigningKey,
    peer_keys: Mapping[str, VerifyKey],
    *,
    timeout: float,
) -> StatisticsStep:
    """Run ``member`` through the phase; the hub's last word (finished with digests, or the failure).

    ``timeout`` bounds each call; a step waits at most the hub's step deadline. A silo that
    declines (below ``minCount``, or its ledger's ceiling) joins only to say so, with the reason.
    """
    plan = member.plan
    declined = member.decline()
    claims = StatisticsClaims(
        job=plan.job,
        silo=member.name,
        step="join",
        nonce=secrets.token_hex(16),
        features=member.features,
        declined=declined,
    )
    # A silo that declines hears back when the phase ended (the transform it trains with): every step's wait.
    wait = timeout if declined is None else timeout * DECLINED_WAIT_STEPS
    step = statistics_step_from_proto(stub.JoinStatistics(signed_metadata(*_signed(claims, signing_key)), timeout=wait))
    if declined is not None:
        log.info("statistics: %s takes no part (%s)", member.name, declined)
        return step
    while step.pass_number and not step.failure and member.name in step.participants:
        phase = PASSES[step.pass_number - 1]
        ref = round_ref(plan.job, step.pass_number, member.name)
        advert = member.join(plan.secagg_config(phase), peer_keys)
        member.client.receive_adverts(stub.StatisticsAdvertise(secagg_envelope(ref, advert), timeout=timeout).body)
        shares = stub.StatisticsShare(secagg_envelope(ref, member.client.share_keys()), timeout=timeout)
        member.client.receive_shares(shares.body)
        words = member.masked(member.moments() if step.pass_number == 1 else member.histogram(step.range_map()))
        claims = StatisticsClaims(
            job=plan.job,
            silo=member.name,
            step="moments" if step.pass_number == 1 else "histogram",
            nonce=secrets.token_hex(16),
            vector_length=int(words.size),
            payload_digest=masked_words_digest(words),
        )
        verdict = stub.SubmitStatistics(
            update_stream(*_signed(claims, signing_key), _chunks(words), "uint32"), timeout=timeout
        )
        if not verdict.accepted:
            # A refused silo is not a survivor: it is asked for nothing more, and its masks are removed.
            return StatisticsStep(
                pass_number=0, failure=f"{member.name}'s {phase} totals were refused: {'; '.join(verdict.reasons)}"
            )
        request = stub.GetStatisticsUnmaskRequest(ref, timeout=timeout)
        answer = member.client.unmask(request.body)
        step = statistics_step_from_proto(stub.StatisticsUnmask(secagg_envelope(ref, answer), timeout=timeout))
    return step
