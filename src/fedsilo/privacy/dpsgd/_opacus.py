"""Record-level DP-SGD for torch models through Opacus, the maintained standard implementation.

The trainer calls ``make_dp_sgd`` when a round's ``FitConfig.dp`` is set: the module
computes per-record gradients, the optimizer clips each of them to ``max_grad_norm`` and
adds Gaussian noise of std ``noise_multiplier * max_grad_norm`` to their sum, and the data
loader draws Poisson-sampled batches (every record independently, with probability
1/len(loader)), which is the sampling the accountants' amplification bounds assume.
The noise comes from torch's default generator (seed it for reproducible runs); Opacus'
``secure_mode`` would need torchcsprng, which the trainer image does not ship.

Opacus keeps its own accountant; it is not consulted. The trainer reports the noise,
clipping norm, sample rate and step count it ran, and the sidecar recomputes the cost
with ``fedsilo.privacy.charge_for_round``: a number the trainer computed is never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader

# Opacus is imported by the functions that use it: it pulls in torch.distributed and sympy,
# 1.6 of the 5 CPU-seconds it takes every trainer to start, and most jobs train without DP-SGD.
if TYPE_CHECKING:
    from opacus import GradSampleModule


@dataclass(frozen=True)
class DpSgdTraining:
    """The private counterparts of a model, optimizer and loader: train with these only.

    Use it as a context manager (or call ``close``): leaving it takes Opacus' hooks off the
    original model, which keeps its trained weights and can be wrapped again next round.
    """

    # An nn.Module: the model, computing per-record gradients as it trains.
    module: GradSampleModule
    optimizer: torch.optim.Optimizer
    data_loader: DataLoader[tuple[torch.Tensor, ...]]

    @property
    def sample_rate(self) -> float:
        """The probability with which each record joins each batch: what the trainer reports."""
        return 1.0 / len(self.data_loader)

    def close(self) -> None:
        """Remove the per-record gradient hooks and their attributes from the model."""
        self.module.cleanup()

    def __enter__(self) -> DpSgdTraining:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def make_dp_compatible(module: nn.Module) -> nn.Module:
    """``module`` with the layers DP-SGD cannot train replaced (BatchNorm becomes GroupNorm).

    BatchNorm mixes records of a batch, so per-record gradients do not exist. Call this
    before building the optimizer: the replaced layers have new parameters. GroupNorm
    normalizes each record on its own, which suits convolutional feature maps; after a
    dense layer (BatchNorm1d on flat features) every group is one number and normalizing
    it erases it, so drop such a layer or use LayerNorm instead.
    """
    from opacus.validators import ModuleValidator

    fixed: nn.Module = ModuleValidator.fix(module)
    return fixed


def make_dp_sgd(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader[tuple[torch.Tensor, ...]],
    noise_multiplier: float,
    max_grad_norm: float,
) -> DpSgdTraining:
    """Wrap a model, its optimizer and its data loader for DP-SGD with Poisson sampling.

    ``data_loader.batch_size`` becomes the expected batch size. Wrap the same model again
    each round after closing the last round's ``DpSgdTraining``. ``ValueError`` when the
    module holds a layer Opacus cannot compute per-record gradients for, naming it; see
    ``make_dp_compatible``.
    """
    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    problems = ModuleValidator.validate(module, strict=False)
    if problems:
        raise ValueError(
            "the model cannot be trained with DP-SGD: "
            + "; ".join(str(problem) for problem in problems)
            + " (fedsilo.privacy.dpsgd.make_dp_compatible replaces such layers; call it before building the optimizer)"
        )
    # The engine's accountant only records steps here; the sidecar's ledger is the one that counts.
    # Without secure_mode (see the module docstring) Opacus warns once per process; let it.
    engine = PrivacyEngine(accountant="rdp")
    private_module, private_optimizer, private_loader = engine.make_private(
        module=module,
        optimizer=optimizer,
        data_loader=data_loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        poisson_sampling=True,
    )
    return DpSgdTraining(private_module, private_optimizer, private_loader)
