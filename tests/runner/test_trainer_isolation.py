"""A trainer started with the run's isolation cannot get out: no network (not even loopback), no
way back into the host's network namespace, no raw sockets, no silo's keys (its own included),
and no other silo's trainer link; only its own link, with its own token, answers it."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fedsilo.identity import (
    SIGNING_KEY_FILE,
    TLS_KEY_FILE,
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    write_identity,
)
from fedsilo.protocol import LINK_TOKEN_ENV, LINK_TOKEN_METADATA, TrainerReply, TrainerTask, frames_out, rpc
from fedsilo.runner import Isolation, detect_isolation
from fedsilo.sidecar import TrainerLinkService, start_link_server

PROBE = Path(__file__).with_name("sandbox_probe.py")
SOURCE = Path(__file__).resolve().parents[2] / "src"

TCP_PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError as error:
    print("blocked", error.errno)
else:
    print("connected")
"""


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_isolation_is_available_on_this_machine() -> None:
    isolation = detect_isolation()
    assert isolation.applied, isolation.description


def test_an_isolated_process_cannot_reach_a_listening_loopback_port() -> None:
    isolation = detect_isolation()
    with _listener() as server:
        port = str(server.getsockname()[1])
        control = subprocess.run([sys.executable, "-c", TCP_PROBE, port], capture_output=True, text=True, check=True)
        assert control.stdout.strip() == "connected"
        isolated = subprocess.run(
            [*isolation.prefix, sys.executable, "-c", TCP_PROBE, port], capture_output=True, text=True, check=True
        )
        assert isolated.stdout.startswith("blocked"), isolated.stdout + isolated.stderr


def test_isolation_can_be_turned_off_and_says_so() -> None:
    isolation = detect_isolation(enabled=False)
    assert not isolation.applied and isolation.prefix == ()
    assert "disabled" in isolation.description


class _Silo:
    """One silo of a run directory laid out as ``fedsilo run`` lays it out, with a live link."""

    def __init__(self, isolation: Isolation, run_dir: Path, name: str, index: int, ca: CertificateAuthority) -> None:
        self.name, self.index = name, index
        self.identity_dir = run_dir / "silos" / name / "identity"
        write_identity(self.identity_dir, SiloIdentity(SigningKey.generate(), ca.issue(name, server=False)))
        self.token = secrets.token_urlsafe(32)
        self.link = TrainerLinkService(token=self.token)
        self.socket = isolation.link_directory(run_dir, name, index) / "trainer.sock"
        self.server = start_link_server(self.link, f"unix:{self.socket}", None)
        self.link.offer(TrainerTask(kind="hello", round=0))


@pytest.fixture
def sandboxed_run(tmp_path: Path) -> Iterator[tuple[Isolation, Path, _Silo, _Silo]]:
    isolation = detect_isolation()
    if not isolation.sandbox:
        pytest.skip(f"the trainer sandbox needs root, unshare and setpriv: {isolation.description}")
    # As in a real run: the run directory sits in a folder only root may enter, beside the
    # manifest and the model code the trainer must import.
    tmp_path.chmod(0o700)
    (tmp_path / "model.py").write_text("make_client = None\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "job.yaml").write_text("kind: FederatedJob\n")
    ca = CertificateAuthority.create()
    a, b = _Silo(isolation, run_dir, "hospital-a", 0, ca), _Silo(isolation, run_dir, "hospital-b", 1, ca)
    try:
        yield isolation, run_dir, a, b
    finally:
        for silo in (a, b):
            silo.server.stop(grace=0)


def _probe(isolation: Isolation, run_dir: Path, silo: _Silo, other: _Silo, port: int) -> dict[str, str]:
    host_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        config = {
            "host_netns_fd": host_netns,
            "port": port,
            "job": str(run_dir / "job.yaml"),
            "beside": str(run_dir.parent / "model.py"),
            "own_link": str(silo.socket),
            "other_link": str(other.socket),
            "keys": {
                "its own signing key": str(silo.identity_dir / SIGNING_KEY_FILE),
                "its own TLS key": str(silo.identity_dir / TLS_KEY_FILE),
                "another silo's signing key": str(other.identity_dir / SIGNING_KEY_FILE),
                "another silo's TLS key": str(other.identity_dir / TLS_KEY_FILE),
            },
        }
        command = isolation.trainer_command(
            [sys.executable, str(PROBE), json.dumps(config)],
            index=silo.index,
            run_dir=run_dir,
            link_dir=silo.socket.parent,
            readable=(run_dir / "job.yaml", run_dir.parent, SOURCE, PROBE.parent),
        )
        env = dict(os.environ, PYTHONPATH=str(SOURCE), **{LINK_TOKEN_ENV: silo.token})
        done = subprocess.run(command, capture_output=True, text=True, env=env, pass_fds=(host_netns,), timeout=300)
    finally:
        os.close(host_netns)
    assert done.returncode == 0, done.stderr
    results: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_a_sandboxed_trainer_reaches_its_own_link_and_nothing_else(
    sandboxed_run: tuple[Isolation, Path, _Silo, _Silo],
) -> None:
    isolation, run_dir, a, b = sandboxed_run
    with _listener() as server:
        results = _probe(isolation, run_dir, a, b, server.getsockname()[1])
    allowed = {name for name, outcome in results.items() if outcome == "allowed"}
    assert allowed == {
        "read the job file",
        "read the model code beside the manifest",
        "take a task from its own link",
    }, results
    assert results["take a task from its own link without the token"] == "blocked: UNAUTHENTICATED"
    assert len(results) == 20, results
    # The other silo's link never received an answer.
    with pytest.raises(TimeoutError):
        b.link.await_result(0, timeout=0.1)


def test_the_same_probe_outside_the_sandbox_gets_everywhere(
    sandboxed_run: tuple[Isolation, Path, _Silo, _Silo],
) -> None:
    """The control: without the sandbox the very same attempts succeed, so the test above can fail."""
    _, run_dir, a, b = sandboxed_run
    with _listener() as server:
        config = {
            "host_netns_fd": os.open("/proc/self/ns/net", os.O_RDONLY),
            "port": server.getsockname()[1],
            "job": str(run_dir / "job.yaml"),
            "beside": str(run_dir.parent / "model.py"),
            "own_link": str(a.socket),
            "other_link": str(b.socket),
            "keys": {"another silo's TLS key": str(b.identity_dir / TLS_KEY_FILE)},
        }
        env = dict(os.environ, PYTHONPATH=str(SOURCE), **{LINK_TOKEN_ENV: b.token})
        done = subprocess.run(
            [sys.executable, str(PROBE), json.dumps(config)],
            capture_output=True,
            text=True,
            env=env,
            pass_fds=(config["host_netns_fd"],),
            check=True,
            timeout=300,
        )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for attempt in (
        "setns into the host netns by a handle",
        "open a raw socket",
        "connect to a loopback port",
        "read another silo's TLS key",
        "answer another silo's task",
    ):
        assert results[attempt] == "allowed", (attempt, results)


def test_a_link_refuses_a_caller_without_its_silos_token(sandboxed_run: tuple[Isolation, Path, _Silo, _Silo]) -> None:
    _, _, a, b = sandboxed_run
    with grpc.insecure_channel(f"unix:{b.socket}") as channel:
        stub = rpc.TrainerLinkStub(channel)
        for metadata in ((), ((LINK_TOKEN_METADATA, a.token),), ((LINK_TOKEN_METADATA, b.token[:-1]),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Complete(frames_out(TrainerReply(round=0, num_samples=5), b""), timeout=10, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Its own trainer, with its token, is heard; but only about the task on offer.
        own = ((LINK_TOKEN_METADATA, b.token),)
        late = stub.Complete(frames_out(TrainerReply(round=3, num_samples=5), b""), timeout=10, metadata=own)
        assert not late.ok and "task on offer is round 0" in late.message
        assert stub.Complete(frames_out(TrainerReply(round=0, num_samples=5), b""), timeout=10, metadata=own).ok
    assert b.link.await_result(0, timeout=5).header.num_samples == 5
