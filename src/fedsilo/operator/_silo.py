"""The silo role: each Silo's identity, and each job's trainer and sidecar pods for the silos it names.

Called by the kopf handlers in :mod:`fedsilo.operator._handlers`.

A Silo's *workload namespace* is the Silo's own namespace, or the one its annotation
``fedsilo.io/workload-namespace`` names (several silos as namespaces of one cluster, their
Silo objects beside the job they join). That namespace holds the silo's identity Secret
and its pods; the operator acts there only if it manages the namespace.

Which Silos are this operator's (:meth:`SiloReconciler.owns`) follows from that: those whose
workload namespace it manages. Several partners' silo operators watch one job namespace,
each managing its own workload namespace; each leaves the others' Silos alone, writing
nothing to them (the handlers' filters keep even kopf's own state off them), while every one
of them builds its own silos' pods for the jobs there.

``reconcile_silo`` makes sure the identity exists (creating it if absent, see
:mod:`._identity` for the trade-off) and reports it. ``reconcile_job`` waits for the hub to
publish the aggregator endpoint, then applies each silo's ConfigMap, Service and
NetworkPolicies and creates its pods (replacing a pod built from an older spec), and
removes the workloads of silos the job no longer names. Cleanup deletes what ownership
cannot reach: children in other namespaces than the job's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import kopf

from fedsilo.api import (
    API_VERSION,
    AggregatorEndpoint,
    ConditionType,
    FederatedJob,
    JobPhase,
    Silo,
    SiloIdentityStatus,
    SiloStatus,
    consent_refusal,
)
from fedsilo.identity import CA_CERT_FILE, PUBLIC_KEY_FILE, VerifyKey
from fedsilo.kube import (
    CONFIG_MAP,
    FEDERATED_JOB,
    NETWORK_POLICY,
    POD,
    SECRET,
    SERVICE,
    SILO,
    ApiError,
    KubeApi,
    Object,
)

from ._certificates import CertificateKeeper, KeptAuthority
from ._conditions import Problem, condition, silo_conditions
from ._config import OperatorConfig
from ._consent import CONSENT_MISSING, consent_problem, forbidden_target, job_consent_problem
from ._errors import CALL_ERRORS, problem_of, retry_decision
from ._identity import (
    PublicIdentity,
    identity_public_config_map,
    identity_public_name,
    identity_secret,
    identity_secret_name,
    new_silo_identity,
    public_identity,
)
from ._locks import KeyedLocks
from ._manifest import SeenStanding, SiloLookup, job_manifest, named_silos, parse_object, registered_key
from ._names import (
    JOB_LABEL,
    JOB_NAMESPACE_LABEL,
    SILO_LABEL,
    SPEC_DIGEST_ANNOTATION,
    WORKLOAD_NAMESPACE_ANNOTATION,
    adopt,
    as_body,
    normal_event,
)
from ._silo_objects import SiloInputs, ledger_claim, silo_pods, silo_support_objects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Built:
    """What a job's workloads were built from; the same again means nothing to do."""

    generation: int
    aggregator_ca: str
    #: Per silo: name, spec, public key and workload namespace (all the manifest and pods depend on).
    silos: tuple[tuple[str, str, str | None, str], ...]

    @property
    def names(self) -> set[str]:
        """The silos the job named."""
        return {name for name, *_ in self.silos}


#: Seconds between retries while waiting for the hub or for a partner to provide an identity.
#: Seconds between checks of a namespace that has not (yet) accepted a Silo.
CONSENT_DELAY = 30.0
WAIT_DELAY = 10.0
IDENTITY_FIELDS = ("observedGeneration", "conditions", "identity")
#: The jobs/epsilon part of a Silo's status has a field manager of its own: it is written
#: from job events, and an apply drops the fields its manager leaves out.
USAGE_FIELD_MANAGER = "fedsilo-operator-usage"
#: The ConsentRefused condition likewise: written from job events, beside the identity's conditions.
CONSENT_FIELD_MANAGER = "fedsilo-operator-consent"
#: Silos of one job whose objects are applied at the same time.
BUILD_WORKERS = 8
#: A silo's pods per job: its trainer and its sidecar.
PODS_PER_SILO = 2
#: Phases after which a job's pods are not rebuilt.
FINISHED_PHASES = frozenset({JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.DENIED})
#: A pod in one of these phases runs nothing any more (its containers exited for good).
ENDED_POD_PHASES = frozenset({"Succeeded", "Failed"})
#: Kinds of a silo's per-job children, deleted in this order.
WORKLOAD_KINDS = (POD, SERVICE, NETWORK_POLICY, CONFIG_MAP)

#: One job as the index of jobs by silo records it, for the silo's status.
JobEntry = Mapping[str, Any]


def workload_namespace(silo: Silo) -> str:
    """Where the silo's pods and identity live."""
    annotated = silo.metadata.annotations.get(WORKLOAD_NAMESPACE_ANNOTATION)
    return annotated or str(silo.metadata.namespace)


def declared_workload_namespace(body: Mapping[str, Any]) -> str:
    """:func:`workload_namespace` of a Silo object as stored, valid or not (what handler filters see)."""
    meta = body["metadata"]
    return str((meta.get("annotations") or {}).get(WORKLOAD_NAMESPACE_ANNOTATION) or meta["namespace"])


class SiloReconciler:
    """Builds and maintains the silo side: identities, and trainer + sidecar pods per job."""

    def __init__(self, api: KubeApi, config: OperatorConfig) -> None:
        self.api = api
        self.config = config
        # Per job uid: what its workloads were last built from, by this process.
        self._built: dict[str, _Built] = {}
        self._standing = SeenStanding()
        self._locks = KeyedLocks()
        self._pool = ThreadPoolExecutor(max_workers=BUILD_WORKERS, thread_name_prefix="silo-build")
        self._usage: dict[tuple[str, str], dict[str, Any]] = {}
        # Per Silo (namespace, name): the jobs refused for want of its consent, and why.
        self._refused: dict[tuple[str, str], dict[str, str]] = {}
        self._lock = threading.Lock()
        self.certificates = CertificateKeeper(api)
        # Silos (namespace, name) whose certificate cannot be renewed, already warned about.
        self._unrenewable: set[tuple[str, str]] = set()

    # -- Silo ----------------------------------------------------------------------------

    def owns(self, body: Mapping[str, Any]) -> bool:
        """Whether the Silo is this operator's to act on and write to.

        It is when the operator manages the Silo's workload namespace: only there can it create
        the identity and the pods, and another partner's operator manages that partner's. A
        workload namespace that no Silo may have (a system namespace, not a namespace name)
        is nobody's, so every operator that sees the Silo reports it invalid, in the same words.
        """
        workload = declared_workload_namespace(body)
        return self.config.manages(workload) or forbidden_target(workload, body["metadata"]["namespace"]) is not None

    def reconcile_silo(self, body: Mapping[str, Any]) -> None:
        """Make sure the silo's identity exists and report it; TemporaryError while a partner must act."""
        try:
            silo: Silo = parse_object(body, Silo)
        except kopf.PermanentError as invalid:
            # What the API server let through (e.g. a system workload namespace where the admission
            # policy is not installed) is shown on the Silo, and nothing is created for it.
            problem = Problem("InvalidSilo", f"{invalid}; correct the Silo")
            self._report_identity(body, None, problem, str(body["metadata"]["namespace"]))
            kopf.warn(as_body(body), reason=problem.reason, message=problem.message)
            raise
        workload = workload_namespace(silo)
        try:
            refused = self._consent(silo)
        except CALL_ERRORS as error:
            self._report_identity(body, None, problem_of(error), workload)
            raise retry_decision(error) from error
        if refused is not None:
            self._report_identity(body, None, refused, workload)
            kopf.warn(as_body(body), reason=refused.reason, message=refused.message)
            # Temporary: the namespace's owner may consent later; nothing is created until then.
            raise kopf.TemporaryError(refused.message, delay=CONSENT_DELAY)
        try:
            public, created, found = self._ensure_identity(body, silo, workload)
            self._write_identity_status(body, public, found, workload, created)
        except CALL_ERRORS as error:
            self._report_identity(body, None, problem_of(error), workload)
            raise retry_decision(error) from error
        if found is not None:
            raise kopf.TemporaryError(found.message, delay=WAIT_DELAY)

    def cleanup_silo(self, body: Mapping[str, Any]) -> None:
        """Delete the silo's workloads, and its identity if the operator created it."""
        silo: Silo = parse_object(body, Silo)
        workload, name = workload_namespace(silo), silo.metadata.name
        try:
            self._delete_workloads(workload, {SILO_LABEL: name, JOB_NAMESPACE_LABEL: str(silo.metadata.namespace)})
            identity = (silo.status or {}).get("identity") or {}
            if identity.get("createdByOperator"):
                self.api.delete(SECRET, workload, identity_secret_name(name))
                self.api.delete(CONFIG_MAP, workload, identity_public_name(name))
                if silo.spec.identity.lifetime is not None:
                    self.certificates.forget(name, workload, str(silo.metadata.namespace))
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        with self._lock:
            self._usage.pop((str(silo.metadata.namespace), name), None)

    def _ensure_identity(
        self, body: Mapping[str, Any], silo: Silo, workload: str
    ) -> tuple[PublicIdentity | None, bool, Problem | None]:
        """The published identity, whether the operator created it just now, and what stops it."""
        name = silo.metadata.name
        secret, config_map = identity_secret_name(name), identity_public_name(name)
        registered = silo.spec.identity.public_key
        lifetime = silo.spec.identity.lifetime
        kept: KeptAuthority | None = None
        if not registered and lifetime is not None and self._published_identity(workload, name) is None:
            # The CA is kept before anything it signs exists; one kept earlier (a creation cut short) is reused.
            kept = self.certificates.kept(name, workload) or self.certificates.keep_new(
                name, workload, silo.spec.identity.ca_rotation
            )
        if not registered and (lifetime is None or kept is not None):
            # Create-if-absent without reading: the operator may create Secrets, never get them.
            identity = new_silo_identity(name, None if kept is None or lifetime is None else (kept.authority, lifetime))
            public = public_identity(identity)
            secret_object, public_object = (
                identity_secret(name, workload, identity, renewed=kept is not None),
                identity_public_config_map(name, workload, public),
            )
            if workload == silo.metadata.namespace:
                adopt([secret_object, public_object], body)
            if self.api.create(secret_object) is not None:
                self.api.apply(public_object)
                if kept is not None and lifetime is not None:
                    self.certificates.publish(body, silo, workload, kept, lifetime, identity.tls, "issued")
                normal_event(
                    body,
                    reason="IdentityCreated",
                    message=f"identity {public.fingerprint} created in Secret {workload}/{secret}",
                )
                return public, True, None
        published = self._published_identity(workload, name)
        if published is None:
            if registered:
                return (
                    None,
                    False,
                    Problem(
                        "IdentityIncomplete",
                        f"spec.identity.publicKey is registered, so the operator does not create an identity; "
                        f"create Secret {workload}/{secret} (signing-key.pem, tls.crt, tls.key, ca.crt) and ConfigMap "
                        f"{workload}/{config_map} (signing-key.pub, ca.crt) from 'fedsilo identity create'",
                    ),
                )
            return (
                None,
                False,
                Problem(
                    "IdentityUnregistered",
                    f"Secret {workload}/{secret} exists but its public half is unknown: create ConfigMap "
                    f"{workload}/{config_map} (signing-key.pub, ca.crt) and register the key in spec.identity.publicKey, "
                    "or delete the Secret to have the operator create a new identity",
                ),
            )
        if registered and registered != published.public_key:
            return (
                published,
                False,
                Problem(
                    "IdentityMismatch",
                    f"spec.identity.publicKey is not the key in ConfigMap {workload}/{config_map} "
                    f"({published.fingerprint}); updates signed by the Secret's key would be rejected",
                ),
            )
        return published, False, None

    def _publish_ca_bundle(self, body: Mapping[str, Any], silo: Silo, workload: str, bundle: str) -> None:
        """Put the silo's CAs (one, or two while its CA is rotated) in its identity's public ConfigMap.

        The trainer verifies its sidecar's certificate with them and people read them there; the
        hub takes them from the Silo's status, which the certificate keeper writes next.
        """
        name = silo.metadata.name
        published = self._published_identity(workload, name)
        if published is None or published.ca_certificate == bundle:
            return
        public = identity_public_config_map(name, workload, replace(published, ca_certificate=bundle))
        if workload == silo.metadata.namespace:
            adopt([public], body)
        self.api.apply(public)

    def _published_identity(self, workload: str, name: str) -> PublicIdentity | None:
        config_map = self.api.get(CONFIG_MAP, workload, identity_public_name(name))
        data = (config_map or {}).get("data") or {}
        if PUBLIC_KEY_FILE not in data or CA_CERT_FILE not in data:
            return None
        key = data[PUBLIC_KEY_FILE].strip()
        try:
            fingerprint = VerifyKey.from_base64(key).fingerprint()
        except ValueError:
            return None
        return PublicIdentity(key, fingerprint, data[CA_CERT_FILE])

    def _write_identity_status(
        self,
        body: Mapping[str, Any],
        public: PublicIdentity | None,
        problem: Problem | None,
        workload: str,
        created: bool = False,
    ) -> None:
        meta, status = body["metadata"], body.get("status") or {}
        name = meta["name"]
        identity = SiloIdentityStatus(secret_name=identity_secret_name(name), namespace=workload)
        before = status.get("identity") or {}
        if public is not None:
            # Still the key the operator made earlier, or made just now: the operator deletes it with the Silo.
            ours = created or (bool(before.get("createdByOperator")) and before.get("publicKey") == public.public_key)
            identity = identity.model_copy(
                update={
                    "public_key": public.public_key,
                    "fingerprint": public.fingerprint,
                    "ca_certificate": public.ca_certificate,
                    "created_by_operator": ours,
                }
            )
        ready = f"identity {public.fingerprint} in Secret {workload}/{identity.secret_name}" if public else ""
        generation = int(meta.get("generation") or 0)
        written = SiloStatus.model_validate(
            {
                "observedGeneration": generation,
                "conditions": silo_conditions(generation, problem, ready, status.get("conditions") or []),
                "identity": identity,
            }
        )
        fields = written.model_dump(by_alias=True, exclude_none=True, mode="json")
        if all(status.get(key) == fields[key] for key in IDENTITY_FIELDS):
            return
        self.api.apply(_status_patch(SILO.kind, meta, fields), subresource="status")

    def _consent(self, silo: Silo) -> Problem | None:
        """Why the silo may not use its workload namespace, or None (its own, or one that accepted it)."""
        workload, own = workload_namespace(silo), str(silo.metadata.namespace)
        target = None if workload == own or forbidden_target(workload, own) else self.api.namespace(workload)
        return consent_problem(own, silo.metadata.name, workload, target)

    def _report_identity(
        self, body: Mapping[str, Any], public: PublicIdentity | None, problem: Problem, workload: str
    ) -> None:
        try:
            self._write_identity_status(body, public, problem, workload)
        except CALL_ERRORS as error:
            log.warning("could not report a problem on Silo %s: %s", body["metadata"]["name"], error)

    def renew_certificate(self, body: Mapping[str, Any]) -> None:
        """The renewal timer: rotate the silo's CA and renew its client certificate as due (see :mod:`._certificates`).

        Waits for the identity (``reconcile_silo`` creates it); a silo whose CA the operator does
        not keep gets one Warning Event, and its certificate runs out as issued.
        """
        try:
            silo: Silo = parse_object(body, Silo)
        except kopf.PermanentError:
            return  # reconcile_silo reports an invalid Silo
        identity = (silo.status or {}).get("identity") or {}
        if not identity.get("createdByOperator"):
            return
        key = (str(silo.metadata.namespace), silo.metadata.name)
        workload = workload_namespace(silo)
        try:
            problem = self.certificates.maintain(
                body,
                silo,
                workload,
                identity.get("caCertificate"),
                lambda bundle: self._publish_ca_bundle(body, silo, workload, bundle),
            )
        except CALL_ERRORS as error:
            log.warning("certificate of Silo %s/%s not renewed yet: %s", *key, error)
            return
        with self._lock:
            if problem is None or key in self._unrenewable:
                return
            self._unrenewable.add(key)
        kopf.warn(as_body(body), reason=problem.reason, message=problem.message)

    # -- FederatedJob --------------------------------------------------------------------

    def reconcile_job(self, body: Mapping[str, Any], silos: SiloLookup) -> None:
        """Create the job's pods for every silo in a managed namespace; TemporaryError while waiting.

        Does nothing if this process already built the same generation from the same silos
        and endpoint, so the change handler and the event handlers can all call it.
        """
        with self._locks.hold(body["metadata"]["uid"]):
            self._reconcile_job(body, silos)

    def _reconcile_job(self, body: Mapping[str, Any], lookup: SiloLookup) -> None:
        job: FederatedJob = parse_object(body, FederatedJob)
        meta, status = body["metadata"], body.get("status") or {}
        namespace = meta["namespace"]
        if status.get("phase") in FINISHED_PHASES:
            # Nothing is left to join: pods still running would wait for an aggregator that is
            # gone and hold the node's resources (on the test cluster, the next job's pods stayed
            # Pending). Pods that ended keep their logs until the job is deleted.
            try:
                self._stop_pods(meta, named_silos(lookup, namespace, job.spec.silos).values())
            except CALL_ERRORS as error:
                raise retry_decision(error) from error
            return
        if not status.get("endpoint"):
            raise kopf.TemporaryError("waiting for the hub to publish the aggregator endpoint", delay=WAIT_DELAY)
        endpoint = AggregatorEndpoint.model_validate(status["endpoint"])
        silos = named_silos(lookup, namespace, job.spec.silos)
        missing = [n for n in job.spec.silos if n not in silos or registered_key(silos[n]) is None]
        if missing:
            raise kopf.TemporaryError(f"waiting for the identity of silo {', '.join(missing)}", delay=WAIT_DELAY)
        ordered = [silos[name] for name in job.spec.silos]
        # This operator builds only its own silos; another partner's operator asks for their consent.
        own = [silo for silo in ordered if self.config.manages(workload_namespace(silo))]
        try:
            refused = [(s.metadata.name, p) for s in own if (p := self._consent(s)) is not None]
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        if refused:
            said = "; ".join(f"{name}: {problem.message}" for name, problem in refused)
            raise kopf.TemporaryError(f"no workloads while a namespace has not consented: {said}", delay=CONSENT_DELAY)
        self._require_job_consent(body, job, own)
        built = _Built(
            int(meta.get("generation") or 0),
            endpoint.ca_certificate,
            tuple(
                (s.metadata.name, s.spec.model_dump_json(), registered_key(s), workload_namespace(s)) for s in ordered
            ),
        )
        with self._lock:
            previous = self._built.get(meta["uid"])
        if previous == built:
            return
        try:
            manifest = job_manifest(job, ordered)
            inputs = [SiloInputs(body, job, silo, workload_namespace(silo), manifest, endpoint) for silo in own]
            # Each silo's objects are independent: build them side by side; list() raises the first failure.
            list(self._pool.map(self._build, inputs))
            if previous is None or previous.names != built.names:
                # Silos that left the job may live elsewhere: look in their namespaces too.
                former = named_silos(lookup, namespace, previous.names - built.names if previous else ())
                self._remove_workloads(meta, [*ordered, *former.values()], keep=built.names)
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        with self._lock:
            self._built[meta["uid"]] = built

    def _require_job_consent(self, body: Mapping[str, Any], job: FederatedJob, own: list[Silo]) -> None:
        """Return if each of this operator's silos consents to the job; otherwise start nothing and say why.

        Independent of the hub's own check: the partner's operator enforces its silos' consent
        whatever the hub decided, with a Warning Event on the job and the ``ConsentRefused``
        condition on each refusing Silo. Temporary: the Silo's owner may still consent.
        """
        job_key = f"{body['metadata']['namespace']}/{job.metadata.name}"
        refusals = {s.metadata.name: r.message for s in own if (r := consent_refusal(job, s)) is not None}
        for silo in own:
            self._note_consent(silo, job_key, refusals.get(silo.metadata.name))
        problem = job_consent_problem(job, [s for s in own if s.metadata.name in refusals], "silo")
        if problem is None:
            return
        kopf.warn(as_body(body), reason=problem.reason, message=problem.message)
        raise kopf.TemporaryError(problem.message, delay=CONSENT_DELAY)

    def _note_consent(self, silo: Silo, job_key: str, refusal: str | None) -> None:
        """Record whether ``silo`` refuses ``job_key`` (and why) and write its ConsentRefused condition if that changed."""
        key = (str(silo.metadata.namespace), silo.metadata.name)
        with self._lock:
            jobs = self._refused.setdefault(key, {})
            if jobs.get(job_key) == refusal:
                return
            if refusal is None:
                jobs.pop(job_key, None)
            else:
                jobs[job_key] = refusal
            messages = [jobs[k] for k in sorted(jobs)]
        generation = int((silo.metadata.model_extra or {}).get("generation") or 0)
        previous = (silo.status or {}).get("conditions") or []
        if messages:
            written = condition(
                ConditionType.CONSENT_REFUSED, True, CONSENT_MISSING, "; ".join(messages), generation, previous
            )
        else:
            written = condition(
                ConditionType.CONSENT_REFUSED,
                False,
                "AsExpected",
                "every job naming the silo has its consent",
                generation,
                previous,
            )
        try:
            self.api.apply(
                _status_patch(SILO.kind, {"name": key[1], "namespace": key[0]}, {"conditions": [written]}),
                subresource="status",
                field_manager=CONSENT_FIELD_MANAGER,
            )
        except CALL_ERRORS as error:
            log.warning("consent condition of Silo %s/%s not written: %s", key[0], key[1], error)

    def cleanup_job(self, body: Mapping[str, Any], silos: SiloLookup) -> None:
        """Delete the job's workloads in every managed namespace they may be in."""
        meta = body["metadata"]
        named = named_silos(silos, meta["namespace"], (body.get("spec") or {}).get("silos") or [])
        try:
            self._remove_workloads(meta, named.values(), keep=set())
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        with self._lock:
            self._built.pop(meta["uid"], None)
        # A deleted job no longer counts among the jobs a Silo refuses.
        job_key = f"{meta['namespace']}/{meta['name']}"
        for silo in named.values():
            if self.config.manages(workload_namespace(silo)):
                self._note_consent(silo, job_key, None)
        self._locks.forget(meta["uid"])

    def job_changed(
        self, body: Mapping[str, Any], entries: Mapping[str, Iterable[JobEntry]], silos: SiloLookup
    ) -> None:
        """A job event: build its workloads as soon as the endpoint appears, and refresh its silos' usage."""
        meta, status = body["metadata"], body.get("status") or {}
        if status.get("endpoint") and not meta.get("deletionTimestamp"):
            self._reconcile_quietly(body, silos)
        self.refresh_usage(meta["namespace"], entries, silos)

    def silo_changed(self, silo_body: Mapping[str, Any], jobs: Iterable[str], silos: SiloLookup) -> None:
        """A Silo event: if its key changed, rebuild the jobs naming it (every silo's manifest holds it)."""
        try:
            # The sidecars' manifests hold every peer's key (masked mode verifies them); a
            # suspension is the hub's business only.
            changed = "key" in self._standing.changed(parse_object(silo_body, Silo))
        except kopf.PermanentError:
            return
        if not changed:
            return
        namespace = silo_body["metadata"]["namespace"]
        for name in jobs:
            body = self.api.get(FEDERATED_JOB, namespace, name)
            if body is not None and (body.get("status") or {}).get("endpoint"):
                self._reconcile_quietly(body, silos)

    def restore_pods(self, body: Mapping[str, Any], silos: SiloLookup) -> None:
        """Rebuild this operator's pods of a running job that are gone (deleted, evicted).

        Only what this process built is checked: a job it has not built yet is the change
        handler's. A finished job's pods are not brought back.
        """
        meta, status = body["metadata"], body.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in FINISHED_PHASES:
            return
        with self._lock:
            built = self._built.get(meta["uid"])
        if built is None:
            return
        selector = {JOB_LABEL: meta["name"], JOB_NAMESPACE_LABEL: meta["namespace"]}
        try:
            missing = [
                name
                for name, _, _, workload in built.silos
                if self.config.manages(workload)
                and len(self.api.list(POD, workload, {**selector, SILO_LABEL: name})) < PODS_PER_SILO
            ]
        except CALL_ERRORS as error:
            log.warning("job %s/%s: cannot check its pods: %s", meta["namespace"], meta["name"], error)
            return
        if not missing:
            return
        normal_event(
            body,
            reason="PodsRebuilt",
            message=f"rebuilding the pods of silo {', '.join(missing)}, which were gone",
        )
        with self._lock:
            self._built.pop(meta["uid"], None)
        self._reconcile_quietly(body, silos)

    def _reconcile_quietly(self, body: Mapping[str, Any], silos: SiloLookup) -> None:
        """Reconcile from an event handler: waiting is normal there, the change handler retries."""
        try:
            self.reconcile_job(body, silos)
        except kopf.TemporaryError as waiting:
            log.info("job %s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], waiting)

    def refresh_usage(self, namespace: str, entries: Mapping[str, Iterable[JobEntry]], silos: SiloLookup) -> None:
        """Write the jobs and total epsilon of each silo this operator owns, from the index of jobs by silo, if they changed."""
        for silo, jobs in entries.items():
            body = silos(namespace, silo)
            if body is None or not self.owns(body):
                continue  # another partner's operator writes its own Silo's usage
            listed = sorted((dict(entry) for entry in jobs if not entry.get("deleting")), key=lambda e: str(e["name"]))
            usage = SiloStatus.model_validate(
                {
                    "jobs": [{k: v for k, v in entry.items() if k != "deleting" and v is not None} for entry in listed],
                    "epsilonSpent": float(sum(entry.get("epsilonSpent") or 0.0 for entry in listed)),
                }
            )
            fields: dict[str, Any] = usage.model_dump(by_alias=True, exclude_none=True, mode="json")
            with self._lock:
                if self._usage.get((namespace, silo)) == fields:
                    continue
            try:
                self.api.apply(
                    _status_patch(SILO.kind, {"name": silo, "namespace": namespace}, fields),
                    subresource="status",
                    field_manager=USAGE_FIELD_MANAGER,
                )
            except ApiError as error:
                if not error.not_found:
                    log.warning("usage of Silo %s/%s not updated: %s", namespace, silo, error)
                continue
            except CALL_ERRORS as error:
                log.warning("usage of Silo %s/%s not updated: %s", namespace, silo, error)
                continue
            with self._lock:
                self._usage[(namespace, silo)] = fields

    # -- pieces --------------------------------------------------------------------------

    def _build(self, inputs: SiloInputs) -> None:
        identity = (inputs.silo.status or {}).get("identity") or {}
        if not identity.get("publicKey") and not inputs.silo.spec.identity.public_key:
            raise kopf.TemporaryError(f"waiting for the identity of silo {inputs.silo_name}", delay=WAIT_DELAY)
        claim = ledger_claim(inputs)
        if claim is not None:
            # Created once, then left alone: it holds the silo's ledger across jobs.
            self.api.create(claim)
        applied = [self.api.apply(child) for child in silo_support_objects(inputs, self.config)]
        service = next(child for child in applied if child["kind"] == SERVICE.kind)
        for pod in silo_pods(inputs, service["spec"]["clusterIP"], self.config):
            self._ensure_pod(pod)

    def _ensure_pod(self, pod: Object) -> None:
        """Create the pod, or replace a live one built from something else (pods are immutable)."""
        meta = pod["metadata"]
        if self.api.create(pod) is not None:
            return
        live = self.api.get(POD, meta["namespace"], meta["name"])
        digest = ((live or {}).get("metadata", {}).get("annotations") or {}).get(SPEC_DIGEST_ANNOTATION)
        if digest == meta["annotations"][SPEC_DIGEST_ANNOTATION]:
            return
        if live is not None:
            self.api.delete(POD, meta["namespace"], meta["name"])
        if self.api.create(pod) is None:
            raise kopf.TemporaryError(f"waiting for the old pod {meta['name']} to terminate", delay=2)

    def _remove_workloads(self, job_meta: Mapping[str, Any], silos: Iterable[Silo], keep: set[str]) -> None:
        """Delete this job's workloads of silos not in ``keep``, in every workload namespace of the Silos beside it."""
        namespace = job_meta["namespace"]
        namespaces = {workload_namespace(silo) for silo in silos}
        selector = {JOB_LABEL: job_meta["name"], JOB_NAMESPACE_LABEL: namespace}
        for workload in sorted(n for n in namespaces if self.config.manages(n)):
            self._delete_workloads(workload, selector, keep)

    def _stop_pods(self, job_meta: Mapping[str, Any], silos: Iterable[Silo]) -> None:
        """Delete this ended job's pods that have not ended, in every managed workload namespace of its Silos."""
        selector = {JOB_LABEL: job_meta["name"], JOB_NAMESPACE_LABEL: job_meta["namespace"]}
        for workload in sorted({n for silo in silos if self.config.manages(n := workload_namespace(silo))}):
            for pod in self.api.list(POD, workload, selector):
                if (pod.get("status") or {}).get("phase") not in ENDED_POD_PHASES:
                    self.api.delete(POD, workload, pod["metadata"]["name"])

    def _delete_workloads(self, namespace: str, selector: Mapping[str, str], keep: set[str] | None = None) -> None:
        for kind in WORKLOAD_KINDS:
            for child in self.api.list(kind, namespace, selector):
                silo = (child["metadata"].get("labels") or {}).get(SILO_LABEL)
                if keep is None or silo not in keep:
                    self.api.delete(kind, namespace, child["metadata"]["name"])


def _status_patch(kind: str, meta: Mapping[str, Any], fields: Mapping[str, Any]) -> Object:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "status": dict(fields),
    }
