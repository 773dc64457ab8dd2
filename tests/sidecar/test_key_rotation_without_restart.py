"""A sidecar switches to its silo's rotated identity key at the round boundary the hub uses, without a restart.

Through a real hub (coordinator behind mTLS, embedded Rego gate, a standing source the
"platform team" edits) and a real ``Sidecar`` whose key file is a folder on disk, as a
mounted key Secret is: the new private key lands in the file and the new public key is
registered while round 1 closes; round 2's plan names the new key, the sidecar signs
round 2 with it and every round is accepted, and a signature made with the old key after
the boundary is refused as ``key_retired``. Then ``SiloKeys``'s own rules, with no server:
a key the hub announces that the sidecar does not hold, a half-written key file, and a
peer key the silo's manifest does not vouch for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import grpc
import pytest

from fedsilo.aggregator import SiloStanding
from fedsilo.identity import SIGNING_KEY_FILE, SigningKey, SiloIdentity, VerifyKey, save_signing_key, write_identity
from fedsilo.protocol import PolicyVerdict, RoundPlan
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.sidecar._keys import KeyNotHeld, SiloKeys

from ..aggregator.conftest import running_hub
from ..aggregator.test_hostile_partner import _payload
from .test_global_model_seal import Trainer


class _Board:
    """The registered public keys the hub reads at each round boundary."""

    def __init__(self, keys: dict[str, VerifyKey]) -> None:
        self.keys = keys

    def __call__(self) -> dict[str, SiloStanding]:
        return {name: SiloStanding(key) for name, key in self.keys.items()}


def test_a_sidecar_signs_with_its_rotated_key_from_the_hubs_boundary_on_and_the_old_key_is_refused(
    tmp_path: Path,
) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    board = _Board({"a": old.public_key})
    with running_hub(tmp_path / "hub", ["a"], keys={"a": old}, standing=board, rounds=3) as hub:
        folder = tmp_path / "identity"
        write_identity(folder, SiloIdentity(old, hub.ca.issue("a", server=False)))
        keys = SiloKeys("a", old, key_file=folder / SIGNING_KEY_FILE)
        verdicts: dict[int, PolicyVerdict] = {}

        def on_verdict(round_number: int, verdict: PolicyVerdict) -> None:
            verdicts[round_number] = verdict
            if round_number == 1:
                # Rotated while round 1 closes, before the sidecar asks for round 2: the Secret's
                # new private key and the Silo's new public key, as a platform team writes them.
                save_signing_key(new, folder / SIGNING_KEY_FILE)
                board.keys["a"] = new.public_key

        link = TrainerLinkService()
        config = SidecarConfig(
            hub.coordinator.job, "a", f"localhost:{hub.port}", {}, aggregator_ca_pem=hub.ca.certificate_pem
        )
        sidecar = Sidecar(
            config, SiloIdentity(old, hub.ca.issue("a", server=False)), link, on_verdict=on_verdict, keys=keys
        )
        trainer = Trainer(link)
        outcome: dict[str, int] = {}

        def serve() -> None:
            with contextlib.suppress(grpc.RpcError):
                outcome["code"] = sidecar.run()

        threading.Thread(target=trainer.run, daemon=True).start()
        threading.Thread(target=serve, daemon=True).start()
        deadline = time.monotonic() + 120
        while "code" not in outcome and time.monotonic() < deadline:
            time.sleep(0.1)
        trainer.stop.set()
        assert outcome.get("code") == 0, f"the sidecar did not finish the job: {verdicts}"
        assert sorted(verdicts) == [1, 2, 3]
        assert all(v.accepted for v in verdicts.values()), verdicts
        assert [s.accepted for s in hub.coordinator.summaries] == [("a",)] * 3
        assert keys.public_key == new.public_key

        # The old key after the boundary: refused as retired, whatever else is wrong with the update.
        raw = hub.silos["a"]
        late = raw.submit(raw.metadata(_payload(), round=2), _payload(), key=old)
        assert late.reasons[0].startswith(f"key_retired: signed with a's retired key {old.public_key.fingerprint()}")


# ----- SiloKeys's own rules (no server) ------------------------------------------------------


def _plan(round_number: int, **fingerprints: VerifyKey) -> RoundPlan:
    return RoundPlan(round=round_number, signing_keys={n: k.fingerprint() for n, k in fingerprints.items()})


def test_a_key_the_hub_announces_but_the_sidecar_lacks_sits_the_round_out_and_is_taken_once_it_arrives(
    tmp_path: Path,
) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    key_file = tmp_path / SIGNING_KEY_FILE
    save_signing_key(old, key_file)
    keys = SiloKeys("a", old, key_file=key_file)
    with pytest.raises(KeyNotHeld, match=r"round 2: the hub verifies this silo with key sha256:.*spec.identity"):
        keys.advance(_plan(2, a=new.public_key))
    assert keys.public_key == old.public_key
    save_signing_key(new, key_file)
    keys.advance(_plan(3, a=new.public_key))
    assert keys.public_key == new.public_key
    assert keys.sign(b"m") == new.sign(b"m")


def test_a_new_key_in_the_file_waits_for_the_hubs_boundary(tmp_path: Path) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    key_file = tmp_path / SIGNING_KEY_FILE
    save_signing_key(old, key_file)
    keys = SiloKeys("a", old, key_file=key_file)
    save_signing_key(new, key_file)
    # The hub still verifies with the old key this round: the new one waits.
    keys.advance(_plan(2, a=old.public_key))
    assert keys.public_key == old.public_key
    keys.advance(_plan(3, a=new.public_key))
    assert keys.public_key == new.public_key
    # A key switched away from is never used again, even if a hub announced it.
    with pytest.raises(KeyNotHeld):
        keys.advance(_plan(4, a=old.public_key))


def test_a_half_written_or_unreadable_key_file_leaves_the_key_in_force(tmp_path: Path) -> None:
    old = SigningKey.generate()
    key_file = tmp_path / SIGNING_KEY_FILE
    save_signing_key(old, key_file)
    keys = SiloKeys("a", old, key_file=key_file)
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nMC4C")  # cut off mid-write
    key_file.chmod(0o600)
    keys.advance(_plan(2, a=old.public_key))
    key_file.unlink()
    keys.advance(_plan(3, a=old.public_key))
    assert keys.public_key == old.public_key


def test_the_hub_picks_a_peers_key_only_among_those_the_silos_manifest_vouches_for() -> None:
    mine, peer_old, peer_new, intruder = (SigningKey.generate() for _ in range(4))
    manifest = {"b": peer_old.public_key}
    keys = SiloKeys("a", mine, peers=dict(manifest), peer_source=lambda: dict(manifest))
    # The hub names a key for b that b's registration never held: b's old key stays.
    keys.advance(_plan(2, a=mine.public_key, b=intruder.public_key))
    assert keys.peers["b"] == peer_old.public_key
    # b's rotation registered in this silo's manifest: the hub's boundary switches it.
    manifest["b"] = peer_new.public_key
    keys.advance(_plan(3, a=mine.public_key, b=peer_old.public_key))
    assert keys.peers["b"] == peer_old.public_key
    keys.advance(_plan(4, a=mine.public_key, b=peer_new.public_key))
    assert keys.peers["b"] == peer_new.public_key
