"""A real Kubernetes control plane for integration tests: etcd and kube-apiserver on loopback.

The session fixture ``control_plane`` (src/fedsilo_testing/fixtures.py) starts one for the test
run; tests that need a cluster of their own use :class:`ControlPlane` as a context manager.

What it is: the pinned etcd and kube-apiserver (scripts/build-tools) on free loopback ports,
with their own CA and certificates, RBAC authorization, the PodSecurity admission plugin, a
service-account issuer and signing key (ServiceAccounts, token requests, impersonation), and
an admin kubeconfig (a client certificate in ``system:masters``). What it is not: there is
no controller-manager and no scheduler, so nothing garbage-collects, namespaces are never
finalized after a delete, pods stay Pending, and no controller creates a namespace's
``default`` ServiceAccount (:meth:`ControlPlane.create_namespace` does it instead).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedsilo_testing import _process
from fedsilo_testing.tools import ROOT, tool_path

#: The Service network; the API server's own Service takes its first address.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

_ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "PodSecurity",
    "ResourceQuota",
    "DefaultTolerationSeconds",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
)


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message carries its stderr, which says why."""

    def __str__(self) -> str:
        command = " ".join(str(part) for part in self.cmd)
        return f"{command!r} exited with {self.returncode}:\n{self.stderr}"


class ControlPlane:
    """etcd + kube-apiserver on loopback, with an admin kubeconfig; a context manager.

    Args:
        workdir: where certificates, data, logs and the kubeconfig go; a temporary
            directory (removed on stop) if not given. A given one is left in place, logs
            included, for a look after a failure.
        startup_timeout: seconds to wait for etcd, then for the API server's /readyz.
        extra_apiserver_args: more kube-apiserver flags (e.g. ``--feature-gates=...``).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        startup_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="fedsilo-control-plane-")) if workdir is None else workdir
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.etcd_url = ""
        self.url = ""
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._kubectl: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then the API server; return when /readyz says ok."""
        etcd, apiserver = tool_path("etcd"), tool_path("kube-apiserver")
        self._kubectl = tool_path("kubectl")
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_pki()
            self._start_etcd(etcd)
            self._start_apiserver(apiserver)
            self._write_kubeconfig(
                self.kubeconfig,
                "fedsilo-test-admin",
                {
                    "client-certificate-data": _base64(self.pki / "admin.crt"),
                    "client-key-data": _base64(self.pki / "admin.key"),
                },
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the API server, then etcd (terminate, then kill); remove an own workdir."""
        _process.stop(self._apiserver)
        _process.stop(self._etcd)
        self._apiserver = self._etcd = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what tests use ----------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """The CA that signed the API server's serving certificate."""
        return self.pki / "ca.crt"

    @property
    def pids(self) -> tuple[int, ...]:
        """The process ids of etcd and the API server, while they run."""
        return tuple(process.pid for process in (self._etcd, self._apiserver) if process is not None)

    @property
    def env(self) -> dict[str, str]:
        """Environment entries that point a Kubernetes client at this control plane."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl, as cluster-admin unless another ``kubeconfig`` is given.

        Raises :class:`KubectlError` (with kubectl's stderr) on a non-zero exit if ``check``.
        """
        assert self._kubectl is not None, "the control plane is not started"
        config = self.kubeconfig if kubeconfig is None else kubeconfig
        command = [str(self._kubectl), "--kubeconfig", str(config), *args]
        completed = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and completed.returncode != 0:
            raise KubectlError(completed.returncode, command, completed.stdout, completed.stderr)
        return completed

    def apply(self, *manifests: dict[str, Any]) -> None:
        """Create or update objects (``kubectl apply``) given as dicts."""
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(manifest) for manifest in manifests))

    def merge_patch(
        self, namespace: str, kind: str, name: str, patch: dict[str, Any], *, subresource: str | None = None
    ) -> None:
        """Merge ``patch`` into one object (``kubectl patch --type=merge``), or into its ``subresource``."""
        where = (f"--subresource={subresource}",) if subresource else ()
        self.kubectl("patch", "-n", namespace, kind, name, *where, "--type=merge", "-p", json.dumps(patch))

    def create_namespace(self, name: str, *, restricted: bool = True) -> str:
        """Create a namespace (with its ``default`` ServiceAccount) and return its name.

        ``restricted`` labels it to enforce (and warn and audit) the Pod Security
        "restricted" profile, as fedsilo's namespaces are; without it the namespace gets
        the cluster default, "privileged".
        """
        labels = (
            {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
            | {f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "warn", "audit")}
            if restricted
            else {}
        )
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
        # kube-controller-manager would create it; pods cannot be admitted without it.
        self.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}})
        return name

    def token_kubeconfig(self, token: str, name: str) -> Path:
        """Write a kubeconfig that authenticates with a bearer ``token`` only; return its path.

        For acting as a ServiceAccount for real (``kubectl create token``), e.g. to run a
        component with exactly the RBAC its chart grants, where ``--as`` impersonation
        would not exercise token authentication.
        """
        path = self.workdir / f"{name}.kubeconfig"
        self._write_kubeconfig(path, name, {"token": token})
        return path

    def get(self, path: str) -> Any:
        """GET an API path (e.g. ``/version``) as cluster-admin and decode the JSON."""
        with urllib.request.urlopen(self.url + path, context=self._tls(), timeout=10) as response:
            return json.load(response)

    # -- internals ---------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def _write_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsilo-test-ca")])
        ca = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True)
        _write(self.pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))

        service_ip = next(ipaddress.IPv4Network(SERVICE_CLUSTER_IP_RANGE).hosts())
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving = _certificate(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            serving_key.public_key(),
            ca_name,
            ca_key,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            alt_names=[
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"),
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                x509.IPAddress(service_ip),
            ],
        )
        _write(self.pki / "apiserver.crt", serving.public_bytes(serialization.Encoding.PEM))
        _write(self.pki / "apiserver.key", _private_pem(serving_key))

        # The group system:masters is bound to cluster-admin by the API server itself.
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _certificate(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "fedsilo-test-admin"),
                ]
            ),
            admin_key.public_key(),
            ca_name,
            ca_key,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        _write(self.pki / "admin.crt", admin.public_bytes(serialization.Encoding.PEM))
        _write(self.pki / "admin.key", _private_pem(admin_key))

        signing_key = ec.generate_private_key(ec.SECP256R1())
        _write(self.pki / "service-account.key", _private_pem(signing_key))
        _write(
            self.pki / "service-account.pub",
            signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def _start_etcd(self, binary: Path) -> None:
        def launch() -> tuple[subprocess.Popen[bytes], str]:
            client, peer = _process.free_port(), _process.free_port()
            client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
            data = self.workdir / "etcd-data"
            shutil.rmtree(data, ignore_errors=True)  # a retry starts a fresh member
            process = _process.start(
                [
                    str(binary),
                    "--name=fedsilo-test",
                    f"--data-dir={data}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=fedsilo-test={peer_url}",
                    # Throwaway data: durability only costs test time.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                self.etcd_log,
            )
            return process, client_url

        def healthy(url: str) -> bool:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return bool(json.load(response).get("health") == "true")

        self._etcd, self.etcd_url = self._launch("etcd", launch, healthy, self.etcd_log)

    def _start_apiserver(self, binary: Path) -> None:
        pki = self.pki

        def launch() -> tuple[subprocess.Popen[bytes], str]:
            port = _process.free_port()
            process = _process.start(
                [
                    str(binary),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    # The reconciler refuses a loopback address for the `kubernetes` Service's
                    # endpoints, and nothing runs in-cluster to use them.
                    "--endpoint-reconciler-type=none",
                    f"--secure-port={port}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    "--authorization-mode=RBAC",
                    f"--enable-admission-plugins={','.join(_ADMISSION_PLUGINS)}",
                    # Without it the API rejects a privileged pod before admission runs, and
                    # a test of PodSecurity would pass for the wrong reason.
                    "--allow-privileged=true",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={pki / 'service-account.pub'}",
                    f"--service-account-signing-key-file={pki / 'service-account.key'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    f"--cert-dir={self.workdir / 'apiserver-certs'}",
                    "--profiling=false",
                    *self.extra_apiserver_args,
                ],
                self.apiserver_log,
            )
            return process, f"https://127.0.0.1:{port}"

        def ready(url: str) -> bool:
            request = urllib.request.Request(f"{url}/readyz")
            with urllib.request.urlopen(request, context=self._tls(), timeout=5) as response:
                return bool(response.status == 200)

        self._apiserver, self.url = self._launch("kube-apiserver", launch, ready, self.apiserver_log)

    def _launch(
        self,
        name: str,
        launch: Callable[[], tuple[subprocess.Popen[bytes], str]],
        ready: Callable[[str], bool],
        log: Path,
        attempts: int = 3,
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start a server and wait for it; on a lost race for its port, start it again."""
        for _ in range(attempts):
            process, url = launch()
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    if ready(url):
                        return process, url
                except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError, ValueError):
                    pass
                time.sleep(0.2)
            else:
                _process.stop(process)
                raise RuntimeError(
                    f"{name} was not ready after {self.startup_timeout:.0f}s; {log}:\n{_process.tail(log)}"
                )
            _process.stop(process)
            if "address already in use" not in _process.tail(log, 200):
                break
        raise RuntimeError(f"{name} exited during start-up; {log}:\n{_process.tail(log)}")

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fedsilo-test",
                    "cluster": {"server": self.url, "certificate-authority-data": _base64(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": "fedsilo-test", "context": {"cluster": "fedsilo-test", "user": user}}],
            "current-context": "fedsilo-test",
        }
        _write(path, yaml.safe_dump(config, sort_keys=False).encode())


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    alt_names: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    path.chmod(0o600)


def install_crds(plane: ControlPlane) -> None:
    """Apply this checkout's committed CRDs and wait until the API server serves them."""
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/federatedjobs.fedsilo.io",
        "crd/silos.fedsilo.io",
    )
