"""The hub sends the model in messages of ``DOWNLOAD_MESSAGE_BYTES``, over its real mTLS server.

gRPC holds about four messages of each download in flight, and every silo downloads at once:
the message size, not the silo's window or reading speed, bounds what a download costs the hub
(benchmarks/bench_model_download.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fedsilo.aggregator import DOWNLOAD_MESSAGE_BYTES
from fedsilo.protocol import CHUNK_BYTES, blob_from_chunks, pb

from .conftest import running_hub

# 1.2 MB of float32: five download messages.
WEIGHTS = {"w": np.arange(300_000, dtype=np.float32)}


def test_a_download_comes_in_messages_of_the_download_size(tmp_path: Path) -> None:
    assert DOWNLOAD_MESSAGE_BYTES < CHUNK_BYTES
    with running_hub(tmp_path, ["a", "b"], weights=WEIGHTS) as hub:
        round_number = hub.open_round()
        a = hub.silos["a"]
        chunks = list(a.stub.GetModel(pb.RoundRef(job="admission", round=round_number, silo="a"), timeout=30))
        total = chunks[0].total
        assert total > 4 * DOWNLOAD_MESSAGE_BYTES
        assert len(chunks) == math.ceil(total / DOWNLOAD_MESSAGE_BYTES)
        assert all(len(chunk.data) == DOWNLOAD_MESSAGE_BYTES for chunk in chunks[:-1])
        # The same bytes whoever asks, reassembled as a sidecar does.
        b = hub.silos["b"]
        again = b.stub.GetModel(pb.RoundRef(job="admission", round=round_number, silo="b"), timeout=30)
        assert blob_from_chunks(iter(chunks), total) == blob_from_chunks(again, total)
