"""What the hub receives is masked: no silo's totals can be read from it, only their sum."""

from __future__ import annotations

import numpy as np

from fedsilo.runner import run_statistics
from fedsilo.statistics import decode_wide, encode_wide
from fedsilo.statistics._layout import MOMENTS
from fedsilo.statistics._plan import StatisticsPlan
from fedsilo.statistics._silo import StatisticsSilo

from .conftest import silos_of, tabular_spec


def test_each_masked_vector_hides_its_silo_and_only_the_sum_decodes() -> None:
    spec = tabular_spec()
    silos = silos_of(spec)
    outcome = run_statistics("hidden", spec, silos)
    view = outcome.hub_view
    plan = StatisticsPlan.for_job("hidden", spec, silos[0].records.shape[1])
    plain = {s.name: encode_wide(StatisticsSilo(plan, s.name, s.records, s.signing_key).moments()) for s in silos}
    received = view.masked[MOMENTS]
    assert set(received) == set(plain)
    for name, words in received.items():
        # The masks are uniform in Z_2^32: about 1 word in 2^32 may match by chance, not a block of them.
        assert (words == plain[name]).mean() < 0.01
        decoded = np.array([float(v) for v in decode_wide(words)])
        totals_alone = np.array([float(v) for v in decode_wide(plain[name])])
        assert not np.allclose(decoded, totals_alone)
    # The only thing the masks reveal is the sum of every silo's encoding.
    expected = np.sum([plain[n] for n in plain], axis=0, dtype=np.uint32)
    summed = np.sum([received[n] for n in received], axis=0, dtype=np.uint32)
    assert not np.array_equal(summed, expected), "the self masks must still cover the plain sum"
    np.testing.assert_array_equal(view.totals[MOMENTS], [float(v) for v in decode_wide(expected)])
