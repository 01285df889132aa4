"""The object store behind the local Kubernetes API: kinds, objects, resourceVersions, events.

``harness.kubeapi.server`` is the HTTP face; this module holds the REST semantics it serves, so that
they can be read (and tested) without HTTP: a table of kinds (one line adds one), defaults and
validation for the fields ingress controllers rely on, the three patch formats, label and field
selectors, paginated and versioned lists, conflicts, finalizers, and the event history that
watches stream from.

Semantics follow the real API server where a client can tell the difference (status codes,
reasons, messages, what a list or watch returns for a given ``resourceVersion``), because the
same client code must work unchanged against a cluster. Deletion collects dependents by
ownerReferences (``propagationPolicy``) and deletes scheduled pods gracefully; the workload
controllers live in ``harness.kubeapi.controllers``. What is deliberately left out: server side
apply, admission beyond defaults, field management, protobuf, scheduling, and an endpoints
controller (EndpointSlices are written by their user).

Everything is guarded by one lock (a Condition, which also wakes watches). Stored objects are
never mutated once stored; every write stores a fresh copy, so watch frames can be serialised
outside the lock.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import json
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

import jsonpatch

from harness.kubeapi.openapi import PRIMITIVE_SET, RETAIN_KEYS, check_fields

Obj = dict[str, Any]
_T = TypeVar("_T")

# --------------------------------------------------------------------------------------------
# Errors: every refusal is a Kubernetes Status with the real server's code, reason and wording.


class StatusError(Exception):
    """A request the API server refuses; carries the ``Status`` object to send back."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        """The ``Status`` body, as the real server sends it."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def not_found_path() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed() -> StatusError:
    return StatusError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


@dataclass(frozen=True)
class Cause:
    """One field error of a 422 Invalid, worded like apimachinery's field.Error."""

    field: str
    reason: str
    message: str

    @staticmethod
    def required(path: str, detail: str = "") -> Cause:
        msg = "Required value" + (f": {detail}" if detail else "")
        return Cause(path, "FieldValueRequired", msg)

    @staticmethod
    def invalid(path: str, value: Any, detail: str) -> Cause:
        return Cause(path, "FieldValueInvalid", f"Invalid value: {_go_repr(value)}: {detail}")

    @staticmethod
    def not_supported(path: str, value: Any, supported: Sequence[str]) -> Cause:
        allowed = ", ".join(json.dumps(s) for s in supported)
        return Cause(
            path,
            "FieldValueNotSupported",
            f"Unsupported value: {_go_repr(value)}: supported values: {allowed}",
        )

    @staticmethod
    def forbidden(path: str, detail: str) -> Cause:
        return Cause(path, "FieldValueForbidden", f"Forbidden: {detail}")

    @staticmethod
    def duplicate(path: str, value: Any) -> Cause:
        return Cause(path, "FieldValueDuplicate", f"Duplicate value: {_go_repr(value)}")


def _go_repr(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return json.dumps(value)
    return "{...}" if isinstance(value, dict) else "[...]"


def invalid_error(
    qualified_kind: str, group: str, kind: str, name: str, causes: Sequence[Cause]
) -> StatusError:
    """A 422 Invalid naming every field error, worded like the real server."""
    errs = [f"{c.field}: {c.message}" for c in causes]
    summary = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return StatusError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )


# --------------------------------------------------------------------------------------------
# The table of kinds.

# Strategic-merge keys every kind has (from ObjectMeta's patch tags).
_META_MERGE_KEYS: Final[Mapping[str, str]] = {
    "metadata.ownerReferences": "uid",
    "metadata.finalizers": PRIMITIVE_SET,
}

Validator = Callable[[Obj], list[Cause]]
UpdateValidator = Callable[[Obj, Obj], list[Cause]]
Defaulter = Callable[[Obj, "Obj | None", "ObjectStore"], None]


@dataclass(frozen=True, eq=False)
class Kind:
    """One resource the server serves. ``eq=False``: kinds are singletons, hashed by identity."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    custom: bool = False
    """Served like a CustomResourceDefinition: no strategic merge patch, updates must carry a
    resourceVersion, ``spec`` is required, list items keep kind/apiVersion."""
    generation: bool = False
    status_subresource: bool = False
    returns_deleted: bool = False
    """DELETE answers with the object (services, namespaces) instead of a Status."""
    merge_keys: Mapping[str, str] = field(default_factory=dict)
    validate: Validator | None = None
    default: Defaulter | None = None
    name_rule: str = "subdomain"
    field_selectors: tuple[str, ...] = ()
    deletecollection: bool = True
    validate_update: UpdateValidator | None = None
    """Checks of an update against the stored object (immutable fields)."""
    scale_subresource: bool = False
    create_only: bool = False
    """A review (SelfSubjectAccessReview): only POST, answered and never stored."""
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified_resource(self) -> str:
        """``services`` or ``ingresses.networking.k8s.io``: how messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_generation(self) -> bool:
        return self.generation or self.custom

    @property
    def unconditional_update(self) -> bool:
        return not self.custom

    def all_merge_keys(self) -> Mapping[str, str]:
        return {**_META_MERGE_KEYS, **self.merge_keys}

    def verbs(self) -> list[str]:
        if self.create_only:
            return ["create"]
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        if self.deletecollection:
            verbs.insert(2, "deletecollection")
        return verbs

    def not_found(self, name: str) -> StatusError:
        return StatusError(
            404,
            "NotFound",
            f'{self.qualified_resource} "{name}" not found',
            {"name": name, "group": self.group, "kind": self.plural},
        )

    def conflict(self, name: str, why: str) -> StatusError:
        return StatusError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {self.qualified_resource} "{name}": {why}',
            {"name": name, "group": self.group, "kind": self.plural},
        )

    def invalid(self, name: str, causes: Sequence[Cause]) -> StatusError:
        return invalid_error(self.qualified_kind, self.group, self.kind, name, causes)


_MODIFIED_MSG: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

# --------------------------------------------------------------------------------------------
# Names, labels, small validators.

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

_NAME_RULES: Final[Mapping[str, tuple[re.Pattern[str], int, str]]] = {
    "subdomain": (
        _DNS1123_SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ),
    "label": (
        _DNS1123_LABEL,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
        "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
        "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ),
    "dns1035": (
        _DNS1035_LABEL,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    ),
}


def _qualified_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key, or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (at most 63 characters)"
        )
    return None


def _label_value_error(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character "
            "(at most 63 characters)"
        )
    return None


def _validate_meta(kind: Kind, obj: Obj) -> list[Cause]:
    meta = obj["metadata"]
    causes: list[Cause] = []
    name = meta.get("name", "")
    if not name:
        causes.append(Cause.required("metadata.name", "name or generateName is required"))
    else:
        pattern, max_len, detail = _NAME_RULES[kind.name_rule]
        if len(name) > max_len:
            causes.append(
                Cause.invalid("metadata.name", name, f"must be no more than {max_len} characters")
            )
        elif not pattern.match(name):
            causes.append(Cause.invalid("metadata.name", name, detail))
    for key, value in (meta.get("labels") or {}).items():
        why = _qualified_key_error(key)
        if why:
            causes.append(Cause.invalid("metadata.labels", key, why))
        why = _label_value_error(value)
        if why:
            causes.append(Cause.invalid("metadata.labels", value, why))
    for key in meta.get("annotations") or {}:
        why = _qualified_key_error(key.lower())
        if why:
            causes.append(Cause.invalid("metadata.annotations", key, why))
    if kind.custom and not isinstance(obj.get("spec"), dict):
        causes.append(Cause.required("spec"))
    return causes


def _port_error(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return "must be between 1 and 65535, inclusive"
    return None


_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")


# --------------------------------------------------------------------------------------------
# Defaults and validation per kind (the fields clients and ingress controllers rely on).


def _default_namespace(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    meta = obj["metadata"]
    # Since 1.21 the server labels every namespace with its own name.
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_service(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    spec.setdefault("type", "ClusterIP")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    # Allocated values survive an update that omits them, as on the real server.
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if not spec.get("clusterIP"):
        spec["clusterIP"] = store.allocate_cluster_ip()
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        old_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
        spec.setdefault("externalTrafficPolicy", "Cluster")
        name = obj["metadata"].get("name", "")
        taken = store.node_ports_in_use(except_service=(obj["metadata"].get("namespace"), name))
        for i, port in enumerate(spec.get("ports") or []):
            if not isinstance(port, dict):
                continue
            if not port.get("nodePort"):
                port["nodePort"] = old_ports.get(port.get("port")) or store.allocate_node_port(
                    taken
                )
            elif port["nodePort"] in taken:
                raise invalid_error("Service", "", "Service", name, [Cause.invalid(
                    f"spec.ports[{i}].nodePort", port["nodePort"],
                    "provided port is already allocated")])  # fmt: skip
            taken.add(port["nodePort"])
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _validate_service(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    svc_type = spec.get("type", "ClusterIP")
    types = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
    if svc_type not in types:
        causes.append(Cause.not_supported("spec.type", svc_type, types))
    if svc_type == "ExternalName":
        if not spec.get("externalName"):
            causes.append(Cause.required("spec.externalName"))
        return causes
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None":
        causes.append(Cause.required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            causes.append(Cause.invalid(path, port, "must be an object"))
            continue
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            causes.append(Cause.required(f"{path}.name"))
        elif name in names:
            causes.append(Cause.duplicate(f"{path}.name", name))
        names.add(name)
        why = _port_error(port.get("port", 0))
        if why:
            causes.append(Cause.invalid(f"{path}.port", port.get("port", 0), why))
        node_port = port.get("nodePort")
        if node_port and svc_type in ("NodePort", "LoadBalancer"):
            low, high = NODE_PORT_RANGE
            if not isinstance(node_port, int) or not low <= node_port <= high:
                causes.append(Cause.invalid(
                    f"{path}.nodePort", node_port,
                    f"provided port is not in the valid range. The range of valid ports is "
                    f"{low}-{high}"))  # fmt: skip
        elif node_port and svc_type == "ClusterIP":
            causes.append(
                Cause.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
            )
        if port.get("protocol", "TCP") not in _PROTOCOLS:
            causes.append(Cause.not_supported(f"{path}.protocol", port["protocol"], _PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, str):
            if not _IANA_SVC_NAME.match(target) or len(target) > 15:
                causes.append(
                    Cause.invalid(f"{path}.targetPort", target, "must be a valid port name")
                )
        elif target is not None and _port_error(target):
            causes.append(
                Cause.invalid(
                    f"{path}.targetPort", target, "must be between 1 and 65535, inclusive"
                )
            )
    return causes


def _default_secret(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    obj.setdefault("type", "Opaque")
    data = obj.get("data") or {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise bad_request(
                f"json: cannot unmarshal into Go struct field Secret.data of type []byte "
                f"(key {key!r})"
            )
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"illegal base64 data in Secret.data[{key}]: {exc}") from None
    # stringData is write-only: merged into data (base64) and never stored.
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def _validate_secret(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    data = obj.get("data") or {}
    for key in data:
        if not re.match(r"^[-._a-zA-Z0-9]+$", key):
            causes.append(
                Cause.invalid(
                    "data",
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
    if obj.get("type") == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                causes.append(Cause.required(f"data[{key}]"))
    return causes


def _default_endpointslice(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    # SetDefaults_EndpointPort: name "" and protocol TCP. The name matters: Traefik matches a
    # Service port to a slice port by name and skips slice ports whose name is unset.
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")


def _validate_endpointslice(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    address_types = ("FQDN", "IPv4", "IPv6")
    address_type = obj.get("addressType", "")
    if not address_type:
        causes.append(Cause.required("addressType"))
    elif address_type not in address_types:
        causes.append(Cause.not_supported("addressType", address_type, address_types))
    for i, endpoint in enumerate(obj.get("endpoints") or []):
        path = f"endpoints[{i}].addresses"
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        if not addresses:
            causes.append(Cause.required(path, "must contain at least 1 address"))
            continue
        for j, address in enumerate(addresses):
            if address_type in ("IPv4", "IPv6"):
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    causes.append(
                        Cause.invalid(f"{path}[{j}]", address, "must be a valid IP address")
                    )
                    continue
                if (ip.version == 4) != (address_type == "IPv4"):
                    causes.append(
                        Cause.invalid(f"{path}[{j}]", address, f"must be an {address_type} address")
                    )
    for i, port in enumerate(obj.get("ports") or []):
        if isinstance(port, dict) and port.get("port") is not None and _port_error(port["port"]):
            causes.append(
                Cause.invalid(
                    f"ports[{i}].port", port["port"], "must be between 1 and 65535, inclusive"
                )
            )
        if isinstance(port, dict) and port.get("protocol", "TCP") not in _PROTOCOLS:
            causes.append(Cause.not_supported(f"ports[{i}].protocol", port["protocol"], _PROTOCOLS))
    return causes


def _default_ingress(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


_PATH_TYPES: Final = ("Exact", "ImplementationSpecific", "Prefix")


def _validate_ingress_backend(backend: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(backend, dict):
        backend = {}
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        causes.append(Cause.invalid(path, "", "cannot set both resource and service backends"))
    elif resource is not None:
        if not isinstance(resource, dict) or not resource.get("kind") or not resource.get("name"):
            causes.append(Cause.required(f"{path}.resource", "kind and name are required"))
    elif service is not None:
        if not isinstance(service, dict):
            service = {}
        if not service.get("name"):
            causes.append(Cause.required(f"{path}.service.name"))
        port = service.get("port") or {}
        port_name, number = port.get("name", ""), port.get("number", 0)
        if port_name and number:
            causes.append(
                Cause.invalid(f"{path}.service.port", "", "cannot set both port name & port number")
            )
        elif number:
            why = _port_error(number)
            if why:
                causes.append(Cause.invalid(f"{path}.service.port.number", number, why))
        elif not port_name:
            causes.append(Cause.required(f"{path}.service.port", "port name or number is required"))
    else:
        causes.append(Cause.invalid(path, "", "resource or service backend is required"))


def _validate_ingress(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    rules = spec.get("rules") or []
    if not rules and spec.get("defaultBackend") is None:
        causes.append(
            Cause.invalid("spec", "", "either `defaultBackend` or `rules` must be specified")
        )
    if spec.get("defaultBackend") is not None:
        _validate_ingress_backend(spec["defaultBackend"], "spec.defaultBackend", causes)
    for i, rule in enumerate(rules):
        http = rule.get("http") if isinstance(rule, dict) else None
        if http is None:
            continue
        paths = http.get("paths") or []
        if not paths:
            causes.append(Cause.required(f"spec.rules[{i}].http.paths"))
        for j, item in enumerate(paths):
            path = f"spec.rules[{i}].http.paths[{j}]"
            path_type = item.get("pathType")
            if not path_type:
                causes.append(Cause.required(f"{path}.pathType", "pathType must be specified"))
            elif path_type not in _PATH_TYPES:
                causes.append(Cause.not_supported(f"{path}.pathType", path_type, _PATH_TYPES))
            value = item.get("path", "")
            if path_type in ("Exact", "Prefix") and not str(value).startswith("/"):
                causes.append(Cause.invalid(f"{path}.path", value, "must be an absolute path"))
            _validate_ingress_backend(item.get("backend"), f"{path}.backend", causes)
    return causes


def _validate_ingressroute(obj: Obj) -> list[Cause]:
    # What Traefik's CRD schema requires (traefik.io_ingressroutes.yaml).
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    causes: list[Cause] = []
    routes = spec.get("routes")
    if not routes:
        causes.append(Cause.required("spec.routes"))
    for i, route in enumerate(routes or []):
        if not isinstance(route, dict) or not route.get("match"):
            causes.append(Cause.required(f"spec.routes[{i}].match"))
            continue
        for key in ("services", "middlewares"):
            for j, ref in enumerate(route.get(key) or []):
                if not isinstance(ref, dict) or not ref.get("name"):
                    causes.append(Cause.required(f"spec.routes[{i}].{key}[{j}].name"))
    return causes


# Gateway API (gateway.networking.k8s.io, the CRDs of the gateway-api module Traefik 3.7.15 is
# built with, v1.6): the defaults their OpenAPI schemas declare, which the real server's CRD
# defaulting applies on every write, and the fields the schemas require.

GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
#: What the CRDs' status defaults say until a controller writes (``kubectl get`` shows Unknown).
_PENDING_CONDITION: Final[Obj] = {
    "lastTransitionTime": "1970-01-01T00:00:00Z",
    "message": "Waiting for controller",
    "reason": "Pending",
    "status": "Unknown",
}
_DEFAULT_PATH_MATCH: Final[Obj] = {"type": "PathPrefix", "value": "/"}


def _pending_status(obj: Obj, condition_types: Sequence[str]) -> None:
    if "status" not in obj:
        obj["status"] = {"conditions": [{**_PENDING_CONDITION, "type": t} for t in condition_types]}


def _default_gatewayclass(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    _pending_status(obj, ("Accepted",))


def _default_gateway(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    for listener in _dicts((obj.get("spec") or {}).get("listeners")):
        routes = listener.setdefault("allowedRoutes", {"namespaces": {"from": "Same"}})
        if isinstance(routes, dict):
            namespaces = routes.setdefault("namespaces", {"from": "Same"})
            if isinstance(namespaces, dict):
                namespaces.setdefault("from", "Same")
        tls = listener.get("tls")
        if isinstance(tls, dict):
            # GatewayTLSConfig and SecretObjectReference defaults: Traefik refuses a
            # certificateRef without group and kind (InvalidCertificateRef).
            tls.setdefault("mode", "Terminate")
            for ref in _dicts(tls.get("certificateRefs")):
                ref.setdefault("group", "")
                ref.setdefault("kind", "Secret")
    _pending_status(obj, ("Accepted", "Programmed"))


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _default_parent_refs(spec: Obj) -> None:
    for ref in _dicts(spec.get("parentRefs")):
        ref.setdefault("group", GATEWAY_GROUP)
        ref.setdefault("kind", "Gateway")


def _default_backend_refs(rule: Obj, *, weight: bool) -> None:
    for ref in _dicts(rule.get("backendRefs")):
        ref.setdefault("group", "")
        ref.setdefault("kind", "Service")
        if weight:
            ref.setdefault("weight", 1)


def _default_httproute(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _default_parent_refs(spec)
    rules = spec.setdefault("rules", [{}])
    for rule in _dicts(rules):
        matches = rule.setdefault("matches", [{"path": dict(_DEFAULT_PATH_MATCH)}])
        for match in _dicts(matches):
            path = match.setdefault("path", dict(_DEFAULT_PATH_MATCH))
            if isinstance(path, dict):
                path.setdefault("type", "PathPrefix")
                path.setdefault("value", "/")
            for key in ("headers", "queryParams"):
                for item in _dicts(match.get(key)):
                    item.setdefault("type", "Exact")
        _default_backend_refs(rule, weight=True)
        for f in _dicts(rule.get("filters")):
            redirect = f.get("requestRedirect")
            if isinstance(redirect, dict):
                redirect.setdefault("statusCode", 302)


def _default_grpcroute(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _default_parent_refs(spec)
    for rule in _dicts(spec.get("rules")):
        for match in _dicts(rule.get("matches")):
            for item in _dicts(match.get("headers")):
                item.setdefault("type", "Exact")
            method = match.get("method")
            if isinstance(method, dict):
                method.setdefault("type", "Exact")
        _default_backend_refs(rule, weight=True)


def _default_tlsroute(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _default_parent_refs(spec)
    for rule in _dicts(spec.get("rules")):
        _default_backend_refs(rule, weight=True)


def _validate_gatewayclass(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("controllerName"):
        return [Cause.required("spec.controllerName")]
    return []


def _validate_gateway(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    causes: list[Cause] = []
    if not spec.get("gatewayClassName"):
        causes.append(Cause.required("spec.gatewayClassName"))
    listeners = spec.get("listeners")
    if not listeners:
        causes.append(Cause.required("spec.listeners"))
    names: set[str] = set()
    for i, listener in enumerate(_dicts(listeners)):
        path = f"spec.listeners[{i}]"
        for key in ("name", "port", "protocol"):
            if listener.get(key) in (None, ""):
                causes.append(Cause.required(f"{path}.{key}"))
        port = listener.get("port")
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            causes.append(Cause.invalid(f"{path}.port", port, "should be between 1 and 65535"))
        name = str(listener.get("name", ""))
        if name and name in names:
            causes.append(Cause.duplicate(f"{path}.name", name))
        names.add(name)
    return causes


def _validate_httproute(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    causes: list[Cause] = []
    for i, ref in enumerate(_dicts(spec.get("parentRefs"))):
        if not ref.get("name"):
            causes.append(Cause.required(f"spec.parentRefs[{i}].name"))
    for i, rule in enumerate(_dicts(spec.get("rules"))):
        for j, match in enumerate(_dicts(rule.get("matches"))):
            path = match.get("path")
            if not isinstance(path, dict):
                continue
            where = f"spec.rules[{i}].matches[{j}].path"
            kind = path.get("type")
            if kind not in _PATH_MATCH_TYPES:
                causes.append(Cause.not_supported(f"{where}.type", kind, _PATH_MATCH_TYPES))
            value = str(path.get("value", ""))
            if kind in ("Exact", "PathPrefix") and not value.startswith("/"):
                causes.append(
                    Cause.invalid(
                        f"{where}.value",
                        value,
                        "value must be an absolute path and start with '/' when type one of "
                        "['Exact', 'PathPrefix']",
                    )
                )
        for j, ref in enumerate(_dicts(rule.get("backendRefs"))):
            if not ref.get("name"):
                causes.append(Cause.required(f"spec.rules[{i}].backendRefs[{j}].name"))
            weight = ref.get("weight")
            if isinstance(weight, int) and not 0 <= weight <= 1000000:
                causes.append(
                    Cause.invalid(
                        f"spec.rules[{i}].backendRefs[{j}].weight",
                        weight,
                        "should be between 0 and 1000000",
                    )
                )
    return causes


_PATH_MATCH_TYPES: Final = ("Exact", "PathPrefix", "RegularExpression")


def _gateway_kind(
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    default: Defaulter | None = None,
    validate: Validator | None = None,
    short_names: tuple[str, ...] = (),
) -> Kind:
    return Kind(
        GATEWAY_GROUP, version, plural, kind, namespaced=namespaced, custom=True,
        status_subresource=True, default=default, validate=validate, short_names=short_names,
        categories=("gateway-api",),
    )  # fmt: skip


# Workloads: Pods, ReplicaSets, Deployments (defaults as in k8s.io/kubernetes/pkg/apis/*/v1).


def _pull_policy(image: Any) -> str:
    name = str(image or "")
    if "@" in name:
        return "IfNotPresent"
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _containers(spec: Obj) -> list[tuple[str, int, Obj]]:
    out = []
    for field_name in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field_name) or []):
            if isinstance(container, dict):
                out.append((field_name, i, container))
    return out


def _default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for _field, _i, container in _containers(spec):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _pull_policy(container.get("image")))
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _default_template(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        if isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])


def _qos_class(spec: Obj) -> str:
    resources = [c.get("resources") or {} for f, _, c in _containers(spec) if f == "containers"]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all((r.get("limits") or {}).get(name) is not None for name in ("cpu", "memory"))
        and all(
            (r.get("requests") or {}).get(name, (r.get("limits") or {}).get(name))
            == (r.get("limits") or {}).get(name)
            for name in ("cpu", "memory")
        )
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


_DEFAULT_TOLERATIONS: Final = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
)  # fmt: skip


def _default_pod(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.setdefault("spec", {})
    _default_pod_spec(spec)
    # What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add.
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    keys = {t.get("key") for t in tolerations if isinstance(t, dict)}
    tolerations.extend(clone(t) for t in _DEFAULT_TOLERATIONS if t["key"] not in keys)
    if old is None:
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def _default_replicaset(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _default_template(obj)


def _default_deployment(obj: Obj, old: Obj | None, store: ObjectStore) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _default_template(obj)


def _validate_pod_spec(spec: Any, path: str, causes: list[Cause], *, template: bool) -> None:
    if not isinstance(spec, dict):
        causes.append(Cause.required(path))
        return
    if not spec.get("containers"):
        causes.append(Cause.required(f"{path}.containers"))
    names: set[str] = set()
    for field_name, i, container in _containers(spec):
        where = f"{path}.{field_name}[{i}]"
        name = container.get("name", "")
        if not name:
            causes.append(Cause.required(f"{where}.name"))
        elif len(name) > 63 or not _DNS1123_LABEL.match(name):
            causes.append(Cause.invalid(f"{where}.name", name, _NAME_RULES["label"][2]))
        elif name in names:
            causes.append(Cause.duplicate(f"{where}.name", name))
        names.add(name)
        if not container.get("image"):
            causes.append(Cause.required(f"{where}.image"))
        for j, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, dict) else None
            why = _port_error(number)
            if why:
                causes.append(Cause.invalid(f"{where}.ports[{j}].containerPort", number, why))
    policies = ("Always",) if template else ("Always", "Never", "OnFailure")
    policy = spec.get("restartPolicy", "Always")
    if policy not in policies:
        causes.append(Cause.not_supported(f"{path}.restartPolicy", policy, policies))
    dns_policies = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
    if spec.get("dnsPolicy", "ClusterFirst") not in dns_policies:
        causes.append(Cause.not_supported(f"{path}.dnsPolicy", spec["dnsPolicy"], dns_policies))


def _validate_pod(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    _validate_pod_spec(obj.get("spec"), "spec", causes, template=False)
    return causes


def _validate_pod_update(obj: Obj, old: Obj) -> list[Cause]:
    # Pod updates may change container images and little else (ValidatePodUpdate).
    def mutable_cleared(pod: Obj) -> Obj:
        spec = clone(pod.get("spec") or {})
        for _field, _i, container in _containers(spec):
            container.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    if mutable_cleared(obj) != mutable_cleared(old):
        return [
            Cause.forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                "`spec.tolerations` (only additions to existing tolerations)",
            )
        ]
    return []


def _validate_workload(obj: Obj, *, deployment: bool) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(
            Cause.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    template = spec.get("template")
    if not isinstance(selector, dict):
        causes.append(Cause.required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        what = "deployment" if deployment else "replicaset"
        causes.append(
            Cause.invalid("spec.selector", "{...}", f"empty selector is invalid for {what}")
        )
    if not isinstance(template, dict):
        causes.append(Cause.required("spec.template"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict) and not label_selector_matches(selector, labels):
        causes.append(
            Cause.invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    _validate_pod_spec(template.get("spec"), "spec.template.spec", causes, template=True)
    for name in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        value = spec.get(name, 0)
        if not isinstance(value, int) or value < 0:
            causes.append(
                Cause.invalid(f"spec.{name}", value, "must be greater than or equal to 0")
            )
    strategy = spec.get("strategy") or {}
    if deployment:
        types = ("Recreate", "RollingUpdate")
        strategy_type = strategy.get("type", "RollingUpdate")
        if strategy_type not in types:
            causes.append(Cause.not_supported("spec.strategy.type", strategy_type, types))
        elif strategy_type == "Recreate" and strategy.get("rollingUpdate") is not None:
            causes.append(
                Cause.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
        rolling = strategy.get("rollingUpdate") or {}
        for name in ("maxSurge", "maxUnavailable"):
            if name in rolling and int_or_percent(rolling[name], 100, round_up=True) is None:
                causes.append(
                    Cause.invalid(
                        f"spec.strategy.rollingUpdate.{name}",
                        rolling[name],
                        "a valid percent string must be a numeric string followed by an ending "
                        "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    )
                )
        if (
            strategy_type == "RollingUpdate"
            and int_or_percent(rolling.get("maxSurge", "25%"), 100, round_up=True) == 0
            and int_or_percent(rolling.get("maxUnavailable", "25%"), 100, round_up=False) == 0
        ):
            causes.append(
                Cause.invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.get("maxUnavailable"),
                    "may not be 0 when `maxSurge` is 0",
                )
            )
    return causes


def _validate_selector_update(obj: Obj, old: Obj) -> list[Cause]:
    selector = (obj.get("spec") or {}).get("selector")
    if selector != (old.get("spec") or {}).get("selector"):
        return [Cause.invalid("spec.selector", selector, "field is immutable")]
    return []


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int | None:
    """An IntOrString like maxSurge, scaled to ``total`` (None: not a valid value)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+%", value):
        share = int(value[:-1]) * total
        return -(-share // 100) if round_up else share // 100
    return None


def label_selector_requirements(selector: Obj) -> tuple[Requirement, ...]:
    """A LabelSelector (matchLabels, matchExpressions) as selector requirements."""
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is not None:
            reqs.append(Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())))
    return tuple(reqs)


def label_selector_matches(selector: Obj, labels: Mapping[str, str]) -> bool:
    reqs = label_selector_requirements(selector)
    return bool(reqs) and all(r.matches(labels) for r in reqs)


def label_selector_string(selector: Obj) -> str:
    """The selector as the text form a Scale's status or ``kubectl get -o wide`` shows."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key", ""), expr.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


NODE_PORT_RANGE: Final = (30000, 32767)
"""kube-apiserver's default --service-node-port-range."""

_ROLE_KINDS: Final = ("ClusterRole", "Role")


def _validate_role(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not isinstance(rule, dict) or not rule.get("verbs"):
            causes.append(
                Cause.required(f"rules[{i}].verbs", "verbs must contain at least one value")
            )
    return causes


def _validate_role_binding(obj: Obj) -> list[Cause]:
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return [Cause.required("roleRef")]
    causes: list[Cause] = []
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        causes.append(
            Cause.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""),
                                ("rbac.authorization.k8s.io",))
        )  # fmt: skip
    kinds = _ROLE_KINDS if obj.get("kind") == "RoleBinding" else _ROLE_KINDS[:1]
    if ref.get("kind") not in kinds:
        causes.append(Cause.not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        causes.append(Cause.required("roleRef.name"))
    for i, subject in enumerate(obj.get("subjects") or []):
        if not isinstance(subject, dict) or not subject.get("name"):
            causes.append(Cause.required(f"subjects[{i}].name"))
        elif (
            subject.get("kind") == "ServiceAccount"
            and not subject.get("namespace")
            and obj.get("kind") == "ClusterRoleBinding"
        ):
            causes.append(Cause.required(f"subjects[{i}].namespace"))
    return causes


def _validate_role_ref_update(obj: Obj, old: Obj) -> list[Cause]:
    if obj.get("roleRef") != old.get("roleRef"):
        return [Cause.invalid("roleRef", obj.get("roleRef"), "cannot change roleRef")]
    return []


def _validate_deployment(obj: Obj) -> list[Cause]:
    return _validate_workload(obj, deployment=True)


def _validate_replicaset(obj: Obj) -> list[Cause]:
    return _validate_workload(obj, deployment=False)


_POD_MERGE_KEYS: Final[Mapping[str, str]] = {
    "containers": "name", "containers.env": "name", "containers.ports": "containerPort",
    "containers.volumeMounts": "mountPath", "containers.volumeDevices": "devicePath",
    "initContainers": "name", "initContainers.env": "name",
    "initContainers.ports": "containerPort", "initContainers.volumeMounts": "mountPath",
    "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip",
}  # fmt: skip


def _pod_merge_keys(prefix: str) -> dict[str, str]:
    return {f"{prefix}{path}": key for path, key in _POD_MERGE_KEYS.items()}


def _traefik(plural: str, kind: str, validate: Validator | None = None) -> Kind:
    return Kind("traefik.io", "v1alpha1", plural, kind, custom=True, validate=validate)


KINDS: Final[tuple[Kind, ...]] = (
    Kind(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
        status_subresource=True, returns_deleted=True, default=_default_namespace,
        name_rule="label", field_selectors=("status.phase",), deletecollection=False,
        merge_keys={"status.conditions": "type"},
    ),
    Kind(
        "", "v1", "nodes", "Node", namespaced=False, short_names=("no",),
        status_subresource=True, field_selectors=("spec.unschedulable",),
        merge_keys={"status.conditions": "type", "status.addresses": "type",
                    "spec.podCIDRs": PRIMITIVE_SET},
    ),
    Kind(
        "", "v1", "services", "Service", short_names=("svc",), status_subresource=True,
        returns_deleted=True, default=_default_service, validate=_validate_service,
        name_rule="dns1035", merge_keys={"spec.ports": "port", "status.conditions": "type"},
        categories=("all",),
    ),
    Kind("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    Kind(
        "", "v1", "pods", "Pod", short_names=("po",), status_subresource=True,
        default=_default_pod, validate=_validate_pod, validate_update=_validate_pod_update,
        field_selectors=("spec.nodeName", "spec.serviceAccountName", "status.phase",
                         "status.podIP", "spec.restartPolicy", "spec.schedulerName"),
        merge_keys={**_pod_merge_keys("spec."), "status.conditions": "type",
                    "metadata.ownerReferences": "uid"},
        categories=("all",),
    ),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",),
         merge_keys={"secrets": "name"}),
    Kind("", "v1", "events", "Event", short_names=("ev",),
         field_selectors=("involvedObject.kind", "involvedObject.namespace",
                          "involvedObject.name", "involvedObject.uid",
                          "involvedObject.apiVersion", "involvedObject.resourceVersion",
                          "involvedObject.fieldPath", "reason", "reportingComponent", "source",
                          "type")),
    Kind("", "v1", "secrets", "Secret", default=_default_secret, validate=_validate_secret,
         field_selectors=("type",)),
    Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Kind(
        "apps", "v1", "deployments", "Deployment", short_names=("deploy",), generation=True,
        status_subresource=True, scale_subresource=True, default=_default_deployment,
        validate=_validate_deployment, validate_update=_validate_selector_update,
        merge_keys={**_pod_merge_keys("spec.template.spec."), "status.conditions": "type",
                    "spec.strategy": RETAIN_KEYS},
        categories=("all",),
    ),
    Kind(
        "apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), generation=True,
        status_subresource=True, scale_subresource=True, default=_default_replicaset,
        validate=_validate_replicaset, validate_update=_validate_selector_update,
        merge_keys={**_pod_merge_keys("spec.template.spec."), "status.conditions": "type"},
        categories=("all",),
    ),
    Kind("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
         namespaced=False, create_only=True),
    Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", generation=True,
         default=_default_endpointslice, validate=_validate_endpointslice),
    # Stored as written so that a tutorial's manifests apply; not enforced (see access.py).
    Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False,
         validate=_validate_role),
    Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
         namespaced=False, validate=_validate_role_binding,
         validate_update=_validate_role_ref_update),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", validate=_validate_role),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding",
         validate=_validate_role_binding, validate_update=_validate_role_ref_update),
    Kind("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",),
         generation=True, status_subresource=True, default=_default_ingress,
         validate=_validate_ingress),
    Kind("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False,
         generation=True),
    # The kinds Traefik's CRD provider watches (pkg/provider/kubernetes/crd/client.go).
    _traefik("ingressroutes", "IngressRoute", _validate_ingressroute),
    _traefik("ingressroutetcps", "IngressRouteTCP"),
    _traefik("ingressrouteudps", "IngressRouteUDP"),
    _traefik("middlewares", "Middleware"),
    _traefik("middlewaretcps", "MiddlewareTCP"),
    _traefik("tlsoptions", "TLSOption"),
    _traefik("tlsstores", "TLSStore"),
    _traefik("traefikservices", "TraefikService"),
    _traefik("serverstransports", "ServersTransport"),
    _traefik("serverstransporttcps", "ServersTransportTCP"),
    # The kinds Traefik's Gateway provider watches (pkg/provider/kubernetes/gateway/client.go)
    # at the versions its client lists; TCPRoute only with experimentalChannel.
    _gateway_kind("v1", "gatewayclasses", "GatewayClass", namespaced=False,
                  default=_default_gatewayclass, validate=_validate_gatewayclass,
                  short_names=("gc",)),
    _gateway_kind("v1", "gateways", "Gateway", default=_default_gateway,
                  validate=_validate_gateway, short_names=("gtw",)),
    _gateway_kind("v1", "httproutes", "HTTPRoute", default=_default_httproute,
                  validate=_validate_httproute),
    _gateway_kind("v1", "grpcroutes", "GRPCRoute", default=_default_grpcroute),
    _gateway_kind("v1", "tlsroutes", "TLSRoute", default=_default_tlsroute),
    _gateway_kind("v1", "backendtlspolicies", "BackendTLSPolicy", short_names=("btlspolicy",)),
    Kind(GATEWAY_GROUP, "v1beta1", "referencegrants", "ReferenceGrant", custom=True,
         short_names=("refgrant",), categories=("gateway-api",)),
    _gateway_kind("v1alpha2", "tcproutes", "TCPRoute", default=_default_tlsroute),
)  # fmt: skip
"""Every kind served. Adding a kind is one line; discovery, routing and watches follow."""


# --------------------------------------------------------------------------------------------
# JSON helpers.


def clone(value: _T) -> _T:
    """A deep copy of a JSON value (several times faster than copy.deepcopy)."""
    return cast(_T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dig(obj: Obj, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# --------------------------------------------------------------------------------------------
# Selectors.


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector (``key``, ``!key``, ``k=v``, ``k!=v``, ``k in (a,b)``...)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "==" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case ">" | "<":
                try:
                    number = int(value or "")
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.op == ">" else number < bound
        return False  # pragma: no cover - parse_label_selector only builds the ops above


_KEY = r"[^\s!=<>(),]+"
_RE_EXISTS = re.compile(rf"^(?P<neg>!)?\s*(?P<key>{_KEY})$")
_RE_COMPARE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s,()!=<>]*)$")
_RE_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a label selector like the real server; a malformed one is a 400 BadRequest."""
    text = text.strip()
    if not text:
        return ()
    requirements = []
    for raw in _split_top_level(text):
        part = raw.strip()
        req: Requirement | None = None
        if m := _RE_EXISTS.match(part):
            req = Requirement(m["key"], "!" if m["neg"] else "exists")
        elif m := _RE_COMPARE.match(part):
            req = Requirement(m["key"], m["op"], (m["value"],))
        elif m := _RE_SET.match(part):
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            if not values:
                raise bad_request(
                    f"unable to parse requirement: {part!r}: for 'in', 'notin' operators, "
                    "values set can't be empty"
                )
            req = Requirement(m["key"], m["op"], values)
        if req is None:
            raise bad_request(
                f"unable to parse requirement: {part!r}: expected one of 'key', '!key', "
                "'key=value', 'key==value', 'key!=value', 'key in (v1,v2)', 'key notin (v1,v2)', "
                "'key>n', 'key<n'"
            )
        why = _qualified_key_error(req.key)
        if why:
            raise bad_request(f"unable to parse requirement: key {req.key!r}: {why}")
        for value in req.values:
            why = (
                (
                    None
                    if re.fullmatch(r"-?\d+", value)
                    else "for 'gt', 'lt' operators, the value must be an integer"
                )
                if req.op in (">", "<")
                else _label_value_error(value)
            )
            if why:
                raise bad_request(f"unable to parse requirement: value {value!r}: {why}")
        requirements.append(req)
    return tuple(requirements)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str


def parse_field_selector(text: str, kind: Kind) -> tuple[FieldRequirement, ...]:
    """Parse a field selector; only the fields the real server indexes for the kind."""
    supported = ("metadata.name", "metadata.namespace", *kind.field_selectors)
    result = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{part}'; can't understand '{part}'")
        path, op, value = m[1].strip(), m[2], m[3].strip()
        if path not in supported:
            raise bad_request(f"field label not supported: {path}")
        result.append(FieldRequirement(path, op != "!=", value))
    return tuple(result)


def _field_value(obj: Obj, path: str) -> str:
    value = _dig(obj, path)
    if value is None:
        return "false" if path == "spec.unschedulable" else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Selector:
    """A parsed label plus field selector, with the namespace a request is scoped to."""

    namespace: str = ""
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace", "") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((_field_value(obj, f.path) == f.value) == f.equal for f in self.fields)

    @property
    def empty(self) -> bool:
        return not self.labels and not self.fields


# --------------------------------------------------------------------------------------------
# Patches.

_DELETE: Final = object()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Any, patch: Any, merge_keys: Mapping[str, str]) -> Any:
    """Kubernetes strategic merge patch, for the merge keys of the served kinds.

    Maps merge and ``null`` deletes; a list is replaced unless its path has a merge key (lists
    of maps merged by that key) or is a primitive set; ``$patch: replace|delete``,
    ``$retainKeys`` and ``$deleteFromPrimitiveList/<field>`` are honoured,
    ``$setElementOrder/<field>`` is accepted and ignored.
    """
    result = _smp_map(original, patch, merge_keys, "")
    return {} if result is _DELETE else result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return value


def _smp_map(original: Any, patch: Any, keys: Mapping[str, str], path: str) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives(patch)
    if directive is not None:
        raise bad_request(f"unknown patch type: {directive!r} in strategic merge patch")
    result: Obj = clone(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key), value, keys, sub)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, keys, sub)
        else:
            result[key] = value
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(original: Any, patch: list[Any], keys: Mapping[str, str], path: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    merge_key = keys.get(path)
    if merge_key is None:
        return [_strip_directives(i) for i in patch]
    current: list[Any] = clone(original) if isinstance(original, list) else []
    if merge_key == PRIMITIVE_SET:
        for item in patch:
            if item not in current:
                current.append(item)
        return current
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"strategic merge patch: {path} items must be objects")
        key_value = item.get(merge_key)
        index = next(
            (
                n
                for n, c in enumerate(current)
                if isinstance(c, dict) and c.get(merge_key) == key_value
            ),
            None,
        )
        if item.get("$patch") == "delete":
            current = [
                c for c in current if not (isinstance(c, dict) and c.get(merge_key) == key_value)
            ]
        elif index is None:
            current.append(_strip_directives(item))
        else:
            current[index] = _smp_map(current[index], item, keys, path)
    return current


MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"


def apply_patch(kind: Kind, current: Obj, body: bytes, content_type: str) -> Obj:
    """Apply a PATCH body of ``content_type`` to ``current``; errors as the real server's."""
    if content_type == APPLY_PATCH:
        raise StatusError(
            415,
            "UnsupportedMediaType",
            "server-side apply (application/apply-patch+yaml) is not supported by the local "
            "Kubernetes API of ingress-harness; use a merge, strategic merge or JSON patch, or "
            "replace the object",
        )
    accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if kind.custom else [STRATEGIC_PATCH])
    if content_type not in accepted:
        raise StatusError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}",
        )
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from None
    if content_type == JSON_PATCH:
        if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
            raise bad_request(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                if isinstance(patch, dict)
                else "the JSON patch must be an array of operation objects"
            )
        try:
            result = jsonpatch.JsonPatch(patch).apply(clone(current))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise StatusError(422, "Invalid", str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise StatusError(422, "Invalid", f"invalid JSON patch: {exc}") from None
    elif not isinstance(patch, dict):
        raise bad_request("the patch must be a JSON object")
    elif content_type == MERGE_PATCH:
        result = merge_patch(current, patch)
    else:
        result = strategic_merge_patch(current, patch, kind.all_merge_keys())
    if not isinstance(result, dict):
        raise bad_request("the patched document is not an object")
    return result


# --------------------------------------------------------------------------------------------
# List options (ValidateListOptions, with the WatchList feature on as in Kubernetes 1.34).


def bool_param(value: str | None) -> bool:
    """Go's query-parameter bool: false only for '', 0, n, no, f, false, off."""
    return (value or "").lower() not in ("", "0", "n", "no", "f", "false", "off")


@dataclass(frozen=True)
class ListOptions:
    """The query parameters of a list or watch, validated like the real server."""

    label_selector: str = ""
    field_selector: str = ""
    watch: bool = False
    allow_bookmarks: bool = False
    resource_version: str = ""
    resource_version_match: str = ""
    send_initial_events: bool | None = None
    limit: int = 0
    continue_token: str = ""
    timeout_seconds: float | None = None

    @staticmethod
    def from_query(query: Mapping[str, str], *, watch: bool = False) -> ListOptions:
        def number(name: str) -> int | None:
            raw = query.get(name)
            if raw in (None, ""):
                return None
            try:
                return int(raw)
            except ValueError:
                raise bad_request(
                    f'strconv.ParseInt: parsing "{raw}": invalid syntax (query parameter {name})'
                ) from None

        sie = query.get("sendInitialEvents")
        timeout = number("timeoutSeconds")
        opts = ListOptions(
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            watch=watch or bool_param(query.get("watch")),
            allow_bookmarks=bool_param(query.get("allowWatchBookmarks")),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
            send_initial_events=None if sie is None else bool_param(sie),
            limit=max(number("limit") or 0, 0),
            continue_token=query.get("continue", ""),
            timeout_seconds=None if timeout is None or timeout <= 0 else float(timeout),
        )
        opts.validate()
        return opts

    def validate(self) -> None:
        causes: list[Cause] = []
        match = self.resource_version_match
        if self.watch:
            if self.send_initial_events is not None:
                if match != "NotOlderThan":
                    causes.append(
                        Cause.forbidden(
                            "resourceVersionMatch",
                            "sendInitialEvents requires setting resourceVersionMatch to "
                            "NotOlderThan",
                        )
                    )
                    if match:
                        causes.append(
                            Cause.not_supported("resourceVersionMatch", match, ["NotOlderThan"])
                        )
                if self.continue_token:
                    causes.append(
                        Cause.forbidden(
                            "resourceVersionMatch",
                            "resourceVersionMatch is forbidden when continue is provided",
                        )
                    )
            elif match:
                causes.append(
                    Cause.forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                        "is provided",
                    )
                )
        else:
            if match:
                if not self.resource_version:
                    causes.append(
                        Cause.forbidden(
                            "resourceVersionMatch",
                            "resourceVersionMatch is forbidden unless resourceVersion is provided",
                        )
                    )
                if self.continue_token:
                    causes.append(
                        Cause.forbidden(
                            "resourceVersionMatch",
                            "resourceVersionMatch is forbidden when continue is provided",
                        )
                    )
                if match not in ("Exact", "NotOlderThan"):
                    causes.append(
                        Cause.not_supported(
                            "resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]
                        )
                    )
                if match == "Exact" and self.resource_version == "0":
                    causes.append(
                        Cause.forbidden(
                            "resourceVersionMatch",
                            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                        )
                    )
            if self.send_initial_events is not None:
                causes.append(
                    Cause.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
                )
        if causes:
            raise invalid_error("ListOptions.meta.k8s.io", "meta.k8s.io", "ListOptions", "", causes)


def _parse_rv(value: str) -> int:
    try:
        rv = int(value)
    except ValueError:
        rv = -1
    if rv < 0:
        raise bad_request(f"invalid resource version: {value!r}")
    return rv


# --------------------------------------------------------------------------------------------
# The store.


@dataclass(frozen=True)
class Event:
    """One change, in the global history: what watches stream."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    kind: Kind
    obj: Obj  # after the change; for DELETED the last state, carrying the deletion's RV
    prev: Obj | None  # before the change; None for ADDED


def _expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


_SERVER_OWNED: Final = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)

_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


class ObjectStore:
    """All objects of the served kinds, one global resourceVersion, and the event history.

    Thread-safe: one lock (``self.cond``) around everything. Objects go in and out as copies.
    ``event_history`` bounds the history; a watch or continue token from before it gets 410.
    """

    too_large_rv_wait: float = 3.0
    """Seconds a list waits for a resourceVersion from the future (the real server waits 3 s)."""

    watch_list: bool = True
    """The WatchList feature (streaming lists, ``sendInitialEvents``), on by default since
    Kubernetes 1.32. Off: such watches get 422, as from a server with the feature gate off,
    and clients fall back to paginated lists."""

    def __init__(
        self,
        kinds: Iterable[Kind] = KINDS,
        *,
        event_history: int = 100_000,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
    ) -> None:
        if event_history < 1:
            raise ValueError("`event_history` must be at least 1")
        self.kinds: tuple[Kind, ...] = tuple(kinds)
        self.cond = threading.Condition(threading.RLock())
        self._by_resource = {(k.group, k.version, k.plural): k for k in self.kinds}
        self._by_gvk = {(k.api_version, k.kind): k for k in self.kinds}
        self._objects: dict[Kind, dict[tuple[str, str], Obj]] = {k: {} for k in self.kinds}
        self._rv = 0
        self._events: list[Event] = []
        self._oldest_rv = 0  # every event with rv > _oldest_rv is still in _events
        self._history = event_history
        self._foreground: set[str] = set()  # uids of owners waiting for their dependents
        self._next_ip = 10
        self._random = random.Random()
        self.node_port_free: Callable[[int], bool] = lambda port: True
        self.protected_namespaces = frozenset(namespaces)
        self._namespaces = self.find_kind("", "v1", "namespaces")
        if self._namespaces is not None:
            for name in namespaces:
                self.create(self._namespaces, "", {"metadata": {"name": name}})

    # -- lookups --------------------------------------------------------------------------

    def find_kind(self, group: str, version: str, plural: str) -> Kind | None:
        return self._by_resource.get((group, version, plural))

    def kind_for(self, api_version: str, kind: str) -> Kind:
        """The served kind for an object's apiVersion and kind (KeyError if not served)."""
        return self._by_gvk[(api_version, kind)]

    @property
    def resource_version(self) -> str:
        with self.cond:
            return str(self._rv)

    def allocate_cluster_ip(self) -> str:
        with self.cond:
            ip = ipaddress.ip_address("10.96.0.0") + self._next_ip
            self._next_ip += 1
            return str(ip)

    def node_ports_in_use(self, except_service: tuple[str | None, str] = (None, "")) -> set[int]:
        """The nodePorts of every stored Service (but ``except_service``: namespace, name)."""
        services = self.find_kind("", "v1", "services")
        if services is None:
            return set()
        with self.cond:
            return {
                int(port["nodePort"])
                for key, svc in self._objects[services].items()
                if key != except_service
                for port in (svc.get("spec") or {}).get("ports") or []
                if isinstance(port, dict) and isinstance(port.get("nodePort"), int)
            }

    def allocate_node_port(self, exclude: Iterable[int] = ()) -> int:
        """A free nodePort picked at random, as kube-apiserver's allocator does (so that two
        local clusters on one machine rarely want the same loopback port), not in ``exclude``;
        ``node_port_free`` may refuse ports that are taken outside the store."""
        low, high = NODE_PORT_RANGE
        with self.cond:
            taken = self.node_ports_in_use() | set(exclude)
            free = [p for p in range(low, high + 1) if p not in taken]
            self._random.shuffle(free)
            for port in free:
                if self.node_port_free(port):
                    return port
            raise StatusError(
                500, "InternalError",
                f"Internal error occurred: failed to allocate a nodePort: range {low}-{high} "
                "is full",
            )  # fmt: skip

    # -- decoding -------------------------------------------------------------------------

    def _decode(self, kind: Kind, body: Any) -> Obj:
        """Check a request body's shape and type fields; a copy with kind/apiVersion set."""
        if not isinstance(body, dict):
            raise bad_request(
                "couldn't get version/kind; json parse error: the body must be a JSON object"
            )
        obj: Obj = clone(body)
        api_version, body_kind = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, "", kind.api_version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if body_kind not in (None, "", kind.kind):
            raise bad_request(
                f"the kind in the data ({body_kind}) does not match the expected kind "
                f"({kind.kind}) for {kind.api_version} {kind.plural}"
            )
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(
                "json: cannot unmarshal into Go struct field "
                f"{kind.kind}.metadata of type v1.ObjectMeta"
            )
        for name in ("name", "generateName", "namespace", "resourceVersion", "uid"):
            if name in meta and not isinstance(meta[name], str):
                raise bad_request(
                    f"json: cannot unmarshal {type(meta[name]).__name__} into Go struct field "
                    f"ObjectMeta.metadata.{name} of type string"
                )
        for name in ("labels", "annotations"):
            value = meta.get(name)
            if value is None:
                meta.pop(name, None)
                continue
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad_request(
                    f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{name} of "
                    "type map[string]string (values must be strings)"
                )
        return obj

    def _decode_fields(
        self, kind: Kind, body: Any, field_validation: str, warnings: list[str] | None
    ) -> Obj:
        """``_decode`` plus the decoder's field checks: wrong types are a 400; unknown fields
        are dropped, with a warning (Warn), silently (Ignore) or refused (Strict)."""
        obj = self._decode(kind, body)
        unknown, type_errors = check_fields(kind, obj)
        where = f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}'
        if type_errors:
            raise bad_request(f"{where}: {type_errors[0]}")
        messages = [f'unknown field "{path}"' for path in unknown]
        if messages and field_validation == "Strict":
            raise bad_request(f"{where}: strict decoding error: {', '.join(messages)}")
        if field_validation == "Warn" and warnings is not None:
            warnings.extend(messages)
        return obj

    def _check_namespace(self, kind: Kind, namespace: str, obj: Obj) -> None:
        meta = obj["metadata"]
        if not kind.namespaced:
            meta.pop("namespace", None)
            return
        body_ns = meta.get("namespace", "")
        if body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace

    def _validate(self, kind: Kind, obj: Obj, old: Obj | None = None) -> None:
        causes = _validate_meta(kind, obj)
        if kind.validate is not None:
            causes += kind.validate(obj)
        if old is not None and kind.validate_update is not None:
            causes += kind.validate_update(obj, old)
        if causes:
            raise kind.invalid(obj["metadata"].get("name", ""), causes)

    # -- writes ---------------------------------------------------------------------------

    def _commit(self, kind: Kind, event_type: str, obj: Obj, prev: Obj | None) -> Obj:
        """Store one change under the lock: next RV, stored object, history, wake watches."""
        self._rv += 1
        stored = clone(obj)
        stored["metadata"]["resourceVersion"] = str(self._rv)
        objects = self._objects[kind]
        if event_type == "DELETED":
            objects.pop(_key(stored), None)
        else:
            objects[_key(stored)] = stored
        self._events.append(Event(self._rv, event_type, kind, stored, prev))
        if len(self._events) > self._history:
            # Drop a tenth at once so compaction is not paid on every write.
            drop = max(1, self._history // 10)
            self._oldest_rv = self._events[drop - 1].rv
            del self._events[:drop]
        self.cond.notify_all()
        if event_type == "DELETED":
            for ref in stored["metadata"].get("ownerReferences") or []:
                self._finish_foreground(ref.get("uid", ""))
        return clone(stored)

    def create(
        self,
        kind: Kind,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
    ) -> Obj:
        """POST: a new object; 422 Invalid, 404 (namespace), 409 AlreadyExists as the server."""
        obj = self._decode_fields(kind, body, field_validation, warnings)
        self._check_namespace(kind, namespace, obj)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise StatusError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        for server_owned in _SERVER_OWNED:
            meta.pop(server_owned, None)
        if kind.status_subresource:
            obj.pop("status", None)
        with self.cond:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(kind, namespace, meta["generateName"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if kind.has_generation:
                meta["generation"] = 1
            if kind.default is not None:
                kind.default(obj, None, self)
            self._validate(kind, obj)
            if kind.namespaced:
                self._require_namespace(namespace)
            if _key(obj) in self._objects[kind]:
                raise StatusError(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified_resource} "{meta["name"]}" already exists',
                    {"name": meta["name"], "group": kind.group, "kind": kind.plural},
                )
            if dry_run:
                return obj
            created = self._commit(kind, "ADDED", obj, None)
            if kind is self._namespaces:
                self._create_default_service_account(meta["name"])
            return created

    def _create_default_service_account(self, namespace: str) -> None:
        # The service account controller's job, condensed: every namespace has "default".
        sa_kind = self.find_kind("", "v1", "serviceaccounts")
        if sa_kind is not None and (namespace, "default") not in self._objects[sa_kind]:
            self.create(sa_kind, namespace, {"metadata": {"name": "default"}})

    def _generate_name(self, kind: Kind, namespace: str, prefix: str) -> str:
        prefix = prefix[: max(0, 63 - 5)]
        while True:
            name = prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            if (namespace if kind.namespaced else "", name) not in self._objects[kind]:
                return name

    def _require_namespace(self, namespace: str) -> None:
        ns_kind = self.find_kind("", "v1", "namespaces")
        if ns_kind is None:
            return
        ns = self._objects[ns_kind].get(("", namespace))
        if ns is None:
            raise StatusError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if ns["metadata"].get("deletionTimestamp"):
            raise StatusError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                {"name": namespace, "kind": "namespaces"},
            )

    def _current(self, kind: Kind, namespace: str, name: str) -> Obj:
        obj = self._objects[kind].get((namespace if kind.namespaced else "", name))
        if obj is None:
            raise kind.not_found(name)
        return obj

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        """GET one object (a copy); 404 NotFound when absent."""
        with self.cond:
            return clone(self._current(kind, namespace, name))

    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
    ) -> Obj:
        """PUT: replace the object (or its status); 409 Conflict on a stale resourceVersion."""
        obj = self._decode_fields(kind, body, field_validation, warnings)
        rv = obj["metadata"].get("resourceVersion", "")
        with self.cond:
            old = self._current(kind, namespace, name)
            if not rv and not kind.unconditional_update:
                raise kind.invalid(
                    name,
                    [
                        Cause.invalid(
                            "metadata.resourceVersion", 0, "must be specified for an update"
                        )
                    ],
                )
            return self._update(
                kind=kind,
                namespace=namespace,
                name=name,
                obj=obj,
                old=old,
                rv=rv,
                subresource=subresource,
                dry_run=dry_run,
            )

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: bytes,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
    ) -> Obj:
        """PATCH with a merge, JSON or strategic merge patch (by ``content_type``)."""
        with self.cond:
            old = self._current(kind, namespace, name)
            patched = apply_patch(kind, old, body, content_type)
            obj = self._decode_fields(kind, patched, field_validation, warnings)
            # A resourceVersion in the patch is a precondition; without one, patch is unconditional.
            rv = obj["metadata"].get("resourceVersion", "")
            if rv == old["metadata"].get("resourceVersion"):
                rv = ""
            return self._update(
                kind=kind,
                namespace=namespace,
                name=name,
                obj=obj,
                old=old,
                rv=rv,
                subresource=subresource,
                dry_run=dry_run,
            )

    def wait_for_change(self, seen: int, timeout: float, stop: threading.Event) -> int:
        """Wait until the resourceVersion passes ``seen`` (or ``timeout``, or ``stop``);
        returns the resourceVersion then."""
        with self.cond:
            self.cond.wait_for(lambda: self._rv > seen or stop.is_set(), timeout)
            return self._rv

    def bind_pod(self, namespace: str, name: str, binding: Any) -> Obj:
        """POST ``pods/<name>/binding``: assign the pod to a node, once (the scheduler's
        write; ``spec.nodeName`` cannot be changed by an update)."""
        pods = self.find_kind("", "v1", "pods")
        if pods is None:
            raise not_found_path()
        target = (binding or {}).get("target") if isinstance(binding, dict) else None
        node = target.get("name") if isinstance(target, dict) else None
        if not node:
            raise invalid_error("Binding", "", "Binding", name, [Cause.required("target.name")])
        with self.cond:
            old = self._current(pods, namespace, name)
            if (old.get("spec") or {}).get("nodeName"):
                raise pods.conflict(
                    name, f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"'
                )
            if old["metadata"].get("deletionTimestamp"):
                raise pods.conflict(
                    name, f"pod {name} is being deleted, cannot be assigned to a host"
                )
            bound = clone(old)
            bound["spec"]["nodeName"] = node
            conditions = bound.setdefault("status", {}).setdefault("conditions", [])
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": _now()})  # fmt: skip
            return self._commit(pods, "MODIFIED", bound, old)

    def get_scale(self, kind: Kind, namespace: str, name: str) -> Obj:
        """GET of the ``/scale`` subresource: an autoscaling/v1 Scale."""
        with self.cond:
            return _scale_of(self._current(kind, namespace, name))

    def update_scale(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        *,
        body: Any = None,
        patch: tuple[bytes, str] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT (``body``) or PATCH (``patch``: body, content type) of ``/scale``: sets
        ``spec.replicas`` of the object; answers with the Scale after the change."""
        with self.cond:
            old = self._current(kind, namespace, name)
            current = _scale_of(old)
            scale = apply_patch(_SCALE, current, *patch) if patch is not None else body
            if not isinstance(scale, dict):
                raise bad_request("the body of a Scale update must be a Scale object")
            rv = (scale.get("metadata") or {}).get("resourceVersion", "")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise kind.conflict(name, _MODIFIED_MSG)
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise _SCALE.invalid(
                    name,
                    [
                        Cause.invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                )
            obj = clone(old)
            obj["spec"]["replicas"] = replicas
            updated = self._update(kind=kind, namespace=namespace, name=name, obj=obj, old=old,
                                   rv="", subresource="", dry_run=dry_run)  # fmt: skip
            return _scale_of(updated)

    def _update(
        self,
        *,
        kind: Kind,
        namespace: str,
        name: str,
        obj: Obj,
        old: Obj,
        rv: str,
        subresource: str,
        dry_run: bool,
    ) -> Obj:
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(kind, namespace, obj)
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise kind.conflict(name, _MODIFIED_MSG)
        if subresource == "status":
            new = clone(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
        elif kind.status_subresource:
            obj.pop("status", None)
            if "status" in old:
                obj["status"] = clone(old["status"])
        old_meta = old["metadata"]
        meta = obj["metadata"]
        for server_owned in ("uid", "creationTimestamp", "deletionTimestamp",
                             "deletionGracePeriodSeconds", "generation"):  # fmt: skip
            if server_owned in old_meta:
                meta[server_owned] = old_meta[server_owned]
            else:
                meta.pop(server_owned, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if kind.default is not None:
            kind.default(obj, old, self)
        self._validate(kind, obj, old)
        if kind.has_generation and _spec_of(obj) != _spec_of(old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if obj == old:
            # A no-op update neither bumps the resourceVersion nor makes an event.
            return clone(old)
        if dry_run:
            return obj
        if (
            meta.get("deletionTimestamp")
            and old_meta.get("finalizers")
            and not meta.get("finalizers")
        ):
            return self._commit(kind, "DELETED", obj, old)
        return self._commit(kind, "MODIFIED", obj, old)

    def delete(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        *,
        options: Obj | None = None,
        dry_run: bool = False,
    ) -> tuple[int, Obj]:
        """DELETE: (HTTP code, body). Finalizers postpone removal (202 with the object); a
        scheduled pod is deleted gracefully (marked, then removed by its node or at grace 0);
        dependents (ownerReferences) are collected by ``propagationPolicy`` like the garbage
        collector: Background (default) after the owner, Foreground before it, Orphan not."""
        options = options or {}
        with self.cond:
            old = self._current(kind, namespace, name)
            self._check_preconditions(kind, name, old, options)
            policy = _propagation_policy(options)
            if dry_run:
                return 200, clone(old) if kind.returns_deleted else _success(kind, old)
            if kind is self._namespaces:
                return 200, self._delete_namespace(kind, old)
            meta = old["metadata"]
            is_pod = kind.plural == "pods" and not kind.group
            grace = _pod_grace(old, options) if is_pod else 0
            if meta.get("deletionTimestamp"):
                if is_pod and grace == 0 and not meta.get("finalizers"):
                    self._commit(kind, "DELETED", old, old)
                    self._finish_namespace(namespace)
                    return 200, clone(old)
                return (202 if meta.get("finalizers") else 200), clone(old)
            if grace > 0:
                marked = clone(old)
                deadline = datetime.now(UTC).timestamp() + grace
                marked["metadata"]["deletionTimestamp"] = _timestamp(deadline)
                marked["metadata"]["deletionGracePeriodSeconds"] = grace
                return 200, self._commit(kind, "MODIFIED", marked, old)
            if policy == "Foreground" or meta.get("finalizers"):
                marked = clone(old)
                finalizers = list(meta.get("finalizers") or [])
                if policy == "Foreground" and _FOREGROUND not in finalizers:
                    finalizers.append(_FOREGROUND)
                marked["metadata"]["finalizers"] = finalizers
                marked["metadata"]["deletionTimestamp"] = _now()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                marked = self._commit(kind, "MODIFIED", marked, old)
                if policy != "Foreground":
                    return 202, marked
                self._foreground.add(meta["uid"])
                self._delete_dependents(meta["uid"], "Foreground")
                self._finish_foreground(meta["uid"])
                current = self._objects[kind].get(_key(old))
                if current is None:
                    return 200, clone(old) if kind.returns_deleted else _success(kind, old)
                return 200, clone(current)
            if policy == "Orphan":
                self._orphan_dependents(meta["uid"])
            self._commit(kind, "DELETED", old, old)
            if policy == "Background":
                self._delete_dependents(meta["uid"], "Background")
            return 200, clone(old) if kind.returns_deleted else _success(kind, old)

    def _dependents(self, uid: str) -> list[tuple[Kind, Obj]]:
        return [
            (kind, obj)
            for kind in self.kinds
            for obj in self._objects[kind].values()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _exists(self, uid: str) -> bool:
        return any(
            obj["metadata"].get("uid") == uid
            for kind in self.kinds
            for obj in self._objects[kind].values()
        )

    def _drop_owner(self, kind: Kind, obj: Obj, uid: str) -> None:
        changed = clone(obj)
        refs = [r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid]
        if refs:
            changed["metadata"]["ownerReferences"] = refs
        else:
            changed["metadata"].pop("ownerReferences")
        self._commit(kind, "MODIFIED", changed, obj)

    def _delete_dependents(self, uid: str, policy: str) -> None:
        for kind, obj in self._dependents(uid):
            others = [
                ref["uid"]
                for ref in obj["metadata"]["ownerReferences"]
                if ref.get("uid") != uid and self._exists(ref.get("uid", ""))
            ]
            namespace, name = _key(obj)
            if others:
                self._drop_owner(kind, obj, uid)
            elif (namespace, name) in self._objects[kind]:
                self.delete(kind, namespace, name, options={"propagationPolicy": policy})

    def _orphan_dependents(self, uid: str) -> None:
        for kind, obj in self._dependents(uid):
            self._drop_owner(kind, obj, uid)

    def _finish_foreground(self, uid: str) -> None:
        """Remove an owner in foreground deletion once its last dependent is gone."""
        if uid not in self._foreground or self._dependents(uid):
            return
        self._foreground.discard(uid)
        for kind in self.kinds:
            for obj in list(self._objects[kind].values()):
                meta = obj["metadata"]
                if meta.get("uid") != uid or _FOREGROUND not in (meta.get("finalizers") or []):
                    continue
                finished = clone(obj)
                finalizers = [f for f in meta["finalizers"] if f != _FOREGROUND]
                finished["metadata"]["finalizers"] = finalizers
                if not finalizers:
                    finished["metadata"].pop("finalizers")
                    self._commit(kind, "DELETED", finished, obj)
                else:
                    self._commit(kind, "MODIFIED", finished, obj)
                return

    def _check_preconditions(self, kind: Kind, name: str, obj: Obj, options: Obj) -> None:
        pre = options.get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise kind.conflict(
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise kind.conflict(
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )

    def _delete_namespace(self, kind: Kind, ns: Obj) -> Obj:
        name = ns["metadata"]["name"]
        if name in self.protected_namespaces:
            raise StatusError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        # Like the namespace controller, condensed: Terminating, contents deleted, then gone.
        terminating = clone(ns)
        terminating["metadata"].setdefault("deletionTimestamp", _now())
        terminating["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        terminating.setdefault("status", {})["phase"] = "Terminating"
        if terminating != ns:
            terminating = self._commit(kind, "MODIFIED", terminating, ns)
        pods = self.find_kind("", "v1", "pods")
        for other in self.kinds:
            if not other.namespaced:
                continue
            for key in sorted(k for k in self._objects[other] if k[0] == name):
                obj = self._objects[other][key]
                if other is pods and _pod_grace(obj, {}) > 0:
                    # A pod a node runs is deleted gracefully; the namespace waits for it.
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.delete(other, name, key[1])
                    continue
                self._commit(other, "DELETED", obj, obj)
        return self._finish_namespace(name) or terminating

    def _finish_namespace(self, name: str) -> Obj | None:
        """Remove a Terminating namespace once nothing is left in it (its pods were running on
        a node and had to stop first); the removed namespace, or None."""
        kind = self._namespaces
        ns = self._objects[kind].get(("", name)) if kind is not None else None
        if kind is None or ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        if any(
            k[0] == name for other in self.kinds if other.namespaced for k in self._objects[other]
        ):
            return None
        return self._commit(kind, "DELETED", ns, ns)

    def delete_collection(
        self, kind: Kind, namespace: str, options: ListOptions, *, dry_run: bool = False
    ) -> Obj:
        """DELETE on a collection: every object matching the selectors; returns them as a list."""
        selector = self._selector(kind, namespace, options)
        deleted = []
        with self.cond:
            for key in sorted(self._objects[kind]):
                obj = self._objects[kind][key]
                if selector.matches(obj):
                    _code, body = self.delete(kind, key[0], key[1], dry_run=dry_run)
                    deleted.append(obj if body.get("kind") == "Status" else body)
            return self._list_body(kind, deleted, self._rv, "", None)

    # -- reads ----------------------------------------------------------------------------

    def _selector(self, kind: Kind, namespace: str, options: ListOptions) -> Selector:
        return Selector(
            namespace if kind.namespaced else "",
            parse_label_selector(options.label_selector),
            parse_field_selector(options.field_selector, kind),
        )

    def _state_at(self, kind: Kind, rv: int) -> dict[tuple[str, str], Obj]:
        """The objects of ``kind`` as they were at ``rv`` (410 Expired if history is gone)."""
        if rv < self._oldest_rv:
            raise _expired(
                f"The resourceVersion for the provided list is too old (requested {rv}, "
                f"oldest kept {self._oldest_rv + 1})."
            )
        state = dict(self._objects[kind])
        start = bisect.bisect_right(self._events, rv, key=lambda e: e.rv)
        for event in reversed(self._events[start:]):
            if event.kind is not kind:
                continue
            key = _key(event.obj)
            if event.type == "ADDED":
                state.pop(key, None)
            elif event.prev is not None:
                state[key] = event.prev
        return state

    def _wait_for_rv(self, rv: int) -> None:
        if rv > self._rv and not self.cond.wait_for(
            lambda: self._rv >= rv, timeout=self.too_large_rv_wait
        ):
            raise StatusError(
                504,
                "Timeout",
                f"Too large resource version: {rv}, current: {self._rv}",
                {
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )

    def list_objects(self, kind: Kind, namespace: str, options: ListOptions) -> Obj:
        """LIST: selectors, ``limit``/``continue`` pages from one snapshot, resourceVersion."""
        selector = self._selector(kind, namespace, options)
        start_after: tuple[str, str] | None = None
        with self.cond:
            if options.continue_token:
                if options.resource_version not in ("", "0"):
                    raise bad_request(
                        "specifying resource version is not allowed when using continue"
                    )
                list_rv, start_after = _decode_continue(options.continue_token)
                if list_rv < self._oldest_rv:
                    raise _expired(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter."
                    )
                state = self._state_at(kind, list_rv)
            elif options.resource_version not in ("", "0"):
                wanted = _parse_rv(options.resource_version)
                self._wait_for_rv(wanted)
                if options.resource_version_match == "Exact":
                    list_rv, state = wanted, self._state_at(kind, wanted)
                else:
                    list_rv, state = self._rv, self._objects[kind]
            else:
                list_rv, state = self._rv, self._objects[kind]
            keys = sorted(k for k in state if start_after is None or k > start_after)
            items = [state[k] for k in keys if selector.matches(state[k])]
            token, remaining = "", None
            if options.limit and len(items) > options.limit:
                items = items[: options.limit]
                token = _encode_continue(list_rv, _key(items[-1]))
                if selector.empty:
                    remaining = len(keys) - keys.index(_key(items[-1])) - 1
            return self._list_body(kind, items, list_rv, token, remaining)

    def _list_body(
        self, kind: Kind, items: list[Obj], rv: int, token: str, remaining: int | None
    ) -> Obj:
        out_items = []
        for item in items:
            copy = clone(item)
            if not kind.custom:
                # Typed lists from the real server carry kind/apiVersion only on the list.
                copy.pop("kind", None)
                copy.pop("apiVersion", None)
            out_items.append(copy)
        meta: Obj = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        return {"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta,
                "items": out_items}  # fmt: skip

    # -- watches --------------------------------------------------------------------------

    def watch(self, kind: Kind, namespace: str, options: ListOptions) -> Watch:
        """Open a watch; its initial frames (synthetic ADDED, end bookmark) are taken under
        the same lock that fixes its starting point, so nothing is lost or sent twice."""
        if options.send_initial_events is not None and not self.watch_list:
            raise invalid_error(
                "ListOptions.meta.k8s.io",
                "meta.k8s.io",
                "ListOptions",
                "",
                [
                    Cause.forbidden(
                        "sendInitialEvents",
                        "sendInitialEvents is forbidden for watch unless the WatchList feature "
                        "gate is enabled",
                    )
                ],
            )
        selector = self._selector(kind, namespace, options)
        rv_param = options.resource_version
        with self.cond:
            if rv_param in ("", "0"):
                send_initial = options.send_initial_events is not False
                start = self._rv
            elif options.send_initial_events:
                self._wait_for_rv(_parse_rv(rv_param))
                send_initial, start = True, self._rv
            else:
                send_initial, start = False, _parse_rv(rv_param)
            frames: list[Obj] = []
            if not send_initial and start < self._oldest_rv:
                frames.append(
                    {
                        "type": "ERROR",
                        "object": _expired(
                            f"too old resource version: {start} ({self._oldest_rv + 1})"
                        ).status(),
                    }
                )
                return Watch(self, kind, selector, start, frames, closed=True)
            if send_initial:
                state = self._objects[kind]
                frames = [{"type": "ADDED", "object": state[k]} for k in sorted(state)
                          if selector.matches(state[k])]  # fmt: skip
                if options.send_initial_events and options.allow_bookmarks:
                    frames.append(
                        {"type": "BOOKMARK", "object": _bookmark(kind, start, initial_end=True)}
                    )
            return Watch(self, kind, selector, start, frames)

    def wake_watches(self) -> None:
        """Wake every waiting watch (used when the server stops)."""
        with self.cond:
            self.cond.notify_all()

    def _frames_after(self, watch: Watch) -> list[Obj]:
        """Under the lock: the frames of events after the watch's position, filtered."""
        if watch.position < self._oldest_rv:
            watch.closed = True
            return [
                {
                    "type": "ERROR",
                    "object": _expired(
                        f"too old resource version: {watch.position} ({self._oldest_rv + 1})"
                    ).status(),
                }
            ]
        start = bisect.bisect_right(self._events, watch.position, key=lambda e: e.rv)
        frames = []
        for event in self._events[start:]:
            if event.kind is watch.kind:
                frame = _filtered(event, watch.selector)
                if frame is not None:
                    frames.append(frame)
        watch.position = self._rv
        return frames


_FOREGROUND: Final = "foregroundDeletion"
_SCALE: Final = Kind("autoscaling", "v1", "scale", "Scale")


def _scale_of(obj: Obj) -> Obj:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": label_selector_string(spec.get("selector") or {}),
        },
    }  # fmt: skip


def _propagation_policy(options: Obj) -> str:
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    policies = ("Foreground", "Background", "Orphan")
    if policy is None:
        return "Background"
    if policy not in policies:
        raise invalid_error(
            "DeleteOptions.meta.k8s.io", "meta.k8s.io", "DeleteOptions", "",
            [Cause.not_supported("propagationPolicy", policy, policies)],
        )  # fmt: skip
    return str(policy)


def _pod_grace(pod: Obj, options: Obj) -> int:
    """Seconds of graceful deletion: 0 for a pod no node runs (deleted at once, as the real
    server does for unscheduled or finished pods)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(int(grace), 0)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _success(kind: Kind, obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": meta["name"], "group": kind.group, "kind": kind.plural,
                    "uid": meta.get("uid", "")},
    }  # fmt: skip


def _bookmark(kind: Kind, rv: int, *, initial_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}


def _filtered(event: Event, selector: Selector) -> Obj | None:
    """The frame a watch with ``selector`` sees for ``event`` (None: nothing), like the
    server's cacher: an object that starts matching is ADDED, one that stops is DELETED."""
    now = event.type != "DELETED" and selector.matches(event.obj)
    before = event.prev is not None and selector.matches(event.prev)
    if event.type == "DELETED":
        return {"type": "DELETED", "object": event.obj} if before else None
    if now and before:
        return {"type": "MODIFIED", "object": event.obj}
    if now:
        return {"type": "ADDED", "object": event.obj}
    if before and event.prev is not None:
        gone = dict(event.prev)
        gone["metadata"] = {**event.prev["metadata"], "resourceVersion": str(event.rv)}
        return {"type": "DELETED", "object": gone}
    return None


def _encode_continue(rv: int, last: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{last[0]}/{last[1]}"})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = str(data["start"]).partition("/")
        return int(data["rv"]), (namespace, name)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request(
            "continue key is not valid: the token was not issued by this server"
        ) from None


class Watch:
    """One open watch: frames to send first, then events after ``position`` as they come."""

    def __init__(
        self,
        store: ObjectStore,
        kind: Kind,
        selector: Selector,
        position: int,
        initial: list[Obj],
        *,
        closed: bool = False,
    ) -> None:
        self.store = store
        self.kind = kind
        self.selector = selector
        self.position = position
        self.initial = initial
        self.closed = closed

    def next_frames(self, timeout: float, stop: threading.Event) -> list[Obj]:
        """Frames of the events after the last call; waits up to ``timeout`` for one."""
        store = self.store
        with store.cond:
            store.cond.wait_for(lambda: store._rv > self.position or stop.is_set(), timeout)
            if stop.is_set():
                return []
            return store._frames_after(self)

    def bookmark(self) -> Obj:
        """A BOOKMARK at the position reached: every event up to it has been sent."""
        return {"type": "BOOKMARK", "object": _bookmark(self.kind, self.position)}
