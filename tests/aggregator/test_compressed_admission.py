"""A compressed round: the hub publishes one level and one shared subset, admits the update that
follows them, and the policy denies, with its own reason, one sent on other coordinates or at
another level; each decision's audit record carries the round's compression."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.compression import coordinates, plain_payload
from fedsilo.identity import sha256_digest
from fedsilo.protocol import RoundCompression, RoundPlan, pb, plan_from_proto, update_stream, verdict_from_proto

from .conftest import LENGTH, Silo, running_hub


def _open(silos: dict[str, Silo]) -> RoundPlan:
    for silo in silos.values():
        silo.join()
    waits = [
        s.stub.WaitRound.future(pb.WaitRoundRequest(job="admission", silo=s.name, after_round=0))
        for s in silos.values()
    ]
    plans = [plan_from_proto(w.result(timeout=30)) for w in waits]
    assert all(p == plans[0] for p in plans)
    return plans[0]


def _send(silo: Silo, settings: RoundCompression | None, claimed: RoundCompression | None, update: np.ndarray):
    data = plain_payload(update, None, 100, settings, np.random.default_rng(0)).data if settings else None
    assert data is not None
    metadata = silo.metadata(
        np.zeros(LENGTH, np.float32),
        l2_norm=float(np.linalg.norm(update)),
        dtype="uint8",
        payload_digest=sha256_digest(data.tobytes()),
        compression=claimed,
    )
    signed = metadata.canonical_bytes()
    stream = update_stream(signed, silo.key.sign(signed), [(0, data)], "uint8")
    return verdict_from_proto(silo.stub.SubmitUpdate(stream))


def test_only_the_rounds_subset_and_level_are_admitted(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], compression={"bits": 8, "subset": 0.4}) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        plan = _open(hub.silos)
        published = plan.compression
        assert published is not None and published.bits == 8 and published.subset_size == 6
        update = np.linspace(-0.5, 0.5, LENGTH - 1)

        honest = _send(a, published, published, update)
        assert honest.accepted, honest.reasons

        elsewhere = published.model_copy(update={"subset_seed": published.subset_seed ^ 1})
        other = coordinates(elsewhere, LENGTH - 1)
        assert other is not None and not np.array_equal(other, coordinates(published, LENGTH - 1))
        wrong_subset = _send(b, elsewhere, elsewhere, update)
        assert not wrong_subset.accepted
        assert wrong_subset.reasons[0].startswith("subset_mismatch: the update sends the coordinates of subset")

        coarser = published.model_copy(update={"bits": 4, "word_bits": 4})
        wrong_level = _send(c, coarser, coarser, update)
        assert not wrong_level.accepted
        assert wrong_level.reasons[0].startswith("compression_mismatch: the update is compressed with 4 bits")

        summary = hub.first_summary()
        assert summary.accepted == ("a",)
        assert summary.compression == published and "fixed by spec.compression" in summary.compression_reason
        records = hub.records()
        assert {r["silo"]: r["decision"] for r in records} == {"a": "allow", "b": "deny", "c": "deny"}
        facts = {"bits": 8, "word_bits": 8, "subset_size": 6, "top_k": 0}
        assert all(r["input"]["job"]["compression"] == facts for r in records)


def test_an_uncompressed_update_in_a_compressed_round_is_denied(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a"], compression={"bits": 8}) as hub:
        a = hub.silos["a"]
        _open(hub.silos)
        payload = np.full(LENGTH, 10.0, np.float32)
        payload[-1] = 100
        verdict = a.submit(a.metadata(payload), payload)
        assert not verdict.accepted
        assert verdict.reasons[0].startswith("compression_mismatch: the update is compressed with no compression")


def test_a_compressed_payload_of_the_wrong_size_is_invalid(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a"], compression={"topK": 0.2}) as hub:
        a = hub.silos["a"]
        published = _open(hub.silos).compression
        assert published is not None and published.top_k == 3 and published.bits == 0
        data = plain_payload(np.ones(LENGTH - 1), None, 100, published, np.random.default_rng(0)).data[:-1]
        metadata = a.metadata(
            np.zeros(LENGTH, np.float32),
            dtype="uint8",
            payload_digest=sha256_digest(data.tobytes()),
            compression=published,
        )
        signed = metadata.canonical_bytes()
        verdict = verdict_from_proto(
            a.stub.SubmitUpdate(update_stream(signed, a.key.sign(signed), [(0, data)], "uint8"))
        )
        assert not verdict.accepted and verdict.reasons[0].startswith("payload_invalid")
