"""The kopf handlers of both roles, registered into a registry of their own: thin, each one call.

:func:`build_registry` is what :func:`fedsilo.operator.run_operator` runs and what the
tests hand to ``kopf.testing.KopfRunner``. Handlers only translate kopf's arguments for a
reconciler and count the outcome; all decisions are in the reconcilers and builders.

Change handlers (create, update, resume, delete) carry kopf's retries and finalizers.
Event handlers react at once to what change handlers do not see: a status field the
aggregator or the hub wrote, a Deployment becoming available, a Silo's key appearing.
Every path is idempotent, so a change and an event handling the same object agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import kopf

from fedsilo.kube import DEPLOYMENT, FEDERATED_JOB, SILO, ClusterAccess, Kind, KubeApi
from fedsilo.policy import EmbeddedRegoEngine, default_bundle_path

from ._admission import JobAdmission, admission_bundle, with_parameters
from ._certificates import CHECK_SECONDS as CERTIFICATE_CHECK_SECONDS
from ._config import OperatorConfig, OperatorRole
from ._errors import backed_off
from ._hub import HubReconciler, aggregator_available
from ._hub_objects import AGGREGATOR, load_policy_files
from ._manifest import SiloLookup
from ._metrics import measured
from ._names import COMPONENT_LABEL, JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from ._silo import SiloReconciler

#: The field manager of everything the operator applies.
FIELD_MANAGER = "fedsilo-operator"
AGGREGATOR_LABELS = {COMPONENT_LABEL: AGGREGATOR, MANAGED_BY_LABEL: MANAGED_BY}
#: Index names; kopf passes each index to every handler as a keyword argument of that name.
JOBS_BY_SILO = "jobs_by_silo"
AGGREGATORS = "aggregators"
SILOS_BY_NAME = "silos_by_name"
#: How often a running job's silo pods are checked for being there: no controller owns a bare
#: pod, so a deleted or evicted one comes back only through this check.
POD_CHECK_SECONDS = 15.0


def _resource(kind: Kind) -> tuple[str, str, str]:
    group, _, version = kind.api_version.rpartition("/")
    return group, version, kind.plural


JOBS = _resource(FEDERATED_JOB)
SILOS = _resource(SILO)
DEPLOYMENTS = _resource(DEPLOYMENT)


Handler = TypeVar("Handler", bound=Callable[..., None])


def _on_change(
    resource: tuple[str, str, str], handler_id: str, registry: kopf.OperatorRegistry, **options: Any
) -> Callable[[Handler], Handler]:
    """Register one reconcile function for create, update and resume.

    Resume gets an id of its own: kopf keeps a handler's progress by id, and when an edit
    arrives while a resume is still being handled it re-purposes the resume's finished
    handlers for the update. With one shared id the edit counted as already handled, and
    a spec changed during an operator restart never reached the job's children.
    """

    def register(fn: Handler) -> Handler:
        kopf.on.resume(*resource, id=f"{handler_id}-resume", registry=registry, **options)(fn)
        kopf.on.create(*resource, id=handler_id, registry=registry, **options)(fn)
        kopf.on.update(*resource, id=handler_id, registry=registry, **options)(fn)
        return fn

    return register


def connection_info(access: ClusterAccess) -> kopf.ConnectionInfo:
    """Kopf's credentials, from the same access the operator's own client uses."""
    header = access.authorization()
    scheme, _, token = header.partition(" ") if header else ("", "", "")
    return kopf.ConnectionInfo(
        server=access.server,
        ca_path=access.ca_file,
        insecure=not access.verify,
        scheme=scheme or None,
        token=token or None,
        certificate_path=access.cert_file,
        private_key_path=access.key_file,
    )


@contextmanager
def _handling(resource: str, handler: str, retry: int) -> Iterator[None]:
    """Count the reconcile, and back off a little more on each retry of the same change."""
    with measured(resource, handler):
        try:
            yield
        except kopf.TemporaryError as waiting:
            raise backed_off(waiting, retry) from waiting


def _where(body: kopf.Body) -> tuple[str, str]:
    return str(body.metadata.namespace), str(body.metadata.name)


def _index(kwargs: Mapping[str, Any], name: str) -> kopf.Index[Any, Any]:
    """An index kopf passes by its name (indexes are keyword arguments handlers cannot declare)."""
    index: kopf.Index[Any, Any] = kwargs[name]
    return index


def _jobs_of(kwargs: Mapping[str, Any], namespace: str, silo: str) -> list[str]:
    return [entry["name"] for entry in _index(kwargs, JOBS_BY_SILO).get((namespace, silo), [])]


def _entries(kwargs: Mapping[str, Any], body: kopf.Body) -> dict[str, list[Mapping[str, Any]]]:
    namespace, silos = str(body.metadata.namespace), body.spec.get("silos") or []
    index = _index(kwargs, JOBS_BY_SILO)
    return {silo: list(index.get((namespace, silo), [])) for silo in silos}


def _silos(kwargs: Mapping[str, Any]) -> SiloLookup:
    """Silos from the operator's index: current as the watch stream, no API call per reconcile."""
    index = _index(kwargs, SILOS_BY_NAME)

    def lookup(namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter(index.get((namespace, name), [])), None)

    return lookup


def _available(kwargs: Mapping[str, Any], namespace: str, job: str) -> bool:
    return any(_index(kwargs, AGGREGATORS).get((namespace, job), []))


def build_registry(role: OperatorRole, config: OperatorConfig, access: ClusterAccess) -> kopf.OperatorRegistry:
    """A registry with the login, the indexes, and the handlers of ``role``."""
    registry = kopf.OperatorRegistry()
    api = KubeApi(access, FIELD_MANAGER)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(access)

    @kopf.index(*JOBS, id=JOBS_BY_SILO, registry=registry)
    def jobs_by_silo(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        namespace, name = _where(body)
        epsilon = body.status.get("epsilon") or {}
        return {
            (namespace, silo): {
                "name": name,
                "phase": body.status.get("phase"),
                "epsilonSpent": epsilon.get(silo),
                # The job's signed evidence heads, kept on the Silo too: one more copy outside the hub's files.
                "evidence": body.status.get("evidence") or None,
                "deleting": body.metadata.deletion_timestamp is not None,
            }
            for silo in body.spec.get("silos") or []
        }

    @kopf.index(*SILOS, id=SILOS_BY_NAME, registry=registry)
    def silos_by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], kopf.Body]:
        return {_where(body): body}

    if role.runs_hub:
        parameters = config.policy_parameters
        policies = with_parameters(load_policy_files(default_bundle_path()), parameters)
        admission = JobAdmission(EmbeddedRegoEngine(admission_bundle(parameters)))
        _register_hub(registry, HubReconciler(api, config, policies, admission))
    if role.runs_silo:
        _register_silo(registry, SiloReconciler(api, config))
    return registry


def _register_hub(registry: kopf.OperatorRegistry, hub: HubReconciler) -> None:
    @kopf.index(*DEPLOYMENTS, labels=AGGREGATOR_LABELS, id=AGGREGATORS, registry=registry)
    def aggregators(body: kopf.Body, **_: Any) -> dict[tuple[str, str], bool]:
        return {(str(body.metadata.namespace), body.metadata.labels.get(JOB_LABEL, "")): aggregator_available(body)}

    @_on_change(JOBS, "hub", registry)
    def reconcile_job(body: kopf.Body, retry: int, **kwargs: Any) -> None:
        with _handling("federatedjob", "hub", retry):
            hub.reconcile(body, _available(kwargs, *_where(body)), _silos(kwargs))

    @kopf.on.delete(*JOBS, id="hub-cleanup", registry=registry)
    def cleanup_job(body: kopf.Body, retry: int, **_: Any) -> None:
        with _handling("federatedjob", "hub-cleanup", retry):
            hub.cleanup(body)

    @kopf.on.event(*JOBS, id="hub-status", registry=registry)
    def job_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        if event["type"] != "DELETED":
            hub.refresh(body, _available(kwargs, *_where(body)), _silos(kwargs))

    @kopf.on.event(*DEPLOYMENTS, labels=AGGREGATOR_LABELS, id="hub-aggregator", registry=registry)
    def deployment_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        if event["type"] != "DELETED":
            hub.deployment_changed(body, _silos(kwargs))

    @kopf.on.event(*SILOS, id="hub-silo-keys", registry=registry)
    def silo_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        if event["type"] != "DELETED":
            namespace, name = _where(body)
            jobs = _jobs_of(kwargs, namespace, name)
            available = {job: _available(kwargs, namespace, job) for job in jobs}
            hub.silo_changed(body, jobs, available, _silos(kwargs))


def _register_silo(registry: kopf.OperatorRegistry, silo: SiloReconciler) -> None:
    def owned(body: kopf.Body, **_: Any) -> bool:
        # Another partner's Silo in a shared job namespace: kopf stays blind to it (no handler,
        # no progress annotation, no finalizer), and so does every handler here.
        return silo.owns(body)

    @_on_change(SILOS, "silo-identity", registry, when=owned)
    def reconcile_silo(body: kopf.Body, retry: int, **_: Any) -> None:
        with _handling("silo", "silo-identity", retry):
            silo.reconcile_silo(body)

    @kopf.on.delete(*SILOS, id="silo-identity-cleanup", when=owned, registry=registry)
    def cleanup_silo(body: kopf.Body, retry: int, **_: Any) -> None:
        with _handling("silo", "silo-identity-cleanup", retry):
            silo.cleanup_silo(body)

    def renewing(body: kopf.Body, **_: Any) -> bool:
        return silo.owns(body) and bool(((body.get("spec") or {}).get("identity") or {}).get("certificateLifetime"))

    @kopf.timer(*SILOS, id="silo-certificate", interval=CERTIFICATE_CHECK_SECONDS, when=renewing, registry=registry)
    def renew_certificate(body: kopf.Body, **_: Any) -> None:
        silo.renew_certificate(body)

    @_on_change(JOBS, "silo-workloads", registry)
    def reconcile_job(body: kopf.Body, retry: int, **kwargs: Any) -> None:
        with _handling("federatedjob", "silo-workloads", retry):
            silo.reconcile_job(body, _silos(kwargs))

    @kopf.on.delete(*JOBS, id="silo-workloads-cleanup", registry=registry)
    def cleanup_job(body: kopf.Body, retry: int, **kwargs: Any) -> None:
        with _handling("federatedjob", "silo-workloads-cleanup", retry):
            silo.cleanup_job(body, _silos(kwargs))
            silo.refresh_usage(str(body.metadata.namespace), _entries(kwargs, body), _silos(kwargs))

    @kopf.timer(*JOBS, id="silo-pods", interval=POD_CHECK_SECONDS, registry=registry)
    def restore_pods(body: kopf.Body, **kwargs: Any) -> None:
        silo.restore_pods(body, _silos(kwargs))

    @kopf.on.event(*JOBS, id="silo-events", registry=registry)
    def job_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        if event["type"] != "DELETED":
            silo.job_changed(body, _entries(kwargs, body), _silos(kwargs))

    @kopf.on.event(*SILOS, id="silo-keys", registry=registry)
    def silo_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        if event["type"] != "DELETED":
            silo.silo_changed(body, _jobs_of(kwargs, *_where(body)), _silos(kwargs))
