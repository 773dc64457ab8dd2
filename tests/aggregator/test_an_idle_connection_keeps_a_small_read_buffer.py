"""A silo's connection that has carried an upload keeps a small read buffer in the hub, not a large one.

gRPC core sizes each connection's next socket read from its last ones and keeps that buffer
allocated while the connection waits: after a silo's upload in 1 MiB messages, 0.6 to 1.3 MiB
per connection, held until the silo disconnects, so the hub's heap grew with the number of
connected silos. The hub's server (``serve``) caps it at ``READ_BUFFER_BYTES``, 64 KiB, whatever
the job's stream window.

The server, its options and mTLS are the real ones; only the servicer is a stand-in that reads
every upload whole. The silos run in another process, so what the hub's process holds is what
glibc counts as in use there (``mallinfo2``), measured while the connections are open and idle.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fedsilo.aggregator import serve
from fedsilo.identity import CertificateAuthority
from fedsilo.protocol import pb, rpc

CONNECTIONS = 8
# Each connection's upload: 4 MiB in the 1 MiB messages a sidecar sends.
_SILOS = """
import sys
from pathlib import Path
import grpc
from fedsilo.protocol import pb, rpc
port, count, certificates = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
credentials = grpc.ssl_channel_credentials(
    (certificates / "ca.pem").read_bytes(), (certificates / "key.pem").read_bytes(), (certificates / "cert.pem").read_bytes()
)
channels = [grpc.secure_channel(f"localhost:{port}", credentials) for _ in range(count)]
def upload():
    for offset in range(4):
        yield pb.UpdateChunk(vector=pb.VectorChunk(offset=offset, dtype="uint8", data=bytes(1 << 20)))
for channel in channels:
    assert rpc.AggregatorStub(channel).SubmitUpdate(upload(), timeout=120).accepted
print("uploaded", flush=True)
sys.stdin.readline()  # the connections stay open until the test has measured
"""


class _Reader(rpc.AggregatorServicer):
    def SubmitUpdate(self, request_iterator: Iterator[pb.UpdateChunk], context: grpc.ServicerContext) -> pb.Decision:
        return pb.Decision(accepted=sum(len(chunk.vector.data) for chunk in request_iterator) == 4 << 20)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ]


def _glibc_in_use() -> int | None:
    """Bytes glibc's malloc has handed out and not had back (all arenas, and blocks mapped on their own)."""
    name = ctypes.util.find_library("c")
    mallinfo2 = getattr(ctypes.CDLL(name), "mallinfo2", None) if name else None
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


@pytest.mark.skipif(_glibc_in_use() is None, reason="glibc's mallinfo2 counts what the hub holds")
def test_connections_that_carried_an_upload_each_keep_a_small_read_buffer(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    server, port = serve(
        _Reader(), "localhost:0", ca.issue("aggregator", server=True, dns_names=("localhost",)), workers=4
    )
    silo = ca.issue("silo-a", server=False)
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    (tmp_path / "key.pem").write_bytes(silo.private_key_pem)
    (tmp_path / "cert.pem").write_bytes(silo.certificate_pem)
    before = _glibc_in_use()
    silos = subprocess.Popen(
        [sys.executable, "-c", _SILOS, str(port), str(CONNECTIONS), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert silos.stdout is not None and silos.stdout.readline().strip() == "uploaded"
        time.sleep(0.5)  # the last replies' buffers go back once their writes complete
        after = _glibc_in_use()
    finally:
        silos.kill()
        silos.wait()
        server.stop(grace=None)
    assert before is not None and after is not None
    per_connection = (after - before) / CONNECTIONS
    # Capped, a connection holds its 64 KiB read buffer and its TLS and HTTP/2 state (about 150 KiB
    # in all); sized by gRPC, each held 1.2 MiB or more after the same upload.
    assert per_connection < 384 << 10, f"each idle connection holds {per_connection / 1024:.0f} KiB"
