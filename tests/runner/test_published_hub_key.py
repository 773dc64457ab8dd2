"""In a cluster the operator makes the hub's signing key and publishes its public half to the
sidecars; the aggregator must sign with exactly that key, and refuse to start with another."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fedsilo.identity import SigningKey, load_signing_key
from fedsilo.runner import (
    AGGREGATOR_KEY,
    AGGREGATOR_PUBLIC_KEY,
    HubSetupError,
    adopt_published_key,
    aggregator_signing_key,
)


def _published(tmp_path: Path, key: SigningKey) -> Path:
    """The key as the Secret's volume shows it: group-readable by the pod's fsGroup."""
    path = tmp_path / "tls" / AGGREGATOR_KEY
    path.parent.mkdir()
    path.write_bytes(key.private_bytes_pem())
    path.chmod(0o440)
    return path


def test_the_aggregator_signs_with_the_key_the_operator_published(tmp_path: Path) -> None:
    key = SigningKey.generate()
    state = tmp_path / "state"
    adopt_published_key(_published(tmp_path, key), state)
    assert stat.S_IMODE((state / AGGREGATOR_KEY).stat().st_mode) == 0o600
    assert aggregator_signing_key(state).public_key.to_base64() == key.public_key.to_base64()
    assert (state / AGGREGATOR_PUBLIC_KEY).read_text().strip() == key.public_key.to_base64()
    # A restart of the pod adopts it again, changing nothing.
    adopt_published_key(tmp_path / "tls" / AGGREGATOR_KEY, state)
    assert load_signing_key(state / AGGREGATOR_KEY).public_key.to_base64() == key.public_key.to_base64()


def test_a_state_holding_another_key_is_refused_naming_both(tmp_path: Path) -> None:
    state = tmp_path / "state"
    held = aggregator_signing_key(state)
    published = SigningKey.generate()
    with pytest.raises(HubSetupError) as refused:
        adopt_published_key(_published(tmp_path, published), state)
    message = str(refused.value)
    assert held.public_key.fingerprint() in message and published.public_key.fingerprint() in message
    assert "new state volume" in message


def test_a_published_file_that_is_no_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "tls" / AGGREGATOR_KEY
    path.parent.mkdir()
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(HubSetupError, match=f"cannot use the published signing key {path}"):
        adopt_published_key(path, tmp_path / "state")
    assert not (tmp_path / "state" / AGGREGATOR_KEY).exists()


def test_the_public_key_file_is_left_alone_when_right_and_replaced_whole_when_not(tmp_path: Path) -> None:
    # The runner and its hub process both load the key while sidecars read the .pub: an
    # unchanged file is never rewritten (a reader could catch it empty), a wrong one is renamed over.
    key = aggregator_signing_key(tmp_path)
    public = tmp_path / AGGREGATOR_PUBLIC_KEY
    inode = public.stat().st_ino
    aggregator_signing_key(tmp_path)
    assert public.stat().st_ino == inode
    public.write_text(SigningKey.generate().public_key.to_base64() + "\n")
    aggregator_signing_key(tmp_path)
    assert public.read_text().strip() == key.public_key.to_base64()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
