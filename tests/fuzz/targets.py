"""What the fuzzer feeds untrusted bytes to, and the one typed error each target may raise.

Every parser of input that crosses a trust boundary is a target: a silo's signed messages,
the secure-aggregation messages, the trainer link's header, the strict JSON reader under
them, a manifest a user hands ``fedsilo run``, a published head given to ``--head``, and the
evidence files an auditor verifies. A target passes when every input either parses or
raises its documented error; anything else (``AttributeError``, ``RecursionError``, a
crash, a hang, a memory blow-up) is a finding.

To add a target: write a function of ``bytes`` and add a ``Target`` to ``TARGETS`` with
its documented error types, and a folder of seed inputs under ``corpus/<name>/``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedsilo.api import ManifestError, load_manifest
from fedsilo.audit import AuditVerificationError, SignedHead, read_decisions, verify_audit_log
from fedsilo.identity import VerifyKey
from fedsilo.privacy.ledger import LedgerIntegrityError, PrivacyLedger, verify_ledger
from fedsilo.protocol import EvaluationReport, MessageError, UpdateMetadata, frames_in, pb, strict_json
from fedsilo.protocol._streams import StreamError
from fedsilo.secagg import SecAggError
from fedsilo.secagg._messages import Advert, load

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
#: The public key that signed the seed audit logs and ledgers (``python -m tests.fuzz.seeds`` wrote them).
SEED_KEY = VerifyKey.from_base64((HERE / "seed-key.pub").read_text().strip())

# One scratch file per process: the file readers are fed through the file system, as auditors feed them.
_SCRATCH = Path(tempfile.mkdtemp(prefix="fedsilo-fuzz-"))


@dataclass(frozen=True)
class Target:
    """A parser under fuzzing: ``run`` takes untrusted bytes; ``errors`` are the refusals it documents."""

    name: str
    run: Callable[[bytes], object]
    errors: tuple[type[BaseException], ...]


def _scratch(data: bytes, name: str) -> Path:
    path = _SCRATCH / name
    for stale in _SCRATCH.glob(name + "*"):
        stale.unlink()
    path.write_bytes(data)
    return path


def _manifest(data: bytes) -> object:
    return load_manifest(_scratch(data, "manifest.yaml"))


def _secagg(data: bytes) -> object:
    """The hub's three secure-aggregation parsers, chosen by the first byte."""
    choice, body = (data[0] % 3, data[1:]) if data else (0, data)
    if choice == 0:
        return Advert.from_dict(load(body, "advertise")["advert"])
    if choice == 1:
        return load(body, "shares")
    return load(body, "reveal")


def _trainer_link(data: bytes) -> object:
    # header_json is a protobuf string: gRPC delivers only valid UTF-8, so that is all the parser can see.
    return frames_in([pb.Frame(header_json=data.decode("utf-8", errors="replace"))], 1 << 20)


def _audit_log(data: bytes) -> object:
    path = _scratch(data, "audit.jsonl")
    read_decisions(path)
    return verify_audit_log(path, SEED_KEY)


def _ledger(data: bytes) -> object:
    path = _scratch(data, "ledger.sqlite")
    with PrivacyLedger(path, read_only=True) as ledger:
        ledger.history()
    return verify_ledger(path, SEED_KEY)


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("strict_json", lambda data: strict_json(data, what="fuzz"), (MessageError,)),
        Target("update_metadata", UpdateMetadata.parse, (MessageError,)),
        Target("evaluation_report", EvaluationReport.parse, (MessageError,)),
        Target("secagg_messages", _secagg, (SecAggError,)),
        Target("trainer_link_header", _trainer_link, (MessageError, StreamError)),
        Target("manifest", _manifest, (ManifestError,)),
        Target("signed_head", SignedHead.parse, (MessageError,)),
        Target("audit_log", _audit_log, (AuditVerificationError,)),
        Target("ledger", _ledger, (LedgerIntegrityError,)),
    )
}
