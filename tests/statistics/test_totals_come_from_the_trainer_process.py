"""Where the data is: each silo's sidecar takes part in the statistics phase with totals it gets from its
own trainer process over the trainer link (the sidecar never loads a record), over the aggregator's gRPC
service with mutual TLS; the released statistics are numpy's on the pooled records, and every trainer
builds its model with the one transform the hub released."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np

from fedsilo.api import FederatedJob
from fedsilo.datasets import load_raw_silo_data
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.protocol import TrainerTask, rpc
from fedsilo.runner import HubStatistics, build_gate
from fedsilo.sidecar import SidecarConfig, TrainerLinkService, silo_channel, start_link_server
from fedsilo.sidecar._trainer_statistics import statistics_before_training
from fedsilo.trainer import run_trainer

from .conftest import tabular_spec

SILOS = ["bank-a", "bank-b", "bank-c"]
STEP_SECONDS = 120.0


def test_sidecars_take_part_with_their_trainers_totals_and_hand_back_one_transform(tmp_path: Path) -> None:
    spec = tabular_spec(
        {"scaling": "standardize", "categorical": [12]}, tabular={"recordsPerSilo": 400}, silos=SILOS, minSilos=2
    )
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "link"},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
    )
    ca = CertificateAuthority.create()
    keys = {name: SigningKey.generate() for name in SILOS}
    peers = {name: key.public_key for name, key in keys.items()}
    gate = build_gate(tmp_path, SigningKey.generate())
    server_tls = ca.issue("aggregator", server=True, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    spawn = multiprocessing.get_context("spawn")
    links: dict[str, TrainerLinkService] = {}
    trainers = {}
    link_servers = []
    fitted = {}
    hello = {}
    errors: list[BaseException] = []
    hub: HubStatistics | None = None
    try:
        for name in SILOS:
            links[name] = TrainerLinkService()
            socket = f"unix:{tmp_path / f'{name}.sock'}"
            link_servers.append(start_link_server(links[name], socket, None))
            trainers[name] = spawn.Process(target=run_trainer, args=(spec, name, socket), daemon=True)
            trainers[name].start()
        # The phase's steps have deadlines: it opens once every trainer is up and on its link.
        started = time.monotonic()
        while not all(link.trainer_connected() for link in links.values()):
            assert time.monotonic() - started < 600, "the trainer processes did not start"
            time.sleep(0.5)
        hub = HubStatistics(job, "link/run-1", peers, gate, "127.0.0.1:0", server_tls, step_seconds=STEP_SECONDS)

        def sidecar(name: str, port: int) -> None:
            try:
                config = SidecarConfig(
                    job=job, silo=name, aggregator=f"localhost:{port}", peer_keys=peers, run_id="run-1"
                )
                identity = SiloIdentity(keys[name], ca.issue(name, server=False))
                with silo_channel(config.aggregator, identity, None) as channel:
                    fitted[name] = statistics_before_training(
                        rpc.AggregatorStub(channel), links[name], config, keys[name], peers, timeout=120.0
                    )
                # The trainer builds its model with the transform it was handed: hello answers.
                links[name].offer(TrainerTask(kind="hello", round=0))
                hello[name] = links[name].await_result(0, timeout=120.0).header.num_samples
            except BaseException as error:  # reported by the test below
                errors.append(error)
            finally:
                links[name].offer(TrainerTask(kind="finished", round=1))

        threads = [threading.Thread(target=sidecar, args=(name, hub.port), daemon=True) for name in SILOS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors, errors
        release = hub.release()
    finally:
        if hub is not None:
            hub.close()
        for trainer in trainers.values():
            trainer.join(timeout=60)
            if trainer.is_alive():
                trainer.kill()
        for server in link_servers:
            server.stop(None)
        gate.audit.close()
    assert not errors, errors
    assert all(trainer.exitcode == 0 for trainer in trainers.values())

    pooled_parts = [load_raw_silo_data(spec, i, len(SILOS)).train_x for i in range(len(SILOS))]
    pooled = np.concatenate(pooled_parts).astype(np.float64)
    statistics = release.statistics
    assert statistics.records == len(pooled)
    assert hello == {name: len(part) for name, part in zip(SILOS, pooled_parts, strict=True)}
    for feature in statistics.numeric:
        values = pooled[:, feature.column]
        assert feature.count == len(values)
        assert feature.mean is not None and feature.variance is not None
        assert abs(feature.mean * feature.count - values.sum()) <= 1e-6 * max(1.0, abs(values.sum()))
        assert np.isclose(feature.variance, values.var(), rtol=1e-9)
    (category,) = statistics.categorical
    codes = pooled[:, category.column].astype(int)
    assert category.counts == {str(c): float((codes == c).sum()) for c in np.unique(codes)}
    # Every silo holds the hub's transform, byte for byte.
    assert release.preprocessing is not None
    assert {f.digest() for f in fitted.values()} == {release.preprocessing.digest()}
