"""The trainer process: loads its silo's data, then serves its sidecar's tasks until the job ends.

It never opens a network connection: its only peer is its own sidecar, over a Unix socket
locally (``unix:PATH``) or the silo's pod network in a cluster, and it holds no secret.
Called by ``fedsilo trainer``; ``fedsilo run`` starts one per silo, inside its own network
namespace where the OS allows it.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import asdict, fields
from typing import Any

import grpc

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import load_silo_data
from fedsilo.protocol import decode_weights, encode_weights, frames_in, frames_out, pb, rpc

from ._client import DpSgdConfig, EvaluateConfig, FitConfig, TrainerClient
from ._factory import build_client

log = logging.getLogger("fedsilo.trainer")

# The largest task the trainer accepts (a model plus framing).
TASK_LIMIT_BYTES = 1 << 31


def _channel(target: str, ca_certificate_pem: bytes | None) -> grpc.Channel:
    options = [("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)]
    if target.startswith("unix:"):
        return grpc.insecure_channel(target, options=options)
    if ca_certificate_pem is None:
        raise ValueError("a TCP sidecar address needs the silo CA certificate (--sidecar-ca)")
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_certificate_pem), options=options)


def _fit_config(document: dict[str, Any]) -> FitConfig:
    known = {f.name for f in fields(FitConfig)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValueError(f"fit configuration has unknown fields {unknown}")
    dp = document.get("dp")
    return FitConfig(**{**document, "dp": DpSgdConfig(**dp) if isinstance(dp, dict) else None})


def _task(stub: rpc.TrainerLinkStub, silo: str, next_round: int) -> tuple[dict[str, Any], bytes]:
    while True:
        try:
            return frames_in(
                stub.NextTask(pb.TaskRequest(silo=silo, next_round=next_round), timeout=90), TASK_LIMIT_BYTES
            )
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                time.sleep(0.2)
                continue
            raise


def _serve(client: TrainerClient, header: dict[str, Any], blob: bytes, num_test: int) -> tuple[dict[str, Any], bytes]:
    """Run one fit or evaluate task; the result header and the local model bytes."""
    client.set_weights(decode_weights(blob))
    evaluation = client.evaluate(EvaluateConfig(round=header["round"]))
    reply: dict[str, Any] = {"round": header["round"]}
    if num_test and math.isfinite(evaluation.loss):
        reply["evaluation"] = {
            "loss": evaluation.loss,
            "accuracy": evaluation.accuracy,
            "num_samples": evaluation.num_samples,
        }
    if header["kind"] != "fit":
        return reply, b""
    result = client.fit(_fit_config(header["fit_config"]))
    reply["fit"] = {k: v for k, v in asdict(result).items() if k != "metrics"} | {"metrics": dict(result.metrics)}
    return reply, encode_weights(client.get_weights())


def run_trainer(
    spec: FederatedJobSpec,
    silo: str,
    sidecar: str,
    *,
    data_path: str | None = None,
    ca_certificate_pem: bytes | None = None,
) -> int:
    """Serve tasks until the job ends; 0 on a normal end."""
    data = load_silo_data(spec, spec.silos.index(silo), len(spec.silos), data_path)
    client = build_client(spec, data)
    log.info("trainer for %s ready: %d training and %d test records", silo, len(data.train_y), len(data.test_y))
    with _channel(sidecar, ca_certificate_pem) as channel:
        stub = rpc.TrainerLinkStub(channel)
        next_round = 0
        while True:
            header, blob = _task(stub, silo, next_round)
            kind, round_number = header.get("kind"), header.get("round")
            if kind == "finished":
                return 0
            if not isinstance(round_number, int):
                raise ValueError("task header has no integer round")
            if kind == "hello":
                reply: dict[str, Any] = {"round": round_number, "num_samples": len(data.train_y)}
                out = b""
            else:
                try:
                    reply, out = _serve(client, header, blob, len(data.test_y))
                except Exception as error:  # reported to the sidecar, which skips the round
                    log.error("round %d failed: %s", round_number, traceback.format_exc())
                    reply, out = {"round": round_number, "error": f"{type(error).__name__}: {error}"}, b""
            ack = stub.Complete(frames_out(reply, out))
            if not ack.ok:
                log.error("sidecar refused the round %d result: %s", round_number, ack.message)
            next_round = round_number + 1
