"""A signing key file is refused when anyone but its reader may read it, except in the one
shape Kubernetes mounts a Secret for a non-root pod: root's file in the pod's own group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedsilo.identity import SigningKey, load_signing_key, save_signing_key
from fedsilo.identity._crypto import readable_by_others

POD_UID = POD_GID = 65532


def _stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((0o100000 | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "euid", "egid", "refused"),
    [
        (0o600, 1000, 1000, 1000, 1000, False),  # the user's own file
        (0o400, 1000, 1000, 1000, 1000, False),
        (0o640, 1000, 1000, 1000, 1000, True),  # the user's group may read it
        (0o604, 1000, 1000, 1000, 1000, True),  # everyone may
        (0o440, 0, POD_GID, POD_UID, POD_GID, False),  # a Secret mounted for the pod (fsGroup)
        (0o460, 0, POD_GID, POD_UID, POD_GID, True),  # ... but not one the group may write
        (0o444, 0, POD_GID, POD_UID, POD_GID, True),  # ... nor one everyone may read
        (0o440, 0, 1000, POD_UID, POD_GID, True),  # root's file in another group
        (0o440, 0, 0, 0, 0, True),  # root reading root's group-readable file
        (0o440, 1000, POD_GID, POD_UID, POD_GID, True),  # another user's file in the pod's group
    ],
)
def test_who_else_may_read_a_key_file(mode: int, uid: int, gid: int, euid: int, egid: int, refused: bool) -> None:
    assert readable_by_others(_stat(mode, uid, gid), euid, egid) is refused


def test_a_group_readable_key_of_ones_own_is_refused_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    save_signing_key(SigningKey.generate(), path)
    path.chmod(0o640)
    with pytest.raises(PermissionError, match=f"run chmod 600 {path}"):
        load_signing_key(path)
