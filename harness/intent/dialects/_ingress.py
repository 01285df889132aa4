"""Kubernetes Ingress as intent: networking.k8s.io/v1 with Traefik v3 annotations, the legacy
extensions/v1beta1 form, and the Traefik 1.x annotations of older tutorials.

What Traefik 3.7's Ingress provider does (pkg/provider/kubernetes/ingress/kubernetes.go):
one router per path, rule ``Host("h") && PathPrefix("/p")``; ``pathType`` Exact → ``Path``,
Prefix → ``PathPrefix``, ImplementationSpecific/unset → the ``router.pathmatcher`` annotation
(``Path``, ``PathPrefix`` or ``PathRegexp``, then the path is a Go pattern), else
``PathPrefix``; ``router.priority`` and ``router.middlewares`` apply to every path of the
Ingress; an annotation that cannot be parsed makes Traefik skip the whole Ingress; two paths of
one Ingress with the same host, path and rule collide on the router key and the last one wins.

Traefik 1.x annotations (``traefik.frontend.rule.type``, ``traefik.ingress.kubernetes.io/
rule-type``/``priority``/``service-weights``) are ignored by v2/v3 as written. They are read as
what the author meant and translated when rendered (a stripPrefix Middleware, ``router.priority``,
a weighted TraefikService), each with a finding. ``service-weights`` follows Traefik 1.7
(provider/kubernetes/weight_allocator.go, percentage.go): per host and path, percentages with up
to 3 decimals, ``%`` optional, adding up to 100%; services left out share the remainder.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import yaml

from harness.intent.dialects._crd import route_middlewares
from harness.intent.dialects._fields import (
    INGRESS_V1,
    INGRESS_V1BETA1,
    check_fields,
    check_router_annotations,
)
from harness.intent.dialects._objects import API_INGRESS_V1, Context, Draft, K8sObject
from harness.intent.dialects._yaml import YNode, manifest_error
from harness.intent.model import (
    DIALECT_INGRESS_V1,
    DIALECT_INGRESS_V1BETA1,
    DIALECT_TRAEFIK_V1_ANNOTATIONS,
    DIALECT_TRAEFIK_V3_ANNOTATIONS,
    FINDING_DUPLICATE_ROUTER,
    FINDING_INGRESS_CLASS,
    FINDING_LEGACY_ANNOTATION,
    FINDING_LEGACY_API,
    FINDING_MISSING_PATH_TYPE,
    FINDING_NOT_MODELED,
    FINDING_TLS_WITHOUT_ROUTER_TLS,
    FINDING_WEIGHTS,
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    TRAEFIK_CONTROLLER,
    MatchKind,
    RouteMiddleware,
    Source,
    WeightedBackend,
)
from harness.traefik.goregexp import GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import StripPrefix

V3 = "traefik.ingress.kubernetes.io/"
ANN_PRIORITY = V3 + "router.priority"
ANN_MIDDLEWARES = V3 + "router.middlewares"
ANN_PATHMATCHER = V3 + "router.pathmatcher"
#: ``router.pathmatcher`` values and the match kind they give an ImplementationSpecific path.
_PATH_MATCHERS: dict[str, MatchKind] = {
    "Path": "exact",
    "PathPrefix": "prefix",
    "PathRegexp": "regex",
}
ANN_ENTRYPOINTS = V3 + "router.entrypoints"
ANN_TLS = V3 + "router.tls"
ANN_RULESYNTAX = V3 + "router.rulesyntax"
ANN_CLASS = "kubernetes.io/ingress.class"
ANN_DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"

# Traefik 1.7 looked these up in this order (annotations.go, getAnnotationName).
LEGACY_RULE_TYPE = (
    V3 + "rule-type",
    "ingress.kubernetes.io/rule-type",
    "traefik.frontend.rule.type",
)
LEGACY_PRIORITY = (V3 + "priority", "ingress.kubernetes.io/priority", "traefik.frontend.priority")
LEGACY_WEIGHTS = (V3 + "service-weights", "ingress.kubernetes.io/service-weights")
_LEGACY_PREFIXES = ("traefik.frontend.", "traefik.backend.", "ingress.kubernetes.io/", V3)

_RULE_TYPES: dict[str, tuple[MatchKind, bool]] = {
    "PathPrefixStrip": ("prefix", True),
    "PathPrefix": ("prefix", False),
    "PathStrip": ("exact", True),
    "Path": ("exact", False),
}
_RULE_TYPE_RENDERING = {
    "PathPrefixStrip": "pathType Prefix (PathPrefix) plus a stripPrefix Middleware",
    "PathPrefix": "pathType Prefix (PathPrefix)",
    "PathStrip": "pathType Exact (Path) plus a stripPrefix Middleware",
    "Path": "pathType Exact (Path)",
}
HOST_PATTERN = _HOST = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_INT = re.compile(r"^[+-]?\d+$")
_PERCENT = re.compile(r"^(\d+)(?:\.(\d+))?\s*%?$")
_MAX_PRIORITY = 2**63 - 1 - 1000  # Traefik's maxUserPriority on 64-bit (router.go).
_MIN_INT32 = -(2**31)


@dataclass
class _Settings:
    """Ingress-wide settings from annotations (they apply to every path)."""

    priority: int | None = None
    middlewares: list[RouteMiddleware] = field(default_factory=list)
    pathmatcher: str | None = None
    rule_type: tuple[str, YNode] | None = None
    weights: tuple[dict[str, tuple[Fraction, Source]], YNode] | None = None
    dialects: list[str] = field(default_factory=list)
    ingress_class: str | None = None
    entry_points: tuple[str, ...] | None = None
    tls: bool = False
    tls_secrets: tuple[str, ...] = ()


#: Go's strconv.ParseBool, which Traefik's annotation parser uses.
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def read_ingress(ctx: Context, obj: K8sObject) -> list[Draft]:
    """The routes of one Ingress (any of the three API versions)."""
    legacy = obj.api_version != API_INGRESS_V1
    check_fields(ctx, obj, INGRESS_V1BETA1 if legacy else INGRESS_V1)
    spec = obj.doc.require("spec", "Add spec.rules")
    settings = _Settings()
    settings.dialects.append(DIALECT_INGRESS_V1BETA1 if legacy else DIALECT_INGRESS_V1)
    if legacy:
        ctx.note(
            FINDING_LEGACY_API,
            f"Ingress {obj.name!r} uses {obj.api_version}, removed in Kubernetes 1.22; the "
            "harness converts it to networking.k8s.io/v1 (serviceName/servicePort become "
            "service.name/service.port, pathType comes from the rule type)",
            obj.doc.require("apiVersion").source(),
        )
    unserved = _ingress_class(ctx, obj, spec, settings)
    _annotations(ctx, obj, settings)
    _tls_section(ctx, obj, spec, settings)

    drafts: list[Draft] = []
    rules = spec.get("rules")
    for rule in rules.sequence() if rules is not None else []:
        host_node = rule.get("host")
        host = host_node.string("a host name") if host_node is not None else None
        if host is not None and not _HOST.match(host):
            host_node.fail(  # type: ignore[union-attr]
                f"host {host!r} is not a lowercase DNS name (optionally '*.' wildcard, no port)",
                "Write the host in lowercase without a port, e.g. cheeses.minikube",
            )
        http = rule.get("http")
        if http is None:
            ctx.note(
                FINDING_NOT_MODELED,
                "rule without http paths: Traefik ignores it",
                rule.source(),
                "info",
            )
            continue
        for entry in http.require("paths", "List the paths").sequence():
            drafts.append(_path_draft(ctx, obj, entry, settings, legacy=legacy, host=host or None))

    default = spec.get("backend" if legacy else "defaultBackend")
    if default is not None:
        if drafts:
            ctx.note(
                FINDING_NOT_MODELED,
                f"Ingress {obj.name!r} has rules, so Traefik ignores its default backend",
                default.source(),
            )
        else:
            backend = _backend(ctx, obj, legacy, default)
            drafts.append(
                Draft(
                    obj=obj,
                    host=None,
                    path="/",
                    match="prefix",
                    middlewares=tuple(settings.middlewares),
                    # Traefik's default-backend router: PathPrefix("/") at MinInt32 (kubernetes.go).
                    priority=_MIN_INT32,
                    backends=(backend,),
                    provider=PROVIDER_INGRESS,
                    source=default.source(),
                    dialects=tuple(settings.dialects),
                    path_type="Prefix",
                    ingress_class=settings.ingress_class,
                    id_hint="default-backend",
                    entry_points=settings.entry_points,
                    tls=settings.tls,
                    tls_secrets=settings.tls_secrets,
                )
            )
    if not drafts:
        ctx.note(FINDING_NOT_MODELED, f"Ingress {obj.name!r} declares no routes", obj.doc.source())
    grouped = _group(ctx, obj, drafts, settings)
    if unserved is not None:
        # Traefik does not serve them: kept so that probes check their requests are not routed.
        return [dataclasses.replace(d, unserved=unserved) for d in grouped]
    return grouped


def _ingress_class(ctx: Context, obj: K8sObject, spec: YNode, settings: _Settings) -> str | None:
    """Why Traefik (default configuration: no ``providers.kubernetesIngress.ingressClass``)
    does not serve this Ingress, or None when it does (ingress/kubernetes.go
    ``shouldProcessIngress``): a ``spec.ingressClassName`` must name an IngressClass of
    controller ``traefik.io/ingress-controller``; without one, the ``kubernetes.io/ingress.class``
    annotation must be absent, empty or ``traefik``."""
    name_node = spec.get("ingressClassName")
    if name_node is None:
        _default_class(ctx, obj)
    if name_node is not None:
        name = name_node.string("an IngressClass name")
        settings.ingress_class = name
        klass = next((o for o in ctx.of_kind("IngressClass") if o.name == name), None)
        if klass is None:
            ctx.note(
                FINDING_INGRESS_CLASS,
                f"Ingress {obj.name!r} names IngressClass {name!r}, which is not in the "
                f"manifests: Traefik serves it only if the cluster has an IngressClass {name!r} "
                f"with controller {TRAEFIK_CONTROLLER}; the harness assumes it does (the local "
                "target supplies it, as Traefik's Helm chart installs one)",
                name_node.source(),
                "info",
            )
            return None
        controller_node = klass.doc.require("spec").get("controller")
        controller = controller_node.string() if controller_node is not None else ""
        if controller != TRAEFIK_CONTROLLER:
            reason = (
                f"Ingress {obj.name!r} uses IngressClass {name!r} of controller {controller!r}, "
                f"not {TRAEFIK_CONTROLLER}: Traefik does not serve it (its requests must not "
                "reach its backends)"
            )
            ctx.note(FINDING_INGRESS_CLASS, reason, name_node.source())
            return reason
        return None
    ann = obj.annotation(ANN_CLASS)
    if ann is not None:
        value = ann.string()
        settings.ingress_class = value or None
        if value not in ("", "traefik"):
            reason = (
                f"Ingress {obj.name!r} has {ANN_CLASS}: {value!r}; Traefik with its default "
                "configuration serves only class 'traefik' (or none): not served (its requests "
                "must not reach its backends)"
            )
            ctx.note(FINDING_INGRESS_CLASS, reason, ann.source())
            return reason
    return None


def _default_class(ctx: Context, obj: K8sObject) -> None:
    """An Ingress without ``spec.ingressClassName`` gets the default IngressClass's name from
    the API server's DefaultIngressClass admission; the local API does not do that, so a
    default class of another controller (which a cluster would give this Ingress, and Traefik
    would then not serve it) cannot be verified as written."""
    defaults = [
        klass
        for klass in ctx.of_kind("IngressClass")
        if (node := klass.annotation(ANN_DEFAULT_CLASS)) is not None
        and node.string().strip().lower() == "true"
    ]
    if not defaults or obj.annotation(ANN_CLASS) is not None:
        return
    if len(defaults) > 1:
        names = ", ".join(repr(k.name) for k in defaults)
        defaults[1].doc.require("metadata").require("annotations").require(ANN_DEFAULT_CLASS).fail(
            f"more than one default IngressClass ({names}): an API server refuses Ingresses "
            "without a class then",
            "Mark one IngressClass as the default",
        )
    klass = defaults[0]
    controller_node = klass.doc.require("spec").get("controller")
    controller = controller_node.string() if controller_node is not None else ""
    if controller != TRAEFIK_CONTROLLER:
        obj.doc.require("spec").fail(
            f"Ingress {obj.name!r} has no spec.ingressClassName, so a cluster gives it the "
            f"default IngressClass {klass.name!r} (controller {controller!r}) and Traefik does "
            "not serve it; the harness's local API does not run that admission step",
            f"Set spec.ingressClassName: {klass.name} (then it is verified as not served) or "
            "name a Traefik IngressClass",
        )


def _first(obj: K8sObject, keys: tuple[str, ...]) -> tuple[str, YNode] | None:
    for key in keys:
        node = obj.annotation(key)
        if node is not None:
            return key, node
    return None


def _parse_priority(node: YNode, key: str) -> int | None:
    text = node.string().strip()
    if not _INT.match(text):
        node.fail(
            f"priority {text!r} is not a whole number (Traefik skips the whole Ingress when an "
            "annotation cannot be parsed)",
            f'Write a number, e.g. {key}: "10"',
        )
    value = int(text)
    if value > _MAX_PRIORITY:
        node.fail(
            f"priority {value} exceeds Traefik's maximum {_MAX_PRIORITY}", "Use a smaller number"
        )
    return value or None  # 0 means "default" in Traefik.


def _annotations(ctx: Context, obj: K8sObject, settings: _Settings) -> None:
    v3_used = False
    node = obj.annotation(ANN_PRIORITY)
    if node is not None:
        settings.priority = _parse_priority(node, ANN_PRIORITY)
        v3_used = True
    node = obj.annotation(ANN_MIDDLEWARES)
    if node is not None:
        v3_used = True
        for ref in (r.strip() for r in node.string().split(",")):
            if not ref:
                continue
            settings.middlewares += _middleware_ref(ctx, obj, ref, node)
    node = obj.annotation(ANN_PATHMATCHER)
    if node is not None:
        v3_used = True
        value = node.string().strip()
        if value not in _PATH_MATCHERS:
            node.fail(
                f"invalid router.pathmatcher {value!r} (Traefik skips such paths)",
                "Use Path, PathPrefix or PathRegexp",
            )
        settings.pathmatcher = value
    node = obj.annotation(ANN_ENTRYPOINTS)
    if node is not None:
        settings.entry_points = entry_point_names(node, ANN_ENTRYPOINTS)
    node = obj.annotation(ANN_TLS)
    if node is not None:
        value = node.string().strip()
        if value not in _GO_BOOLS:
            node.fail(
                f"{ANN_TLS} {value!r} is not a boolean (Traefik skips the whole Ingress when an "
                "annotation cannot be parsed)",
                f'Write {ANN_TLS}: "true" or "false"',
            )
        settings.tls = _GO_BOOLS[value]
    node = obj.annotation(ANN_RULESYNTAX)
    if node is not None:
        _rule_syntax(node)
    check_router_annotations(ctx, obj)
    if any(k.startswith((V3 + "router.", V3 + "service.")) for k, _ in obj.annotations):
        v3_used = True
    if v3_used:
        settings.dialects.append(DIALECT_TRAEFIK_V3_ANNOTATIONS)
    if ctx.read_legacy:
        _legacy_annotations(ctx, obj, settings)


def entry_point_names(node: YNode, field_name: str) -> tuple[str, ...]:
    """``router.entrypoints`` (comma-separated) as entry point names; refused when empty."""
    names = tuple(n.strip() for n in node.string().split(",") if n.strip())
    if not names:
        node.fail(
            f"{field_name} names no entry point",
            "Name entry points (e.g. websecure), or remove the field to serve the route on all",
        )
    return names


def _tls_section(ctx: Context, obj: K8sObject, spec: YNode, settings: _Settings) -> None:
    """``spec.tls``: the Secrets Traefik loads as certificates. It does not make the routers TLS
    routers (only ``router.tls`` or entry-point TLS does), which a reader of the Ingress spec
    would expect: a finding says so."""
    tls = spec.get("tls")
    if tls is None:
        return
    names: list[str] = []
    for entry in tls.sequence():
        secret = entry.get("secretName")
        if secret is not None and secret.string("a Secret name") not in names:
            names.append(secret.string())
    settings.tls_secrets = tuple(names)
    if not settings.tls:
        ctx.note(
            FINDING_TLS_WITHOUT_ROUTER_TLS,
            f'Ingress {obj.name!r} has spec.tls but not {ANN_TLS}: "true": Traefik loads the '
            "certificates, but serves its routes over plain HTTP only (HTTPS gets 404) unless the "
            "entry point has TLS of its own (entryPoints.<name>.http.tls, as Traefik's Helm chart "
            "sets for websecure); the Ingress spec means them to be served over TLS",
            tls.source(),
        )


def _rule_syntax(node: YNode) -> None:
    """``router.rulesyntax``: ``v3`` is Traefik 3.7's default and changes nothing; ``v2`` makes
    the provider write and parse the rule the v2 way (a wildcard host as a ``HostRegexp``,
    ``PathPrefix`` taking regular expressions), which the oracle does not model."""
    value = node.string().strip()
    if value == "v3":
        return
    if value == "v2":
        node.fail(
            "router.rulesyntax v2 matches differently (a wildcard host becomes a HostRegexp, "
            "PathPrefix takes regular expressions) and is not modeled by the harness",
            "Remove router.rulesyntax or set it to v3 (the default)",
        )
    node.fail(
        f"invalid router.rulesyntax {value!r} (Traefik knows v2 and v3)",
        "Remove router.rulesyntax or set it to v3 (the default)",
    )


def _middleware_ref(
    ctx: Context, obj: K8sObject, ref: str, node: YNode
) -> tuple[RouteMiddleware, ...]:
    if "@" not in ref:
        node.fail(
            f"middleware reference {ref!r} has no provider: the Ingress provider would look it up "
            "among its own middlewares, and it has none",
            "Write it as <namespace>-<name>@kubernetescrd, e.g. "
            f"{obj.namespace}-{ref}@kubernetescrd",
        )
    name, provider = ref.rsplit("@", 1)
    if provider != "kubernetescrd":
        node.fail(
            f"middleware {ref!r} comes from provider {provider!r}, whose middlewares are not in "
            "the manifests: the harness cannot say what it does to traffic",
            "Reference a Middleware of the manifests as <namespace>-<name>@kubernetescrd",
        )
    # The Ingress provider names a CRD Middleware by id, in any namespace (no cross-namespace
    # restriction applies to it).
    candidates = ctx.of_kind("Middleware")
    for mw in candidates:
        if f"{mw.namespace}-{mw.name}" == name:
            return route_middlewares(ctx, mw.namespace, mw.name, node)
    known = ", ".join(f"{m.namespace}-{m.name}@kubernetescrd" for m in candidates) or "none"
    node.fail(
        f"no Middleware in the manifests matches {ref!r} (references are "
        f"<namespace>-<name>@kubernetescrd; in the manifests: {known})",
        "Add the Middleware to the manifest files or fix the reference",
    )


def _legacy_annotations(ctx: Context, obj: K8sObject, settings: _Settings) -> None:
    used: set[str] = set()
    found = _first(obj, LEGACY_RULE_TYPE)
    if found is not None:
        key, node = found
        used.add(key)
        value = node.string().strip()
        if value not in _RULE_TYPES:
            node.fail(
                f"Traefik 1.x rule type {value!r} is not supported by the harness",
                f"Use one of {', '.join(_RULE_TYPES)}",
            )
        settings.rule_type = (value, node)
        ctx.note(
            FINDING_LEGACY_ANNOTATION,
            f"Traefik v2/v3 ignore {key}: {value}; " + ctx.renders(_RULE_TYPE_RENDERING[value]),
            node.source(),
        )
    found = _first(obj, LEGACY_PRIORITY)
    if found is not None:
        key, node = found
        used.add(key)
        legacy_priority = _parse_priority(node, key)
        if settings.priority is not None:
            ctx.note(
                FINDING_LEGACY_ANNOTATION,
                f"both {ANN_PRIORITY} and the Traefik 1.x {key} are set; Traefik v3 uses the first",
                node.source(),
            )
        else:
            settings.priority = legacy_priority
            ctx.note(
                FINDING_LEGACY_ANNOTATION,
                f"Traefik v2/v3 ignore {key}; " + ctx.renders(ANN_PRIORITY),
                node.source(),
            )
    found = _first(obj, LEGACY_WEIGHTS)
    if found is not None:
        key, node = found
        used.add(key)
        settings.weights = (_parse_weights(node, key), node)
    if used:
        settings.dialects.append(DIALECT_TRAEFIK_V1_ANNOTATIONS)
    if (
        settings.rule_type is not None
        and settings.rule_type[0].endswith("Strip")
        and any(isinstance(m.model, StripPrefix) for m in settings.middlewares)
    ):
        settings.rule_type[1].fail(
            "both a Traefik 1.x strip rule type and a v3 stripPrefix middleware are set",
            "Keep one of them (a v3 proxy uses only the middleware)",
        )
    for key, node in obj.annotations:
        if key in used or key.startswith((V3 + "router.", V3 + "service.")):
            continue
        if key.startswith(_LEGACY_PREFIXES):
            ctx.note(
                FINDING_LEGACY_ANNOTATION,
                f"annotation {key} is not read by Traefik v2/v3 and not translated by the harness",
                node.source(),
            )


def legacy_annotation_keys(obj: K8sObject) -> list[str]:
    """The Traefik 1.x annotations of an object (Traefik v2/v3 ignore every one of them)."""
    named = {*LEGACY_RULE_TYPE, *LEGACY_PRIORITY, *LEGACY_WEIGHTS}
    return [
        key for key, _ in obj.annotations if key in named or key.startswith(_LEGACY_PREFIXES[:3])
    ]


def _parse_weights(node: YNode, key: str) -> dict[str, tuple[Fraction, Source]]:
    """``service: NN.NNN%`` entries of a service-weights annotation, each with its file line."""
    text = node.string()
    src = node.source()

    def at(inner_line: int, suffix: str = "") -> Source:
        return Source(
            src.file,
            src.document,
            node.block_line(inner_line),
            src.field + suffix,
            src.kind,
            src.name,
        )

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) if mark is not None else 0
        raise manifest_error(
            at(line),
            f"the {key} value is not valid YAML ({exc.problem})",
            "Write one 'service: NN%' per line",
        ) from None
    if not isinstance(root, yaml.MappingNode) or not root.value:
        node.fail(
            f"{key} must be a YAML mapping of service: percentage",
            "Write one 'service: NN%' per line",
        )
    out: dict[str, tuple[Fraction, Source]] = {}
    for key_node, value_node in root.value:
        service = str(key_node.value)
        where = at(int(value_node.start_mark.line), f".{service}")
        raw = str(value_node.value).strip() if isinstance(value_node, yaml.ScalarNode) else ""
        if raw.startswith("-"):
            raise manifest_error(
                where, f"weight {raw!r} for {service!r} is negative", "Use 0% to 100%"
            )
        m = _PERCENT.match(raw)
        if m is None:
            raise manifest_error(
                where,
                f"weight {raw!r} for {service!r} is not a percentage",
                "Write it like 75% or 12.5% (up to 3 decimals)",
            )
        if m.group(2) is not None and len(m.group(2)) > 3:
            raise manifest_error(
                where,
                f"weight {raw!r} for {service!r} has more than 3 decimals (Traefik 1.x dropped "
                "the rest silently)",
                "Round it to at most 3 decimals",
            )
        percent = Fraction(Decimal(raw.rstrip("% ")))
        if percent > 100:
            raise manifest_error(
                where, f"weight {raw!r} for {service!r} exceeds 100%", "Use 0% to 100%"
            )
        if service in out:
            raise manifest_error(
                where, f"service {service!r} is listed twice", "List each service once"
            )
        out[service] = (percent, where)
    return out


def ingress_backend(ctx: Context, obj: K8sObject, backend: YNode) -> WeightedBackend:
    """A networking.k8s.io/v1 path's ``backend``, checked against the manifests' Services."""
    return _backend(ctx, obj, False, backend)


def _backend(ctx: Context, obj: K8sObject, legacy: bool, backend: YNode) -> WeightedBackend:
    if legacy:
        name_node = backend.require("serviceName", "Name the backend Service")
        name = name_node.string("a Service name")
        port_node = backend.require("servicePort", "Give the Service port (number or name)")
        port = port_node.int_or_string("a Service port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        return ctx.backend(obj.namespace, name, port, name_at=name_node, port_at=port_node)
    if backend.get("resource") is not None:
        backend.require("resource").fail(
            "resource backends are not supported by Traefik", "Use backend.service"
        )
    service = backend.require("service", "Add backend.service with name and port")
    name_node = service.require("name", "Name the backend Service")
    name = name_node.string("a Service name")
    port_spec = service.require("port", "Add port.number or port.name")
    number = port_spec.get("number")
    pname = port_spec.get("name")
    if (number is None) == (pname is None):
        port_spec.fail("give exactly one of port.number and port.name", "Keep one of them")
    if number is not None:
        number_value = number.integer("a port number")
        return ctx.backend(obj.namespace, name, number_value, name_at=name_node, port_at=number)
    assert pname is not None
    name_value = pname.string("a port name")
    return ctx.backend(obj.namespace, name, name_value, name_at=name_node, port_at=pname)


def _path_draft(
    ctx: Context,
    obj: K8sObject,
    entry: YNode,
    settings: _Settings,
    *,
    legacy: bool,
    host: str | None,
) -> Draft:
    path_node = entry.get("path")
    path = path_node.string("a path") if path_node is not None else None
    if path == "":
        path = None
    if path is not None and not path.startswith("/"):
        path_node.fail(f"path {path!r} does not start with '/'", "Start the path with '/'")  # type: ignore[union-attr]
    type_node = entry.get("pathType")
    path_type = type_node.string("a pathType") if type_node is not None else None
    if path_type is None and not legacy:
        ctx.note(
            FINDING_MISSING_PATH_TYPE,
            "networking.k8s.io/v1 requires pathType; a Kubernetes API server rejects this path. "
            "The harness reads it as ImplementationSpecific",
            entry.source(),
        )
    match: MatchKind
    if path_type == "Exact":
        match = "exact"
    elif path_type == "Prefix":
        match = "prefix"
    elif path_type in (None, "ImplementationSpecific"):
        if settings.pathmatcher is not None:
            match = _PATH_MATCHERS[settings.pathmatcher]
            if match == "regex" and path is not None and path_node is not None:
                try:
                    compile_go_regexp(path)
                except GoRegexpError as err:
                    path_node.fail(
                        f"router.pathmatcher PathRegexp: {err}", "Use RE2 syntax Go accepts"
                    )
        elif settings.rule_type is not None:
            match = _RULE_TYPES[settings.rule_type[0]][0]
        else:
            match = "prefix"
        if legacy and path_type is None and settings.rule_type is not None:
            # Converting the 1.x rule type to an explicit v1 pathType.
            path_type = "Exact" if match == "exact" else "Prefix"
        else:
            path_type = "ImplementationSpecific"
    else:
        assert type_node is not None
        type_node.fail(
            f"unknown pathType {path_type!r}",
            "Use Exact, Prefix or ImplementationSpecific",
        )
    middlewares = tuple(settings.middlewares)
    if settings.rule_type is not None and _RULE_TYPES[settings.rule_type[0]][1] and path:
        # The 1.x strip rule type, translated (refused above next to a v3 stripPrefix).
        spec = {"stripPrefix": {"prefixes": [path]}}
        strip = StripPrefix((path,))
        source = settings.rule_type[1].source()
        middlewares = (
            RouteMiddleware(obj.namespace, "", "stripPrefix", strip, source, spec),
            *middlewares,
        )
    if host is None and path is None:
        entry.fail(
            "neither host nor path: Traefik rejects a router with an empty rule",
            "Add a host or a path",
        )
    backend = _backend(ctx, obj, legacy, entry.require("backend", "Add the backend Service"))
    return Draft(
        obj=obj,
        host=host,
        path=path,
        match=match,
        middlewares=middlewares,
        priority=settings.priority,
        backends=(backend,),
        provider=PROVIDER_INGRESS,
        source=entry.source(),
        dialects=tuple(settings.dialects),
        path_type=path_type,
        ingress_class=settings.ingress_class,
        entry_points=settings.entry_points,
        tls=settings.tls,
        tls_secrets=settings.tls_secrets,
    )


def _group(ctx: Context, obj: K8sObject, drafts: list[Draft], settings: _Settings) -> list[Draft]:
    """Merge paths with the same host, path and match: weighted per service-weights, else the
    last one wins as in Traefik v3 (same router key and rule)."""
    groups: dict[tuple[str | None, str | None, str], list[Draft]] = {}
    for d in drafts:
        groups.setdefault((d.host, d.path, d.match), []).append(d)
    weights = settings.weights
    if weights is not None:
        services_in_paths = {b.service for d in drafts for b in d.backends}
        for service, (_, where) in weights[0].items():
            if service not in services_in_paths:
                raise manifest_error(
                    where,
                    f"service {service!r} in service-weights is not a backend of any path of "
                    f"Ingress {obj.name!r}",
                    "Fix the service name or remove the entry",
                )
    out: list[Draft] = []
    for (host, path, _), members in groups.items():
        if weights is not None:
            out.append(_weighted(ctx, obj, members, host=host, path=path, weights=weights))
            continue
        if len(members) > 1:
            ctx.note(
                FINDING_DUPLICATE_ROUTER,
                f"Ingress {obj.name!r} lists {host or '*'}{path or ''} {len(members)} times: "
                "Traefik v3 builds one router per path with the same name and rule, so only the "
                f"last one ({members[-1].backends[0].service}) is used",
                members[-1].source,
            )
        out.append(members[-1])
    return out


def _weighted(
    ctx: Context,
    obj: K8sObject,
    members: list[Draft],
    *,
    host: str | None,
    path: str | None,
    weights: tuple[dict[str, tuple[Fraction, Source]], YNode],
) -> Draft:
    table, node = weights
    order: dict[str, WeightedBackend] = {}
    for d in members:
        for b in d.backends:
            order.setdefault(b.service, b)
    where = f"{host or '*'}{path or ''}"
    declared = {s: table[s][0] for s in order if s in table}
    omitted = [s for s in order if s not in table]
    total = sum(declared.values(), Fraction(0))
    if total > 100:
        node.fail(
            f"service-weights for {where} add up to {float(total):g}% (more than 100%)",
            "Lower the percentages so they add up to 100%",
        )
    if not omitted and total != 100:
        node.fail(
            f"service-weights for {where} add up to {float(total):g}%, not 100%",
            "Make them add up to 100%, or leave one service out so it gets the remainder",
        )
    shares: dict[str, Fraction] = {s: declared[s] for s in declared}
    if omitted:
        remainder = (100 - total) / len(omitted)
        for s in omitted:
            shares[s] = remainder
        if len(omitted) > 1:
            ctx.note(
                FINDING_WEIGHTS,
                f"service-weights for {where} leave out {', '.join(omitted)}: they share the "
                f"remaining {float(100 - total):g}% equally (Traefik 1.x split it per pod)",
                node.source(),
            )
        else:
            ctx.note(
                FINDING_WEIGHTS,
                f"service-weights for {where}: {omitted[0]} is left out and gets the remaining "
                f"{float(100 - total):g}%",
                node.source(),
                "info",
            )
    positive = [v for v in shares.values() if v > 0]
    if not positive:
        node.fail(
            f"service-weights for {where} give every backend 0%",
            "Give one backend a positive share",
        )
    scale = math.lcm(*(v.denominator for v in positive))
    ints = {s: int(v * scale) for s, v in shares.items()}
    divisor = math.gcd(*ints.values())
    backends = tuple(WeightedBackend(s, order[s].port, ints[s] // divisor) for s in order)
    first = members[0]
    if len(backends) == 1:
        # One service on this path: a plain router (its share is 100% by the checks above).
        return dataclasses.replace(
            first, backends=(WeightedBackend(backends[0].service, backends[0].port, 1),)
        )
    ctx.note(
        FINDING_LEGACY_ANNOTATION,
        "Traefik v2/v3 ignore service-weights (the Ingress provider has no weights) for "
        f"{where}; "
        + ctx.renders(
            "an IngressRoute with a weighted TraefikService "
            f"({', '.join(f'{b.service}={b.weight}' for b in backends)})"
        )
        + ". Traefik 1.x divided each percentage by the pod count; a TraefikService weighs "
        "Services, not pods",
        first.source,
    )
    return Draft(
        obj=obj,
        host=host,
        path=path,
        match=first.match,
        middlewares=first.middlewares,
        priority=first.priority,
        backends=backends,
        provider=PROVIDER_CRD,
        source=first.source,
        dialects=first.dialects,
        path_type=first.path_type,
        ingress_class=first.ingress_class,
        entry_points=first.entry_points,
        tls=first.tls,
        tls_secrets=first.tls_secrets,
    )


def _v1_backend(backend: dict[str, Any]) -> dict[str, Any]:
    if "service" in backend or "resource" in backend:
        return backend
    port = backend.get("servicePort")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": backend.get("serviceName"), "port": port_ref}}


def ingress_v1_body(body: dict[str, Any]) -> dict[str, Any]:
    """A legacy (extensions/v1beta1, networking.k8s.io/v1beta1) Ingress as the API server stores
    it in networking.k8s.io/v1: ``serviceName``/``servicePort`` become ``service.name``/
    ``service.port``, ``backend`` becomes ``defaultBackend``, a missing ``pathType`` becomes
    ``ImplementationSpecific``; annotations are left as they are (Traefik v3 ignores the 1.x
    ones)."""
    out = copy.deepcopy(body)
    out["apiVersion"] = API_INGRESS_V1
    spec = out.get("spec") or {}
    if "backend" in spec:
        spec["defaultBackend"] = _v1_backend(spec.pop("backend"))
    for rule in spec.get("rules") or []:
        for entry in (rule.get("http") or {}).get("paths") or []:
            entry.setdefault("pathType", "ImplementationSpecific")
            if "backend" in entry:
                entry["backend"] = _v1_backend(entry["backend"])
    return out
