"""Privacy vs utility on the quickstart: digits, 3 silos with label skew, 15 rounds of FedAvg.

    .venv/bin/python benchmarks/bench_privacy_utility.py [--seeds 7 8 9]

Final held-out accuracy (silos' accuracies weighted by their held-out records) of the
federated model with record-level DP-SGD at epsilon 8, 3 and 1 (delta 1e-5, RDP), of the
same job without DP, and of the centralized non-DP baseline, per seed and as mean and
spread. Everything else is the quickstart's own manifest: model, batch size, learning
rate, momentum, epochs, rounds, norm cap.

Each silo trains with Opacus (``fedsilo.privacy.dpsgd``: Poisson sampling, clipping norm
1.0) at the noise multiplier ``calibrate_noise`` finds for its own record count, so that
the whole job, charged the way the sidecar charges it (``charge_for_round``), costs the
target. Every round is charged to a ``PrivacyLedger``; the table's "spent" column is the
largest epsilon the ledger's accountant reads back for a silo, not the target.

The rounds run in this process: each silo's update is clipped to the norm cap by the
sidecar's own ``prepare_update`` and the sample-weighted mean goes to the job's strategy,
as the hub does after unmasking (masked and plain runs reach the same accuracy, see
tests/e2e/test_masked_matches_plain.py). ``TorchClassifierClient`` refuses DP rounds, so
the DP silos use a subclass that trains the same model with DP-SGD.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _harness import print_figures
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedsilo.api import FederatedJobSpec, load_manifest
from fedsilo.baseline import train_centralized
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.privacy import DpSgdPlan, ReportedDpParams, calibrate_noise, charge_for_round
from fedsilo.privacy.dpsgd import make_dp_sgd
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import Weights
from fedsilo.sidecar import prepare_update
from fedsilo.strategies import DpSgdConfig, FitConfig, make_strategy
from fedsilo.trainer import EvaluateConfig, FitResult, TorchClassifierClient, TrainerClient, build_client, build_model

QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.yaml"
EPSILONS = (8.0, 3.0, 1.0)
DELTA = 1e-5
CLIP = 1.0


class DpSgdClassifierClient(TorchClassifierClient):
    """The built-in client's model, weights and evaluation, trained with DP-SGD as ``config.dp`` says."""

    def fit(self, config: FitConfig) -> FitResult:
        """``config.local_epochs`` epochs of Poisson-sampled DP-SGD over the training split."""
        if config.dp is None:
            raise ValueError("this client only trains with DP-SGD")
        seed = np.random.SeedSequence([config.seed, config.round, self.data.silo_index or 0])
        torch.manual_seed(int(seed.generate_state(1)[0]))
        records = TensorDataset(torch.from_numpy(self.data.train_x), torch.from_numpy(self.data.train_y))
        optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.model.train()
        steps, loss_sum, seen = 0, 0.0, 0
        loader = DataLoader(records, batch_size=config.batch_size)
        with make_dp_sgd(self.model, optimizer, loader, config.dp.noise_multiplier, config.dp.max_grad_norm) as dp:
            for _ in range(config.local_epochs):
                for x, y in dp.data_loader:
                    dp.optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(dp.module(x), y)
                    torch.autograd.backward(loss)
                    dp.optimizer.step()
                    steps, loss_sum, seen = steps + 1, loss_sum + float(loss.detach()) * len(y), seen + len(y)
        return FitResult(
            num_samples=len(records),
            train_loss=loss_sum / max(seen, 1),
            steps=steps,
            batch_size=config.batch_size,
            noise_multiplier=config.dp.noise_multiplier,
            max_grad_norm=config.dp.max_grad_norm,
            sample_rate=dp.sample_rate,
        )


def _plan(spec: FederatedJobSpec, data: SiloData, target: float) -> DpSgdPlan:
    """The silo's DP-SGD plan, its noise calibrated so the job's charged rounds cost ``target``."""
    records = len(data.train_y)
    batch, epochs = spec.training.batch_size, spec.training.local_epochs
    # What the sidecar charges per round for an honest Opacus run: q = batch/records, and the
    # steps Opacus takes, len(loader) = ceil(records/batch) per epoch.
    sample_rate = float(min(Fraction(1), Fraction(batch, records)))
    steps = epochs * math.ceil(records / batch)
    sigma = calibrate_noise(target, DELTA, sample_rate, spec.rounds * steps)
    return DpSgdPlan(sigma, CLIP, batch, epochs, records)


def _flat(weights: Weights) -> np.ndarray:
    return np.concatenate([weights[name].ravel() for name in sorted(weights)])


def _shaped(vector: np.ndarray, like: Weights) -> Weights:
    out, offset = {}, 0
    for name in sorted(like):
        size = like[name].size
        out[name] = vector[offset : offset + size].reshape(like[name].shape).astype(np.float32)
        offset += size
    return out


@dataclass(frozen=True)
class _DpJob:
    """A DP run: every silo's plan, and the ledger its rounds are charged to as ``job``."""

    plans: list[DpSgdPlan]
    ledger: PrivacyLedger
    job: str


def _federated(spec: FederatedJobSpec, clients: list[TrainerClient], dp: _DpJob | None) -> float:
    """Run the job's rounds (charging each DP round); the final weighted held-out accuracy."""
    strategy = make_strategy(spec)
    model = clients[0].get_weights()
    for round_number in range(1, spec.rounds + 1):
        config = strategy.configure_round(round_number)
        total, weight = np.zeros_like(_flat(model), dtype=np.float64), 0
        for index, client in enumerate(clients):
            client.set_weights(model)
            if dp is None:
                result = client.fit(config)
            else:
                plan, silo = dp.plans[index], spec.silos[index]
                result = client.fit(replace(config, dp=DpSgdConfig(plan.noise_multiplier, CLIP, DELTA)))
                event = charge_for_round(ReportedDpParams.from_fit_report(asdict(result)), plan)
                key = f"{dp.job}/{silo}/{round_number}"
                dp.ledger.charge(silo, dp.job, round_number, event, idempotency_key=key, delta=DELTA)
            update = prepare_update(
                _flat(model), _flat(client.get_weights()), spec.policy.norm_cap, spec.aggregation.clip_range
            )
            total += result.num_samples * update.delta.astype(np.float64)
            weight += result.num_samples
        model = strategy.aggregate(model, _shaped(total / weight, model))
    scores = []
    for client in clients:
        client.set_weights(model)
        scores.append(client.evaluate(EvaluateConfig(round=spec.rounds)))
    return float(np.average([s.accuracy for s in scores], weights=[s.num_samples for s in scores]))


def _one_seed(seed: int, ledger: PrivacyLedger) -> dict[str, Any]:
    spec = load_manifest(QUICKSTART).job.spec.model_copy(update={"seed": seed})
    silos = [load_silo_data(spec, i, len(spec.silos)) for i in range(len(spec.silos))]
    results: dict[str, Any] = {"centralized": train_centralized(spec, len(spec.silos)).accuracy}
    results["none"] = _federated(spec, [build_client(spec, data) for data in silos], None)
    for target in EPSILONS:
        plans = [_plan(spec, data, target) for data in silos]
        clients: list[TrainerClient] = []
        for data in silos:
            # As build_client does: the job's seed makes every silo start from the same weights.
            torch.manual_seed(spec.seed)
            clients.append(DpSgdClassifierClient(build_model(spec.model, data.input_shape, data.num_classes), data))
        job = f"quickstart-seed{seed}-eps{target:g}"
        accuracy = _federated(spec, clients, _DpJob(plans, ledger, job))
        spent = max(ledger.epsilon_spent(silo, job, delta=DELTA) for silo in spec.silos)
        results[f"eps{target:g}"] = {
            "accuracy": accuracy,
            "spent": spent,
            "noise_multipliers": [p.noise_multiplier for p in plans],
            "records": [p.records for p in plans],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9], help="job seeds (data split, init, noise)")
    seeds = parser.parse_args().seeds
    # dp_accounting logs each RDP order it cannot evaluate (it drops them, which only loosens
    # the bound): hundreds of lines per calibration here, none of them news.
    logging.getLogger("absl").setLevel(logging.ERROR)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, PrivacyLedger(Path(scratch) / "ledger.db") as ledger:
        runs = {seed: _one_seed(seed, ledger) for seed in seeds}
        ledger.verify()

    def row(setting: str, target: str, accuracies: list[float], spent: str, sigmas: str) -> dict[str, Any]:
        return {
            "setting": setting,
            "target eps": target,
            "spent eps (max silo)": spent,
            "noise multiplier": sigmas,
            "accuracy mean": float(np.mean(accuracies)),
            "accuracy std": float(np.std(accuracies)),
            "per seed": " ".join(f"{a:.3f}" for a in accuracies),
        }

    rows = [
        row("centralized, no DP", "-", [runs[s]["centralized"] for s in seeds], "-", "-"),
        row("federated, no DP", "-", [runs[s]["none"] for s in seeds], "-", "-"),
    ]
    for target in EPSILONS:
        dp = [runs[s][f"eps{target:g}"] for s in seeds]
        sigmas = [sigma for d in dp for sigma in d["noise_multipliers"]]
        rows.append(
            row(
                "federated, DP-SGD",
                f"{target:g}",
                [d["accuracy"] for d in dp],
                f"{max(d['spent'] for d in dp):.3f}",
                f"{min(sigmas):.2f}-{max(sigmas):.2f}",
            )
        )
    print_figures(f"privacy vs utility, quickstart, delta {DELTA:g}, seeds {seeds}", rows)
    print(f"# {time.perf_counter() - started:.0f} s for {len(seeds)} seeds")


if __name__ == "__main__":
    main()
