"""``fedsilo sidecar`` and ``fedsilo trainer`` exit promptly on SIGTERM, as PID 1 too.

In a pod each runs as PID 1 of its container, and the kernel gives PID 1 no default action
for SIGTERM: without a handler of its own the kubelet's SIGTERM is ignored and a deleted pod
waits out its whole grace period before SIGKILL. The test starts the real entry points with
the arguments ``fedsilo run`` gives them (the silo files laid out as the operator's pods have
them, by ``hub_pod``), each as PID 1 of a PID namespace of its own (``unshare --pid --fork``;
as plain children where the test is not root), and signals them from outside it, as the
kubelet does. The silos have no aggregator to reach: the sidecar keeps dialling it and the
trainer waits on its link for a task, the states a pod spends its time in. Stopped, the sidecar
still tries to send the hub its Leave (docs/operations.md): with no hub to take it, that costs
the exit at most its short timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_cluster_commands import HubPod, fedsilo, hub_pod, wait_for

#: Generous: a loaded 2-core machine imports PyTorch slowly; the test fails only if it is exceeded.
START_TIMEOUT_S = 240
EXIT_TIMEOUT_S = 60


def _in_own_pid_namespace(argv: list[str]) -> list[str]:
    """``argv`` as PID 1 of a new PID namespace (``--kill-child``: it never outlives the test)."""
    return ["unshare", "--pid", "--fork", "--kill-child", *argv]


def _signalled_pid(process: subprocess.Popen[bytes], as_pid1: bool) -> int:
    """The host's pid of the fedsilo process: ``unshare``'s only child when it runs as PID 1."""
    if not as_pid1:
        return process.pid
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    found: str = wait_for(lambda: children.read_text().split(), "unshare forked the entry point", timeout=30)[0]
    return int(found)


@pytest.mark.integration
def test_a_sidecar_and_its_trainer_exit_at_once_on_sigterm(tmp_path: Path) -> None:
    # As PID 1 wherever a PID namespace can be made (root, as CI runs): the case pods are in, and
    # a superset of a plain child's (one run, not two: each starts PyTorch). Elsewhere as children.
    as_pid1 = os.geteuid() == 0 and shutil.which("unshare") is not None
    # No OPA or aggregator is started: the silos only need the pod's files.
    pod: HubPod = hub_pod(tmp_path, "http://127.0.0.1:9", "plain")
    silo = pod.job.spec.silos[0]
    sidecar_args, trainer_args = pod.silo_args(silo)
    wrap = _in_own_pid_namespace if as_pid1 else list
    try:
        sidecar = pod.start("sidecar", wrap(fedsilo("-v", *sidecar_args.argv())))
        trainer = pod.start("trainer", wrap(fedsilo("-v", *trainer_args.argv())))
        # The trainer has loaded its data and model and takes the sidecar's tasks from here on.
        wait_for(lambda: "ready" in pod.log("trainer"), f"the trainer ready\n{pod.all_logs()}", START_TIMEOUT_S)
        assert sidecar.poll() is None and trainer.poll() is None, pod.all_logs()
        # The sidecar first, while its trainer's call for the next task is open: in a cluster they
        # are pods of their own, and the link's handler thread must not hold the sidecar's exit.
        # Exit code 1 ("terminated"), as the aggregator's: stopped before the job ended. Ignored,
        # SIGTERM would leave each running until the timeout fails the test.
        os.kill(_signalled_pid(sidecar, as_pid1), signal.SIGTERM)
        assert pod.wait(sidecar, EXIT_TIMEOUT_S) == 1, pod.all_logs()
        os.kill(_signalled_pid(trainer, as_pid1), signal.SIGTERM)
        assert pod.wait(trainer, EXIT_TIMEOUT_S) == 1, pod.all_logs()
        for name in ("sidecar", "trainer"):
            log = pod.log(name)
            assert log.rstrip().endswith("terminated"), log
            assert "Traceback" not in log, log
        # The sidecar tried to tell the hub it leaves; with no hub there, it said so and exited all the same.
        assert "the hub did not take this silo's leave (UNAVAILABLE" in pod.log("sidecar"), pod.log("sidecar")
    finally:
        pod.stop_all()
