"""Every sidecar, trainer and command-line call starts as ``python -m fedsilo``: what it imports, each start pays for.

A local run starts a sidecar and a trainer per silo, and the test suite hundreds of them, on
machines where a second of CPU per start adds up to minutes. The OPA client (and its aiohttp
stack) is needed only by a hub that asks an OPA server, scikit-learn only where records are
loaded (trainers, the hub's round-0 model, the baseline): neither is imported until then.
That they are still found when used is what tests/policy (a real OPA server) and
tests/datasets show.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Loaded on first use only (``fedsilo.policy._server``, ``fedsilo.datasets``).
NOT_AT_START = ("opa_client", "aiohttp", "sklearn")


def _imported_at_start() -> set[str]:
    """The top-level packages a fresh ``fedsilo`` command line has imported once its commands are registered."""
    probe = (
        "import json, sys; import fedsilo.cli._app as app; app._parser(); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True)
    return set(json.loads(done.stdout))


def test_the_command_line_loads_neither_the_opa_client_nor_scikit_learn_at_start() -> None:
    imported = _imported_at_start()
    assert "fedsilo" in imported
    assert not imported & set(NOT_AT_START), sorted(imported & set(NOT_AT_START))
