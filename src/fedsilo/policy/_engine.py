"""Policy engines: one interface, two implementations that run the same Rego.

``EmbeddedRegoEngine`` evaluates the bundle in-process with rego-cpp (``regopy``), a real
Rego interpreter, for the local run. ``OpaServerEngine`` asks an OPA server (in a cluster,
the container beside the aggregator on localhost). Both fail closed: any error raises
``PolicyUnavailable``; neither ever answers allow by default.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

import requests
from regopy import Interpreter

from fedsilo.protocol import PolicyVerdict

from ._bundle import PolicyBundle

UPDATE_DECISION = "fedsilo/update/decision"
JOB_DECISION = "fedsilo/job/decision"


class PolicyUnavailable(RuntimeError):
    """The engine could not decide (unreachable, malformed answer). Callers must not allow."""


class PolicyEngine(Protocol):
    """Evaluates one decision document at a path such as ``fedsilo/update/decision``."""

    name: str

    def decide(self, decision_path: str, document: dict[str, Any]) -> PolicyVerdict:
        """The decision for ``document``; raise ``PolicyUnavailable`` if there is none."""
        ...


def _verdict(result: Any, where: str) -> PolicyVerdict:
    if (
        not isinstance(result, dict)
        or not isinstance(result.get("allow"), bool)
        or not isinstance(result.get("reasons"), list)
        or not isinstance(result.get("policy_revision"), str)
    ):
        raise PolicyUnavailable(f"{where} returned no well-formed decision: {result!r}")
    return PolicyVerdict(result["allow"], tuple(str(r) for r in result["reasons"]), result["policy_revision"])


class EmbeddedRegoEngine:
    """The bundle evaluated in this process by rego-cpp."""

    name = "embedded"

    def __init__(self, bundle: PolicyBundle | None = None) -> None:
        self.bundle = bundle or PolicyBundle.load()
        # The interpreter keeps input between queries, so one query runs at a time.
        self._lock = threading.Lock()
        self._interpreter = Interpreter()
        for name, source in self.bundle.modules.items():
            self._interpreter.add_module(name, source)
        self._interpreter.add_data_json(json.dumps(self.bundle.data))

    def decide(self, decision_path: str, document: dict[str, Any]) -> PolicyVerdict:
        query = "data." + decision_path.replace("/", ".")
        with self._lock:
            try:
                self._interpreter.set_input_term(json.dumps(document, allow_nan=False))
                output = self._interpreter.query(query)
            except Exception as error:
                raise PolicyUnavailable(f"embedded Rego failed on {query}: {error}") from error
        try:
            expressions = json.loads(str(output))["expressions"]
        except (ValueError, KeyError, TypeError) as error:
            raise PolicyUnavailable(f"embedded Rego returned {output!s:.200}") from error
        return _verdict(expressions[0] if expressions else None, "embedded Rego")


class OpaServerEngine:
    """An OPA server's Data API (``POST /v1/data/<path>``) over a kept-alive session."""

    name = "opa-server"

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def decide(self, decision_path: str, document: dict[str, Any]) -> PolicyVerdict:
        try:
            response = self._session().post(
                f"{self.url}/v1/data/{decision_path}", json={"input": document}, timeout=self._timeout
            )
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            raise PolicyUnavailable(f"OPA at {self.url} did not decide: {error}") from error
        return _verdict(body.get("result"), f"OPA at {self.url}")
