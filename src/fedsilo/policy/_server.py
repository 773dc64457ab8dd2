"""The OPA server engine, and how to run the OPA server it talks to.

In a cluster, OPA runs as a container beside the aggregator and listens on localhost; the
aggregator's ``PolicyGate`` asks it through ``OpaServerEngine`` (opa-python-client, kept-alive
HTTP sessions, as many as decisions were ever asked for at once). ``opa_config`` and ``opa_run_args`` are what the
operator, the Helm chart and the tests start that server with.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opa_client import OpaClient

from ._decision import Decision
from ._engine import PolicyEngine
from ._errors import PolicyUnavailable


def opa_config(*, console_decision_logs: bool = True) -> dict[str, Any]:
    """OPA's configuration file (YAML or JSON): its own decision log on the console, beside fedsilo's audit log.

    OPA's log is operational (what the server answered, with timings); fedsilo's audit log
    is the signed record auditors verify. Telemetry is off in ``opa_run_args``: the hub's
    egress is locked down and OPA must not try to phone home.
    """
    return {
        "labels": {"app": "fedsilo", "component": "policy"},
        "decision_logs": {"console": console_decision_logs},
    }


def opa_run_args(bundle: Path | str, *, config_file: Path, address: str = "127.0.0.1:8181") -> list[str]:
    """Arguments after the ``opa`` binary: serve ``bundle`` (a directory with ``.manifest``) on ``address``.

    A string is passed as it is: a trailing slash makes OPA follow a linked directory.
    """
    return [
        "run",
        "--server",
        "--addr",
        address,
        "--config-file",
        str(config_file),
        "--disable-telemetry",
        "--bundle",
        str(bundle),
    ]


class OpaServerEngine(PolicyEngine):
    """An OPA server's Data API (``POST /v1/data/<path>``). Safe to share between threads.

    No retries here: a failed call raises ``PolicyUnavailable`` at once, and ``PolicyGate``
    decides how long to keep trying. ``decide_many`` sends ``batch_size`` documents per
    request (an ad-hoc query with one ``with input as`` per document), which spares the
    per-request HTTP cost when many decisions are wanted at once, e.g. replaying a log.
    """

    name = "opa-server"

    def __init__(
        self, url: str, *, timeout_seconds: float = 1.0, token: str | None = None, batch_size: int = 64
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an OPA server URL: {url!r} (expected http://host:port)")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 8181
        self._ssl = parts.scheme == "https"
        self._timeout = timeout_seconds
        self._token = token
        self._batch_size = batch_size
        # Sessions not in use. requests sessions are not documented as thread-safe, so a call
        # borrows one of its own; not one per thread, because the hub decides on whichever of its
        # handler threads (one per silo waiting in a step) got the upload, and a session per
        # thread kept a connection to OPA and its buffers for every silo.
        self._idle: queue.SimpleQueue[OpaClient] = queue.SimpleQueue()
        self._clients: list[OpaClient] = []
        self._clients_lock = threading.Lock()

    @contextmanager
    def _client(self) -> Iterator[OpaClient]:
        """A session no other call is using, returned to the idle ones afterwards."""
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            # Imported on first use: its HTTP stack (aiohttp) would cost every process that imports
            # the policy package (each sidecar, each command-line call) most of a CPU second at start.
            from opa_client import OpaClient

            client = OpaClient(
                host=self._host, port=self._port, ssl=self._ssl, token=self._token, retries=0, timeout=self._timeout
            )
            with self._clients_lock:
                self._clients.append(client)
        try:
            yield client
        finally:
            self._idle.put(client)

    def evaluate(self, decision_path: str, document: Mapping[str, Any]) -> object:
        """``data.<decision_path>`` for ``document``, asked of the server."""
        package, _, rule = decision_path.rpartition("/")
        try:
            with self._client() as client:
                response = client.query_rule(
                    input_data=dict(document), package_path=package.replace("/", "."), rule_name=rule
                )
        # Connection refused, timeout, HTTP error, a body that is not JSON: all mean no decision.
        except Exception as error:
            raise PolicyUnavailable(f"OPA at {self.url} did not decide {decision_path}: {error}") from error
        if not isinstance(response, dict) or "result" not in response:
            raise PolicyUnavailable(f"OPA at {self.url} has no {decision_path} (is the bundle loaded?)")
        return response["result"]

    def decide_many(self, decision_path: str, documents: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """One decision per document, ``batch_size`` documents per request."""
        package, _, rule = decision_path.rpartition("/")
        decisions: list[Decision] = []
        for start in range(0, len(documents), self._batch_size):
            chunk = [dict(document) for document in documents[start : start + self._batch_size]]
            try:
                with self._client() as client:
                    results = client.bulk_query_rule(chunk, package.replace("/", "."), rule)
            # As in evaluate: whatever failed, these documents have no decision.
            except Exception as error:
                raise PolicyUnavailable(f"OPA at {self.url} did not decide {len(chunk)} documents: {error}") from error
            if not isinstance(results, list) or len(results) != len(chunk):
                raise PolicyUnavailable(f"OPA at {self.url} answered {len(chunk)} documents with {results!r:.200}")
            decisions.extend(Decision.from_result(result, self.name) for result in results)
        return decisions

    def close(self) -> None:
        """Close every session."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close_connection()
