"""Masking a 1M-element float32 update against 9 peers, vs the raw AES-CTR keystream of the
same total length (10 streams of 1M words: one self mask, nine pairwise), in the same run.

    .venv/bin/python benchmarks/bench_masking.py

Target: masking costs at most 1.5x the raw keystream.
"""

from __future__ import annotations

import os
import time

import numpy as np
from _harness import print_figures

from fedsilo.identity import SigningKey, keystream_words
from fedsilo.secagg import SecAggClient, SecAggConfig, SecAggServer

ELEMENTS = 1_000_000
SILOS = 10
REPEATS = 5


def _clients() -> tuple[SecAggClient, np.ndarray]:
    names = tuple(f"s{i}" for i in range(SILOS))
    keys = {n: SigningKey.generate() for n in names}
    public = {n: k.public_key for n, k in keys.items()}
    config = SecAggConfig("bench", 1, names, 6, ELEMENTS + 1, 16, 4.0)
    clients = {n: SecAggClient(config, n, keys[n], public) for n in names}
    server = SecAggServer(config, public)
    for name, reply in server.advertise({n: c.advertise() for n, c in clients.items()}).items():
        clients[name].receive_adverts(reply)
    for name, reply in server.share_keys({n: c.share_keys() for n, c in clients.items()}).items():
        clients[name].receive_shares(reply)
    return clients["s0"], np.random.default_rng(0).uniform(-1, 1, ELEMENTS).astype(np.float32)


def _best(action) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    client, update = _clients()
    keys = [os.urandom(32) for _ in range(SILOS)]
    chunk = 1 << 18

    def raw_keystream() -> None:
        for key in keys:
            for offset in range(0, ELEMENTS + 1, chunk):
                keystream_words(key, offset, min(chunk, ELEMENTS + 1 - offset))

    raw = _best(raw_keystream)
    masked = _best(lambda: client.masked_input(update, 1000))
    print_figures(
        "masking 1M float32 against 9 peers vs raw AES-CTR keystream (10 x 1M words)",
        [
            {
                "elements": ELEMENTS,
                "peers": SILOS - 1,
                "raw_keystream_s": raw,
                "masking_s": masked,
                "ratio": masked / raw,
                "target": 1.5,
            }
        ],
    )


if __name__ == "__main__":
    main()
