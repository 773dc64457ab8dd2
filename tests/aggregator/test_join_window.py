"""The join window before round 1: `spec.joinTimeoutSeconds` decides how long the hub waits.

In a cluster, partners' pods start when their own operators build them and pull their
images, often minutes after the hub's aggregator: a window fixed at two minutes failed jobs
whose silos were merely slow to start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.aggregator import JobFailed

from .conftest import running_hub


@pytest.mark.integration
def test_with_fewer_than_min_silos_by_the_window_the_job_fails_naming_it(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], joinTimeoutSeconds=10) as hub:
        hub.thread.join(timeout=120)
        assert not hub.thread.is_alive()
    error = hub.outcome["error"]
    assert isinstance(error, JobFailed)
    # The window it was given, not the default of 120 s (the thread ended well before that).
    assert "only 0 of 3 silos joined within 10s; minSilos is" in str(error)
