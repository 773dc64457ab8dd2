"""A small typed JSON client for the few Kubernetes calls fedsilo makes: get, list, create, apply, delete.

Used by the operator (whose kopf handlers run in worker threads, so calls are synchronous
and the client is thread-safe) and by the aggregator's status reporter. Objects are plain
mappings, as kopf hands them over and as the pure builders return them; writes use
server-side apply under one field manager, so applying the same object twice changes
nothing and two writers of one object own disjoint fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from ._access import ClusterAccess

Object = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """A namespaced resource type: how objects name it and where its REST collection is."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, an object, or an object's subresource."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{prefix}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE = Kind("v1", "Service", "services")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
POD = Kind("v1", "Pod", "pods")
PERSISTENT_VOLUME_CLAIM = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
EVENT = Kind("v1", "Event", "events")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
FEDERATED_JOB = Kind("fedsilo.io/v1alpha1", "FederatedJob", "federatedjobs")
SILO = Kind("fedsilo.io/v1alpha1", "Silo", "silos")

KINDS: tuple[Kind, ...] = (
    CONFIG_MAP,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    POD,
    PERSISTENT_VOLUME_CLAIM,
    EVENT,
    DEPLOYMENT,
    NETWORK_POLICY,
    ROLE,
    ROLE_BINDING,
    FEDERATED_JOB,
    SILO,
)
_BY_TYPE = {(kind.api_version, kind.kind): kind for kind in KINDS}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    """The :class:`Kind` of an object, from its ``apiVersion`` and ``kind``."""
    try:
        return _BY_TYPE[(obj["apiVersion"], obj["kind"])]
    except KeyError:
        raise ValueError(f"fedsilo does not manage {obj.get('apiVersion')}/{obj.get('kind')} objects") from None


class ApiError(Exception):
    """The API server refused a request; ``status`` is the HTTP code, ``reason`` the Status reason."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        """The object (or its namespace) does not exist."""
        return self.status == 404

    @property
    def forbidden(self) -> bool:
        """RBAC or an admission policy said no."""
        return self.status == 403

    @property
    def already_exists(self) -> bool:
        """A create found the name taken."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def invalid(self) -> bool:
        """The object failed validation (schema, CEL, immutable field)."""
        return self.status == 422


class KubeApi:
    """Synchronous, thread-safe calls on namespaced objects as one identity and one field manager."""

    def __init__(
        self, access: ClusterAccess, field_manager: str, *, timeout: float = 30.0, pool_size: int = 16
    ) -> None:
        self.access = access
        self.field_manager = field_manager
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            block=False,
            cert_reqs="CERT_REQUIRED" if access.verify else "CERT_NONE",
            ca_certs=access.ca_file,
            cert_file=access.cert_file,
            key_file=access.key_file,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            retries=False,
        )

    def get(self, kind: Kind, namespace: str, name: str) -> Object | None:
        """The object, or None if it does not exist."""
        try:
            return self._call("GET", kind.path(namespace, name))
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def namespace(self, name: str) -> Object | None:
        """The Namespace object called ``name``, or None if it does not exist."""
        try:
            return self._call("GET", f"/api/v1/namespaces/{quote(name)}")
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def list(self, kind: Kind, namespace: str, selector: Mapping[str, str]) -> list[Object]:
        """Objects in ``namespace`` whose labels include ``selector``."""
        query = {"labelSelector": ",".join(f"{key}={value}" for key, value in sorted(selector.items()))}
        items: list[Object] = self._call("GET", kind.path(namespace), query)["items"]
        return items

    def create(self, obj: Mapping[str, Any]) -> Object | None:
        """Create ``obj``; None if an object of that name already exists (which is then left alone)."""
        kind, namespace = kind_of(obj), obj["metadata"]["namespace"]
        try:
            return self._call("POST", kind.path(namespace), {"fieldManager": self.field_manager}, obj)
        except ApiError as error:
            if error.already_exists:
                return None
            raise

    def apply(
        self, obj: Mapping[str, Any], *, subresource: str | None = None, field_manager: str | None = None
    ) -> Object:
        """Server-side apply ``obj`` (or its ``status``); fields this manager stops setting are removed.

        ``field_manager`` overrides the client's for writers of disjoint parts of one object.
        """
        kind, meta = kind_of(obj), obj["metadata"]
        path = kind.path(meta["namespace"], meta["name"], subresource)
        query = {"fieldManager": field_manager or self.field_manager, "force": "true"}
        return self._call("PATCH", path, query, obj, content_type="application/apply-patch+yaml")

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete an object (dependents in the background); False if it was already gone."""
        try:
            self._call("DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"})
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
    ) -> Object:
        url = self.access.server + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        authorization = self.access.authorization()
        if authorization:
            headers["Authorization"] = authorization
        payload = json.dumps(body).encode() if body is not None else None
        response = self._pool.request(method, url, body=payload, headers=headers)
        data = response.data
        decoded: Object = json.loads(data) if data else {}
        if response.status >= 400:
            raise ApiError(
                response.status,
                str(decoded.get("reason", response.reason or "")),
                str(decoded.get("message", data[:500].decode(errors="replace"))),
                method,
                path,
            )
        return decoded
