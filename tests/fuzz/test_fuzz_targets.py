"""Every parser of untrusted input, fuzzed for a fixed budget: each input parses or is refused with
the target's documented error; any other exception, a hang or a memory blow-up fails the test and
names the saved input.

Each target runs in its own process (libFuzzer ends the process it runs in) for at most
``SECONDS`` or ``RUNS`` inputs, starting from the corpus kept in ``tests/fuzz/corpus/<target>/``
(seeds and earlier finds); new inputs go to a temporary folder, so the test never writes
to the repository. To keep what a longer run finds: ``python -m tests.fuzz.run TARGET
-max_total_time=600 /tmp/found tests/fuzz/corpus/TARGET``, then copy the files of
``/tmp/found`` (each added coverage) into the corpus as ``found-<name>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .targets import CORPUS, TARGETS

RUNS = 20_000
SECONDS = 4
REPO = Path(__file__).parent.parent.parent

# Findings in parsers other helpers own, reproduced by a seed in the target's corpus; strict,
# so the mark must go when the parser is fixed.
KNOWN: dict[str, str] = {
    "manifest": "load_manifest raises UnicodeDecodeError on a non-UTF-8 byte and AttributeError on "
    "`metadata: [1]` (issue 19, point 5; fedsilo/api/_manifest.py)",
    "trainer_link_header": "frames_in reads the header with json.loads: RecursionError on deep nesting, NaN and "
    "duplicate keys accepted (issue 19, point 5; fedsilo/protocol/_convert.py)",
}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(reason=KNOWN[name], strict=True)] if name in KNOWN else []


@pytest.mark.parametrize("name", [pytest.param(name, marks=_marks(name)) for name in TARGETS])
def test_the_target_raises_only_its_documented_errors(name: str, tmp_path: Path) -> None:
    found = tmp_path / "found"
    found.mkdir()
    seeds = CORPUS / name
    assert any(seeds.iterdir()), f"no seed inputs in {seeds}"
    environment = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            name,
            f"-runs={RUNS}",
            f"-max_total_time={SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(found),
            str(seeds),
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0 and not crashes, f"{name}: {crashes} in {tmp_path}\n{tail}"
