"""The statistics phase of ``fedsilo run``, served from the supervised hub process before training.

``_supervised.serve_hub`` calls :func:`statistics_before_training` before it builds the
training hub, so a hub process killed during the phase is restarted by the runner like one
killed in a round: on the same port, with the same CA, the silos' sidecars staying up.

- The run's first hub process (``fresh``: the silos are new processes, in a new run or after
  ``fedsilo run --resume``) serves the phase; a release an earlier runner left behind is
  taken down first, since these silos take part again.
- A restarted hub whose phase had released (``statistics/preprocessing.json`` is written
  after the silos got the release) serves nothing: its silos are past the phase and join
  training. A restart before that serves the phase again, and the live sidecars take part
  again from the join (``Sidecar._statistics``).

Doing the phase again costs no privacy twice: each silo's ledger charges the phase once per
run (an idempotency key of job, silo and round 0), and each silo keeps the noised totals it
released beside its ledger (``fedsilo.sidecar.StatisticsReleases``), so the same silos send
the same noised totals again, from a live sidecar or a new one after ``--resume``, and the hub
learns nothing new. The hub's ledger (``--ledgers``/hub.sqlite) charges each silo whose noised
totals it admits under the same key, so the phase taken again finds that row too. A pass asked for with other public inputs (other silos took part) is
refused by the silo rather than drawn again. The audit log goes on in the same chain: the dead attempt's
decisions, the new attempt's, its release, then the restarted hub's ``resume`` record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from fedsilo.api import Manifest, Silo
from fedsilo.datasets import PREPROCESSING_FILE, FittedPreprocessing
from fedsilo.identity import TlsCredentials, VerifyKey
from fedsilo.privacy.ledger import run_name
from fedsilo.registry import LocalRegistry

from ._gate import build_gate
from ._hub import aggregator_signing_key
from ._statistics import HUB_LEDGER_FILE, STATISTICS_DIR, HubStatistics, open_hub_ledger, write_statistics

log = logging.getLogger("fedsilo.run")


def statistics_before_training(
    manifest: Manifest,
    silos: Sequence[Silo],
    workdir: Path,
    registry: Path,
    run_id: str,
    listen: str,
    server_tls: TlsCredentials,
    *,
    ledgers: Path,
    fresh: bool,
    serving: Callable[[float], None],
) -> FittedPreprocessing | None:
    """The fitted transform of a job with federated preprocessing (None for any other job), served if need be.

    ``silos`` carry this run's public keys; ``serving`` is told the phase's longest life in
    seconds once its server listens on ``listen``. The transform is kept in the registry by
    its digest, as every round's lineage names it. ``ledgers`` is the run's directory of privacy
    ledgers: a private phase charges the hub's there (signed with the hub key beside it).

    Raises:
        StatisticsError: the phase failed (the message names the silos left out and why).
    """
    preprocessing = manifest.job.spec.data.preprocessing
    if preprocessing is None or not preprocessing.federated:
        return None
    job = manifest.job.metadata.name
    out = workdir / STATISTICS_DIR
    released = out / PREPROCESSING_FILE
    if fresh:
        released.unlink(missing_ok=True)
    if released.is_file():
        log.warning("the statistics phase was released before this hub process started: using %s", released)
        fitted = FittedPreprocessing.read(released)
    else:
        gate = build_gate(workdir, aggregator_signing_key(workdir))
        ledger = open_hub_ledger(manifest.job.spec, ledgers / HUB_LEDGER_FILE, ledgers)
        try:
            with HubStatistics(
                manifest.job,
                run_name(job, run_id),
                {s.metadata.name: VerifyKey.from_base64(str(s.spec.identity.public_key)) for s in silos},
                gate,
                listen,
                server_tls,
                ceilings={s.metadata.name: s.spec.max_epsilon for s in manifest.silos},
                # The silos' processes start with the hub: they may load their records as long as a round may take.
                join_seconds=float(manifest.job.spec.round_timeout_seconds),
                ledger=ledger,
            ) as hub:
                serving(hub.longest_seconds)
                release = hub.release()
        finally:
            gate.audit.close()
            if ledger is not None:
                ledger.close()
        # preprocessing.json is written last: once it is there, a restarted hub's silos are past the phase.
        files = write_statistics(release, out)
        assert files.preprocessing is not None  # the phase fits it whenever the job asks for preprocessing
        fitted = files.preprocessing
    digest = LocalRegistry(registry).save_preprocessing(job, fitted.canonical_bytes())
    log.info("statistics phase done; fitted preprocessing %s", digest)
    return fitted
