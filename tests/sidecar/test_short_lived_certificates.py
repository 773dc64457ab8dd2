"""Short-lived mTLS client certificates: the hub refuses an expired one on every call, the sidecar dials with the renewed one.

Against a real hub behind mutual TLS (coordinator, embedded Rego gate):

- a connection that outlives its certificate gets ``UNAUTHENTICATED`` naming the expiry on
  its next call (TLS alone checks only at the handshake), and a new connection with an
  expired certificate does not get through the handshake at all;
- a real ``Sidecar`` whose identity folder is renewed at two thirds of each certificate's
  twelve-second life (``renew_tls``, as the silo side holding the CA does) takes part in every
  round of a job that outlasts its first certificate, with nothing refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

import fedsilo.sidecar._sidecar as sidecar_module
from fedsilo.identity import (
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    certificate_expiry,
    check_certificate_current,
    check_key_pair,
    renew_tls,
    renewal_due,
    write_identity,
)
from fedsilo.protocol import PolicyVerdict, TrainerReply, decode_weights, encode_weights, pb, rpc
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService

from ..aggregator.conftest import Hub, running_hub
from .test_global_model_seal import Trainer

# Renewed after 8 s; a round (2 s of training) must fit in the last third of a certificate's life.
LIFETIME = dt.timedelta(seconds=12)


def _stub(hub: Hub, lifetime: dt.timedelta) -> tuple[grpc.Channel, rpc.AggregatorStub, bytes]:
    tls = hub.ca.issue("a", server=False, lifetime=lifetime)
    channel = grpc.secure_channel(
        f"localhost:{hub.port}",
        grpc.ssl_channel_credentials(hub.ca.certificate_pem, tls.private_key_pem, tls.certificate_pem),
    )
    return channel, rpc.AggregatorStub(channel), tls.certificate_pem


def test_an_open_connection_past_its_certificate_is_refused_unauthenticated_naming_the_expiry(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a"]) as hub:
        channel, stub, certificate = _stub(hub, dt.timedelta(seconds=3))
        with channel:
            stub.Join(pb.JoinRequest(job="admission", silo="a", num_samples=100), timeout=30)
            while dt.datetime.now(dt.UTC) < certificate_expiry(certificate) + dt.timedelta(seconds=0.5):
                time.sleep(0.1)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Join(pb.JoinRequest(job="admission", silo="a", num_samples=100), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        details = refused.value.details() or ""
        assert details.startswith("the client certificate of 'a' expired at ")
        assert "renewed" in details

        # A new connection with the expired certificate fails its handshake: refused before any call.
        expired = grpc.secure_channel(
            f"localhost:{hub.port}",
            grpc.ssl_channel_credentials(
                hub.ca.certificate_pem,
                hub.ca.issue("a", server=False, lifetime=dt.timedelta(seconds=1)).private_key_pem,
                certificate,
            ),
        )
        with expired, pytest.raises(grpc.RpcError) as handshake:
            rpc.AggregatorStub(expired).Join(pb.JoinRequest(job="admission", silo="a", num_samples=1), timeout=10)
        assert handshake.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_lifetimes_and_renewal_times_follow_the_requested_life() -> None:
    ca = CertificateAuthority.create()
    tls = ca.issue("a", server=False, lifetime=dt.timedelta(hours=24))
    expiry = certificate_expiry(tls.certificate_pem)
    now = dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23, minutes=59) < expiry - now <= dt.timedelta(hours=24)
    # Two thirds of the way from issue (backdated five minutes) to expiry.
    due = renewal_due(tls.certificate_pem)
    assert dt.timedelta(hours=7, minutes=59) < expiry - due < dt.timedelta(hours=8, minutes=2)
    check_certificate_current(tls.certificate_pem)
    with pytest.raises(ValueError, match="expired at"):
        check_certificate_current(tls.certificate_pem, now=expiry)
    with pytest.raises(ValueError, match="lifetime must be positive"):
        ca.issue("a", server=False, lifetime=dt.timedelta(0))
    other = ca.issue("a", server=False)
    with pytest.raises(ValueError, match="not for this private key"):
        check_key_pair(other.private_key_pem, tls.certificate_pem)


class _SlowTrainer(Trainer):
    """The instant trainer, made to take ``seconds`` per fit so the job outlasts a certificate."""

    seconds: float = 2.0

    def run(self) -> None:
        next_round = 0
        while not self.stop.is_set():
            offered = self.link.next_task(next_round, 0.5)
            if offered is None:
                continue
            task, blob = offered
            if task.kind == "finished":
                return
            if task.kind == "hello":
                self.link.complete(TrainerReply(round=0, num_samples=100), b"")
            else:
                time.sleep(self.seconds)
                fit = {"num_samples": 100, "train_loss": 0.5, "steps": 1, "batch_size": 10}
                reply = TrainerReply.model_validate({"round": task.round, "fit": fit if task.kind == "fit" else None})
                self.link.complete(reply, encode_weights(decode_weights(blob)) if task.kind == "fit" else b"")
            next_round = task.round + 1


def run_sidecar_to_the_end(
    hub: Hub,
    identity: SiloIdentity,
    folder: Path,
    on_verdict: Callable[[int, PolicyVerdict], None],
    *,
    beside: Callable[[], None],
) -> int | None:
    """Run silo ``a``'s real sidecar, dialling with the files in ``folder``, to the job's end (at most 300 s).

    Its trainer is a ``_SlowTrainer`` on the link, and ``beside`` (whatever renews or rotates
    its files) runs in a thread of its own meanwhile. The sidecar's exit code; None if it did
    not finish in time.
    """
    link = TrainerLinkService()
    config = SidecarConfig(
        hub.coordinator.job,
        "a",
        f"localhost:{hub.port}",
        {},
        aggregator_ca_pem=hub.ca.certificate_pem,
        identity_dir=folder,
    )
    sidecar = Sidecar(config, identity, link, on_verdict=on_verdict)
    trainer = _SlowTrainer(link)
    outcome: dict[str, int] = {}

    def serve() -> None:
        with contextlib.suppress(grpc.RpcError):
            outcome["code"] = sidecar.run()

    for target in (beside, trainer.run, serve):
        threading.Thread(target=target, daemon=True).start()
    deadline = time.monotonic() + 300
    while "code" not in outcome and time.monotonic() < deadline:
        time.sleep(0.1)
    trainer.stop.set()
    return outcome.get("code")


def test_a_sidecar_renewed_every_few_seconds_takes_part_in_every_round_of_a_job_that_outlasts_its_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process trainer takes tasks from the link directly, never over its gRPC service,
    # which is what the sidecar's dead-trainer check watches: past 10 s it would look dead.
    monkeypatch.setattr(sidecar_module, "TRAINER_SILENT_SECONDS", 3600.0)
    key = SigningKey.generate()
    with running_hub(tmp_path / "hub", ["a"], keys={"a": key}, rounds=7, roundTimeoutSeconds=60) as hub:
        folder = tmp_path / "identity"
        first = hub.ca.issue("a", server=False, lifetime=LIFETIME)
        write_identity(folder, SiloIdentity(key, first))
        stop = threading.Event()
        renewed: list[bytes] = []

        def renewer() -> None:
            # The silo side that holds the CA: renew at two thirds of each certificate's life.
            current = first.certificate_pem
            while not stop.is_set():
                wait = (renewal_due(current) - dt.datetime.now(dt.UTC)).total_seconds()
                if stop.wait(max(wait, 0.0)):
                    return
                current = renew_tls(folder, hub.ca, "a", LIFETIME).certificate_pem
                renewed.append(current)

        verdicts: dict[int, PolicyVerdict] = {}
        code = run_sidecar_to_the_end(hub, SiloIdentity(key, first), folder, verdicts.__setitem__, beside=renewer)
        finished = dt.datetime.now(dt.UTC)
        stop.set()
    assert code == 0, f"the sidecar did not finish the job: {verdicts}"
    assert sorted(verdicts) == list(range(1, 8)) and all(v.accepted for v in verdicts.values()), verdicts
    # The job went on past the first certificate's expiry, which the hub refuses on every call:
    # the last rounds' calls were made on connections dialled with a renewed certificate.
    assert finished > certificate_expiry(first.certificate_pem), "the job ended before its first certificate expired"
    assert renewed
