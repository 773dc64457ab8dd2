"""The embedded engine: the policy bundle compiled and evaluated in this process by rego-cpp.

The local run's aggregator uses it (``fedsilo run``); it needs no OPA binary. The bundle is
compiled once for both decision entry points, which makes one decision take well under a
millisecond instead of the several that an ad-hoc query costs.

rego-cpp allocates with snmalloc, which gives every thread that allocates an allocator of its
own and keeps that thread's slabs for as long as the thread lives. The hub decides each
upload on whichever gRPC handler thread received it, and its handler threads live as long as
the server: evaluated there, every thread that ever decided an upload kept about half a MiB,
so the hub's resident set grew with the number of silos (docs/big-models.md). The engine
therefore compiles and evaluates on one thread of its own, whoever calls it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from regopy import Interpreter

from ._bundle import PolicyBundle
from ._engine import JOB_DECISION, UPDATE_DECISION, PolicyEngine
from ._errors import PolicyUnavailable


class EmbeddedRegoEngine(PolicyEngine):
    """The bundle evaluated in this process by rego-cpp (``regopy``). Safe to share between threads.

    Every call to rego-cpp runs on the engine's own thread, one at a time (the interpreter
    holds the input between calls, and snmalloc then keeps one thread's slabs, not one set per
    caller); ``close`` ends that thread.
    """

    name = "embedded"

    def __init__(self, bundle: PolicyBundle | None = None) -> None:
        self.bundle = bundle or PolicyBundle.load()
        self._rego = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rego")
        try:
            self._interpreter, self._compiled = self._rego.submit(self._compile).result()
        except BaseException:
            self._rego.shutdown()
            raise

    def _compile(self) -> tuple[Interpreter, Any]:
        interpreter = Interpreter()
        for module_name, source in self.bundle.modules.items():
            interpreter.add_module(module_name, source)
        interpreter.add_data_json(json.dumps(self.bundle.data))
        compiled = interpreter.build(None, [UPDATE_DECISION, JOB_DECISION])
        if not compiled.ok():
            raise PolicyUnavailable(f"rego-cpp cannot compile the bundle at {self.bundle.root}")
        return interpreter, compiled

    def evaluate(self, decision_path: str, document: Mapping[str, Any]) -> object:
        """``data.<decision_path>`` for ``document``, evaluated by rego-cpp."""
        if decision_path not in (UPDATE_DECISION, JOB_DECISION):
            raise PolicyUnavailable(f"the embedded engine compiles {UPDATE_DECISION} and {JOB_DECISION} only")
        try:
            term = json.dumps(document, allow_nan=False)
            ok, results = self._rego.submit(self._query, term, decision_path).result()
        # rego-cpp reports through several exception types (RegoError, ValueError from its JSON);
        # whatever it is, there is no decision, and the caller must not read one into it.
        except Exception as error:
            raise PolicyUnavailable(f"rego-cpp failed on {decision_path}: {error}") from error
        if not ok or not results or not results[0].expressions:
            raise PolicyUnavailable(f"rego-cpp returned no value for {decision_path}")
        return results[0].expressions[0]

    def _query(self, term: str, decision_path: str) -> tuple[bool, Any]:
        self._interpreter.set_input_term(term)
        output = self._interpreter.query_bundle_entrypoint(self._compiled, decision_path)
        return output.ok(), output.results

    def close(self) -> None:
        """End the engine's rego thread once the evaluations already asked for are done."""
        self._rego.shutdown()
