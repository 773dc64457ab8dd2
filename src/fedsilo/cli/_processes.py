"""``fedsilo sidecar`` and ``fedsilo trainer``: the per-silo processes, as pods run them too.

Both stop promptly on SIGTERM (:func:`fedsilo.launch.raise_on_sigterm`): as PID 1 of their
containers they would otherwise ignore it and every deleted silo pod would wait out its grace
period. The handler is installed here, in the process's main thread, not in ``run_sidecar`` /
``run_trainer``, which tests also run in threads of their own.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fedsilo.launch import SidecarArgs, TrainerArgs, raise_on_sigterm
from fedsilo.sidecar import run_sidecar

from ._exit import EXIT_USAGE
from ._manifests import manifest_or_report

log = logging.getLogger("fedsilo.cli")


def _sidecar(parsed: argparse.Namespace) -> int:
    raise_on_sigterm()
    args = SidecarArgs.from_namespace(parsed)
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    try:
        return run_sidecar(args, manifest)
    except ValueError as error:
        log.error("%s", error)
        return EXIT_USAGE


def _trainer(parsed: argparse.Namespace) -> int:
    raise_on_sigterm()
    args = TrainerArgs.from_namespace(parsed)
    manifest = manifest_or_report(args.job_config, args.silo)
    if manifest is None:
        return EXIT_USAGE
    spec = manifest.job.spec
    data_path = args.data_path or manifest.silo(args.silo).spec.data.path
    # Imported here: training needs PyTorch, which only the trainer image carries; every
    # other command runs from the smaller fedsilo image without it.
    from fedsilo.trainer import run_trainer

    return run_trainer(
        spec,
        args.silo,
        args.sidecar,
        data_path=data_path,
        sidecar_ca=args.sidecar_ca,
        preprocessing=args.preprocessing,
    )


def register(commands: Any) -> None:
    """Add ``sidecar`` and ``trainer``, with the flags their typed arguments declare."""
    SidecarArgs.register(commands).set_defaults(handler=_sidecar)
    TrainerArgs.register(commands).set_defaults(handler=_trainer)
