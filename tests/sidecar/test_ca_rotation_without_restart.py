"""A silo's CA is rotated under a running sidecar and hub: every round is accepted, nothing restarts.

Against a real hub behind mutual TLS that reads the silo's CAs from its ``silo-ca.a.crt`` file
as ``fedsilo aggregator`` does (``SiloTrust``), and a real ``Sidecar`` whose identity folder
is renewed as the silo operator renews it. The test plays the operator's part with files:

1. certificates of twelve seconds from the silo's CA A, renewed at two thirds of their life;
2. after the first renewal the CA is rotated: CA B is made and the file swapped to hold A and B;
3. the next renewal comes from B;
4. once the last certificate from A has expired, the file is swapped to hold B alone.

The sidecar takes part in every round of a job that outlasts all of it, over the one hub
that never restarts; afterwards a certificate from A is refused: a new connection at its
handshake, and a connection opened while A was still trusted on its next call, with
``UNAUTHENTICATED`` naming the silo and what to do.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import grpc
import pytest

import fedsilo.sidecar._sidecar as sidecar_module
from fedsilo.identity import (
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    certificate_expiry,
    certificate_fingerprint,
    renew_tls,
    renewal_due,
    write_identity,
)
from fedsilo.launch import silo_ca_file
from fedsilo.protocol import PolicyVerdict, pb, rpc

from ..aggregator.conftest import Hub, running_hub
from .test_short_lived_certificates import LIFETIME, run_sidecar_to_the_end

ROUNDS = 12


def _swap(path: Path, content: bytes) -> None:
    """Replace ``path`` at once, as the kubelet swaps a mounted ConfigMap's files."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_bytes(content)
    os.replace(staged, path)


def _channel(hub: Hub, authority: CertificateAuthority) -> grpc.Channel:
    """A connection for silo 'a' with a certificate from ``authority`` (as one holding that CA's key mints it)."""
    tls = authority.issue("a", server=False, lifetime=dt.timedelta(hours=1))
    return grpc.secure_channel(
        f"localhost:{hub.port}",
        grpc.ssl_channel_credentials(hub.ca.certificate_pem, tls.private_key_pem, tls.certificate_pem),
    )


def _sleep_until(moment: dt.datetime, stop: threading.Event) -> bool:
    """Wait for ``moment``; False if stopped first."""
    return not stop.wait(max((moment - dt.datetime.now(dt.UTC)).total_seconds(), 0.0))


def test_a_sidecar_takes_part_in_every_round_while_its_silos_ca_is_rotated_and_the_old_ca_is_refused_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process trainer never calls the link's gRPC service, which the dead-trainer check watches.
    monkeypatch.setattr(sidecar_module, "TRAINER_SILENT_SECONDS", 3600.0)
    key = SigningKey.generate()
    ca_files = tmp_path / "job"
    with running_hub(
        tmp_path / "hub", ["a"], keys={"a": key}, own_cas=True, ca_files=ca_files, rounds=ROUNDS, roundTimeoutSeconds=60
    ) as hub:
        assert hub.trust is not None
        old = hub.silo_cas["a"]
        new = CertificateAuthority.create("a CA, rotated")
        ca_file = ca_files / silo_ca_file("a")
        folder = tmp_path / "identity"
        first = old.issue("a", server=False, lifetime=LIFETIME)
        write_identity(folder, SiloIdentity(key, first))
        stop = threading.Event()
        steps: dict[str, dt.datetime] = {}
        issuers: list[str] = []
        stale: list[grpc.Channel] = []

        def operator() -> None:
            """The silo operator's part, step by step."""
            current = first.certificate_pem
            if not _sleep_until(renewal_due(current), stop):
                return
            last_from_old = renew_tls(folder, old, "a", LIFETIME).certificate_pem
            issuers.append("old")
            # Rotation: both CAs trusted for the silo, the old CA's key gone from here on.
            _swap(ca_file, old.certificate_pem + new.certificate_pem)
            steps["both published"] = dt.datetime.now(dt.UTC)
            # One holding the old CA's key (a compromise) connects while that CA is still trusted.
            channel = _channel(hub, old)
            grpc.channel_ready_future(channel).result(timeout=10)
            stale.append(channel)
            current = last_from_old
            if not _sleep_until(renewal_due(current), stop):
                return
            current = renew_tls(folder, new, "a", LIFETIME).certificate_pem
            issuers.append("new")
            steps["issued from new"] = dt.datetime.now(dt.UTC)
            # The old CA goes once the last certificate it issued has expired.
            if not _sleep_until(certificate_expiry(last_from_old), stop):
                return
            _swap(ca_file, new.certificate_pem)
            steps["old dropped"] = dt.datetime.now(dt.UTC)
            while _sleep_until(renewal_due(current), stop):
                current = renew_tls(folder, new, "a", LIFETIME).certificate_pem
                issuers.append("new")

        verdicts: dict[int, tuple[PolicyVerdict, dt.datetime]] = {}
        code = run_sidecar_to_the_end(
            hub,
            SiloIdentity(key, first),
            folder,
            lambda r, v: verdicts.__setitem__(r, (v, dt.datetime.now(dt.UTC))),
            beside=operator,
        )
        stop.set()
        assert code == 0, f"the sidecar did not finish the job: {verdicts}"
        assert sorted(verdicts) == list(range(1, ROUNDS + 1)), verdicts
        assert all(v.accepted for v, _ in verdicts.values()), verdicts
        assert set(steps) == {"both published", "issued from new", "old dropped"}, steps
        assert issuers[:2] == ["old", "new"]
        # Rounds were accepted in each phase: before the rotation, with both CAs, and after the drop.
        times = [at for _, at in verdicts.values()]
        assert min(times) < steps["both published"] < steps["old dropped"] < max(times)
        # One hub served the whole job: its one round loop ran every round.
        hub.thread.join(timeout=30)
        assert len(hub.outcome["summaries"]) == ROUNDS
        assert hub.trust.fingerprints() == {"a": [certificate_fingerprint(new.certificate_pem)]}

        # The old CA is refused now. A new connection does not get through the handshake...
        with _channel(hub, old) as fresh, pytest.raises(grpc.RpcError) as handshake:
            rpc.AggregatorStub(fresh).Join(pb.JoinRequest(job="admission", silo="a", num_samples=1), timeout=10)
        assert handshake.value.code() == grpc.StatusCode.UNAVAILABLE
        # ...and one opened while the old CA was trusted is refused on its next call, saying why and what to do.
        (channel,) = stale
        with channel, pytest.raises(grpc.RpcError) as refused:
            rpc.AggregatorStub(channel).Join(pb.JoinRequest(job="admission", silo="a", num_samples=1), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        details = refused.value.details() or ""
        assert details.startswith("the client certificate of 'a' was issued by a CA its operator has rotated out")
        assert certificate_fingerprint(new.certificate_pem) in details and "current CA" in details
        # A certificate from the new CA still gets through the handshake.
        with _channel(hub, new) as current:
            grpc.channel_ready_future(current).result(timeout=10)
