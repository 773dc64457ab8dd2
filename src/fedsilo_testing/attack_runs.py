"""Whole local runs with a malicious silo, and the job they and the in-process simulation run.

The e2e robustness test runs whole jobs here; ``robust_simulation`` builds the same job.

Kept apart from :mod:`fedsilo_testing.attacks`, which the trainers import: this module
imports the runner (hub, gRPC server), which a trainer has no use for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions, RunReport

from .attacks import ATTACK_ENV, FACTORY, AttackPlan


def attack_job(folder: Path, strategy: dict[str, Any], **job: Any) -> Path:
    """:func:`attack_document` (with its ``job`` arguments) and its Silos written as a manifest; its path."""
    document = attack_document(strategy, **job)
    names = document["spec"]["silos"]
    documents = [
        document,
        *({"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": n}} for n in names),
    ]
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def attack_document(
    strategy: dict[str, Any],
    *,
    silos: int = 5,
    rounds: int = 3,
    seed: int = 3,
    alpha: float | None = None,
    max_anomaly_score: float | None = None,
    min_silos: int | None = None,
) -> dict[str, Any]:
    """A plain-mode digits FederatedJob of ``silos`` silos under ``strategy``, as a manifest document.

    The sidecars' norm cap and clip range are raised out of the way, as a partner running a
    modified sidecar would have them: the attack reaches the hub as the trainer made it.
    ``alpha`` is a Dirichlet label skew (non-IID); None splits the records IID.
    ``max_anomaly_score`` is the policy's limit on a silo's anomaly score (None: not judged);
    ``min_silos`` the quorum (None: every silo).
    """
    names = [f"hospital-{i}" for i in range(silos)]
    partition = {"scheme": "iid"} if alpha is None else {"scheme": "dirichlet", "alpha": alpha}
    job = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "robust"},
        "spec": {
            "silos": names,
            "minSilos": silos if min_silos is None else min_silos,
            "rounds": rounds,
            # Generous: a loaded machine starts ten Python processes before the first round.
            "roundTimeoutSeconds": 300,
            "seed": seed,
            "model": {"factory": FACTORY},
            "data": {"source": "digits", "partition": partition, "testFraction": 0.2},
            "training": {"localEpochs": 1, "batchSize": 32, "learningRate": 0.05, "momentum": 0.9},
            "strategy": strategy,
            "aggregation": {"mode": "plain", "clipRange": 1e6},
            "policy": {"normCap": 1e6, "dataClass": "internal"}
            | ({} if max_anomaly_score is None else {"maxAnomalyScore": max_anomaly_score}),
        },
    }
    return job


@contextmanager
def attack_plan(plan: AttackPlan) -> Iterator[None]:
    """``plan`` in this process's environment (every trainer a run starts inherits it), then restored."""
    before = os.environ.get(ATTACK_ENV)
    os.environ.update(plan.to_env())
    try:
        yield
    finally:
        if before is None:
            del os.environ[ATTACK_ENV]
        else:
            os.environ[ATTACK_ENV] = before


def run_attacked(folder: Path, strategy: dict[str, Any], plan: AttackPlan, **job: Any) -> RunReport:
    """One whole local run of :func:`attack_job` under ``plan``; its report (finished or failed).

    ``folder`` should have a short path: the trainers' Unix sockets live under it, and the OS
    caps a socket path at 108 bytes.
    """
    folder.mkdir(parents=True)
    path = attack_job(folder, strategy, **job)
    with attack_plan(plan):
        return LocalRun(
            load_manifest(path),
            RunOptions(manifest_path=path, workdir=folder / "w", registry=folder / "registry", baseline=False),
        ).execute()
