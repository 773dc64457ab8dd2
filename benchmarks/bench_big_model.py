"""A 100M-parameter model through one masked round and one plain round, 2 silos, over the real
mTLS gRPC service (training excluded), in the same run: round time and the hub's peak memory.

Every transfer is streamed in chunks of at most 1 MiB (the model hub -> sidecars, the update
sidecar -> hub, the trainer link), far below the 4 MiB message limit of every channel, and the
hub adds the masked payloads into one running sum.

    .venv/bin/python benchmarks/bench_big_model.py [parameters]

Needs about 12 GiB of free memory at 100M parameters (two silos and the hub on one machine).
"""

from __future__ import annotations

import sys

from _harness import measure_in_child, print_figures

PARAMETERS = 100_000_000
ROUND_TIMEOUT = 3600


def main() -> None:
    parameters = int(sys.argv[1]) if len(sys.argv) > 1 else PARAMETERS
    # A shared 2-core machine moves 400 MB through TLS, hashing and fixed point slowly: room for it.
    plain = measure_in_child(2, parameters, "plain", rounds=1, round_timeout=ROUND_TIMEOUT)
    masked = measure_in_child(2, parameters, "masked", rounds=1, round_timeout=ROUND_TIMEOUT)
    print_figures(
        f"one round of a {parameters:,}-parameter model, 2 silos: masked next to plain",
        [
            {
                "mode": figures.mode,
                "parameters": figures.parameters,
                "model_mib": figures.parameters * 4 / 2**20,
                "round_s": figures.median_seconds,
                "hub_peak_rss_growth_mib": figures.hub_peak_rss_mib,
                "bytes_up_per_silo_mib": figures.bytes_up_per_silo / 2**20,
            }
            for figures in (plain, masked)
        ],
    )
    print(f"masked / plain round time: {masked.median_seconds / plain.median_seconds:.2f}")


if __name__ == "__main__":
    main()
