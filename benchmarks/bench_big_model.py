"""A 100M-parameter model through one masked round, 3 silos, over the real mTLS gRPC service
(training excluded): round time, the peak resident set of the hub and of each sidecar, and
the bytes each silo sent next to the float32 update.

Each sidecar runs in a process of its own (with its instant trainer, whose copies of the
model count in that process's figure), so each one's peak memory is its own. Every transfer
is streamed in chunks of at most 1 MiB (the model hub -> sidecars, the update sidecar -> hub,
the trainer link), far below the 4 MiB message limit of every channel; the silo encodes and
masks its update slice by slice into the one vector it sends, and the hub adds each masked
payload into one running sum.

    .venv/bin/python benchmarks/bench_big_model.py [parameters] [silos] [plain] [trace]

``plain`` also runs the same round in plain mode, for the masked / plain ratio. ``trace`` traces
the hub's Python heap (tracemalloc) and reports its peak, the lines holding most of it near the
peak (which whole-model copies the hub holds) and the resident set by kind of mapping. The hub's
growth and heap are also given in models (the float32 model's size), so that a peak reads as
"k whole copies".
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from _harness import RoundFigures, measure_in_child, print_figures

PARAMETERS = 100_000_000
SILOS = 3
ROUND_TIMEOUT = 3600
RESULTS = Path(__file__).parent / "results" / "big-model.json"


def row(figures: RoundFigures) -> dict[str, object]:
    """One table row: the round's time, everyone's peak memory (also in models: the float32 model's size), the bytes up."""
    float32_bytes = figures.parameters * 4
    model_mib = float32_bytes / 2**20
    return {
        "mode": figures.mode,
        "silos": figures.silos,
        "parameters": figures.parameters,
        "model_mib": model_mib,
        "round_s": figures.median_seconds,
        "hub_peak_rss_mib": figures.hub_peak_rss_total_mib,
        "hub_rss_growth_mib": figures.hub_peak_rss_mib,
        # The baseline every peak is read against: how many float32 models' worth the hub held.
        "hub_rss_growth_models": figures.hub_peak_rss_mib / model_mib,
        "hub_python_heap_models": figures.hub_peak_python_heap_mib / model_mib,
        "sidecar_peak_rss_mib": ", ".join(f"{m:.0f}" for m in figures.sidecar_peak_rss_mib),
        "bytes_up_per_silo_mib": figures.bytes_up_per_silo / 2**20,
        "bytes_up_vs_float32": figures.bytes_up_per_silo / float32_bytes,
        "hub_python_heap_mib": figures.hub_peak_python_heap_mib,
    }


def main() -> None:
    parameters = int(sys.argv[1]) if len(sys.argv) > 1 else PARAMETERS
    silos = int(sys.argv[2]) if len(sys.argv) > 2 else SILOS
    trace = "trace" in sys.argv[3:]
    modes = ["masked", "plain"] if "plain" in sys.argv[3:] else ["masked"]
    # A shared 2-core machine moves 400 MB per silo through TLS, hashing and masking slowly: room for it.
    runs = []
    loads = []
    for mode in modes:
        before = os.getloadavg()
        runs.append(
            measure_in_child(
                silos,
                parameters,
                mode,
                rounds=1,
                round_timeout=ROUND_TIMEOUT,
                separate_sidecars=True,
                trace_memory=trace,
                heap_sites=trace,
            )
        )
        loads.append([round(x, 1) for x in (*before, *os.getloadavg())])
    rows = [row(figures) for figures in runs]
    title = f"one round of a {parameters:,}-parameter model, {silos} silos, one process per sidecar"
    print_figures(title, rows)
    if len(runs) == 2:
        print(f"masked / plain round time: {runs[0].median_seconds / runs[1].median_seconds:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    details = [
        {
            "mode": figures.mode,
            "load_average_before_and_after": load,
            "hub_resident_set_near_peak_mib": figures.hub_residency_mib,
            "hub_heap_sites_near_peak": figures.hub_heap_sites,
        }
        for figures, load in zip(runs, loads, strict=True)
    ]
    for detail in details:
        print(json.dumps(detail, indent=2))
    RESULTS.write_text(json.dumps({"benchmark": title, "results": rows, "details": details}, indent=2) + "\n")


if __name__ == "__main__":
    main()
