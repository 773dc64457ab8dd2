"""A plain FedAvg round for 10 silos and a 1M-parameter model, training excluded.

Prints wall time per round, the hub's peak memory growth and bytes per silo, as a table
and JSON; the same-run baselines are a 1-silo round (time) and the raw float32 update
(bytes on the wire).

    .venv/bin/python benchmarks/bench_plain_round.py
"""

from __future__ import annotations

from _harness import measure_in_child, print_figures


def main() -> None:
    rows = []
    for silos in (1, 10):
        figures = measure_in_child(silos=silos, parameters=1_000_000, mode="plain")
        rows.append(
            {
                "silos": silos,
                "parameters": figures.parameters,
                "round_s_median": figures.median_seconds,
                "hub_peak_rss_growth_mib": figures.hub_peak_rss_mib,
                "bytes_up_per_silo": int(figures.bytes_up_per_silo),
                "bytes_down_per_silo": int(figures.bytes_down_per_silo),
                "up_vs_float32": figures.bytes_up_per_silo / (figures.parameters * 4),
            }
        )
    for row in rows:
        row["round_s_vs_1_silo"] = row["round_s_median"] / rows[0]["round_s_median"]
    print_figures("plain FedAvg round, 1M parameters, training excluded", rows)


if __name__ == "__main__":
    main()
