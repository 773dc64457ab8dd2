"""A compressed masked job, end to end: every round publishes its 8-bit level, every silo's masked
upload shrinks to its packed words, and the job learns. How close compressed training comes to
uncompressed, over seeds and levels, is measured in-process (tests/compression/test_compressed_training_converges.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.api import load_manifest
from fedsilo.compression import packed_size
from fedsilo.datasets import load_silo_data
from fedsilo.runner import LocalRun, RunOptions
from fedsilo.trainer import initial_weights

from .conftest import quick_manifest


def test_a_masked_8_bit_job_sends_packed_words_and_learns(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, rounds=3, roundTimeoutSeconds=300, compression={"bits": 8})
    manifest = load_manifest(path)
    options = RunOptions(manifest_path=path, workdir=tmp_path / "run", registry=tmp_path / "registry", baseline=False)
    report = LocalRun(manifest, options).execute()
    assert report.status == "succeeded", report.failure

    spec = manifest.job.spec
    length = sum(int(np.asarray(a).size) for a in initial_weights(spec, load_silo_data(spec, 0, 3, None)).values())
    for row in report.rounds:
        assert sorted(row.accepted) == ["hospital-a", "hospital-b", "hospital-c"], row
        assert row.compression is not None and row.compression["bits"] == 8, row.compression
        # Packed at the sum's word width (8 bits plus the headroom three silos need), not in 32-bit words.
        word_bits = row.compression["word_bits"]
        for silo, sent in row.payload_up.items():
            assert sent == packed_size(length, word_bits), (silo, sent, length, word_bits)
            assert sent <= 0.4 * 4 * length
    assert report.final_accuracy is not None and report.final_accuracy > 0.8, report.final_accuracy
