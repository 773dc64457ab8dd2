"""A 100M-parameter model through one masked round, 3 silos, over the real mTLS gRPC service
(training excluded): round time, the peak resident set of the hub and of each sidecar, and
the bytes each silo sent next to the float32 update.

Each sidecar runs in a process of its own (with its instant trainer, whose copies of the
model count in that process's figure), so each one's peak memory is its own. Every transfer
is streamed in chunks of at most 1 MiB (the model hub -> sidecars, the update sidecar -> hub,
the trainer link), far below the 4 MiB message limit of every channel; the silo encodes and
masks its update slice by slice into the one vector it sends, and the hub adds each masked
payload into one running sum.

    .venv/bin/python benchmarks/bench_big_model.py [parameters] [silos] [plain]

``plain`` also runs the same round in plain mode, for the masked / plain ratio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _harness import RoundFigures, measure_in_child, print_figures

PARAMETERS = 100_000_000
SILOS = 3
ROUND_TIMEOUT = 3600
RESULTS = Path(__file__).parent / "results" / "big-model.json"


def row(figures: RoundFigures) -> dict[str, object]:
    """One table row: the round's time, everyone's peak memory, the bytes up."""
    float32_bytes = figures.parameters * 4
    return {
        "mode": figures.mode,
        "silos": figures.silos,
        "parameters": figures.parameters,
        "model_mib": float32_bytes / 2**20,
        "round_s": figures.median_seconds,
        "hub_peak_rss_mib": figures.hub_peak_rss_total_mib,
        "hub_rss_growth_mib": figures.hub_peak_rss_mib,
        "sidecar_peak_rss_mib": ", ".join(f"{m:.0f}" for m in figures.sidecar_peak_rss_mib),
        "bytes_up_per_silo_mib": figures.bytes_up_per_silo / 2**20,
        "bytes_up_vs_float32": figures.bytes_up_per_silo / float32_bytes,
    }


def main() -> None:
    parameters = int(sys.argv[1]) if len(sys.argv) > 1 else PARAMETERS
    silos = int(sys.argv[2]) if len(sys.argv) > 2 else SILOS
    # A shared 2-core machine moves 400 MB per silo through TLS, hashing and masking slowly: room for it.
    runs = [
        measure_in_child(silos, parameters, "masked", rounds=1, round_timeout=ROUND_TIMEOUT, separate_sidecars=True)
    ]
    if "plain" in sys.argv[3:]:
        runs.append(
            measure_in_child(silos, parameters, "plain", rounds=1, round_timeout=ROUND_TIMEOUT, separate_sidecars=True)
        )
    rows = [row(figures) for figures in runs]
    title = f"one round of a {parameters:,}-parameter model, {silos} silos, one process per sidecar"
    print_figures(title, rows)
    if len(runs) == 2:
        print(f"masked / plain round time: {runs[0].median_seconds / runs[1].median_seconds:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": title, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
