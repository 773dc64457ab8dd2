"""Masked vs plain rounds over the real mTLS gRPC service, training excluded.

1. A masked round vs a plain round, 10 silos, 1M parameters (target: at most 1.3x).
2. The hub's peak memory with 10, 50 and 100 silos, 1M parameters, masked and plain
   (target: flat within 20% of the 10-silo figure), as the Python heap (tracemalloc: the
   aggregator's arrays and messages) and as the growth of the resident set (which adds
   gRPC's transport buffers and the threads serving the silos).
3. Bytes on the wire per silo vs the float32 update (target: at most 1.05x).

    .venv/bin/python benchmarks/bench_secagg_round.py [ratio] [memory] [bytes]

With no argument every part runs; the memory part alone takes several minutes on 2 cores.
"""

from __future__ import annotations

import sys

from _harness import RoundFigures, measure_in_child, print_figures

SILO_COUNTS = (10, 50, 100)


def round_ratio() -> tuple[RoundFigures, RoundFigures]:
    """Part 1: a masked and a plain round at 10 silos."""
    plain = measure_in_child(10, 1_000_000, "plain")
    masked = measure_in_child(10, 1_000_000, "masked")
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
    return plain, masked


def hub_memory() -> None:
    """Part 2: the hub's peak memory as the number of silos grows, in both modes."""
    rows = []
    for mode in ("masked", "plain"):
        figures = {n: measure_in_child(n, 1_000_000, mode, rounds=1, trace_memory=True) for n in SILO_COUNTS}
        for measure, field in (
            ("python heap", "hub_peak_python_heap_mib"),
            ("resident set growth", "hub_peak_rss_mib"),
        ):
            mib = {n: float(getattr(figures[n], field)) for n in SILO_COUNTS}
            row: dict[str, object] = {"mode": mode, "measure": measure}
            for n in SILO_COUNTS:
                row[f"silos_{n}_mib"] = mib[n]
            for n in SILO_COUNTS[1:]:
                row[f"ratio_{n}_to_{SILO_COUNTS[0]}"] = mib[n] / mib[SILO_COUNTS[0]]
            row["target"] = 1.2
            rows.append(row)
    print_figures("hub peak memory, 1M parameters, one round", rows)


def bytes_on_wire(plain: RoundFigures, masked: RoundFigures) -> None:
    """Part 3: what one silo sends per round against its float32 update."""
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


def main() -> None:
    parts = set(sys.argv[1:]) or {"ratio", "memory", "bytes"}
    if parts & {"ratio", "bytes"}:
        plain, masked = round_ratio()
        if "bytes" in parts:
            bytes_on_wire(plain, masked)
    if "memory" in parts:
        hub_memory()


if __name__ == "__main__":
    main()
