"""Every message that crossed a local run's mutual-TLS gRPC connection, as the bytes that crossed it.

``fedsilo run`` serves its hub from a process of its own, so the recorder is a run's
``hub_setup``: in each hub process it wraps the aggregator service's gRPC methods (the
capitalized ones, every call a sidecar can make), and writes each request a sidecar sent and
each model the hub served into a directory the test reads afterwards. Nothing in ``fedsilo``
knows of it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsilo.aggregator import RoundObserver
from fedsilo.aggregator._service import AggregatorService
from fedsilo.protocol import pb

#: The folder of the models the hub served, beside one folder per gRPC method's requests.
MODELS = "models"


@dataclass(frozen=True)
class WireRecorder:
    """A ``LocalRun`` hub_setup that records the wire into ``directory``; read it back with the methods."""

    directory: Path

    def __call__(self, attempt: int) -> RoundObserver | None:
        """Wrap this hub process's service methods; no observer of rounds."""
        write = _Writer(self.directory / f"hub-{attempt}")
        for name in [n for n in vars(AggregatorService) if n[0].isupper()]:
            setattr(AggregatorService, name, _recorded(name, getattr(AggregatorService, name), write))
        return None

    def requests(self) -> dict[str, list[bytes]]:
        """Every request a sidecar sent, serialized, by gRPC method."""
        found: dict[str, list[bytes]] = {}
        for folder in sorted(p for hub in self._hubs() for p in hub.iterdir() if p.name != MODELS):
            found.setdefault(folder.name, []).extend(_blobs(folder))
        return found

    def models(self) -> list[bytes]:
        """Every model the hub served, whole."""
        return [blob for hub in self._hubs() for blob in _blobs(hub / MODELS)]

    def _hubs(self) -> list[Path]:
        return sorted(self.directory.glob("hub-*"))


class _Writer:
    """Numbered files per folder, safe from the service's handler threads."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def __call__(self, folder: str, blob: bytes) -> None:
        with self._lock:
            number = next(self._numbers)
        path = self._root / folder / f"{number:08d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def _recorded(name: str, method: Callable[..., Any], write: _Writer) -> Callable[..., Any]:
    def recorded(service: AggregatorService, request: Any, context: Any) -> Any:
        if name == "SubmitUpdate":  # a client stream: record each chunk, then hand them on
            chunks = list(request)
            for chunk in chunks:
                write(name, chunk.SerializeToString())
            return method(service, iter(chunks), context)
        write(name, request.SerializeToString())
        if name == "GetModel":
            return _served(method(service, request, context), write)
        return method(service, request, context)

    return recorded


def _served(chunks: Iterator[bytes], write: _Writer) -> Iterator[bytes]:
    """The model's serialized chunks, handed on; the model they carry recorded whole."""
    blob = b""
    for chunk in chunks:
        blob += pb.BytesChunk.FromString(chunk).data
        yield chunk
    write(MODELS, blob)


def _blobs(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.bin"))] if folder.is_dir() else []
