"""Run inside a sandboxed trainer by test_trainer_isolation: tries every way out and prints what worked.

Argument: a JSON object with the paths, ports and file descriptors to try. Output: one JSON
object mapping each attempt to "allowed" or "blocked: <why>".
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import socket
import sys
from collections.abc import Callable

import grpc

from fedsilo.protocol import (
    LINK_TOKEN_ENV,
    LINK_TOKEN_METADATA,
    TrainerReply,
    TrainerTask,
    frames_in,
    frames_out,
    rpc,
    task_request,
)

CLONE_NEWNET = 0x40000000
config = json.loads(sys.argv[1])
results: dict[str, str] = {}


def attempt(name: str, action: Callable[[], object]) -> None:
    try:
        action()
    except (OSError, grpc.RpcError) as error:
        detail = error.code().name if isinstance(error, grpc.RpcError) else type(error).__name__
        results[name] = f"blocked: {detail}"
    else:
        results[name] = "allowed"


def setns(path_or_fd: str | int) -> None:
    fd = path_or_fd if isinstance(path_or_fd, int) else os.open(path_or_fd, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def read(path: str) -> None:
    with open(path, "rb") as handle:
        handle.read()


def connect_tcp() -> None:
    with socket.create_connection(("127.0.0.1", config["port"]), timeout=5):
        pass


def link_call(socket_path: str, token: str | None, answer_round: int | None = None) -> None:
    metadata = ((LINK_TOKEN_METADATA, token),) if token else ()
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        stub = rpc.TrainerLinkStub(channel)
        if answer_round is None:
            frames_in(stub.NextTask(task_request("x", 0), timeout=10, metadata=metadata), 1 << 20, TrainerTask)
        else:
            ack = stub.Complete(
                frames_out(TrainerReply(round=answer_round, num_samples=7), b""), timeout=10, metadata=metadata
            )
            if not ack.ok:
                raise OSError(ack.message)


token = os.environ.get(LINK_TOKEN_ENV)
parent = os.getppid()
attempt("setns into the host netns by a handle", lambda: setns(config["host_netns_fd"]))
attempt("setns into the host netns by /proc", lambda: setns(f"/proc/{parent}/ns/net"))
attempt("setns into pid 1's netns", lambda: setns("/proc/1/ns/net"))
attempt("open a raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("open a packet socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("connect to a loopback port", connect_tcp)
for label, path in config["keys"].items():
    attempt(f"read {label}", functools.partial(read, path))
    attempt(f"read {label} via /proc/PID/root", functools.partial(read, f"/proc/{parent}/root{path}"))
attempt("read the job file", lambda: read(config["job"]))
attempt("read the model code beside the manifest", lambda: read(config["beside"]))
attempt("take a task from its own link", lambda: link_call(config["own_link"], token))
attempt("take a task from its own link without the token", lambda: link_call(config["own_link"], None))
attempt("answer another silo's task", lambda: link_call(config["other_link"], token, answer_round=0))
attempt(
    "answer another silo's task via /proc/PID/root",
    lambda: link_call(f"/proc/{parent}/root{config['other_link']}", token, answer_round=0),
)
print(json.dumps(results))
