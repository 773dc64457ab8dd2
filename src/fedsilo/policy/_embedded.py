"""The embedded engine: the policy bundle compiled and evaluated in this process by rego-cpp.

The local run's aggregator uses it (``fedsilo run``); it needs no OPA binary. The bundle is
compiled once for both decision entry points, which makes one decision take well under a
millisecond instead of the several that an ad-hoc query costs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from regopy import Interpreter

from ._bundle import PolicyBundle
from ._engine import JOB_DECISION, UPDATE_DECISION, PolicyEngine
from ._errors import PolicyUnavailable


class EmbeddedRegoEngine(PolicyEngine):
    """The bundle evaluated in this process by rego-cpp (``regopy``). Safe to share between threads."""

    name = "embedded"

    def __init__(self, bundle: PolicyBundle | None = None) -> None:
        self.bundle = bundle or PolicyBundle.load()
        self._interpreter = Interpreter()
        for module_name, source in self.bundle.modules.items():
            self._interpreter.add_module(module_name, source)
        self._interpreter.add_data_json(json.dumps(self.bundle.data))
        self._compiled = self._interpreter.build(None, [UPDATE_DECISION, JOB_DECISION])
        if not self._compiled.ok():
            raise PolicyUnavailable(f"rego-cpp cannot compile the bundle at {self.bundle.root}")
        # The interpreter holds the input between calls, so one evaluation runs at a time.
        self._lock = threading.Lock()

    def evaluate(self, decision_path: str, document: Mapping[str, Any]) -> object:
        """``data.<decision_path>`` for ``document``, evaluated by rego-cpp."""
        if decision_path not in (UPDATE_DECISION, JOB_DECISION):
            raise PolicyUnavailable(f"the embedded engine compiles {UPDATE_DECISION} and {JOB_DECISION} only")
        try:
            term = json.dumps(document, allow_nan=False)
            with self._lock:
                self._interpreter.set_input_term(term)
                output = self._interpreter.query_bundle_entrypoint(self._compiled, decision_path)
                ok, results = output.ok(), output.results
        # rego-cpp reports through several exception types (RegoError, ValueError from its JSON);
        # whatever it is, there is no decision, and the caller must not read one into it.
        except Exception as error:
            raise PolicyUnavailable(f"rego-cpp failed on {decision_path}: {error}") from error
        if not ok or not results or not results[0].expressions:
            raise PolicyUnavailable(f"rego-cpp returned no value for {decision_path}")
        return results[0].expressions[0]
