"""A trainer that returns NaN/Inf or wrongly shaped weights: the sidecar rejects the update
with a reason in its log, and the round goes on with the other silos. One run: the faulty
silo sends NaN in its first round and an extra tensor in its next (a masked round that lost a silo
leaves it out of the following one, so that is round 3)."""

from __future__ import annotations

from pathlib import Path

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import quick_manifest

FAULTY_FACTORY = '''
import numpy as np
from fedsilo.api import ModelSpec
from fedsilo.trainer import build_model, TorchClassifierClient

class Faulty(TorchClassifierClient):
    """Breaks its weights after training, on the smallest silo only: NaN first, then an extra tensor."""
    fits = 0
    def fit(self, config):
        self.fits += 1
        return super().fit(config)
    def get_weights(self):
        weights = super().get_weights()
        if self.fits and len(self.data.train_y) < 400:
            if self.fits == 1:
                first = next(iter(weights))
                weights[first][...] = np.nan
            else:
                weights["extra.weight"] = np.zeros(3, np.float32)
        return weights

def make_client(spec, data):
    return Faulty(build_model(ModelSpec(builtin="mlp"), data.input_shape, data.num_classes), data)
'''


def test_broken_trainer_updates_are_rejected_and_the_rounds_go_on(tmp_path: Path) -> None:
    (tmp_path / "faulty.py").write_text(FAULTY_FACTORY)
    path = quick_manifest(tmp_path, rounds=3, roundTimeoutSeconds=8, model={"factory": "faulty:make_client"})
    report = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=tmp_path / "run", registry=tmp_path / "registry", baseline=False),
    ).execute()
    assert report.status == "succeeded", report.failure
    assert report.rounds[0].dropped == ["hospital-a"], report.rounds
    for row in report.rounds:
        assert sorted(row.accepted) == ["hospital-b", "hospital-c"]
    log = (tmp_path / "run" / "silos" / "hospital-a" / "sidecar.log").read_text()
    for reason in ("non_finite", "shape_mismatch"):
        assert f"rejected the trainer's update: {reason}" in log, reason
