"""``python -m tests.fuzz.run TARGET [libFuzzer flags] [corpus folders]``: fuzz one target with atheris.

Coverage-guided: fedsilo's modules are instrumented as they are imported. An input the
target refuses with its documented error is fine; any other exception is reported by
atheris with the input saved (``-artifact_prefix``), and the process exits non-zero.
``test_fuzz_targets`` runs every target this way for a fixed budget; run it longer by hand,
e.g. ``python -m tests.fuzz.run manifest -max_total_time=600 tests/fuzz/corpus/manifest``.
"""

from __future__ import annotations

import contextlib
import sys

import atheris


def main(argv: list[str]) -> None:
    """Fuzz the target ``argv[1]``; the remaining arguments go to libFuzzer."""
    with atheris.instrument_imports(include=["fedsilo"]):
        from tests.fuzz.targets import TARGETS

    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus ...]")
    target = TARGETS[argv[1]]

    def one_input(data: bytes) -> None:
        with contextlib.suppress(*target.errors):
            target.run(data)

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
