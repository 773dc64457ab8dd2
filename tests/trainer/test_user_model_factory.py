"""``spec.model.factory`` resolves a user's client, and every way it can fail names the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.datasets import SiloData
from fedsilo.trainer import EvaluateConfig, FactoryError, TrainerClient, build_client

from ..datasets.conftest import job_spec
from .conftest import fit_config

ROOT = Path(__file__).parents[2]


def test_the_custom_model_example_resolves_and_trains(data: SiloData, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "custom_model"))
    client = build_client(job_spec(model={"factory": "my_model:make_client"}), data)
    # The example subclasses nothing: the interface is checked structurally.
    assert isinstance(client, TrainerClient)
    assert TrainerClient not in type(client).__mro__
    before = client.evaluate(EvaluateConfig(round=0))
    client.fit(fit_config())
    assert client.evaluate(EvaluateConfig(round=1)).loss < before.loss


def test_a_factory_returning_a_subclass_of_the_torch_client_resolves(
    data: SiloData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tuned.py").write_text(
        "from fedsilo.api import ModelSpec\n"
        "from fedsilo.trainer import TorchClassifierClient, build_model\n"
        "def make(spec, data):\n"
        "    return TorchClassifierClient(build_model(ModelSpec(builtin='mlp', hiddenSizes=[8]), data.input_shape, data.num_classes), data)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    client = build_client(job_spec(model={"factory": "tuned:make"}), data)
    assert client.get_weights()["layers.0.weight"].shape == (8, 64)


@pytest.mark.parametrize(
    ("source", "factory", "message"),
    [
        (None, "absent_module:make", r"spec\.model\.factory 'absent_module:make': cannot import 'absent_module'"),
        ("raise RuntimeError('no GPU here')\n", "broken:make", r"importing 'broken' failed: RuntimeError: no GPU here"),
        ("x = 1\n", "plain:make", r"module 'plain' has no callable 'make'"),
        (
            "def make(spec, data):\n    return object()\n",
            "wrong:make",
            r"returned object, which lacks the .*TrainerClient methods",
        ),
        (
            "def make(spec, data):\n    raise KeyError('weights.pt')\n",
            "failing:make",
            r"'failing:make' raised KeyError: 'weights\.pt'",
        ),
    ],
)
def test_a_factory_that_cannot_be_used_is_named_with_the_reason(
    data: SiloData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, factory: str, message: str
) -> None:
    module = factory.split(":")[0]
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FactoryError, match=message):
        build_client(job_spec(model={"factory": factory}), data)
