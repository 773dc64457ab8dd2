"""Twenty-eight kinds of tampered privacy ledgers, each made from a real signed ledger: the verifier
names the kind and the row of every one with the writer's key, `fedsilo ledger verify --key` exits 1
with that verdict (never a traceback), and `fedsilo ledger show` never crashes on one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedsilo.audit import SignedHead, TamperKind
from fedsilo.cli import main
from fedsilo.identity import SigningKey
from fedsilo.privacy.ledger import LedgerIntegrityError, verify_ledger

from .ledger_corpus import ATTACKS, ROWS, Source, write_signed_ledger


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> tuple[Path, SignedHead, Path]:
    folder = tmp_path_factory.mktemp("real")
    head = write_signed_ledger(folder / "ledger.sqlite", key)
    write_signed_ledger(folder / "other.sqlite", key)
    return folder / "ledger.sqlite", head, folder / "other.sqlite"


def test_the_corpus_holds_at_least_twenty_kinds_and_the_real_ledger_verifies(
    real: tuple[Path, SignedHead, Path], key: SigningKey
) -> None:
    path, head, _ = real
    assert len(ATTACKS) >= 20
    report = verify_ledger(path, key.public_key, published=head)
    assert (report.head.seq, report.checkpoints, report.signed_head) == (ROWS, ROWS, head)


def _tampered(name: str, real: tuple[Path, SignedHead, Path], tmp_path: Path) -> tuple[Path, Source]:
    path, head, other = real
    copy = tmp_path / "ledger.sqlite"
    shutil.copyfile(path, copy)
    source = Source(copy, head, other, SigningKey.generate())
    ATTACKS[name][0](source)
    return copy, source


@pytest.mark.parametrize("name", ATTACKS)
def test_each_tampering_gets_a_verdict_naming_its_kind_and_row(
    name: str, real: tuple[Path, SignedHead, Path], key: SigningKey, tmp_path: Path
) -> None:
    path, source = _tampered(name, real, tmp_path)
    expected = ATTACKS[name][1](source)
    with pytest.raises(LedgerIntegrityError) as caught:
        verify_ledger(path, key.public_key, published=expected.head)
    verdict = caught.value
    assert (verdict.kind, verdict.seq) == (expected.kind, expected.seq), str(verdict)
    assert str(verdict).startswith(expected.kind.value)
    if expected.seq:
        assert f"privacy ledger {expected.table} {expected.seq}:" in str(verdict)


@pytest.mark.parametrize("name", ATTACKS)
def test_the_commands_give_a_verdict_and_an_exit_code_never_a_traceback(
    name: str, real: tuple[Path, SignedHead, Path], key: SigningKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, source = _tampered(name, real, tmp_path)
    expected = ATTACKS[name][1](source)
    head = []
    if expected.head is not None:
        (tmp_path / "head.json").write_bytes(expected.head.canonical_bytes())
        head = ["--head", str(tmp_path / "head.json")]
    assert main(["ledger", "verify", str(path), "--key", key.public_key.to_base64(), *head]) == 1
    assert f"TAMPERED: {expected.kind.value}" in capsys.readouterr().err
    # show reads what is there; a row it cannot type is refused, never shown as something else.
    assert main(["ledger", "show", str(path), "--json"]) in (0, 1)
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_without_the_key_a_ledger_stripped_of_its_signatures_passes_and_the_output_says_so(
    real: tuple[Path, SignedHead, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _tampered("signatures removed", real, tmp_path)
    assert main(["ledger", "verify", str(path)]) == 0
    assert "signatures NOT checked" in capsys.readouterr().out


def test_a_head_needs_the_key_and_a_ledger_of_several_keys_verifies_with_all_of_them(
    real: tuple[Path, SignedHead, Path], key: SigningKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedsilo.privacy import GaussianEvent
    from fedsilo.privacy.ledger import PrivacyLedger

    path, head, _ = real
    (tmp_path / "head.json").write_bytes(head.canonical_bytes())
    assert main(["ledger", "verify", str(path), "--head", str(tmp_path / "head.json")]) == 2
    assert "give --key too" in capsys.readouterr().err
    copy = tmp_path / "rotated.sqlite"
    shutil.copyfile(path, copy)
    replaced = SigningKey.generate()
    with PrivacyLedger(copy, replaced) as ledger:
        ledger.charge("hospital-a", "job-2", 1, GaussianEvent(2.0, 1), idempotency_key="new", delta=1e-5)
    with pytest.raises(LedgerIntegrityError) as caught:
        verify_ledger(copy, key.public_key)
    assert caught.value.kind is TamperKind.WRONG_KEY and caught.value.seq == ROWS + 1
    assert verify_ledger(copy, [key.public_key, replaced.public_key]).head.seq == ROWS + 1
