"""Gateway API (``gateway.networking.k8s.io``) as intent: GatewayClass, Gateway, HTTPRoute,
ReferenceGrant.

Mirrors Traefik 3.7's Gateway provider (pkg/provider/kubernetes/gateway): a GatewayClass of
controller ``traefik.io/gateway-controller`` is Traefik's; a Gateway of such a class binds each
listener to the entry point listening on the listener's port; an HTTPRoute attaches to the
listeners its ``parentRefs`` select (``sectionName``, ``port``) that allow it
(``allowedRoutes``: kinds; namespaces ``Same``, ``All``, or ``Selector``, a label selector over
the manifests' Namespace labels plus ``kubernetes.io/metadata.name``; a route in an undeclared
namespace other than the run's is refused, its labels being unknown) and whose hostname
intersects the route's (``findMatchingHostnames``); then every rule and match becomes one
router, with the rule and priority of :mod:`harness.traefik.gateway`. Defaults the API server's
CRD schema applies are applied here too (a rule without ``matches`` is PathPrefix ``/``;
weight 1).

A backendRef to another namespace's Service needs a ReferenceGrant there (Traefik's
``isReferenceGranted``, :func:`_granted`); without one Traefik sets ResolvedRefs False
(RefNotPermitted) and answers that ref's share 500, as the spec requires: a rule none of whose
refs is permitted is read as answering 500 (:class:`harness.traefik.middlewares.
UnresolvedBackends`, ``Intent.refs_not_permitted``), a split with only some permitted is
refused.

Listeners: each listener port is served on a local entry point of its own
(:func:`harness.traefik.gateway.listener_entry_points`: the first HTTP port on ``web``, the
second on ``webalt``, the HTTPS port on ``websecure``), said in a ``gateway-listener-port``
finding; a route's routers are bound to its listener's entry point, TLS routers on an HTTPS
listener (``tls.mode: Terminate``, ``certificateRefs`` to Secrets of the Gateway's namespace,
which the local target replaces with its generated certificate). What Traefik would not attach
(Passthrough, no certificate, ``tls`` on HTTP, protocols TLS/TCP/UDP) or what has no entry
point left is refused with file:line:field.

One router with several hostnames becomes one route per hostname (the intent's routes have one
host each), all with the router's rule and priority. Filters: the header modifiers (set,
add and remove: Traefik's Header.Set, Header.Add, Header.Del, ``add`` appended to what the
request or answer carries) on the headers middleware model; URLRewrite and RequestRedirect as
the Gateway provider's own middlewares, one per match (``ReplacePrefixMatch`` replaces that
match's path); an ExtensionRef to a ``traefik.io`` Middleware of the manifests as that Middleware
(:func:`harness.intent.dialects._crd.route_middlewares`). RequestMirror and CORS, which Traefik
3.7.15 cannot load (it answers 500 to every matching request, the route Accepted), are read as
the spec means them (inert for a probe: forwarded to the backend), and
:func:`unsupported_filter_routes` gives the routes as Traefik serves them (500) and the note
failure messages carry, for ``Intent.effective``; a ``gateway-unsupported-filter`` finding
says so. What the harness does not model yet is refused with file:line:field
(``_fields.py``): ExtensionRefs of other kinds. A backendRef to another namespace needs a
ReferenceGrant there (else Traefik answers 500, as the spec says). A wildcard hostname
``*.example.com`` matches one or more labels (Traefik's HostRegexp,
:func:`harness.traefik.gateway.host_matches`). RegularExpression path, header and query matches
are Go patterns found anywhere in the value (not anchored), as Traefik's PathRegexp,
HeaderRegexp and QueryRegexp evaluate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.intent.dialects._crd import route_middlewares
from harness.intent.dialects._fields import GATEWAY, GATEWAYCLASS, HTTPROUTE, check_fields
from harness.intent.dialects._objects import Context, Draft, K8sObject
from harness.intent.dialects._yaml import YNode
from harness.intent.model import (
    DIALECT_GATEWAY_API,
    FINDING_GATEWAY_CLASS,
    FINDING_GATEWAY_LISTENER_PORT,
    FINDING_GATEWAY_REF_NOT_PERMITTED,
    FINDING_GATEWAY_UNSUPPORTED_FILTER,
    FINDING_INGRESS_CLASS,
    GATEWAY_API_V1,
    GATEWAY_CONTROLLER,
    GATEWAY_GROUP,
    PROVIDER_GATEWAY,
    MatchKind,
    RequestCondition,
    Route,
    RouteMiddleware,
    WeightedBackend,
)
from harness.traefik.gateway import (
    LISTENER_ENTRY_POINTS,
    GatewayMatch,
    gateway_listeners,
    listener_entry_points,
    router_priority,
    router_rule,
)
from harness.traefik.goregexp import GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import (
    SERVER_WRITTEN,
    GatewayFilterError,
    Headers,
    Inert,
    Middleware,
    MiddlewareSpecError,
    RequestRedirect,
    UnresolvedBackends,
    URLRewrite,
    parse_middleware_spec,
)

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


#: The label the API server puts on every Namespace (Kubernetes 1.21 and later).
_NAME_LABEL = "kubernetes.io/metadata.name"
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class _Selector:
    """A listener's ``allowedRoutes.namespaces.selector`` as Kubernetes'
    LabelSelectorAsSelector reads it: every ``matchLabels`` pair and every
    ``matchExpressions`` requirement must hold (an empty selector matches every namespace)."""

    labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, str, frozenset[str]], ...]

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.labels):
            return False
        for key, operator, values in self.expressions:
            present = key in labels
            held = {
                "In": present and labels[key] in values,
                "NotIn": not present or labels[key] not in values,
                "Exists": present,
                "DoesNotExist": not present,
            }[operator]
            if not held:
                return False
        return True


def _selector(node: YNode) -> _Selector:
    labels_node = node.get("matchLabels")
    labels = tuple(
        (k, v.string("a label value")) for k, v in (labels_node.mapping() if labels_node else [])
    )
    expressions: list[tuple[str, str, frozenset[str]]] = []
    exprs_node = node.get("matchExpressions")
    for expr in exprs_node.sequence() if exprs_node is not None else []:
        key = expr.require("key", "Name the label").string("a label key")
        op_node = expr.require("operator", "Set the operator: In, NotIn, Exists or DoesNotExist")
        operator = op_node.string("an operator")
        if operator not in _OPERATORS:
            op_node.fail(f"operator {operator!r}", "Use In, NotIn, Exists or DoesNotExist")
        values_node = expr.get("values")
        values = [v.string("a label value") for v in values_node.sequence()] if values_node else []
        if (operator in ("In", "NotIn")) != bool(values):
            (values_node or expr).fail(
                f"operator {operator} with {len(values)} values: Kubernetes refuses the selector "
                "(In and NotIn need values, Exists and DoesNotExist take none)",
                "Fix the values",
            )
        expressions.append((key, operator, frozenset(values)))
    return _Selector(labels, tuple(expressions))


def _namespace_labels(ctx: Context, namespace: str, at: YNode, route: K8sObject) -> dict[str, str]:
    """The labels of ``namespace`` as the API server has them: a Namespace of the manifests'
    own, or the run's namespace (none of its own); plus the name label the server adds."""
    declared = next((o for o in ctx.of_kind("Namespace") if o.name == namespace), None)
    if declared is None and namespace != ctx.namespace:
        at.fail(
            f"HTTPRoute {route.name!r} is in namespace {namespace!r}, which the manifests do not "
            "declare, and a listener it names admits namespaces by a label selector: the "
            "harness cannot know that namespace's labels",
            f"Add the Namespace {namespace!r} (with its labels) to the manifests",
        )
    labels: dict[str, str] = {}
    labels_node = declared.doc.require("metadata").get("labels") if declared else None
    for key, value in labels_node.mapping() if labels_node is not None else []:
        labels[key] = value.string("a label value")
    labels[_NAME_LABEL] = namespace
    return labels


@dataclass(frozen=True)
class _Listener:
    gateway: K8sObject
    name: str
    port: int
    hostname: str | None
    namespaces_from: str
    kinds: tuple[str, ...]
    node: YNode
    #: The local entry point the listener's port is served on, and whether it is HTTPS.
    entry_point: str
    https: bool
    selector: _Selector | None = None

    def admits(self, ctx: Context, route: K8sObject, at: YNode) -> bool:
        """Whether ``allowedRoutes`` admits ``route`` (kinds, then namespaces)."""
        if "HTTPRoute" not in self.kinds:
            return False
        if self.namespaces_from == "All":
            return True
        if self.selector is not None:
            return self.selector.matches(_namespace_labels(ctx, route.namespace, at, route))
        return route.namespace == self.gateway.namespace


def _served_class(ctx: Context, gateway: K8sObject, spec: YNode) -> bool:
    """Whether Traefik serves the Gateway's class: defined in the manifests with Traefik's
    controller, or not defined (then a cluster's Traefik install provides it; a finding)."""
    class_node = spec.require("gatewayClassName", "Name the GatewayClass")
    name = class_node.string("a GatewayClass name")
    klass = next((o for o in ctx.of_kind("GatewayClass") if o.name == name), None)
    if klass is None:
        ctx.note(
            FINDING_GATEWAY_CLASS,
            f"Gateway {gateway.name!r} names GatewayClass {name!r}, which the manifests do not "
            f"define: taken as Traefik's (controller {GATEWAY_CONTROLLER}); the local target "
            "supplies it, on a cluster it must exist",
            class_node.source(),
            "info",
        )
        return True
    check_fields(ctx, klass, GATEWAYCLASS)
    controller = klass.doc.require("spec").require("controllerName").string("a controller name")
    if controller != GATEWAY_CONTROLLER:
        ctx.note(
            FINDING_INGRESS_CLASS,
            f"Gateway {gateway.name!r} is of GatewayClass {name!r} of controller "
            f"{controller!r}, not Traefik's ({GATEWAY_CONTROLLER}): Traefik does not serve it",
            class_node.source(),
        )
        return False
    return True


def _listeners(ctx: Context, gateway: K8sObject) -> list[_Listener]:
    check_fields(ctx, gateway, GATEWAY)
    spec = gateway.doc.require("spec", "Add spec.gatewayClassName and spec.listeners")
    if not _served_class(ctx, gateway, spec):
        return []
    # Over every Gateway of the manifests, in order, as the local target maps them.
    entry_points = listener_entry_points(
        gateway_listeners(o.doc.value() for o in ctx.of_kind("Gateway"))
    )
    out = []
    for node in spec.require("listeners", "List the listeners").sequence():
        protocol_node = node.require("protocol", "Set protocol: HTTP or HTTPS")
        protocol = protocol_node.string("a protocol")
        if protocol not in LISTENER_ENTRY_POINTS:
            protocol_node.fail(
                f"listener protocol {protocol!r}: Traefik attaches TLSRoutes (TLS), TCPRoutes "
                "and UDPRoutes there, not HTTPRoutes; the harness verifies HTTPRoutes on HTTP "
                "and HTTPS listeners",
                "Verify the routes on an HTTP or HTTPS listener",
            )
        port_node = node.require("port", "Give the listener a port")
        port = port_node.integer("a port number")
        entry_point = entry_points.get((protocol, port))
        if entry_point is None:
            served = ", ".join(f"{p} {n} on {ep}" for (p, n), ep in entry_points.items())
            port_node.fail(
                f"{protocol} listener port {port}: the local target serves each listener port "
                f"on an entry point of its own ({served}), and has none left for it (HTTP: "
                f"{', '.join(LISTENER_ENTRY_POINTS['HTTP'])}; HTTPS: "
                f"{', '.join(LISTENER_ENTRY_POINTS['HTTPS'])}; one protocol per port)",
                "Put the listeners on at most two HTTP ports and one HTTPS port",
            )
        https = _listener_tls(node, gateway, protocol)
        ctx.note(
            FINDING_GATEWAY_LISTENER_PORT,
            f"Gateway {gateway.name!r} listener "
            f"{node.require('name', 'Name the listener').string('a listener name')!r} "
            f"({protocol}, port {port}) is served on the local target's entry point "
            f"{entry_point!r}"
            + (
                " over HTTPS, with a certificate the local target issues for the routes' hosts "
                "in place of the Secrets it names"
                if https
                else ""
            )
            + ": the local target applies the Gateway with that entry point's port (see the "
            "report header) instead (Traefik binds a listener to the entry point listening on "
            "its port), and HTTPRoute parentRefs[].port likewise",
            port_node.source(),
            "info",
        )
        hostname_node = node.get("hostname")
        hostname = hostname_node.string("a hostname") if hostname_node else None
        allowed = node.get("allowedRoutes")
        ns_node = allowed.get("namespaces") if allowed is not None else None
        from_node = ns_node.get("from") if ns_node is not None else None
        namespaces_from = from_node.string("Same, All or Selector") if from_node else "Same"
        if namespaces_from not in ("Same", "All", "Selector"):
            (from_node or node).fail(
                f"allowedRoutes.namespaces.from {namespaces_from!r}", "Use Same, All or Selector"
            )
        selector_node = ns_node.get("selector") if ns_node is not None else None
        if namespaces_from != "Selector":
            selector_node = None  # Ignored for Same and All, as the API documents.
        elif selector_node is None:
            (from_node or node).fail(
                "allowedRoutes.namespaces.from Selector without a selector: Traefik admits no "
                "namespace",
                "Add allowedRoutes.namespaces.selector",
            )
        kinds_node = allowed.get("kinds") if allowed is not None else None
        kinds = (
            tuple(k.require("kind").string("a kind") for k in kinds_node.sequence())
            if kinds_node is not None
            else ("HTTPRoute", "GRPCRoute")
        )
        out.append(
            _Listener(
                gateway,
                node.require("name", "Name the listener").string("a listener name"),
                port,
                hostname,
                namespaces_from,
                kinds,
                node,
                entry_point,
                https,
                _selector(selector_node) if selector_node is not None else None,
            )
        )
    return out


def _listener_tls(node: YNode, gateway: K8sObject, protocol: str) -> bool:
    """Whether the listener terminates TLS (HTTPS); what Traefik would not attach is refused:
    TLS on HTTP, HTTPS without certificates or in Passthrough mode (loadGatewayListeners)."""
    tls = node.get("tls")
    if protocol == "HTTP":
        if tls is not None:
            tls.fail(
                "tls on an HTTP listener: Traefik does not accept the listener "
                "(InvalidTLSConfiguration)",
                "Use protocol: HTTPS, or remove tls",
            )
        return False
    if tls is None:
        node.fail(
            "an HTTPS listener without tls: Traefik does not accept the listener "
            "(InvalidTLSConfiguration)",
            "Add tls with mode: Terminate and certificateRefs",
        )
    mode_node = tls.get("mode")
    mode = mode_node.string("Terminate or Passthrough") if mode_node else "Terminate"
    if mode != "Terminate":
        (mode_node or tls).fail(
            f"tls.mode {mode!r} on an HTTPS listener: Traefik does not accept the listener "
            "(UnsupportedProtocol: passthrough is for TLSRoutes on a TLS listener, which the "
            "harness does not verify)",
            "Use mode: Terminate",
        )
    refs = tls.get("certificateRefs")
    if refs is None or not refs.sequence():
        (refs or tls).fail(
            "an HTTPS listener without certificateRefs: Traefik does not accept the listener "
            "(InvalidCertificateRef: one is required in Terminate mode)",
            "Name a Secret of type kubernetes.io/tls",
        )
    for ref in refs.sequence():
        _require_core_kind(
            ref,
            "Secret",
            "certificateRef of kind {}: Traefik loads certificates from Secrets only "
            "(InvalidCertificateRef)",
            "Name a Secret of type kubernetes.io/tls",
        )
        ref.require("name", "Name the Secret")
        ns_node = ref.get("namespace")
        if ns_node is not None and ns_node.string("a namespace") != gateway.namespace:
            ns_node.fail(
                f"a certificate Secret in another namespace ({ns_node.string()!r}): "
                "certificateRefs across namespaces (with a ReferenceGrant) are not modeled",
                "Keep the Secret in the Gateway's namespace",
            )
    return True


def _intersect(listener: str | None, route: list[str]) -> list[str] | None:
    """``findMatchingHostnames``: the hostnames a route serves on a listener (None: none)."""

    def one(h1: str, h2: str) -> str:
        if h1 == h2:
            return h1
        if h1.startswith("*.") and h2.endswith(h1[1:]):
            return h2
        return ""

    if listener is None:
        return route
    if not route:
        return [listener]
    found = [one(listener, h) or one(h, listener) for h in route]
    matches = [h for h in found if h]
    return matches or None


def _go_pattern(node: YNode, pattern: str, what: str) -> None:
    """Refuse a pattern Go rejects or Python's ``re`` would read differently."""
    try:
        compile_go_regexp(pattern)
    except GoRegexpError as err:
        node.fail(f"{what} {pattern!r}: {err}", "Use RE2 syntax Go accepts")


def _condition(node: YNode, kind: str) -> RequestCondition:
    type_node = node.get("type")
    match_type = type_node.string("Exact or RegularExpression") if type_node else "Exact"
    if match_type not in ("Exact", "RegularExpression"):
        (type_node or node).fail(
            f"{kind} match type {match_type!r}", "Use type: Exact or RegularExpression"
        )
    name = node.require("name", f"Name the {kind}").string("a name")
    value_node = node.require("value", f"Give the {kind} a value")
    value = value_node.string("a value")
    regex = match_type == "RegularExpression"
    if regex:
        # Traefik's HeaderRegexp/QueryRegexp: found anywhere in the value (MatchString).
        _go_pattern(value_node, value, f"{kind} pattern")
    return RequestCondition(
        "header" if kind == "header" else "query",
        name,
        value,
        "regex" if regex else "exact",
        node.source(),
    )


def _match(node: YNode | None) -> GatewayMatch:
    """One match with the CRD's defaults (no path: PathPrefix ``/``)."""
    if node is None:
        return GatewayMatch("/", "prefix")
    path = "/"
    kind: MatchKind = "prefix"
    path_node = node.get("path")
    if path_node is not None:
        type_node = path_node.get("type")
        path_type = type_node.string("a path match type") if type_node else "PathPrefix"
        value_node = path_node.get("value")
        path = value_node.string("a path") if value_node else "/"
        kinds: dict[str, MatchKind] = {
            "Exact": "exact",
            "PathPrefix": "prefix",
            "RegularExpression": "regex",
        }
        if path_type not in kinds:
            (type_node or path_node).fail(
                f"path match type {path_type!r}", "Use Exact, PathPrefix or RegularExpression"
            )
        kind = kinds[path_type]
        if kind == "regex":
            # Traefik's PathRegexp: found anywhere in the path, not anchored (MatchString).
            _go_pattern(value_node or path_node, path, "path pattern")
        elif not path.startswith("/"):
            (value_node or path_node).fail(
                f"path {path!r} does not start with '/'", "Start the path with '/'"
            )
    conditions: list[RequestCondition] = []
    method_node = node.get("method")
    if method_node is not None:
        method = method_node.string("a method")
        if method not in _METHODS:
            method_node.fail(f"method {method!r} is not one of {', '.join(_METHODS)}", "Fix it")
        conditions.append(RequestCondition("method", "", method, "exact", method_node.source()))
    for key, what in (("headers", "header"), ("queryParams", "query parameter")):
        items = node.get(key)
        for item in items.sequence() if items is not None else []:
            conditions.append(_condition(item, "header" if key == "headers" else what))
    return GatewayMatch(path, kind, tuple(conditions))


#: Header filters and the headers middleware field each maps onto (harness.traefik.middlewares'
#: headers model: Header.Set, Header.Add, and Header.Del for an empty value, as the Gateway
#: provider's header modifiers do; confirmed on the binary by tests/test_gateway.py and
#: tests/test_gateway_filters.py).
_HEADER_FILTERS = {
    "RequestHeaderModifier": "customRequestHeaders",
    "ResponseHeaderModifier": "customResponseHeaders",
}
#: Headers whose ``add`` the harness refuses, per filter, and why.
_ADD_REFUSED = {
    "RequestHeaderModifier": {
        "host": "Go's transport sends the request's Host, never a Host in the header map",
    },
    "ResponseHeaderModifier": {
        name.lower(): "the echo backend or Go's server writes it (on some answers at least), so "
        "the client would get its value and the added one, which the harness does not model"
        for name in (*SERVER_WRITTEN, "Access-Control-Allow-Methods", "Access-Control-Allow-Origin")
    },
}
#: Every modeled filter type and the field holding its configuration.
_FILTER_KEYS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "URLRewrite": "urlRewrite",
    "RequestRedirect": "requestRedirect",
    "RequestMirror": "requestMirror",
    "CORS": "cors",
    "ExtensionRef": "extensionRef",
}
#: Filters Traefik 3.7.15's Gateway provider cannot load ("unsupported filter": the router's
#: service answers 500 to every request, the route status says Accepted; confirmed on the
#: binary by tests/test_gateway_filters.py), with what the Gateway API spec says they do to a
#: probe: the route is read as the spec means it (the checks judge that) and Traefik's 500 is
#: the served intent (``Intent.effective``), named in every failure message.
UNSUPPORTED_FILTERS = {
    "RequestMirror": "forwarded to the backend (and a copy to the mirror's)",
    "CORS": "forwarded to the backend (with the CORS response headers; a preflight answered "
    "by the gateway)",
}
#: The ExtensionRef kind Traefik's Gateway provider resolves (registered by its CRD provider):
#: a Middleware of the route's namespace, applied as the CRD provider serves it.
_EXTENSION_MIDDLEWARE = ("traefik.io", "Middleware")


#: Go's HTTP statuses Traefik's RequestRedirect accepts (others: the filter is invalid, 500).
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def _path_modifier(
    config: YNode, rule: YNode, match: GatewayMatch
) -> tuple[str | None, str | None]:
    """A filter's ``path`` as Traefik's provider passes it on: (replacement, prefix to replace;
    None for a full-path replacement)."""
    node = config.get("path")
    if node is None:
        return None, None
    type_node = node.require("type", "Set type: ReplaceFullPath or ReplacePrefixMatch")
    kind = type_node.string("a path modifier type")
    keys = {"ReplaceFullPath": "replaceFullPath", "ReplacePrefixMatch": "replacePrefixMatch"}
    if kind not in keys:
        type_node.fail(f"path modifier type {kind!r}", "Use ReplaceFullPath or ReplacePrefixMatch")
    value_node = node.require(keys[kind], f"Add {keys[kind]}")
    value = value_node.string("a path")
    if not value.startswith("/"):
        value_node.fail(f"path {value!r} does not start with '/'", "Start the path with '/'")
    if kind == "ReplaceFullPath":
        return value, None
    matches_node = rule.get("matches")
    if match.match != "prefix" or (matches_node is not None and len(matches_node.sequence()) != 1):
        type_node.fail(
            "ReplacePrefixMatch needs exactly one PathPrefix match in its rule (the API "
            "server's validation refuses the HTTPRoute otherwise)",
            "Give the rule one PathPrefix match, or use ReplaceFullPath",
        )
    return value, match.path


def _header_filter(kind: str, config: YNode) -> tuple[Middleware, dict[str, Any]]:
    """A header modifier on the headers middleware model (``set`` and ``remove`` as
    ``custom*Headers``, ``add`` appended after them), with the filter as written."""
    headers_key = _HEADER_FILTERS[kind]
    pairs: list[tuple[str, str, YNode, bool]] = []
    for key in ("set", "add"):
        entries = config.get(key)
        for entry in entries.sequence() if entries is not None else []:
            value_node = entry.require("value", "Give the header a value")
            value = value_node.string("a value")
            if value == "":
                value_node.fail(
                    f"a header {key} to the empty value: Traefik's header modifier sends it "
                    "empty, which the harness's headers model reads as a removal",
                    "Give it a value, or list it under remove",
                )
            name = entry.require("name").string("a header name")
            pairs.append((name, value, entry, key == "add"))
    removes = config.get("remove")
    for entry in removes.sequence() if removes is not None else []:
        pairs.append((entry.string("a header name"), "", entry, False))
    seen: dict[str, YNode] = {}
    for name, _, at, added in pairs:
        first = seen.get(name.lower())
        if first is not None:
            at.fail(
                f"header {name!r} appears twice in one filter (first at line {first.line}): "
                "two spellings of one header apply in no fixed order (a Go map)",
                "Name each header once",
            )
        seen[name.lower()] = at
        if added and name.lower() in _ADD_REFUSED[kind]:
            at.fail(f"add {name!r}: {_ADD_REFUSED[kind][name.lower()]}", "Remove the entry")
    # Every entry checked as the headers middleware checks a header it sets or removes.
    spec = {"headers": {headers_key: {name: value for name, value, _, _ in pairs}}}
    try:
        parse_middleware_spec(spec)
    except MiddlewareSpecError as err:
        config.fail(err.problem, err.advice)
    kept = tuple((n, v) for n, v, _, appended in pairs if not appended)
    appended_pairs = tuple((n, v) for n, v, _, appended in pairs if appended)
    if kind == "RequestHeaderModifier":
        model = Headers(custom_request_headers=kept, add_request_headers=appended_pairs)
    else:
        model = Headers(custom_response_headers=kept, add_response_headers=appended_pairs)
    return model, {_FILTER_KEYS[kind]: config.value()}


def _optional(config: YNode, key: str, what: str) -> str | None:
    node = config.get(key)
    return node.string(what) if node is not None else None


def _filter_model(kind: str, config: YNode, rule: YNode, match: GatewayMatch) -> Middleware:
    """URLRewrite and RequestRedirect as Traefik's provider configures its own middlewares."""
    if kind == "URLRewrite":
        path, prefix = _path_modifier(config, rule, match)
        hostname = _optional(config, "hostname", "a hostname")
        if path is None and hostname is None:
            config.fail(
                "a URLRewrite with neither path nor hostname: Traefik answers 500 (empty "
                "configuration)",
                "Set path or hostname",
            )
        return URLRewrite(hostname=hostname, path=path, path_prefix=prefix)
    scheme = _optional(config, "scheme", "http or https")
    if scheme not in (None, "http", "https"):
        config.require("scheme").fail(f"scheme {scheme!r}", "Use http or https")
    port_node = config.get("port")
    port: str | None = "" if scheme is not None else None
    if port_node is not None:
        port = str(port_node.integer("a port number"))
    status_node = config.get("statusCode")
    status = status_node.integer("a status code") if status_node is not None else 302
    if status not in _REDIRECT_STATUSES:
        (status_node or config).fail(
            f"statusCode {status}: Traefik's RequestRedirect accepts "
            f"{', '.join(map(str, _REDIRECT_STATUSES))}",
            "Use 301 or 302",
        )
    path, prefix = _path_modifier(config, rule, match)
    return RequestRedirect(
        scheme=scheme,
        hostname=_optional(config, "hostname", "a hostname"),
        port=port,
        path=path,
        path_prefix=prefix,
        status=status,
    )


def _filters(
    ctx: Context, route: K8sObject, rule: YNode, rule_index: int, match: GatewayMatch
) -> tuple[RouteMiddleware, ...]:
    """A rule's filters as the middlewares Traefik puts on a match's router, in order (a path
    modifier's ReplacePrefixMatch replaces that match's path; an ExtensionRef Middleware as
    its chain expands)."""
    filters_node = rule.get("filters")
    out: list[RouteMiddleware] = []
    for i, node in enumerate(filters_node.sequence() if filters_node is not None else []):
        type_node = node.require("type", "Give the filter a type")
        kind = type_node.string("a filter type")
        if kind not in _FILTER_KEYS:
            type_node.fail(
                f"filter type {kind!r}: the harness models {', '.join(_FILTER_KEYS)}",
                "Remove the filter for this run",
            )
        key = _FILTER_KEYS[kind]
        config = node.require(key, f"Add {key}")
        model: Middleware
        if kind == "ExtensionRef":
            out.extend(_extension_middlewares(ctx, route, config))
            continue
        if kind in UNSUPPORTED_FILTERS:
            ctx.note(
                FINDING_GATEWAY_UNSUPPORTED_FILTER,
                f"HTTPRoute {route.name!r} rule {rule_index}: Traefik's Gateway provider cannot "
                f"load the {kind} filter, so it answers 500 to every matching request while the "
                f"route status says Accepted; the Gateway API spec: "
                f"{UNSUPPORTED_FILTERS[kind]}. The checks judge the spec's meaning, so they "
                "fail on this rule",
                node.source(),
            )
            model, spec = Inert(kind), {key: config.value()}
        elif kind in _HEADER_FILTERS:
            model, spec = _header_filter(kind, config)
        else:
            model, spec = _filter_model(kind, config, rule, match), {key: config.value()}
        out.append(
            RouteMiddleware(
                route.namespace,
                f"{route.name}-rule{rule_index}-{kind.lower()}-{i}",
                kind,
                model,
                node.source(),
                spec,
            )
        )
    return tuple(out)


def _extension_middlewares(
    ctx: Context, route: K8sObject, config: YNode
) -> tuple[RouteMiddleware, ...]:
    """An ExtensionRef to a traefik.io Middleware of the manifests (in the route's namespace,
    as Traefik resolves it), read by the Middleware model; anything else is refused."""
    group_node = config.require("group", "Set group: traefik.io")
    kind_node = config.require("kind", "Set kind: Middleware")
    name_node = config.require("name", "Name the Middleware")
    group, kind = group_node.string("a group"), kind_node.string("a kind")
    if (group, kind) != _EXTENSION_MIDDLEWARE:
        kind_node.fail(
            f"ExtensionRef {group}/{kind}: Traefik's Gateway provider resolves "
            f"{'/'.join(_EXTENSION_MIDDLEWARE)} only; it answers 500 to every matching request "
            "while the route status says Accepted",
            "Reference a traefik.io Middleware, or remove the filter",
        )
    name = name_node.string("a Middleware name")
    if ctx.find("Middleware", route.namespace, name) is None:
        name_node.fail(
            f"Middleware {name!r} (namespace {route.namespace!r}) is not in the manifests: "
            "Traefik serves no router for the rule (404)",
            "Add the Middleware to the manifest files or fix the ExtensionRef",
        )
    return route_middlewares(ctx, route.namespace, name, name_node)


def unsupported_filter_routes(routes: Sequence[Route]) -> dict[str, tuple[Route, str]]:
    """Per route id of an HTTPRoute rule with a filter Traefik cannot load: the route as Traefik
    serves it (every request answered 500, no middleware) and a note for failure messages."""
    out: dict[str, tuple[Route, str]] = {}
    for route in routes:
        bad = next((m for m in route.middlewares if m.kind in UNSUPPORTED_FILTERS), None)
        if route.provider != PROVIDER_GATEWAY or bad is None:
            continue
        served = replace(route, middlewares=(replace(bad, model=GatewayFilterError(bad.kind)),))
        out[route.id] = (
            served,
            f"Traefik answers 500: its Gateway provider cannot load the {bad.kind} filter "
            f"({bad.source}; the route status says Accepted); the Gateway API spec: "
            f"{UNSUPPORTED_FILTERS[bad.kind]}",
        )
    return out


def _granted(ctx: Context, route: K8sObject, namespace: str, service: str) -> bool:
    """Whether a ReferenceGrant of the manifests in ``namespace`` lets ``route`` (an HTTPRoute
    of another namespace) send to the Service ``service`` there: Traefik's isReferenceGranted,
    a ``from`` of group gateway.networking.k8s.io, kind HTTPRoute and the route's namespace,
    and a ``to`` of the core group (``""``), kind Service, no name or that name."""

    def group(node: YNode) -> str:
        found = node.get("group")
        value = found.string("a group") if found is not None else ""
        return value or "core"

    for grant in ctx.of_kind("ReferenceGrant"):
        if grant.namespace != namespace:
            continue
        spec = grant.doc.require("spec", "Add spec.from and spec.to")
        froms = spec.require("from", "List the namespaces granted").sequence()
        tos = spec.require("to", "List the kinds granted").sequence()
        for to in tos:
            name_node = to.get("name")
            if name_node is not None and name_node.string("a name") == "":
                name_node.fail(
                    "an empty name: the API server's validation refuses it",
                    "Remove name to grant every Service, or name one",
                )
        if any(
            group(f) == GATEWAY_GROUP
            and f.require("kind", "Name the kind granted").string("a kind") == "HTTPRoute"
            and f.require("namespace", "Name the namespace granted").string("a namespace")
            == route.namespace
            for f in froms
        ) and any(
            group(t) == "core"
            and t.require("kind", "Name the kind granted").string("a kind") == "Service"
            and (t.get("name") is None or t.require("name").string() == service)
            for t in tos
        ):
            return True
    return False


def _require_core_kind(ref: YNode, kind: str, why: str, advice: str) -> None:
    """A reference's ``group``/``kind`` must be the core group's ``kind`` (the default); ``why``
    has a ``{}`` for the kind found."""
    group_node, kind_node = ref.get("group"), ref.get("kind")
    group = group_node.string("a group") if group_node else ""
    found = kind_node.string("a kind") if kind_node else kind
    if (group, found) != ("", kind):
        (kind_node or group_node or ref).fail(
            why.format(f"{group + '/' if group else ''}{found}"), advice
        )


def _backends(
    ctx: Context, route: K8sObject, rule: YNode
) -> tuple[tuple[WeightedBackend, ...], str | None]:
    """The rule's backends, and when no backendRef of it is permitted (no ReferenceGrant), why
    Traefik answers every request 500 instead (None otherwise)."""
    refs_node = rule.get("backendRefs")
    refs = refs_node.sequence() if refs_node is not None else []
    filters_node = rule.get("filters")
    redirects = [
        f
        for f in (filters_node.sequence() if filters_node is not None else [])
        if f.get("requestRedirect") is not None
    ]
    if redirects:
        if refs:
            (refs_node or rule).fail(
                "a rule with a RequestRedirect filter and backendRefs: the API server's "
                "validation refuses it",
                "Remove the backendRefs (the redirect answers every request)",
            )
        return (), None
    if not refs:
        (refs_node or rule).fail(
            "the rule has no backendRefs: Traefik answers 500", "List at least one backendRef"
        )
    out: list[WeightedBackend] = []
    denied: list[tuple[YNode, str]] = []
    for ref in refs:
        _require_core_kind(
            ref,
            "Service",
            "backendRef of kind {}: the harness models Kubernetes Services",
            "Send the rule to a Service",
        )
        name_node = ref.require("name", "Name the Service")
        name = name_node.string("a name")
        ns_node = ref.get("namespace")
        namespace = (ns_node.string("a namespace") if ns_node else "") or route.namespace
        port_node = ref.get("port")
        if port_node is None:
            ref.fail(
                "backendRef without a port: Traefik sets ResolvedRefs False (port is required) "
                "and answers 500",
                "Give the Service port number",
            )
        weight_node = ref.get("weight")
        weight = weight_node.integer("a weight") if weight_node is not None else 1
        if weight < 0:
            (weight_node or ref).fail(f"weight {weight} is negative", "Use 0 or more")
        if namespace != route.namespace and not _granted(ctx, route, namespace, name):
            # Checked before the Service is looked up, as Traefik does.
            denied.append((ref, f"core/Service/{namespace}/{name}"))
            continue
        backend = ctx.backend(
            namespace,
            name,
            port_node.integer("a port number"),
            name_at=name_node,
            port_at=port_node,
            weight=weight,
        )
        out.append(
            backend if namespace == route.namespace else replace(backend, namespace=namespace)
        )
    if denied and out:
        ref, what = denied[0]
        ref.fail(
            f"backendRef {what}: no ReferenceGrant in its namespace permits HTTPRoutes of "
            f"namespace {route.namespace!r} to reference it, so Traefik answers 500 to its share "
            "of the split (as the Gateway API spec requires); the harness does not model a "
            "share of 500s",
            "Add the ReferenceGrant, or split over permitted backends only",
        )
    if denied:
        ctx.refs_not_permitted[(route.namespace, route.name)] = None
        for ref, what in denied:
            ctx.note(
                FINDING_GATEWAY_REF_NOT_PERMITTED,
                f"HTTPRoute {route.name!r} backendRef {what}: no ReferenceGrant in its namespace "
                f"permits HTTPRoutes of namespace {route.namespace!r} to reference it; Traefik "
                "sets ResolvedRefs False (RefNotPermitted: missing ReferenceGrant) and answers "
                "500, as the Gateway API spec requires (the checks expect 500)",
                ref.source(),
            )
        refs_text = ", ".join(what for _, what in denied)
        return (), f"no backendRef is permitted ({refs_text}: missing ReferenceGrant)"
    if not any(b.weight > 0 for b in out):
        (refs_node or rule).fail(
            "every backendRef has weight 0: no backend would receive traffic",
            "Give one backendRef a positive weight",
        )
    return tuple(out), None


def _attached(
    ctx: Context, route: K8sObject, spec: YNode, listeners: list[_Listener]
) -> list[tuple[_Listener, list[str]]]:
    """The listeners the route attaches to, with the hostnames it serves on each (none when
    its Gateways are all of another controller's class: then Traefik does not serve it)."""
    hostnames_node = spec.get("hostnames")
    hostnames = [
        h.string("a hostname") for h in (hostnames_node.sequence() if hostnames_node else [])
    ]
    out: list[tuple[_Listener, list[str]]] = []
    parents: list[K8sObject] = []
    refs_node = spec.get("parentRefs")
    for ref in refs_node.sequence() if refs_node is not None else []:
        group_node, kind_node = ref.get("group"), ref.get("kind")
        if (group_node.string() if group_node else GATEWAY_GROUP) != GATEWAY_GROUP or (
            kind_node.string() if kind_node else "Gateway"
        ) != "Gateway":
            ref.fail("a parentRef that is not a Gateway", "Attach the route to a Gateway")
        name_node = ref.require("name", "Name the Gateway")
        ns_node = ref.get("namespace")
        namespace = ns_node.string("a namespace") if ns_node else route.namespace
        gateway = ctx.find("Gateway", namespace, name_node.string("a name"))
        if gateway is None:
            name_node.fail(
                f"Gateway {name_node.string()!r} (namespace {namespace!r}) is not in the manifests",
                "Add the Gateway to the manifest files or fix the parentRef",
            )
        parents.append(gateway)
        section_node, port_node = ref.get("sectionName"), ref.get("port")
        section = section_node.string("a listener name") if section_node else None
        port = port_node.integer("a port") if port_node else None
        for listener in listeners:
            if listener.gateway is not gateway:
                continue
            if (section is not None and section != listener.name) or (
                port is not None and port != listener.port
            ):
                continue
            if not listener.admits(ctx, route, ref):
                continue
            served = _intersect(listener.hostname, hostnames)
            if served is None:
                continue
            out.append((listener, served))
    traefiks = {id(li.gateway) for li in listeners}
    if not out and any(id(g) in traefiks for g in parents):
        (refs_node or spec).fail(
            "the HTTPRoute attaches to no listener Traefik serves (parentRefs, sectionName, "
            "port, allowedRoutes and hostnames considered): Traefik sets Accepted False",
            "Fix the parentRefs or the Gateway's listeners",
        )
    return out


def read_httproute(ctx: Context, obj: K8sObject) -> list[Draft]:
    """The routers Traefik builds for an HTTPRoute, one route per hostname."""
    if obj.api_version != GATEWAY_API_V1:
        obj.doc.require("apiVersion").fail(
            f"HTTPRoute {obj.api_version}: Traefik 3.7 watches {GATEWAY_API_V1}",
            f"Use apiVersion {GATEWAY_API_V1}",
        )
    check_fields(ctx, obj, HTTPROUTE)
    spec = obj.doc.require("spec", "Add spec.parentRefs and spec.rules")
    listeners = [li for gw in ctx.of_kind("Gateway") for li in _listeners(ctx, gw)]
    attached = _attached(ctx, obj, spec, listeners)
    rules_node = spec.require("rules", "Add rules with backendRefs")
    rules = rules_node.sequence()
    drafts: list[Draft] = []
    for listener, hostnames in attached:
        for hostname in hostnames:
            if "*" in hostname.removeprefix("*."):
                (spec.get("hostnames") or listener.node).fail(
                    f"hostname {hostname!r}: a wildcard is only allowed as the first label",
                    "Write it as *.example.com",
                )
        for ri, rule in enumerate(rules):
            backends, unresolved = _backends(ctx, obj, rule)
            matches_node = rule.get("matches")
            matches: list[YNode | None] = (
                list(matches_node.sequence()) if matches_node is not None else [None]
            )
            for match_node in matches:
                match = _match(match_node)
                middlewares = _filters(ctx, obj, rule, ri, match)
                if unresolved is not None:
                    middlewares += (
                        RouteMiddleware(
                            obj.namespace,
                            f"{obj.name}-rule{ri}-backendrefs",
                            "RefNotPermitted",
                            UnresolvedBackends(unresolved),
                            (rule.get("backendRefs") or rule).source(),
                            {},
                        ),
                    )
                rule_text, score = router_rule(hostnames, match)
                priority = router_priority(score, len(rules), ri)
                at = match_node or rule
                hosts: list[str | None] = list(hostnames) or [None]
                for host in hosts:
                    drafts.append(
                        Draft(
                            obj=obj,
                            host=host,
                            path=match.path,
                            match=match.match,
                            middlewares=middlewares,
                            priority=priority,
                            backends=backends,
                            provider=PROVIDER_GATEWAY,
                            source=at.source(),
                            dialects=(DIALECT_GATEWAY_API,),
                            match_rule=rule_text,
                            entry_points=(listener.entry_point,),
                            tls=listener.https,
                            conditions=match.conditions,
                        )
                    )
    return drafts
