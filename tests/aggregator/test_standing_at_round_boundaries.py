"""Suspensions and rotated keys take effect at round boundaries, through the real mTLS hub, never mid-round."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fedsilo.aggregator import SiloStanding
from fedsilo.aggregator._standing import Standing
from fedsilo.identity import SigningKey

from .conftest import Hub, running_hub
from .test_hostile_partner import _payload


def _closed(hub: Hub, count: int) -> Any:
    deadline = time.monotonic() + 60
    while len(hub.coordinator.summaries) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return hub.coordinator.summaries[count - 1]


class _Board:
    """What the platform team wrote: the standing source the hub reads at each boundary."""

    def __init__(self, keys: dict[str, SigningKey]) -> None:
        self.keys = {name: key.public_key for name, key in keys.items()}
        self.suspended: dict[str, str] = {}

    def __call__(self) -> dict[str, SiloStanding]:
        return {name: SiloStanding(key, self.suspended.get(name)) for name, key in self.keys.items()}


def test_a_suspended_silo_is_denied_from_the_next_round_and_readmitted_when_lifted(tmp_path: Path) -> None:
    keys = {n: SigningKey.generate() for n in "abc"}
    board = _Board(keys)
    with running_hub(tmp_path, list("abc"), keys=keys, standing=board, rounds=3) as hub:
        hub.open_round()
        # Suspended while round 1 runs: round 1 is not split, c's update still counts.
        board.suspended["c"] = "norms drifted; under review (ticket 4411)"
        for silo in hub.silos.values():
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        assert _closed(hub, 1).accepted == ("a", "b", "c")

        assert hub.next_round(1) == 2
        verdicts = {n: s.submit(s.metadata(_payload(), round=2), _payload()) for n, s in hub.silos.items()}
        assert verdicts["a"].accepted and verdicts["b"].accepted
        assert verdicts["c"].reasons == (
            "silo_suspended: c is suspended since round 2: norms drifted; under review (ticket 4411)",
        )
        summary = _closed(hub, 2)
        assert summary.accepted == ("a", "b")

        del board.suspended["c"]
        assert hub.next_round(2) == 3
        for silo in hub.silos.values():
            assert silo.submit(silo.metadata(_payload(), round=3), _payload()).accepted
        assert _closed(hub, 3).accepted == ("a", "b", "c")
    # The audit log holds the suspension's denial with its reason, decided by the policy.
    denied = [r for r in hub.records() if r["silo"] == "c" and r["decision"] == "deny"]
    assert len(denied) == 1
    assert denied[0]["round"] == 2
    assert denied[0]["reasons"][0].startswith("silo_suspended: c is suspended since round 2: norms drifted")
    assert denied[0]["engine"] != "hub"


def test_a_rotated_key_takes_effect_at_the_next_round_and_the_old_one_is_refused_after_it(tmp_path: Path) -> None:
    keys = {n: SigningKey.generate() for n in "ab"}
    board = _Board(keys)
    new_key = SigningKey.generate()
    with running_hub(tmp_path, ["a", "b"], keys=keys, standing=board, rounds=3) as hub:
        a, b = hub.silos["a"], hub.silos["b"]
        hub.open_round()
        # Registered during round 1: round 1 still verifies with the key it opened with.
        board.keys["a"] = new_key.public_key
        early = a.submit(a.metadata(_payload()), _payload(), key=new_key)
        assert early.reasons[0].startswith("signature_invalid")
        assert b.submit(b.metadata(_payload()), _payload()).accepted
        assert _closed(hub, 1).accepted == ("b",)

        assert hub.next_round(1) == 2
        old = a.submit(a.metadata(_payload(), round=2), _payload())
        assert old.reasons[0].startswith(
            f"key_retired: signed with a's retired key {keys['a'].public_key.fingerprint()}"
        )
        assert any(reason.startswith("signature_invalid") for reason in old.reasons)
        assert b.submit(b.metadata(_payload(), round=2), _payload()).accepted
        _closed(hub, 2)

        assert hub.next_round(2) == 3
        assert a.submit(a.metadata(_payload(), round=3), _payload(), key=new_key).accepted
        assert b.submit(b.metadata(_payload(), round=3), _payload()).accepted
        assert _closed(hub, 3).accepted == ("a", "b")


# ----- the standing's own rules (no server) ------------------------------------------------


def _standing(**suspended: str) -> tuple[Standing, dict[str, SigningKey], dict[str, SiloStanding]]:
    keys = {n: SigningKey.generate() for n in "ab"}
    given = {n: SiloStanding(k.public_key, suspended.get(n)) for n, k in keys.items()}
    return Standing({n: k.public_key for n, k in keys.items()}, lambda: given), keys, given


def test_a_source_that_fails_leaves_the_standing_as_it_was() -> None:
    keys = {"a": SigningKey.generate()}

    def broken() -> dict[str, SiloStanding]:
        raise ValueError("the manifest no longer validates")

    standing = Standing({"a": keys["a"].public_key}, broken)
    assert standing.advance(2) == []
    assert standing.keys["a"] == keys["a"].public_key
    assert standing.suspension("a") is None


def test_a_silo_the_source_forgets_keeps_its_standing() -> None:
    standing, _, given = _standing(a="banned")
    standing.advance(2)
    del given["a"]
    assert standing.advance(3) == []
    assert standing.suspension("a") == ("banned", 2)


def test_a_new_reason_keeps_the_round_the_suspension_began_in() -> None:
    standing, _, given = _standing(a="first")
    standing.advance(2)
    given["a"] = SiloStanding(given["a"].key, "second")
    standing.advance(5)
    assert standing.suspension("a") == ("second", 2)


def test_a_retired_key_is_never_taken_back() -> None:
    standing, keys, given = _standing()
    new = SigningKey.generate()
    given["a"] = SiloStanding(new.public_key)
    assert [c.what.split(":")[0] for c in standing.advance(2)] == ["rotated its key"]
    given["a"] = SiloStanding(keys["a"].public_key)
    assert standing.advance(3) == []
    assert standing.keys["a"] == new.public_key
    data = b"claims"
    assert standing.retired_key_signed("a", keys["a"].sign(data), data) == keys["a"].public_key
    assert standing.retired_key_signed("a", new.sign(data), data) is None
