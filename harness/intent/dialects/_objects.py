"""The objects in a set of manifest files, indexed, plus the shared reading context.

Reading happens in two passes: first every document becomes a ``K8sObject`` (kind, apiVersion,
name, namespace checked), then the route readers look Services, Middlewares and TraefikServices
up by namespace and name. ``Context`` carries what every reader needs (the default namespace,
the indexes, ``known_services``) and collects findings.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from harness.errors import ManifestError
from harness.intent.dialects._yaml import YNode, manifest_error
from harness.intent.model import (
    FINDING_IGNORED_OBJECT,
    Finding,
    LegacyMode,
    MatchKind,
    RequestCondition,
    RouteMiddleware,
    ServicePortRef,
    Severity,
    Source,
    WeightedBackend,
)

KnownServices = Collection[str] | Literal["*"] | None

# Kubernetes object names (DNS subdomain, RFC 1123) and namespaces (DNS label).
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

API_INGRESS_V1 = "networking.k8s.io/v1"
LEGACY_INGRESS_APIS = ("extensions/v1beta1", "networking.k8s.io/v1beta1")
TRAEFIK_GROUP = "traefik.io/v1alpha1"
TRAEFIK_OLD_GROUP = "traefik.containo.us/v1alpha1"

#: kind → apiVersions the harness reads.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "Ingress": (API_INGRESS_V1, *LEGACY_INGRESS_APIS),
    "IngressRoute": (TRAEFIK_GROUP, TRAEFIK_OLD_GROUP),
    "Middleware": (TRAEFIK_GROUP, TRAEFIK_OLD_GROUP),
    "TraefikService": (TRAEFIK_GROUP, TRAEFIK_OLD_GROUP),
    "Service": ("v1",),
    "IngressClass": (API_INGRESS_V1, "networking.k8s.io/v1beta1"),
    # Gateway API, at the versions Traefik 3.7's Gateway provider watches.
    "GatewayClass": ("gateway.networking.k8s.io/v1",),
    "Gateway": ("gateway.networking.k8s.io/v1",),
    "HTTPRoute": ("gateway.networking.k8s.io/v1",),
    "ReferenceGrant": ("gateway.networking.k8s.io/v1beta1",),
}

#: Kinds that often share a file with routing objects but do not affect routing: skipped with
#: an informational finding (a typo such as ``Ingres`` is still an error).
IGNORED_KINDS = frozenset(
    {
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Pod",
        "Job",
        "CronJob",
        "ConfigMap",
        "Secret",
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Endpoints",
        "EndpointSlice",
        "CustomResourceDefinition",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        # Traefik CRDs outside HTTP routing.
        "IngressRouteTCP",
        "IngressRouteUDP",
        "MiddlewareTCP",
        "TLSOption",
        "TLSStore",
        "ServersTransport",
        "ServersTransportTCP",
    }
)


@dataclass(frozen=True)
class K8sObject:
    """One Kubernetes object from a manifest, with its positioned document."""

    api_version: str
    kind: str
    name: str
    namespace: str
    doc: YNode
    annotations: tuple[tuple[str, YNode], ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def annotation(self, key: str) -> YNode | None:
        for k, v in self.annotations:
            if k == key:
                return v
        return None


def read_object(doc: YNode, default_namespace: str) -> K8sObject | None:
    """Check a document's kind, apiVersion and metadata; None for kinds that are skipped."""
    kind = doc.require("kind", "Add 'kind' (e.g. Ingress)").string("a kind")
    api = doc.require("apiVersion", "Add 'apiVersion' (e.g. networking.k8s.io/v1)").string(
        "an apiVersion"
    )
    meta = doc.require("metadata", "Add metadata with a name")
    name_node = meta.require("name", "Give the object a name")
    name = name_node.string("a name")
    if not _DNS_NAME.match(name):
        name_node.fail(
            f"name {name!r} is not a valid Kubernetes object name (lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters); "
            "a Kubernetes API server refuses it",
            "Give the object a valid name",
        )
    ns_node = meta.get("namespace")
    namespace = ns_node.string("a namespace") if ns_node is not None else default_namespace
    if ns_node is not None and not _DNS_LABEL.match(namespace):
        ns_node.fail(
            f"namespace {namespace!r} is not a valid namespace name (a DNS label: lowercase "
            "letters, digits and '-', at most 63 characters)",
            "Fix the namespace",
        )
    doc = doc.with_object(kind, name)
    if kind in IGNORED_KINDS:
        return K8sObject(api, kind, name, namespace, doc, ())
    if kind not in SUPPORTED:
        supported = ", ".join(sorted(SUPPORTED))
        doc.require("kind").with_object(kind, name).fail(
            f"unknown kind {kind!r}",
            f"The harness reads {supported} (and skips workload kinds such as Deployment); "
            "fix the kind or move the object to another file",
        )
    if api not in SUPPORTED[kind]:
        doc.require("apiVersion").with_object(kind, name).fail(
            f"unknown apiVersion {api!r} for {kind}",
            f"Use one of: {', '.join(SUPPORTED[kind])}",
        )
    annotations: list[tuple[str, YNode]] = []
    ann_node = doc.require("metadata").get("annotations")
    if ann_node is not None:
        for key, value in ann_node.mapping():
            value.string(f"a string (annotation values are strings; quote {key!r}'s value)")
            annotations.append((key, value))
    return K8sObject(api, kind, name, namespace, doc, tuple(annotations))


@dataclass
class ServiceObject:
    """A Service from the manifests: its ports (name, number)."""

    obj: K8sObject
    ports: tuple[ServicePortRef, ...]


@dataclass
class Context:
    """Shared state while reading one set of manifests."""

    namespace: str
    known_services: KnownServices
    #: False: read the manifests as Traefik v3 does, ignoring the Traefik 1.x annotations and
    #: the traefik.containo.us group (what applying them as written makes Traefik serve).
    read_legacy: bool = True
    #: How legacy forms are verified; findings about them say what the harness does.
    legacy_mode: LegacyMode = "translate"
    objects: list[K8sObject] = field(default_factory=list)
    services: dict[tuple[str, str], ServiceObject] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    # Ports referenced per undeclared Service, for ServiceRef.
    referenced: dict[tuple[str, str], dict[int | str | None, None]] = field(default_factory=dict)
    #: HTTPRoutes (namespace, name) with a backendRef no ReferenceGrant permits.
    refs_not_permitted: dict[tuple[str, str], None] = field(default_factory=dict)

    def renders(self, what: str) -> str:
        """What happens to a legacy form, for a finding: ``what`` is its v3 translation."""
        if self.legacy_mode == "translate":
            return f"the harness renders it as {what} (--legacy translate)"
        return (
            f"applied as written, so it is not in effect and the checks that depend on it fail "
            f"(--legacy translate would render it as {what})"
        )

    def find(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.namespace == namespace and obj.name == name:
                return obj
        return None

    def of_kind(self, kind: str) -> list[K8sObject]:
        return [o for o in self.objects if o.kind == kind]

    def note(
        self,
        kind: str,
        message: str,
        source: Source | None,
        severity: Severity = "warning",
    ) -> None:
        finding = Finding(kind, message, source, severity)
        if finding not in self.findings:
            self.findings.append(finding)

    def backend(
        self,
        namespace: str,
        name: str,
        port: int | str | None,
        *,
        name_at: YNode,
        port_at: YNode,
        weight: int = 1,
    ) -> WeightedBackend:
        """A backend reference checked against the Services in the manifests.

        A Service in the manifests: the port must be one of its ports (named ports resolve to the
        number). Otherwise the Service must be vouched for by ``known_services``.
        """
        svc = self.services.get((namespace, name))
        if svc is not None:
            names = (
                ", ".join(f"{p.name}={p.number}" if p.name else str(p.number) for p in svc.ports)
                or "none"
            )
            if port is None:
                if len(svc.ports) == 1:
                    return WeightedBackend(name, svc.ports[0].number, weight)
                port_at.fail(
                    f"no port given for Service {name!r}, which has several ports ({names})",
                    "Name the port",
                )
            for p in svc.ports:
                if (isinstance(port, int) and p.number == port) or (
                    isinstance(port, str) and p.name == port
                ):
                    return WeightedBackend(name, p.number, weight)
            port_at.fail(
                f"port {port!r} is not a port of Service {name!r} (ports: {names}, "
                f"declared at {svc.obj.doc.file}:{svc.obj.doc.line})",
                "Use one of the Service's port names or numbers",
            )
        known = self.known_services
        if known == "*" or (known is not None and name in known):
            self.referenced.setdefault((namespace, name), {})[port] = None
            return WeightedBackend(name, port, weight)
        name_at.fail(
            f"backend Service {name!r} (namespace {namespace!r}) is not in the manifests",
            "Add its Service object to one of the --manifests files, or fix the name",
        )


def check_duplicates(objects: list[K8sObject]) -> None:
    """Two objects with the same kind, namespace and name: the later would replace the earlier
    on apply, so the intent would be ambiguous."""
    seen: dict[tuple[str, str, str], K8sObject] = {}
    for obj in objects:
        if obj.kind in IGNORED_KINDS:
            continue
        first = seen.get(obj.key)
        if first is not None:
            raise manifest_error(
                obj.doc.source(),
                f"{obj.kind} {obj.name!r} in namespace {obj.namespace!r} is declared twice "
                f"(first at {first.doc.file}:{first.doc.line})",
                "Rename one of them, or load the two files as separate scenarios",
            )
        seen[obj.key] = obj


def read_service(obj: K8sObject) -> ServiceObject:
    spec = obj.doc.require("spec", "Add a spec with ports")
    svc_type = spec.get("type")
    if svc_type is not None and svc_type.string("a Service type") == "ExternalName":
        raise manifest_error(
            svc_type.source(),
            "ExternalName Services are not supported by the harness (Traefik rejects them by "
            "default)",
            "Use a ClusterIP Service",
        )
    ports: list[ServicePortRef] = []
    ports_node = spec.require("ports", "List the Service's ports")
    for entry in ports_node.sequence():
        number = entry.require("port", "Give the port number").integer("a port number")
        if not 0 < number < 65536:
            entry.require("port").fail(f"port {number} is out of range", "Use 1..65535")
        name_node = entry.get("name")
        ports.append(ServicePortRef(name_node.string("a port name") if name_node else None, number))
    return ServiceObject(obj, tuple(ports))


@dataclass
class Draft:
    """A route before ids are assigned (see ``harness.intent.model.Route`` for the fields)."""

    obj: K8sObject
    host: str | None
    path: str | None
    match: MatchKind
    middlewares: tuple[RouteMiddleware, ...]
    priority: int | None
    backends: tuple[WeightedBackend, ...]
    provider: str
    source: Source
    dialects: tuple[str, ...]
    path_type: str | None = None
    match_rule: str | None = None
    ingress_class: str | None = None
    id_hint: str = ""
    entry_points: tuple[str, ...] | None = None
    tls: bool = False
    tls_secrets: tuple[str, ...] = ()
    conditions: tuple[RequestCondition, ...] = ()
    #: Why Traefik does not serve this route (an Ingress of another class); empty: served.
    unserved: str = ""


def ignored(ctx: Context, obj: K8sObject) -> None:
    ctx.note(
        FINDING_IGNORED_OBJECT,
        f"{obj.kind} {obj.name!r} does not affect HTTP routing; the harness skips it",
        obj.doc.source(),
        "info",
    )


__all__ = [
    "API_INGRESS_V1",
    "IGNORED_KINDS",
    "LEGACY_INGRESS_APIS",
    "SUPPORTED",
    "TRAEFIK_GROUP",
    "TRAEFIK_OLD_GROUP",
    "Context",
    "Draft",
    "K8sObject",
    "KnownServices",
    "ManifestError",
    "ServiceObject",
    "check_duplicates",
    "ignored",
    "read_object",
    "read_service",
]
