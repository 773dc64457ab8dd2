"""The hub's memory when silos reserve their upload slots, next to the same rounds without reservations.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/bench_upload_reservations.py [silos=10,50] [window-kib=64,4096]

Every silo uploads at once and the hub reads two uploads at a time. Without reservations (the
baseline: the hub answers ``ReserveUpload`` UNIMPLEMENTED, as one from before them did) each
waiting upload sits in its call with up to a stream window of its payload in the hub's buffers,
so the hub's memory grows with the window times the silos waiting; with them a waiting silo
sends nothing. For each silo count and stream window (``rateLimits.streamWindowKiB``): one
masked round of a 1M-parameter model (4 MiB per upload) with and without reservations, each in a
fresh hub process; the hub's peak resident set, its growth during the round and the round's
time. The throughput a window gives a distant silo is ``bench_receive_window.py``'s.
"""

from __future__ import annotations

import os
import sys

from _harness import measure_in_child, print_figures

PARAMETERS = 1_000_000


def main() -> None:
    words = dict(word.split("=", 1) for word in sys.argv[1:])
    counts = [int(n) for n in words.get("silos", "10,50").split(",")]
    windows = [int(n) for n in words.get("window-kib", "64,4096").split(",")]
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    for silos in counts:
        for window in windows:
            row: dict[str, object] = {"silos": silos, "window_kib": window}
            for name, reservations in (("without", False), ("reserved", True)):
                figures = measure_in_child(
                    silos, PARAMETERS, "masked", rounds=1, stream_window_kib=window, reservations=reservations
                )
                row[f"{name}: hub peak MiB"] = round(figures.hub_peak_rss_total_mib, 1)
                row[f"{name}: growth MiB"] = round(figures.hub_peak_rss_mib, 1)
                row[f"{name}: round s"] = round(figures.median_seconds, 2)
            rows.append(row)
            print(row, f"load average {os.getloadavg()}", flush=True)
    print_figures(f"hub memory with and without upload reservations, masked, {PARAMETERS} parameters", rows)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
