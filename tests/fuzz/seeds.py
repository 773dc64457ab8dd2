"""``python -m tests.fuzz.seeds``: write the hand-made seed inputs of every fuzz target.

Seeds are valid inputs (a real manifest, real signed messages, a real audit log and
ledger signed by a throwaway key whose public half is kept in ``seed-key.pub``) plus the
attacks the issues name (duplicate keys, NaN, depth, non-UTF-8, alias bombs), so the
fuzzer starts from both sides of every check. Inputs the fuzzer found are kept beside them
(``-merge=1`` into the same folders). Running this again replaces the seeds, not the finds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fedsilo.identity import SigningKey
from fedsilo.privacy import DpSgdEvent, GaussianEvent
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import EvaluationReport, UpdateMetadata, canonical_json
from fedsilo.secagg._messages import dump
from tests.audit.corpus import write_restarted_log

HERE = Path(__file__).parent
REPO = HERE.parent.parent

ATTACKS = [
    b'{"a":1,"a":2}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":1e999}',
    b"[" * 64 + b"]" * 64,
    b'{"a":"\xff"}',
    b'{"a":' + b"9" * 100 + b"}",
    b'{"a":true}',
    b"",
]


def _write(target: str, name: str, data: bytes) -> None:
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def _metadata() -> bytes:
    return UpdateMetadata(
        job="quickstart",
        round=3,
        silo="hospital-a",
        nonce="00" * 16,
        l2_norm=1.5,
        num_samples=1200,
        vector_length=16,
        dtype="float32",
        payload_digest="sha256:" + "ab" * 32,
        epsilon_round=0.21,
        fedsilo_version="0.1.0",
        architecture="sha256:" + "cd" * 32,
        mechanism=GaussianEvent(2.0, 1).to_json(),
    ).canonical_bytes()


def main() -> None:
    """Write every target's seeds, and the key the seed evidence files are signed with."""
    key = SigningKey.generate()
    (HERE / "seed-key.pub").write_text(key.public_key.to_base64() + "\n")
    for number, attack in enumerate(ATTACKS):
        for target in ("strict_json", "update_metadata", "evaluation_report", "signed_head", "trainer_link_header"):
            _write(target, f"attack-{number}", attack)
    _write("strict_json", "object", canonical_json({"a": [1, 2.5, "x", None, True, {"b": {}}]}))
    _write("update_metadata", "valid", _metadata())
    report = EvaluationReport(
        job="quickstart", round=3, silo="hospital-a", nonce="00" * 16, loss=0.4, accuracy=0.9, num_samples=1200
    )
    _write("evaluation_report", "valid", report.canonical_bytes())
    _write("trainer_link_header", "deep", b"[" * 100_000 + b"]" * 100_000)
    _write("trainer_link_header", "fit", canonical_json({"kind": "fit", "round": 1, "config": {"epochs": 1}}))
    _write("trainer_link_header", "result", canonical_json({"round": 1, "num_samples": 100, "metrics": {"loss": 0.5}}))
    _write(
        "secagg_messages",
        "advertise",
        b"\x00"
        + dump(
            "advertise", {"advert": {"silo": "a", "encryption_key": "AA==", "masking_key": "AA==", "signature": "AA=="}}
        ),
    )
    _write("secagg_messages", "shares", b"\x01" + dump("shares", {"silo": "a", "ciphertexts": {"b": "AAAA"}}))
    _write("secagg_messages", "reveal", b"\x02" + dump("reveal", {"silo": "a", "seed_shares": {}, "key_shares": {}}))
    _write("secagg_messages", "deep", b"\x00" + b"[" * 100_000)
    for example in sorted((REPO / "examples").glob("*.yaml")):
        _write("manifest", example.stem, example.read_bytes())
    _write("manifest", "alias-bomb", b'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n')
    _write("manifest", "metadata-list", b"apiVersion: fedsilo.io/v1alpha1\nkind: Silo\nmetadata: [1]\n")
    _write("manifest", "not-utf8", b"kind: Silo\nmetadata: {name: \xff}\n")
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "audit.jsonl"
        head = write_restarted_log(log, key)
        _write("audit_log", "sealed", log.read_bytes())
        _write("signed_head", "valid", head.canonical_bytes())
        ledger_path = Path(scratch) / "ledger.sqlite"
        with PrivacyLedger(ledger_path, key) as ledger:
            ledger.charge("a", "job", 1, GaussianEvent(2.0, 1), idempotency_key="a1", delta=1e-5)
            ledger.charge("b", "job", 1, DpSgdEvent(1.1, 0.01, 100), idempotency_key="b1", delta=1e-5)
        _write("ledger", "signed", ledger_path.read_bytes())
    print(f"seeds written under {HERE / 'corpus'}")


if __name__ == "__main__":
    main()
