"""``fedsilo aggregator`` and ``fedsilo operator`` run as the operator's pods and image run them.

The aggregator tests play the kubelet: they build the hub's objects with the operator's own
pure builders (``hub_objects``), write the job ConfigMap and the serving-certificate Secret
to files exactly where the Deployment mounts them, and run the aggregator container's own
arguments (only the ports and the OPA address changed for loopback) against a real OPA
server. Real sidecars and trainers (``python -m fedsilo sidecar|trainer``, as ``fedsilo run``
starts them) then train a small job through it over mutual TLS.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from fedsilo.api import FederatedJob, Silo
from fedsilo.audit import read_decisions
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, TlsCredentials, write_identity
from fedsilo.launch import MANIFEST_FILE, AggregatorArgs, SidecarArgs, TrainerArgs, silo_ca_file
from fedsilo.operator import HubInputs, OperatorConfig, hub_objects, load_policy_files
from fedsilo.operator._hub_objects import tls_secret_name
from fedsilo.operator._identity import tls_secret
from fedsilo.operator._manifest import job_manifest
from fedsilo.protocol import pb, rpc
from fedsilo.registry import LocalRegistry
from fedsilo_testing import ControlPlane, OpaServer, free_port, install_crds
from tests.operator.conftest import hub_children, service_account_kubeconfig, silo_children

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
NAMESPACE = "hub"


def fedsilo(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedsilo", *args]


def wait_for(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f}s: {what}")
        time.sleep(0.25)
    return value


def tiny_job(aggregation: str, rounds: int = 2) -> tuple[FederatedJob, list[Silo]]:
    """The quickstart cut down to two silos, ``rounds`` short rounds and ``aggregation``."""
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    job, silos = documents[0], documents[1:3]
    job["spec"].update(
        {
            "silos": [s["metadata"]["name"] for s in silos],
            "minSilos": 2,
            "rounds": rounds,
            "roundTimeoutSeconds": 60,
            "aggregation": {"mode": aggregation},
        }
    )
    job["spec"]["training"]["localEpochs"] = 1
    if aggregation == "plain":
        # The policy bundle allows plain aggregation for internal data only, not sensitive.
        job["spec"]["policy"]["dataClass"] = "internal"
    return FederatedJob.model_validate(job), [Silo.model_validate(s) for s in silos]


@dataclass
class HubPod:
    """The aggregator container, its mounts as directories, and the silos that will dial it."""

    args: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]
    port: int
    metrics_port: int
    job: FederatedJob
    silos: list[Silo]
    identities: dict[str, Path]
    # Each silo's own CA, whose key its partner keeps (and could misuse).
    authorities: dict[str, CertificateAuthority]
    objects: list[dict[str, Any]]
    logs: Path
    # The CA of the aggregator's serving certificate, as the silo job ConfigMap carries it.
    aggregator_ca: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def job_config(self) -> Path:
        return self.mounts["job"] / MANIFEST_FILE

    @property
    def state_dir(self) -> Path:
        return self.mounts["state"]

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        )
        self.processes.append((name, process))
        return process

    def start_aggregator(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("aggregator", fedsilo("-v", *self.args), env)

    def serving_aggregator(self) -> subprocess.Popen[bytes]:
        """The aggregator started and serving its job (it said so), still running."""
        aggregator = self.start_aggregator()
        wait_for(
            lambda: "aggregator of job" in self.log("aggregator") or aggregator.poll() is not None,
            f"the aggregator serving\n{self.all_logs()}",
            timeout=120,
        )
        assert aggregator.poll() is None, self.all_logs()
        return aggregator

    def silo_args(self, silo: str) -> tuple[SidecarArgs, TrainerArgs]:
        """The command lines of ``silo``'s sidecar and trainer, linked by a socket beside the logs."""
        socket = self.logs / f"{silo}.sock"
        sidecar = SidecarArgs(
            job_config=self.job_config,
            silo=silo,
            aggregator=f"localhost:{self.port}",
            identity_dir=self.identities[silo],
            trainer_listen=f"unix:{socket}",
            aggregator_ca=self.aggregator_ca,
        )
        return sidecar, TrainerArgs(job_config=self.job_config, silo=silo, sidecar=f"unix:{socket}")

    def start_silos(self) -> list[subprocess.Popen[bytes]]:
        """Each silo's sidecar and trainer, as ``fedsilo run`` starts them."""
        sidecars = []
        for silo in self.job.spec.silos:
            sidecar, trainer = self.silo_args(silo)
            sidecars.append(self.start(f"{silo}-sidecar", fedsilo("-v", *sidecar.argv())))
            self.start(f"{silo}-trainer", fedsilo("-v", *trainer.argv()))
        return sidecars

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-3000:]}" for name, _ in self.processes)

    def wait(self, process: subprocess.Popen[bytes], timeout: float) -> int:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a process did not exit within {timeout:.0f}s\n{self.all_logs()}")

    def stop_all(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _write_volume(directory: Path, volume: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    """What the kubelet puts in a mounted ConfigMap or Secret volume: one file per key (or per listed item)."""
    directory.mkdir(parents=True, exist_ok=True)
    if "configMap" in volume:
        data = {k: v.encode() for k, v in objects[("ConfigMap", volume["configMap"]["name"])]["data"].items()}
        items = volume["configMap"].get("items")
    elif "secret" in volume:
        secret = objects[("Secret", volume["secret"]["secretName"])]
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        items = volume["secret"].get("items")
    else:
        return  # emptyDir
    for key, path in ((i["key"], i["path"]) for i in items) if items else ((k, k) for k in data):
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(data[key])


def hub_pod(
    tmp_path: Path,
    opa_url: str,
    aggregation: str,
    *,
    uid: str = "",
    namespace: str = NAMESPACE,
    job: tuple[FederatedJob, list[Silo]] | None = None,
) -> HubPod:
    """The operator's aggregator pod for a tiny job (or ``job``), laid out on disk, with each silo's identity."""
    job, silos = job or tiny_job(aggregation)
    name = job.metadata.name
    # Each silo's identity as the silo role creates it: a signing key and a client
    # certificate from a CA of the silo's own, whose certificate the hub collects.
    identities: dict[str, Path] = {}
    authorities: dict[str, CertificateAuthority] = {}
    registered: list[Silo] = []
    service_ca = CertificateAuthority.create(f"{name}-aggregator.{namespace} CA")
    for silo in silos:
        key = SigningKey.generate()
        authority = CertificateAuthority.create(f"{silo.metadata.name} identity CA")
        authorities[silo.metadata.name] = authority
        client = authority.issue(silo.metadata.name, server=False)
        # As in a cluster: the identity's ca.crt is the silo's own CA; the sidecar verifies the
        # aggregator with --aggregator-ca (the CA the operator publishes in status.endpoint).
        identity = SiloIdentity(
            key, TlsCredentials(client.private_key_pem, client.certificate_pem, authority.certificate_pem)
        )
        identities[silo.metadata.name] = tmp_path / "silos" / silo.metadata.name
        write_identity(identities[silo.metadata.name], identity)
        document = silo.model_dump(by_alias=True)
        document["spec"]["identity"]["publicKey"] = key.public_key.to_base64()
        registered.append(Silo.model_validate(document))
    # The serving certificate: the operator's names for the Service, plus loopback for this test.
    service = f"{name}-aggregator"
    serving = service_ca.issue(
        f"{service}.{namespace}.svc",
        server=True,
        dns_names=(service, f"{service}.{namespace}", f"{service}.{namespace}.svc", "localhost"),
        ip_addresses=("127.0.0.1",),
    )
    owner = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())},
    }
    inputs = HubInputs(
        owner=owner,
        job=job,
        manifest=job_manifest(job, registered),
        silo_cas={name: authority.certificate_pem.decode() for name, authority in authorities.items()},
        aggregator_ca=serving.ca_certificate_pem.decode(),
        finished=False,
    )
    objects = [
        *hub_objects(inputs, load_policy_files(ROOT / "policies"), OperatorConfig()),
        tls_secret(tls_secret_name(name), namespace, serving, {}),
    ]
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    deployment = by_kind[("Deployment", service)]
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "aggregator")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        mounts[mount["name"]] = tmp_path / "pod" / mount["name"]
        _write_volume(mounts[mount["name"]], volumes[mount["name"]], by_kind)

    # The container's arguments, read back as the CLI reads them, with its mount paths
    # mapped to the directories above and loopback ports.
    args = AggregatorArgs.parse(container["args"])

    def on_disk(path: Path) -> Path:
        for mount in sorted(container["volumeMounts"], key=lambda m: -len(m["mountPath"])):
            if path.is_relative_to(mount["mountPath"]):
                return mounts[mount["name"]] / path.relative_to(mount["mountPath"])
        raise AssertionError(f"{path} is on no volume of the aggregator container")

    port, metrics_port = free_port(), free_port()
    args = dataclasses.replace(
        args,
        job_config=on_disk(args.job_config),
        tls_dir=on_disk(args.tls_dir),
        state_dir=on_disk(args.state_dir),
        listen=f"127.0.0.1:{port}",
        policy_url=opa_url,
        metrics_port=metrics_port,
    )
    fields = {"metadata.namespace": namespace, "metadata.name": f"{service}-7d9f-abcde"}
    env = {
        e["name"]: e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in container["env"]
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    aggregator_ca = tmp_path / "aggregator-ca.crt"
    aggregator_ca.write_bytes(service_ca.certificate_pem)
    return HubPod(
        args=args.argv(),
        env=env,
        mounts=mounts,
        port=port,
        metrics_port=metrics_port,
        job=job,
        silos=registered,
        identities=identities,
        authorities=authorities,
        objects=objects,
        logs=logs,
        aggregator_ca=aggregator_ca,
    )


def metric(port: int, name: str, **labels: str) -> float | None:
    """A sample from a Prometheus endpoint, by name and labels (in any order); None if absent."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if sample_name == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return None


def serves_metrics(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
            return True
    except OSError:
        return False


def assert_audit_log_verifies(pod: HubPod, decisions: int) -> None:
    audit_log = pod.state_dir / "audit.jsonl"
    verified = subprocess.run(
        fedsilo("audit", "verify", str(audit_log), "--key", str(pod.state_dir / "aggregator-key.pub")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK:"), verified.stdout
    records = read_decisions(audit_log)
    assert len(records) == decisions
    assert all(r["decision"] == "allow" for r in records), records
    # Decided by the OPA server the aggregator was pointed at, not by an embedded engine.
    assert {r["engine"] for r in records} == {"opa-server"}


@pytest.fixture
def pod_cleanup() -> Iterator[list[HubPod]]:
    pods: list[HubPod] = []
    yield pods
    for pod in pods:
        pod.stop_all()


# ----- fedsilo aggregator, outside a cluster --------------------------------------------------


@pytest.mark.integration
def test_the_aggregator_runs_a_plain_job_from_the_operators_mounts_and_leaves_a_verifiable_record(
    tmp_path: Path, opa_server: OpaServer, pod_cleanup: list[HubPod]
) -> None:
    pod = hub_pod(tmp_path, opa_server.url, "plain")
    pod_cleanup.append(pod)
    rounds = pod.job.spec.rounds
    # Stopped (the kubelet's SIGTERM of a deleted pod) while it waits for its silos: the job is
    # interrupted, not failed, so the pod the Deployment starts next runs it.
    stopped = pod.start("aggregator-stopped", fedsilo("-v", *pod.args))
    wait_for(lambda: serves_metrics(pod.metrics_port), f"the first aggregator up\n{pod.all_logs()}", timeout=120)
    stopped.send_signal(signal.SIGTERM)
    assert pod.wait(stopped, 60) == 1, pod.all_logs()
    assert "terminated" in pod.log("aggregator-stopped")
    assert not (pod.state_dir / "outcome.json").exists(), pod.log("aggregator-stopped")
    aggregator = pod.start_aggregator()  # no FEDSILO_JOB_*: not in a cluster
    sidecars = pod.start_silos()
    labels = {"job": pod.job.metadata.name, "outcome": "completed"}
    wait_for(
        lambda: metric(pod.metrics_port, "fedsilo_rounds_total", **labels) == rounds or aggregator.poll() is not None,
        f"{rounds} rounds on the aggregator's /metrics\n{pod.all_logs()}",
        timeout=300,
    )
    assert pod.wait(aggregator, 120) == 0, pod.all_logs()
    for sidecar in sidecars:
        assert pod.wait(sidecar, 60) == 0, pod.all_logs()
    assert "no status reporter" in pod.log("aggregator")
    assert_audit_log_verifies(pod, decisions=rounds * len(pod.silos))
    models = LocalRegistry(pod.state_dir / "registry").list(pod.job.metadata.name)
    assert [m.lineage.round for m in models] == list(range(1, rounds + 1))
    assert set(models[-1].lineage.update_digests) == set(pod.job.spec.silos)
    assert json.loads((pod.state_dir / "outcome.json").read_text())["succeeded"] is True


BAD_CASES = {
    "invalid manifest": ("spec.rounds", "rounds: 0"),
    "silo without a key": ("spec.identity.publicKey", "no key"),
    "a silo without its CA": ("no CA certificate for silo", "no CA"),
    "a CA file holding no CA": ("is not a bundle of CA certificates", "leaf"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_the_aggregator_refuses_bad_configuration_with_exit_code_2_naming_the_problem(
    case: str, tmp_path: Path
) -> None:
    pod = hub_pod(tmp_path, "http://127.0.0.1:1", "plain")
    named, _ = BAD_CASES[case]
    if case == "invalid manifest":
        documents = list(yaml.safe_load_all(pod.job_config.read_text()))
        documents[0]["spec"]["rounds"] = 0
        pod.job_config.write_text(yaml.safe_dump_all(documents))
    elif case == "silo without a key":
        documents = list(yaml.safe_load_all(pod.job_config.read_text()))
        documents[1]["spec"]["identity"] = {}
        pod.job_config.write_text(yaml.safe_dump_all(documents))
    elif case == "a silo without its CA":
        silo = pod.job.spec.silos[-1]
        (pod.mounts["job"] / silo_ca_file(silo)).unlink()
        named = f"{silo} ({pod.mounts['job'] / silo_ca_file(silo)})"
    else:
        # A leaf certificate where the silo's CA belongs: it could bind the silo to nothing.
        silo = pod.job.spec.silos[-1]
        path = pod.mounts["job"] / silo_ca_file(silo)
        path.write_bytes(pod.authorities[silo].issue(silo, server=False).certificate_pem)
        named = f"{path} of silo {silo} is not a bundle of CA certificates"
    completed = subprocess.run(fedsilo(*pod.args), capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2, completed.stderr
    assert "error:" in completed.stderr and named in completed.stderr, completed.stderr
    assert not (pod.state_dir / "audit.jsonl").exists(), "nothing was started"


def _call_join(pod: HubPod, name: str, issuer: CertificateAuthority) -> grpc.RpcError | None:
    """Join as ``name`` with a client certificate ``issuer`` minted; the refusal, or None if the hub let the call in."""
    credentials = issuer.issue(name, server=False)
    with grpc.secure_channel(
        f"localhost:{pod.port}",
        grpc.ssl_channel_credentials(
            pod.aggregator_ca.read_bytes(), credentials.private_key_pem, credentials.certificate_pem
        ),
    ) as channel:
        stub = rpc.AggregatorStub(channel)
        try:
            stub.Join(pb.JoinRequest(job=pod.job.metadata.name, silo=name, num_samples=10), timeout=60)
        except grpc.RpcError as error:
            return error
    return None


@pytest.mark.integration
def test_the_aggregator_refuses_a_certificate_another_silos_ca_minted_as_the_operators_pod_starts_it(
    tmp_path: Path, opa_server: OpaServer, pod_cleanup: list[HubPod]
) -> None:
    pod = hub_pod(tmp_path, opa_server.url, "plain")
    pod_cleanup.append(pod)
    aggregator = pod.serving_aggregator()
    a, b = pod.job.spec.silos
    # Partner a keeps its CA key and mints a certificate in b's name: TLS accepts it (a's CA is
    # trusted), the per-silo binding the operator's files give the aggregator does not.
    refused = _call_join(pod, b, pod.authorities[a])
    assert refused is not None and refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused
    assert "another CA minted it" in (refused.details() or ""), refused
    # The same call with a certificate from b's own CA is let in.
    assert _call_join(pod, b, pod.authorities[b]) is None
    assert aggregator.poll() is None, pod.all_logs()


@pytest.mark.integration
def test_the_aggregator_follows_a_silos_rotated_ca_file_without_a_restart(
    tmp_path: Path, opa_server: OpaServer, pod_cleanup: list[HubPod]
) -> None:
    pod = hub_pod(tmp_path, opa_server.url, "plain")
    pod_cleanup.append(pod)
    aggregator = pod.serving_aggregator()
    a, b = pod.job.spec.silos
    old, new = pod.authorities[a], CertificateAuthority.create(f"{a} identity CA, rotated")
    ca_file = pod.mounts["job"] / silo_ca_file(a)

    def swap(content: bytes) -> None:  # as the kubelet swaps a mounted ConfigMap's files
        staged = ca_file.with_name(f".{ca_file.name}.new")
        staged.write_bytes(content)
        os.replace(staged, ca_file)

    # The overlap: both of a's CAs are trusted for a, and the new one for a alone.
    swap(old.certificate_pem + new.certificate_pem)
    wait_for(lambda: _call_join(pod, a, new) is None, "a certificate from a's new CA let in", timeout=30)
    assert _call_join(pod, a, old) is None
    minted = _call_join(pod, b, new)
    assert minted is not None and minted.code() == grpc.StatusCode.PERMISSION_DENIED, minted
    # The old CA dropped: its certificates no longer get through the handshake.
    swap(new.certificate_pem)
    wait_for(lambda: _call_join(pod, a, old) is not None, "a certificate from a's dropped CA refused", timeout=30)
    refused = _call_join(pod, a, old)
    assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE, refused
    assert _call_join(pod, a, new) is None
    # One process served it all, and its log says what it trusts for whom.
    assert aggregator.poll() is None, pod.all_logs()
    log = pod.log("aggregator")
    assert f"silo {a}: certificates from CA sha256:" in log and "no longer" in log, log[-3000:]
    assert "BEGIN CERTIFICATE" not in log


# ----- in a cluster: status reporter and operator ------------------------------------------


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    install_crds(control_plane)
    return control_plane


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.mark.integration
def test_in_a_cluster_the_aggregator_reports_each_round_to_its_job_and_waits_to_be_stopped(
    tmp_path: Path, opa_server: OpaServer, cluster: ControlPlane, pod_cleanup: list[HubPod]
) -> None:
    namespace = cluster.create_namespace(unique("aggregator"))
    job, silos = tiny_job("masked")
    cluster.apply(
        *(
            {
                **obj.model_dump(mode="json", by_alias=True, exclude_none=True),
                "metadata": {"name": obj.metadata.name, "namespace": namespace},
            }
            for obj in (job, *silos)
        )
    )
    uid = cluster.kubectl(
        "get", "federatedjob", job.metadata.name, "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    pod = hub_pod(tmp_path, opa_server.url, "masked", uid=uid, namespace=namespace)
    pod_cleanup.append(pod)
    # The aggregator's narrow grant, and a token of its ServiceAccount as its credentials.
    cluster.apply(*(o for o in pod.objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")))
    kubeconfig = service_account_kubeconfig(
        cluster, namespace, f"{job.metadata.name}-aggregator", tmp_path / "sa.kubeconfig"
    )
    aggregator = pod.start_aggregator({**pod.env, "KUBECONFIG": str(kubeconfig)})
    sidecars = pod.start_silos()

    def status() -> dict[str, Any]:
        got = cluster.kubectl("get", "federatedjob", job.metadata.name, "-n", namespace, "-o", "json").stdout
        return json.loads(got).get("status") or {}

    wait_for(
        lambda: status().get("result") == "Succeeded" or aggregator.poll() is not None,
        f"the job's status.result\n{pod.all_logs()}",
        timeout=300,
    )
    final = status()
    assert final["round"] == job.spec.rounds, final
    assert sorted(final["participants"]) == sorted(job.spec.silos)
    assert final["denials"] == 0
    assert final["latestModel"]["round"] == job.spec.rounds
    assert final["latestModel"]["uri"].startswith(str(pod.state_dir / "registry"))
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    reasons = [e["reason"] for e in events if e["involvedObject"]["uid"] == uid]
    assert reasons.count("RoundCompleted") == job.spec.rounds, reasons
    assert "JobSucceeded" in reasons
    for sidecar in sidecars:
        assert pod.wait(sidecar, 60) == 0, pod.all_logs()
    # Still up: a Deployment would restart an exited container into the same job.
    time.sleep(1.0)
    assert aggregator.poll() is None, pod.all_logs()
    aggregator.send_signal(signal.SIGTERM)
    assert pod.wait(aggregator, 30) == 0, pod.all_logs()
    assert "reporting status to FederatedJob" in pod.log("aggregator")
    assert_audit_log_verifies(pod, decisions=job.spec.rounds * len(silos))

    # Restarted on the same state directory, it does not run the job again.
    again = pod.start("aggregator-again", fedsilo("-v", *pod.args), {**pod.env, "KUBECONFIG": str(kubeconfig)})
    wait_for(lambda: "already ended" in pod.log("aggregator-again"), "the restart saw the recorded outcome", 60)
    again.send_signal(signal.SIGTERM)
    assert pod.wait(again, 30) == 0, pod.log("aggregator-again")


def test_fedsilo_operator_help_names_every_flag() -> None:
    completed = subprocess.run(fedsilo("operator", "--help"), capture_output=True, text=True, timeout=120, check=True)
    for flag in (
        "--role",
        "--namespace",
        "--kubeconfig",
        "--metrics-port",
        "--liveness-port",
        "--no-peering",
        "--priority",
    ):
        assert flag in completed.stdout


@pytest.mark.parametrize("instance", ["Bank_A", "-bank-a", "a" * 64])
def test_fedsilo_operator_refuses_an_instance_name_that_is_not_a_dns_name_with_exit_code_2(instance: str) -> None:
    completed = subprocess.run(
        fedsilo("operator", "--role", "silo", f"--instance={instance}", "--no-peering"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert f"error: --instance {instance!r} is not a DNS name" in completed.stderr, completed.stderr


def test_fedsilo_operator_refuses_a_remote_silo_network_that_is_no_cidr_with_exit_code_2() -> None:
    completed = subprocess.run(
        fedsilo("operator", "--role", "hub", "--remote-silo-cidr=10.1.2.3/8", "--no-peering"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "error: --remote-silo-cidr: remote_silo_cidrs: '10.1.2.3/8' is not a network" in completed.stderr


def test_each_installation_keeps_its_own_kopf_state_and_peering() -> None:
    from fedsilo.operator import OperatorRole, operator_settings, peering_name

    single = operator_settings(OperatorRole.SILO)
    a, b = (operator_settings(OperatorRole.SILO, name) for name in ("bank-a-fedsilo-silo", "bank-b-fedsilo-silo"))
    # One installation keeps the names it always had; several never share a finalizer or peering.
    assert single.persistence.finalizer == "fedsilo.io/silo-cleanup"
    assert len({single.persistence.finalizer, a.persistence.finalizer, b.persistence.finalizer}) == 3
    assert a.persistence.finalizer == "bank-a-fedsilo-silo.silo.fedsilo.io/cleanup"
    assert peering_name(OperatorRole.SILO, "bank-a-fedsilo-silo") != peering_name(
        OperatorRole.SILO, "bank-b-fedsilo-silo"
    )


@pytest.mark.integration
def test_fedsilo_operator_reconciles_a_job_into_its_children_and_stops_on_sigterm(
    tmp_path: Path, cluster: ControlPlane
) -> None:
    namespace = cluster.create_namespace(unique("operator"))
    metrics_port, liveness_port = free_port(), free_port()
    log = tmp_path / "operator.log"
    with log.open("wb") as sink:
        operator = subprocess.Popen(
            fedsilo(
                "operator",
                "--role",
                "both",
                "--namespace",
                namespace,
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--no-peering",
                "--metrics-port",
                str(metrics_port),
                "--liveness-port",
                str(liveness_port),
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", str(QUICKSTART))
        expected = hub_children("quickstart")
        for silo in ("hospital-a", "hospital-b", "hospital-c"):
            expected |= silo_children("quickstart", silo)

        def found() -> set[tuple[str, str]]:
            listing = cluster.kubectl(
                "get",
                "configmaps,secrets,services,serviceaccounts,pods,deployments,networkpolicies,roles,rolebindings",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/managed-by=fedsilo-operator",
                "-o",
                "json",
            ).stdout
            return {(o["kind"], o["metadata"]["name"]) for o in json.loads(listing)["items"]}

        wait_for(
            lambda: found() >= expected or operator.poll() is not None,
            f"the quickstart's children\n{log.read_text(errors='replace')[-4000:]}",
            timeout=120,
        )
        assert operator.poll() is None, log.read_text(errors="replace")[-4000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5) as response:
            assert response.status == 200
        # Its own metrics, served on --metrics-port: the hub reconciled the job (and, with no
        # kubelet here to make the aggregator available, keeps waiting for it).
        hub_reconciles = [
            metric(metrics_port, "fedsilo_operator_reconciles_total", resource="federatedjob", handler="hub", outcome=o)
            for o in ("ok", "waiting")
        ]
        assert sum(n or 0 for n in hub_reconciles) >= 1, hub_reconciles
        operator.send_signal(signal.SIGTERM)
        assert operator.wait(60) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.wait()
