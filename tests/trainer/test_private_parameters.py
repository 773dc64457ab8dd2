"""Private parameters: the job's markings resolve on the model, bad ones are refused naming the field, and
what the trainer hands its sidecar (the exact trainer-link bytes) holds only the shared parameters."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.protocol import TrainerTask, architecture_fingerprint, decode_weights, encode_weights
from fedsilo.trainer import (
    EvaluateConfig,
    PersonalizationError,
    PersonalizedClient,
    build_client,
    fine_tune,
    initial_weights,
)
from fedsilo.trainer._process import _serve

from ..datasets.conftest import job_spec
from .conftest import fit_config


def _spec(model: dict[str, Any] | None = None, **personalization: Any) -> FederatedJobSpec:
    return job_spec(
        seed=7,
        model=model or {"builtin": "mlp", "hiddenSizes": [16]},
        data={"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.5}},
        personalization=personalization,
    )


@pytest.fixture(scope="module")
def data() -> SiloData:
    return load_silo_data(_spec(privateHead=True), 0, 3)


def _private(spec: FederatedJobSpec, data: SiloData) -> frozenset[str]:
    client = build_client(spec, data)
    assert isinstance(client, PersonalizedClient)
    return client.private


def test_fedper_keeps_the_last_layer_and_fedbn_every_normalization_layer(data: SiloData) -> None:
    assert _private(_spec(privateHead=True), data) == {"layers.2.weight", "layers.2.bias"}
    batch = _spec({"builtin": "mlp", "hiddenSizes": [16], "normalization": "batch"}, privateNormalization=True)
    assert _private(batch, data) == {
        "layers.1.weight",
        "layers.1.bias",
        "layers.1.running_mean",
        "layers.1.running_var",
        "layers.1.num_batches_tracked",
    }
    cnn = _spec({"builtin": "cnn", "normalization": "layer"}, privateNormalization=True, privateHead=True)
    assert _private(cnn, data) == {
        "features.1.weight",
        "features.1.bias",
        "features.4.weight",
        "features.4.bias",
        "head.2.weight",
        "head.2.bias",
    }
    # A module name keeps its parameters; a parameter name keeps itself.
    assert _private(_spec(privateParameters=["layers.0"]), data) == {"layers.0.weight", "layers.0.bias"}
    assert _private(_spec(privateParameters=["layers.0.bias"]), data) == {"layers.0.bias"}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_spec(privateParameters=["classifier"]), "privateParameters: 'classifier' names nothing in the model"),
        # A prefix of a name is not a module: "layers.0.w" is not "layers.0.weight".
        (
            _spec(privateParameters=["layers.0.w"]),
            "names nothing in the model; name a parameter or module of: layers.0",
        ),
        (_spec(privateParameters=["layers"]), "keeps every parameter of the model in the silos"),
    ],
    ids=["unknown module", "partial name", "everything private"],
)
def test_markings_that_do_not_fit_the_model_are_refused_naming_the_field(
    spec: FederatedJobSpec, words: str, data: SiloData
) -> None:
    with pytest.raises(PersonalizationError, match=words):
        build_client(spec, data)


def test_the_hub_model_and_its_fingerprint_cover_only_the_shared_parameters(data: SiloData) -> None:
    plain = initial_weights(_spec(fineTuneEpochs=1), data)
    shared = initial_weights(_spec(privateHead=True), data)
    assert set(plain) - set(shared) == {"layers.2.weight", "layers.2.bias"}
    assert architecture_fingerprint(shared) != architecture_fingerprint(plain)
    assert architecture_fingerprint(shared) == architecture_fingerprint({k: plain[k] for k in shared})


def test_the_trainer_link_carries_only_shared_parameters_and_the_private_ones_stay_trained(data: SiloData) -> None:
    spec = _spec(privateHead=True)
    client = build_client(spec, data)
    assert isinstance(client, PersonalizedClient)
    global_model = client.get_weights()
    head_before = client.inner.get_weights()["layers.2.weight"].copy()
    task = TrainerTask(kind="fit", round=1, fit_config=fit_config().__dict__)
    reply, sent = _serve(client, task, encode_weights(global_model), len(data.test_y), spec)
    assert reply.fit is not None and reply.evaluation is not None
    # The bytes the trainer puts on the link: the shared tensors, nothing else.
    assert set(decode_weights(sent)) == set(global_model) and not set(decode_weights(sent)) & client.private
    # The head trained here and stays here, across the next round's global model too.
    head_after = client.inner.get_weights()["layers.2.weight"]
    assert not np.array_equal(head_before, head_after)
    client.set_weights(global_model)
    assert np.array_equal(client.inner.get_weights()["layers.2.weight"], head_after)


def test_a_global_model_that_carries_a_private_parameter_is_refused(data: SiloData) -> None:
    client = build_client(_spec(privateHead=True), data)
    assert isinstance(client, PersonalizedClient)
    with pytest.raises(ValueError, match=re.escape("carries 'layers.2.bias', which the job keeps in each silo")):
        client.set_weights(client.inner.get_weights())


def test_personalize_scores_the_model_fine_tunes_it_and_sends_nothing_of_it(data: SiloData) -> None:
    spec = _spec(fineTuneEpochs=5, fineTuneLearningRate=0.1)
    client = build_client(spec, data)
    model = encode_weights(client.get_weights())
    reply, sent = _serve(client, TrainerTask(kind="personalize", round=2), model, len(data.test_y), spec)
    assert sent == b"" and reply.fit is None
    assert reply.evaluation is not None and reply.personalized is not None
    # From an untrained model, five local epochs on the silo's own data score better on its own split.
    assert reply.personalized.accuracy > reply.evaluation.accuracy
    assert client.evaluate(EvaluateConfig(round=2)).accuracy == reply.personalized.accuracy


def test_a_job_that_does_not_fine_tune_cannot_be_asked_to(data: SiloData) -> None:
    spec = _spec(privateHead=True)
    with pytest.raises(ValueError, match="fineTuneEpochs is 0"):
        fine_tune(build_client(spec, data), spec)
