"""Anomaly scores over rounds: their definition, their memory, and the policy denying on them.

The hub-level test runs a real hub (coordinator, mTLS gRPC, embedded Rego, audit log) and
plays four silos with raw clients: one sends an update far from the others' in round 1 and
is denied ``update_anomalous`` in round 2, with the decision in the audit log and its score
in the round's summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedsilo.aggregator._anomaly import DECAY, MIN_SILOS_COMPARED, AnomalyScores, robust_scores

from .conftest import LENGTH, running_hub

values = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    min_size=MIN_SILOS_COMPARED,
    max_size=12,
)


@given(values)
def test_a_score_is_the_distance_above_the_median_in_robust_deviations(signal: dict[str, float]) -> None:
    x = np.array(list(signal.values()))
    median = np.median(x)
    scale = max(1.4826 * np.median(np.abs(x - median)), 0.05 * abs(median), 1e-12)
    expected = {silo: max(0.0, (value - median) / scale) for silo, value in signal.items()}
    assert robust_scores(signal) == pytest.approx(expected)


@given(values)
def test_half_the_silos_score_zero(signal: dict[str, float]) -> None:
    # At or below the median scores nothing: only what sits above the majority counts.
    scores = robust_scores(signal)
    assert sum(score == 0 for score in scores.values()) >= len(signal) / 2


def test_too_few_silos_give_no_scores() -> None:
    assert robust_scores({"a": 1.0, "b": 100.0}) == {}


def test_one_outlier_among_agreeing_silos_is_far_above_them() -> None:
    scores = robust_scores({"a": 2.0, "b": 2.1, "c": 1.9, "d": 6.0})
    assert scores["d"] > 10 and max(scores["a"], scores["b"], scores["c"]) < 1


def test_a_score_remembers_and_fades() -> None:
    book = AnomalyScores()
    assert book.score("d") is None
    round_scores = book.observe({"distance": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 3.0}})
    first = book.score("d")
    assert first == pytest.approx((1 - DECAY) * round_scores["d"])
    assert book.score("a") == 0.0
    # Two signals: the round's score is the larger one.
    book.observe({"distance": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, "l2_norm": {"a": 1, "b": 1, "c": 1, "d": 1}})
    assert book.score("d") == pytest.approx(DECAY * first)
    # A round that did not observe d (denied or absent): its score only decays.
    book.observe({"distance": {"a": 1.0, "b": 1.0, "c": 1.0}})
    assert book.score("d") == pytest.approx(DECAY * DECAY * first)


def _payload(value: float) -> np.ndarray:
    payload = np.full(LENGTH, value * 100, np.float32)
    payload[-1] = 100
    return payload


def test_a_silo_far_from_the_others_is_denied_the_next_round(tmp_path: Path) -> None:
    policy = {"normCap": 5.0, "dataClass": "internal", "maxAnomalyScore": 3.0}
    with running_hub(tmp_path, ["a", "b", "c", "d"], rounds=2, policy=policy) as hub:
        sent = {"a": 1.0, "b": 1.05, "c": 0.95, "d": -1.2}
        assert hub.open_round() == 1
        for name, value in sent.items():
            silo = hub.silos[name]
            verdict = silo.submit(silo.metadata(_payload(value)), _payload(value))
            assert verdict.accepted, verdict.reasons
        assert hub.next_round(1) == 2
        first = hub.first_summary().silos
        assert first["d"].anomaly_score is not None and first["d"].anomaly_score > 3.0
        assert all(first[s].anomaly_score is not None and first[s].anomaly_score < 1.0 for s in "abc")
        verdicts = {}
        for name, value in sent.items():
            silo = hub.silos[name]
            verdicts[name] = silo.submit(silo.metadata(_payload(value), round=2), _payload(value))
        assert [v.accepted for v in verdicts.values()] == [True, True, True, False]
        (reason,) = verdicts["d"].reasons
        assert reason.startswith("update_anomalous: silo d has anomaly score")
        (recorded,) = [r for r in hub.records() if r["silo"] == "d" and r["round"] == 2]
        assert recorded["decision"] == "deny" and recorded["reasons"] == [reason]
        assert recorded["input"]["silo"]["anomaly_score"] == pytest.approx(first["d"].anomaly_score)


def test_without_a_limit_the_score_is_reported_not_judged(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c", "d"], rounds=2) as hub:
        sent = {"a": 1.0, "b": 1.05, "c": 0.95, "d": -1.2}
        assert hub.open_round() == 1
        for name, value in sent.items():
            silo = hub.silos[name]
            assert silo.submit(silo.metadata(_payload(value)), _payload(value)).accepted
        assert hub.next_round(1) == 2
        assert hub.first_summary().silos["d"].anomaly_score > 3.0
        d = hub.silos["d"]
        verdict = d.submit(d.metadata(_payload(-1.2), round=2), _payload(-1.2))
        assert verdict.accepted, verdict.reasons
