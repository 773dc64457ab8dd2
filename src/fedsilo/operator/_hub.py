"""The hub role: for each FederatedJob, the aggregator and its surroundings, and the job's status.

Called by the kopf handlers in :mod:`fedsilo.operator._handlers`. ``reconcile`` waits (a
``TemporaryError``) until every named Silo has a public key, creates the aggregator's
serving certificate once, applies the children :func:`hub_objects` builds, and writes the
operator's part of the status. ``refresh`` recomputes that part when something it depends
on changes (the aggregator Deployment became available, the aggregator reported a round
or the end) without re-applying children. ``cleanup`` deletes the children by name when
the job goes: adoption lets a garbage collector do it too, but fedsilo does not rely on one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from fedsilo.api import API_VERSION, AggregatorEndpoint, FederatedJob, Silo
from fedsilo.identity import SigningKey
from fedsilo.kube import (
    CONFIG_MAP,
    DEPLOYMENT,
    FEDERATED_JOB,
    NETWORK_POLICY,
    PERSISTENT_VOLUME_CLAIM,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    KubeApi,
)
from fedsilo.launch import AGGREGATOR_KEY
from fedsilo.policy import PolicyUnavailable

from ._admission import JobAdmission
from ._conditions import JobFacts, Problem, job_status, now
from ._config import OperatorConfig
from ._consent import job_consent_problem
from ._errors import CALL_ERRORS, problem_of, retry_decision
from ._hub_objects import (
    AGGREGATOR,
    HubInputs,
    PolicyFiles,
    aggregator_name,
    endpoint_address,
    hub_objects,
    job_config_name,
    policies_name,
    state_claim,
    state_claim_name,
    tls_secret_name,
)
from ._identity import aggregator_credentials, tls_secret
from ._locks import KeyedLocks
from ._manifest import (
    SeenStanding,
    SiloLookup,
    job_manifest,
    named_silos,
    parse_object,
    registered_cas,
    registered_key,
)
from ._metrics import forget_job, record_job_figures
from ._names import JOB_LABEL, adopt, as_body, labels, normal_event

log = logging.getLogger(__name__)

#: Seconds between retries while silos lack identities; a Silo's key appearing retriggers sooner.
WAIT_DELAY = 10.0
#: Seconds between checks of a job naming a silo that has not consented (its owner may still).
CONSENT_DELAY = 30.0
#: What the phase writer owns: recomputed on every event, from whatever body the event carried.
PHASE_FIELDS = ("observedGeneration", "phase", "conditions")
#: The endpoint and the admission record are decided once and written under a field manager of
#: their own. A server-side apply removes the fields its manager owned and left out, so when the
#: phase writer also owned them, a refresh from an event body older than the publication took
#: the endpoint away: silo operators then waited for an endpoint forever and rebuilt no pod.
PUBLICATION_FIELD_MANAGER = "fedsilo-operator-publication"


def aggregator_available(deployment: Mapping[str, Any]) -> bool:
    """Whether a Deployment reports an available replica."""
    return int((deployment.get("status") or {}).get("availableReplicas") or 0) >= 1


class HubReconciler:
    """Builds and maintains the hub side of every FederatedJob the operator watches."""

    def __init__(self, api: KubeApi, config: OperatorConfig, policies: PolicyFiles, admission: JobAdmission) -> None:
        self.api = api
        self.config = config
        self.policies = policies
        self.admission = admission
        # The generation whose children are in place, by job uid; refresh waits for it.
        self._applied: dict[str, int] = {}
        # Jobs whose aggregator was scaled to zero after the aggregator reported the end.
        self._ended: set[str] = set()
        self._standing = SeenStanding()
        self._locks = KeyedLocks()
        self._lock = threading.Lock()

    # -- change handlers -----------------------------------------------------------------

    def reconcile(self, body: Mapping[str, Any], available: bool, silos: SiloLookup) -> None:
        """Bring the job's hub children to what its spec asks; raise TemporaryError while waiting."""
        with self._locks.hold(body["metadata"]["uid"]):
            self._reconcile(self._latest(body), available, silos)

    def _latest(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The job as the API server has it now, while the handler's copy shows no endpoint.

        Reconciles of one job run one at a time, but each with the body of the event that
        started it: one queued behind the reconcile that published the endpoint would decide
        admission again (a new decidedAt, a second audit record) and carry forward a
        publication it never saw. After the publication, a stale body changes nothing.
        """
        if (body.get("status") or {}).get("endpoint"):
            return body
        meta = body["metadata"]
        try:
            current = self.api.get(FEDERATED_JOB, meta["namespace"], meta["name"])
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        if current is None or current["metadata"].get("uid") != meta["uid"]:
            return body
        return current

    def _reconcile(self, body: Mapping[str, Any], available: bool, lookup: SiloLookup) -> None:
        job: FederatedJob = parse_object(body, FederatedJob)
        meta, status = body["metadata"], body.get("status") or {}
        namespace = meta["namespace"]
        facts = _facts(body, job, available)
        admission = self._admit(body, job, facts)
        try:
            silos = named_silos(lookup, namespace, job.spec.silos)
            if not status.get("endpoint"):
                self._require_consent(body, job, silos.values(), facts)
            waiting = _waiting_for(job, silos, namespace)
            if waiting is not None:
                self._write_status(body, _with(facts, waiting=waiting))
                raise kopf.TemporaryError(waiting.message, delay=WAIT_DELAY)
            endpoint = self._ensure_certificate(body)
            ordered = [silos[name] for name in job.spec.silos]
            inputs = HubInputs(
                owner=body,
                job=job,
                manifest=job_manifest(job, ordered),
                silo_cas={silo.metadata.name: ca for silo in ordered if (ca := registered_cas(silo))},
                aggregator_ca=endpoint["caCertificate"],
                finished=status.get("result") is not None,
            )
            # Created once, never applied: a claim's spec cannot change, and the grant is create/delete.
            self.api.create(adopt([state_claim(job.metadata.name, namespace)], body)[0])
            for child in hub_objects(inputs, self.policies, self.config):
                self.api.apply(child)
            self._publish(body, endpoint, admission)
            self._write_status(body, facts)
        except CALL_ERRORS as error:
            self._report(body, _with(facts, problem=problem_of(error)))
            raise retry_decision(error) from error
        with self._lock:
            self._applied[meta["uid"]] = int(meta.get("generation") or 0)
            if inputs.finished:
                self._ended.add(meta["uid"])

    def cleanup(self, body: Mapping[str, Any]) -> None:
        """Delete the job's hub children (by name: the operator may not list Secrets)."""
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        aggregator = aggregator_name(name)
        children = (
            (DEPLOYMENT, aggregator),
            # The job's audit log and models go with it; the cloud side keeps a copy that outlives it.
            (PERSISTENT_VOLUME_CLAIM, state_claim_name(name)),
            (SERVICE, aggregator),
            (NETWORK_POLICY, aggregator),
            (ROLE_BINDING, aggregator),
            (ROLE, aggregator),
            (SERVICE_ACCOUNT, aggregator),
            (CONFIG_MAP, job_config_name(name)),
            (CONFIG_MAP, policies_name(name)),
            (SECRET, tls_secret_name(name)),
        )
        try:
            for kind, child in children:
                self.api.delete(kind, namespace, child)
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        forget_job(namespace, name, (body.get("spec") or {}).get("silos") or [])
        with self._lock:
            self._applied.pop(meta["uid"], None)
            self._ended.discard(meta["uid"])
        self._locks.forget(meta["uid"])

    # -- level-based refreshes -----------------------------------------------------------

    def refresh(self, body: Mapping[str, Any], available: bool, silos: SiloLookup) -> None:
        """Recompute the job's phase and conditions after an event; re-apply only when the job just ended."""
        meta, status = body["metadata"], body.get("status") or {}
        record_job_figures(meta["namespace"], meta["name"], status)
        with self._lock:
            current = self._applied.get(meta["uid"]) == int(meta.get("generation") or 0)
        if not current or meta.get("deletionTimestamp"):
            return  # the change handler has not built this generation yet, or the job is going
        with self._lock:
            scaled_down = meta["uid"] in self._ended
        if status.get("result") is not None and not scaled_down:
            try:
                self.reconcile(body, available, silos)  # scales the aggregator to zero
            except kopf.TemporaryError as waiting:
                log.info("job %s/%s will be scaled down on retry: %s", meta["namespace"], meta["name"], waiting)
            return
        job: FederatedJob = parse_object(body, FederatedJob)
        try:
            self._write_status(body, _facts(body, job, available))
        except CALL_ERRORS as error:
            log.warning("status of job %s/%s not refreshed: %s", meta["namespace"], meta["name"], error)

    def deployment_changed(self, deployment: Mapping[str, Any], silos: SiloLookup) -> None:
        """An aggregator Deployment changed: refresh its job's conditions."""
        meta = deployment["metadata"]
        job = (meta.get("labels") or {}).get(JOB_LABEL)
        if not job:
            return
        body = self.api.get(FEDERATED_JOB, meta["namespace"], job)
        if body is not None:
            self.refresh(body, aggregator_available(deployment), silos)

    def silo_changed(
        self, silo_body: Mapping[str, Any], jobs: list[str], available: Mapping[str, bool], silos: SiloLookup
    ) -> None:
        """A Silo changed: if its key, CAs or suspension did, re-render the jobs that name it (their ConfigMaps hold them).

        The aggregator is not restarted for any (its digest leaves the silos' standing and CAs
        out): it re-reads the mounted manifest at its next round boundary, and the silos' CA
        files within a second (``fedsilo.aggregator.SiloTrust``).
        """
        namespace = silo_body["metadata"]["namespace"]
        try:
            silo = parse_object(silo_body, Silo)
        except kopf.PermanentError:
            return  # the silo role reports an invalid Silo on the Silo itself
        changed = self._standing.changed(silo)
        if "suspension" in changed:
            _report_suspension(silo_body, silo, jobs)
        if not changed:
            return
        for job in jobs:
            body = self.api.get(FEDERATED_JOB, namespace, job)
            if body is None or body["metadata"].get("deletionTimestamp"):
                continue
            named = (body.get("spec") or {}).get("silos") or []
            keyed = named_silos(silos, namespace, named)
            if len(keyed) < len(named) or any(registered_key(silo) is None for silo in keyed.values()):
                continue  # the last of its silos to get a key will rebuild it; one rebuild, not one per silo
            try:
                self.reconcile(body, available.get(job, False), silos)
            except kopf.TemporaryError as waiting:
                log.info("job %s/%s still waiting: %s", namespace, job, waiting)

    # -- pieces --------------------------------------------------------------------------

    def _admit(self, body: Mapping[str, Any], job: FederatedJob, facts: JobFacts) -> dict[str, Any] | None:
        """Return if the job policy admits the job; otherwise report why and stop (nothing is created yet).

        Decided once: a job whose endpoint is published was admitted and its silos may be
        training, so new installation parameters apply to new jobs, not to running ones.
        """
        if (body.get("status") or {}).get("endpoint"):
            return None
        try:
            decision, record = self.admission.decide(job, now())
        except PolicyUnavailable as error:
            problem = Problem("AdmissionUnavailable", f"the job policy could not decide ({error}); nothing is created")
            self._report(body, _with(facts, problem=problem))
            raise kopf.TemporaryError(problem.message, delay=WAIT_DELAY) from error
        admission = record.model_dump(mode="json", by_alias=True)
        if decision.allow:
            return admission
        try:
            self._publish(body, None, admission)
            self._write_status(body, _with(facts, denied=decision.reasons))
        except CALL_ERRORS as error:
            raise retry_decision(error) from error
        message = f"refused by the job policy ({decision.policy_revision}): {'; '.join(decision.reasons)}"
        kopf.warn(as_body(body), reason="Denied", message=message)
        # Permanent: the fields the policy reads are immutable, so only a new job can pass.
        raise kopf.PermanentError(message)

    def _require_consent(
        self, body: Mapping[str, Any], job: FederatedJob, silos: Iterable[Silo], facts: JobFacts
    ) -> None:
        """Return if every named silo consents to the job; otherwise say which does not and why, and wait.

        Checked until the job is admitted (its endpoint published): a silo's owner may still
        consent, so the refusal is temporary. Withdrawing consent later is the silo side's to
        enforce: its operator stops starting pods for the job.
        """
        problem = job_consent_problem(job, silos, "hub")
        if problem is None:
            return
        self._write_status(body, _with(facts, problem=problem))
        kopf.warn(as_body(body), reason=problem.reason, message=problem.message)
        raise kopf.TemporaryError(problem.message, delay=CONSENT_DELAY)

    def _ensure_certificate(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The endpoint to publish; creates the serving certificate the first time.

        The operator cannot read the Secret back, so the CA certificate it publishes comes
        from the job's status (read afresh: the handler's copy may predate the last write).
        If the Secret exists but the status never got its CA (the operator stopped in
        between), no silo can have used it yet: replace it.
        """
        meta, status = body["metadata"], body.get("status") or {}
        name, namespace = meta["name"], meta["namespace"]
        service = aggregator_name(name)
        credentials = aggregator_credentials(service, namespace, self.config.cluster_domain)
        # The hub's model-signing key is made here too, so that its public half is published
        # (and given to every sidecar) before the aggregator signs its first model.
        model_key = SigningKey.generate()
        secret = tls_secret(
            tls_secret_name(name), namespace, credentials, labels(AGGREGATOR, name), (AGGREGATOR_KEY, model_key)
        )
        adopt([secret], body)
        if self.api.create(secret) is None:
            current = status.get("endpoint") or _published_endpoint(self.api.get(FEDERATED_JOB, namespace, name))
            if current:
                return dict(current)
            self.api.delete(SECRET, namespace, tls_secret_name(name))
            if self.api.create(secret) is None:
                raise kopf.TemporaryError("waiting for the unpublished serving certificate to go", delay=1)
        normal_event(body, reason="CertificateCreated", message=f"serving certificate for {service} created")
        endpoint = AggregatorEndpoint(
            address=endpoint_address(name, namespace, self.config),
            ca_certificate=credentials.ca_certificate_pem.decode(),
            model_key=model_key.public_key.to_base64(),
        )
        return endpoint.model_dump(by_alias=True, exclude_none=True)

    def _write_status(self, body: Mapping[str, Any], facts: JobFacts) -> None:
        """Apply the phase and conditions, unless they already hold these values."""
        meta, status = body["metadata"], body.get("status") or {}
        fields: dict[str, Any] = job_status(facts, status.get("conditions") or [])
        if all(status.get(key) == fields.get(key) for key in PHASE_FIELDS):
            return
        self.api.apply(_status_object(meta, fields), subresource="status")

    def _publish(
        self, body: Mapping[str, Any], endpoint: Mapping[str, str] | None, admission: Mapping[str, Any] | None
    ) -> None:
        """Apply the endpoint and the admission record under their own field manager.

        Applied on every reconcile, even when unchanged, so that the publication manager owns
        them on jobs whose earlier operator wrote them with the phase (an upgrade): the phase
        writer's next apply then leaves them in place.
        """
        status = body.get("status") or {}
        # Carried forward: a field this manager leaves out of an apply is removed.
        published = {"endpoint": endpoint or status.get("endpoint"), "admission": admission or status.get("admission")}
        fields = {key: dict(value) for key, value in published.items() if value}
        if fields:
            self.api.apply(
                _status_object(body["metadata"], fields), subresource="status", field_manager=PUBLICATION_FIELD_MANAGER
            )

    def _report(self, body: Mapping[str, Any], facts: JobFacts) -> None:
        """Best effort: a problem that stops the reconcile is shown on the job if the API server allows it."""
        try:
            self._write_status(body, facts)
        except CALL_ERRORS as error:
            log.warning("could not report a problem on %s: %s", body["metadata"]["name"], error)


def _report_suspension(silo_body: Mapping[str, Any], silo: Silo, jobs: list[str]) -> None:
    """An Event on the Silo: suspended (with the reason) or readmitted, from the next round of its jobs."""
    where = f"the next round boundary of {', '.join(jobs)}" if jobs else "the next round of any job naming it"
    suspended = silo.spec.suspended
    if suspended is not None:
        message = f"updates are denied (silo_suspended) from {where}: {suspended.reason}"
        kopf.warn(as_body(silo_body), reason="Suspended", message=message)
    else:
        normal_event(silo_body, reason="Readmitted", message=f"updates count again from {where}")


def _facts(body: Mapping[str, Any], job: FederatedJob, available: bool) -> JobFacts:
    status = body.get("status") or {}
    return JobFacts(
        generation=int(body["metadata"].get("generation") or 0),
        rounds=job.spec.rounds,
        aggregator_available=available,
        result=status.get("result"),
        round=status.get("round"),
        message=status.get("message"),
        statistics_phase=job.spec.data.preprocessing is not None and job.spec.data.preprocessing.federated,
        statistics=status.get("statistics"),
    )


def _with(
    facts: JobFacts,
    *,
    waiting: Problem | None = None,
    problem: Problem | None = None,
    denied: tuple[str, ...] | None = None,
) -> JobFacts:
    return JobFacts(
        generation=facts.generation,
        rounds=facts.rounds,
        problem=problem,
        waiting=waiting,
        aggregator_available=facts.aggregator_available,
        result=facts.result,
        round=facts.round,
        message=facts.message,
        denied=denied,
        statistics_phase=facts.statistics_phase,
        statistics=facts.statistics,
    )


def _waiting_for(job: FederatedJob, silos: Mapping[str, Silo], namespace: str) -> Problem | None:
    absent = [name for name in job.spec.silos if name not in silos]
    unkeyed = [name for name in job.spec.silos if name in silos and registered_key(silos[name]) is None]
    # The aggregator binds each silo to its own CA and refuses to start without one.
    no_ca = [
        name for name in job.spec.silos if name in silos and name not in unkeyed and not registered_cas(silos[name])
    ]
    parts = []
    if absent:
        parts.append(f"no Silo named {', '.join(absent)} in namespace {namespace}")
    if unkeyed:
        parts.append(
            f"Silo {', '.join(unkeyed)} has no identity yet (the silo operator that manages its workload "
            "namespace creates one, or register spec.identity.publicKey)"
        )
    if no_ca:
        parts.append(
            f"Silo {', '.join(no_ca)} has no CA certificate in status.identity yet (the silo role publishes "
            "the one in its identity's public ConfigMap)"
        )
    return Problem("WaitingForSilos", "; ".join(parts)) if parts else None


def _status_object(meta: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": FEDERATED_JOB.kind,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "status": dict(fields),
    }


def _published_endpoint(job: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    endpoint: Mapping[str, str] | None = ((job or {}).get("status") or {}).get("endpoint")
    return endpoint
