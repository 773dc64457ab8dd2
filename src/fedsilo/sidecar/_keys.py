"""The silo's identity key in force, switched at the round boundary the hub announces, without a restart.

A Silo's key is rotated by giving its sidecar the new private key (the identity folder's
``signing-key.pem``: the mounted key Secret in a cluster, the silo's identity folder
locally) and registering the new public key with the hub. The hub takes the new public key
at a round boundary (``aggregator/_standing.py``) and says in every ``RoundPlan`` which key
it verifies each participant with (``RoundPlan.signing_keys``, fingerprints). ``SiloKeys``
is asked at the start of each of this silo's rounds (``advance``): it reads the key file
again, and signs the round with the key the hub announced, so both sides switch at the same
boundary whichever of them learnt of the new key first. A key the sidecar switched away
from is forgotten: nothing it signs after the boundary uses it (the hub would refuse it as
``key_retired``).

The peers' keys (masked and homomorphic modes verify each other's signed key
advertisements) come from this silo's own copy of the job manifest, read again at each
round: the hub's announcement picks among the keys that manifest vouches for and can never
introduce one, so a hub cannot slip a key of its own between two silos.

``Sidecar`` holds one ``SiloKeys`` and passes it wherever the silo signs (it has
``sign`` and ``public_key`` like a ``SigningKey``); ``peers`` is the live mapping the
sidecar's config carries, updated in place at each boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from fedsilo.api import Manifest
from fedsilo.identity import SigningKey, VerifyKey, load_signing_key
from fedsilo.protocol import RoundPlan

log = logging.getLogger("fedsilo.sidecar")

#: The peers' registered keys now (a manifest re-read); may raise while the file is half-written.
PeerSource = Callable[[], Mapping[str, VerifyKey]]


def registered_keys(manifest: Manifest) -> dict[str, VerifyKey]:
    """Each silo's registered public key (``spec.identity.publicKey``) in ``manifest``; silos without one are left out."""
    return {
        silo.metadata.name: VerifyKey.from_base64(silo.spec.identity.public_key)
        for silo in manifest.silos
        if silo.spec.identity.public_key
    }


class KeyNotHeld(Exception):
    """The hub verifies this silo with a key this sidecar does not hold: the round is sat out, not failed."""


class SiloKeys:
    """The key this silo signs with in the current round, and the peers' keys it verifies them with."""

    def __init__(
        self,
        silo: str,
        key: SigningKey,
        key_file: Path | None = None,
        peers: Mapping[str, VerifyKey] | None = None,
        peer_source: PeerSource | None = None,
    ) -> None:
        self._silo = silo
        self._in_force = key
        # Keys read from the file that the hub has not announced yet (newest last).
        self._pending: list[SigningKey] = []
        self._key_file = key_file
        self._key_file_bytes = key_file.read_bytes() if key_file is not None and key_file.exists() else b""
        self.peers: dict[str, VerifyKey] = dict(peers or {})
        self._peer_source = peer_source
        # Every key the manifest ever vouched for, per peer: the hub's announcement picks among them.
        self._vouched: dict[str, list[VerifyKey]] = {name: [k] for name, k in self.peers.items()}

    @property
    def public_key(self) -> VerifyKey:
        """The public half of the key in force."""
        return self._in_force.public_key

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with the key in force this round."""
        return self._in_force.sign(message)

    def advance(self, plan: RoundPlan) -> None:
        """Take the keys of ``plan``'s round (called when this silo's round opens).

        Raises:
            KeyNotHeld: the hub announces a key for this silo that is neither in force nor in
                the key file (the message says which, and what to do).
        """
        self._read_key_file()
        self._read_peers()
        announced = plan.signing_keys.get(self._silo)
        if announced is not None and announced != self._in_force.public_key.fingerprint():
            self._switch(announced, plan.round)
        for peer, fingerprint in plan.signing_keys.items():
            if peer != self._silo:
                self._pick_peer(peer, fingerprint, plan.round)

    def _switch(self, fingerprint: str, round_number: int) -> None:
        for index, candidate in enumerate(self._pending):
            if candidate.public_key.fingerprint() == fingerprint:
                log.warning(
                    "round %d: signing with the rotated identity key %s (was %s) from this round on",
                    round_number,
                    fingerprint,
                    self._in_force.public_key.fingerprint(),
                )
                self._in_force = candidate
                # The old key and any key older than the announced one are never used again.
                del self._pending[: index + 1]
                return
        raise KeyNotHeld(
            f"round {round_number}: the hub verifies this silo with key {fingerprint}, but this sidecar holds "
            f"{self._in_force.public_key.fingerprint()}"
            + (f" and {self._key_file} holds no other" if self._key_file is not None else "")
            + ": put the private key of the Silo's registered spec.identity.publicKey in the identity folder "
            "(the silo's key Secret); the sidecar takes it at the next round"
        )

    def _read_key_file(self) -> None:
        """A new key in the identity folder (a renewed Secret mount) becomes pending until the hub announces it."""
        if self._key_file is None:
            return
        try:
            data = self._key_file.read_bytes()
        except OSError as error:
            log.warning("identity key file %s unreadable (%s); the key in force stays", self._key_file, error)
            return
        if data == self._key_file_bytes:
            return
        try:
            key = load_signing_key(self._key_file)
        except (OSError, ValueError) as error:  # half-written: the next round reads it again
            log.warning("identity key file %s not usable yet (%s); the key in force stays", self._key_file, error)
            return
        self._key_file_bytes = data
        held = [self._in_force, *self._pending]
        if all(k.public_key != key.public_key for k in held):
            log.info("new identity key %s read; used once the hub announces it", key.public_key.fingerprint())
            self._pending.append(key)

    def _read_peers(self) -> None:
        if self._peer_source is None:
            return
        try:
            given = self._peer_source()
        except Exception as error:  # whatever the file holds, the keys stay as they were
            log.warning("peer keys not refreshed, the previous ones stay: %s", error)
            return
        for name, key in given.items():
            vouched = self._vouched.setdefault(name, [])
            if key not in vouched:
                vouched.append(key)
            self.peers.setdefault(name, key)

    def _pick_peer(self, peer: str, fingerprint: str, round_number: int) -> None:
        for key in self._vouched.get(peer, ()):
            if key.fingerprint() == fingerprint:
                if self.peers.get(peer) != key:
                    log.warning("round %d: peer %s now signs with %s", round_number, peer, fingerprint)
                    self.peers[peer] = key
                return
        log.warning(
            "round %d: the hub verifies peer %s with %s, which this silo's manifest does not register; "
            "its key advertisements will not verify until the manifest names that key",
            round_number,
            peer,
            fingerprint,
        )
