"""Masked vs plain rounds over the real mTLS gRPC service, training excluded.

1. A masked round vs a plain round, 10 silos, 1M parameters (target: at most 1.3x).
2. The hub's peak memory with 10 vs 50 silos (target: flat within 20%), 1M parameters.
3. Bytes on the wire per silo vs the float32 update (target: at most 1.05x).
4. Masked vs plain round time at 5, 10, 20, 50 and 100 silos, over the complete graph and
   over the sparse neighbour graph of SecAgg+ (target: at most 1.5x at 50 and 100 silos),
   100k parameters so the 100-silo runs fit this machine.

    .venv/bin/python benchmarks/bench_secagg_round.py            # all four
    .venv/bin/python benchmarks/bench_secagg_round.py graphs     # the fourth only
"""

from __future__ import annotations

import sys

from _harness import measure_in_child, print_figures

GRAPH_SILOS = (5, 10, 20, 50, 100)
GRAPH_PARAMETERS = 100_000


def graphs() -> None:
    """Masked (complete and sparse graph) vs plain rounds, side by side, one row per silo count."""
    rows = []
    for silos in GRAPH_SILOS:
        plain = measure_in_child(silos, GRAPH_PARAMETERS, "plain", rounds=2)
        complete = measure_in_child(silos, GRAPH_PARAMETERS, "masked", rounds=2)
        sparse = measure_in_child(silos, GRAPH_PARAMETERS, "masked", rounds=2, neighbours="sparse")
        rows.append(
            {
                "silos": silos,
                "plain_round_s": plain.median_seconds,
                "complete_round_s": complete.median_seconds,
                "sparse_round_s": sparse.median_seconds,
                "complete_ratio": complete.median_seconds / plain.median_seconds,
                "sparse_ratio": sparse.median_seconds / plain.median_seconds,
                "target": 1.5,
            }
        )
        # Each row as it is measured: the 100-silo runs take minutes.
        print_figures(f"masked vs plain round by masking graph, {GRAPH_PARAMETERS} parameters", rows)


def main() -> None:
    plain = measure_in_child(10, 1_000_000, "plain")
    masked = measure_in_child(10, 1_000_000, "masked")
    small = {n: measure_in_child(n, 1_000_000, "masked", rounds=1, trace_memory=True) for n in (10, 50)}
    print_figures(
        "masked vs plain round, 10 silos, 1M parameters",
        [
            {
                "plain_round_s": plain.median_seconds,
                "masked_round_s": masked.median_seconds,
                "ratio": masked.median_seconds / plain.median_seconds,
                "target": 1.3,
            }
        ],
    )
    print_figures(
        "hub peak memory, masked, 1M parameters",
        [
            {
                "measure": "python heap (aggregator arrays and messages)",
                "silos_10_mib": small[10].hub_peak_python_heap_mib,
                "silos_50_mib": small[50].hub_peak_python_heap_mib,
                "ratio": small[50].hub_peak_python_heap_mib / small[10].hub_peak_python_heap_mib,
                "target": 1.2,
            },
            {
                "measure": "resident set (including gRPC transport buffers)",
                "silos_10_mib": small[10].hub_peak_rss_mib,
                "silos_50_mib": small[50].hub_peak_rss_mib,
                "ratio": small[50].hub_peak_rss_mib / small[10].hub_peak_rss_mib,
                "target": 1.2,
            },
        ],
    )
    print_figures(
        "bytes sent per silo per round vs the float32 update",
        [
            {
                "mode": figures.mode,
                "float32_update_bytes": figures.parameters * 4,
                "bytes_up_per_silo": int(figures.bytes_up_per_silo),
                "ratio": figures.bytes_up_per_silo / (figures.parameters * 4),
                "target": 1.05,
            }
            for figures in (plain, masked)
        ],
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["graphs"]:
        graphs()
    else:
        main()
        graphs()
