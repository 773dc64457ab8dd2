"""The quickstart's federated model reaches at least 97% of the centralized model's accuracy."""

from __future__ import annotations

from pathlib import Path

from fedsilo.api import load_manifest
from fedsilo.baseline import train_centralized

from .conftest import simulate

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def test_the_quickstart_federated_accuracy_is_within_three_percent_of_centralized() -> None:
    spec = load_manifest(QUICKSTART).job.spec
    federated = simulate(spec)
    centralized = train_centralized(spec, len(spec.silos))
    assert federated[-1] >= 0.97 * centralized.accuracy, (federated, centralized.accuracy)
    assert centralized.accuracy > 0.9
