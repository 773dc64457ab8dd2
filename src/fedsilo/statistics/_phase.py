"""One statistics phase end to end, on one machine: the silos, the hub, and the messages between them.

Called by ``fedsilo stats`` and by the local run before training (``fedsilo.runner``).
The silos and the hub are separate objects that share nothing but the messages a
deployment would carry (signed key adverts, encrypted shares, masked words, unmask
requests and reveals, and the public pass-2 ranges); the hub object never holds a silo's
records or unmasked vector, which ``HubView`` lets a test check. In a cluster the same
messages would travel over the aggregator's gRPC service; that transport is not built
yet (docs/statistics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import DataError, load_raw_silo_data
from fedsilo.identity import SigningKey
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.secagg import SecAggAbort, SecAggError

from ._hub import HubView, StatisticsHub
from ._layout import HISTOGRAM, MOMENTS
from ._plan import StatisticsError, StatisticsPlan
from ._result import FederatedStatistics
from ._silo import StatisticsSilo


@dataclass(frozen=True)
class SiloRecords:
    """What one silo brings to the phase: its name, its training records, its identity and ledger."""

    name: str
    records: npt.NDArray[np.floating]
    signing_key: SigningKey
    ledger: Path | None = None
    max_epsilon: float | None = None


@dataclass(frozen=True)
class StatisticsOutcome:
    """The released statistics and, for inspection, everything the hub received."""

    statistics: FederatedStatistics
    hub_view: HubView


def job_silos(
    spec: FederatedJobSpec,
    keys: Mapping[str, SigningKey],
    *,
    own_files: Mapping[str, str] | None = None,
    ledgers: Mapping[str, Path] | None = None,
    ceilings: Mapping[str, float | None] | None = None,
) -> list[SiloRecords]:
    """Each silo of ``spec`` with its raw training records, as its own process would load them."""
    files, ledger_paths, limits = own_files or {}, ledgers or {}, ceilings or {}
    return [
        SiloRecords(
            name,
            load_raw_silo_data(spec, index, len(spec.silos), files.get(name)).train_x,
            keys[name],
            ledger_paths.get(name),
            limits.get(name),
        )
        for index, name in enumerate(spec.silos)
    ]


def run_statistics(
    job: str,
    spec: FederatedJobSpec,
    silos: Sequence[SiloRecords],
    *,
    rng: np.random.Generator | None = None,
) -> StatisticsOutcome:
    """Two masked passes over the silos' records; the statistics the hub may publish.

    ``job`` names the run (the ledgers' job name, the secure aggregation's context).
    ``rng`` seeds the DP noise in tests; production noise comes from the OS.

    Raises:
        DataError: the records do not fit the settings (the message names the field).
        StatisticsError: too few silos take part for secure aggregation (the message names
            them and why).
    """
    widths = {s.name: int(np.prod(s.records.shape[1:])) for s in silos}
    if len(set(widths.values())) != 1:
        raise DataError(f"the silos' records have different widths {widths}; they cannot share statistics")
    plan = StatisticsPlan.for_job(job, spec, next(iter(widths.values())))
    ledgers = {s.name: PrivacyLedger(s.ledger) for s in silos if s.ledger is not None and plan.private}
    try:
        members = {
            s.name: StatisticsSilo(
                plan,
                s.name,
                s.records,
                s.signing_key,
                ledger=ledgers.get(s.name),
                max_epsilon=s.max_epsilon,
                job_ceiling=spec.policy.max_epsilon,
                rng=rng,
            )
            for s in silos
        }
        hub = StatisticsHub(plan, {s.name: s.signing_key.public_key for s in silos})
        for name, member in members.items():
            reason = member.decline()
            if reason is not None:
                hub.excluded[name] = reason
        taking_part = {n: m for n, m in members.items() if n not in hub.excluded}
        try:
            moments = _pass(hub, taking_part, MOMENTS, lambda m: m.moments())
            ranges = hub.ranges(moments)
            histogram = _pass(hub, taking_part, HISTOGRAM, lambda m: m.histogram(ranges))
        except (SecAggAbort, SecAggError) as error:
            left_out = "; ".join(f"{s}: {r}" for s, r in sorted(hub.excluded.items())) or "none"
            raise StatisticsError(
                f"the statistics cannot be aggregated securely ({error}); silos left out: {left_out}"
            ) from error
        return StatisticsOutcome(hub.publish(moments, histogram, ranges), hub.view)
    finally:
        for ledger in ledgers.values():
            ledger.close()


def _pass(
    hub: StatisticsHub,
    members: Mapping[str, StatisticsSilo],
    phase: str,
    vector_of: Callable[[StatisticsSilo], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """One secure-aggregation pass: adverts, shares, masked inputs, unmasking; the decoded total."""
    server = hub.open(phase)
    config = hub.config(phase)
    adverts = server.advertise({n: m.join(config, hub.verify_keys) for n, m in members.items()})
    for name, member in members.items():
        member.client.receive_adverts(adverts[name])
    deliveries = server.share_keys({n: m.client.share_keys() for n, m in members.items() if n in adverts})
    for name, delivery in deliveries.items():
        members[name].client.receive_shares(delivery)
    for name in deliveries:
        hub.receive(name, members[name].masked(vector_of(members[name])))
    request = server.unmask_request()
    server.unmask({name: members[name].client.unmask(request) for name in deliveries})
    return hub.total()
