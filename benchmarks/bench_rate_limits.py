"""Honest silos' round time with and without a flooding silo, in the same run, under the default rate limits.

The flooding silo is enrolled in the job (its certificate and key are real) but never joins:
from 8 threads it calls the aggregator as fast as it can (``WaitRound``, which holds a call
for up to 30 s, and ``GetModel``), a bounded number of times, while 4 real sidecars with
instant trainers run plain rounds on a 100k-parameter model. The table shows the honest
rounds' median and slowest time in both runs and what the flood met (calls refused with
``RESOURCE_EXHAUSTED``, and every other status); then the same rows as JSON.

    .venv/bin/python benchmarks/bench_rate_limits.py
"""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from _harness import FLOODER, RoundFigures, print_figures, run_round_benchmark

from fedsilo.identity import read_identity
from fedsilo.protocol import pb, rpc

SILOS = 4
PARAMETERS = 100_000
ROUNDS = 5
THREADS = 8
#: Bounded: the flood ends by itself even if the job does not.
MAX_CALLS = 200_000


class Flooder:
    """The flooding silo: counts what its calls met."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, port: int, identity_dir: Path, stop: threading.Event) -> None:
        identity = read_identity(identity_dir)
        credentials = grpc.ssl_channel_credentials(
            identity.tls.ca_certificate_pem, identity.tls.private_key_pem, identity.tls.certificate_pem
        )
        budget = iter(range(MAX_CALLS))
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            stub = rpc.AggregatorStub(channel)

            def loop(index: int) -> None:
                while not stop.is_set() and next(budget, None) is not None:
                    try:
                        if index % 2:
                            stub.WaitRound(pb.WaitRoundRequest(job="bench", silo=FLOODER, after_round=0), timeout=5)
                        else:
                            list(stub.GetModel(pb.RoundRef(job="bench", round=1, silo=FLOODER), timeout=5))
                        code = "OK"
                    except grpc.RpcError as error:
                        code = error.code().name
                    with self._lock:
                        self.codes[code] = self.codes.get(code, 0) + 1

            with futures.ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(loop, range(THREADS)))


def _row(label: str, figures: RoundFigures, flooder: Flooder | None) -> dict[str, Any]:
    codes = flooder.codes if flooder is not None else {}
    return {
        "run": label,
        "honest_silos": figures.silos,
        "rounds": len(figures.round_seconds),
        "round_s_median": figures.median_seconds,
        "round_s_max": max(figures.round_seconds),
        "flood_calls": sum(codes.values()),
        "flood_resource_exhausted": codes.get("RESOURCE_EXHAUSTED", 0),
        "flood_other_codes": ", ".join(f"{k}={v}" for k, v in sorted(codes.items()) if k != "RESOURCE_EXHAUSTED"),
    }


def main() -> None:
    quiet = run_round_benchmark(SILOS, PARAMETERS, "plain", ROUNDS)
    flooder = Flooder()
    flooded = run_round_benchmark(SILOS, PARAMETERS, "plain", ROUNDS, flood=flooder)
    rows = [_row("no flood", quiet, None), _row("one silo flooding", flooded, flooder)]
    for row in rows:
        row["median_vs_no_flood"] = row["round_s_median"] / rows[0]["round_s_median"]
    print_figures(
        f"honest rounds beside a flooding silo: {SILOS} silos, {PARAMETERS} parameters, plain, default rate limits",
        rows,
    )


if __name__ == "__main__":
    main()
