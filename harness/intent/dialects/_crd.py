"""Traefik's CRDs as intent: IngressRoute, Middleware (harness.traefik.middlewares' types, chains
expanded) and TraefikService (weighted).

Mirrors what Traefik 3.7's CRD provider does (pkg/provider/kubernetes/crd/kubernetes_http.go):
the route's ``match`` is the router rule verbatim, ``priority`` 0 means "default", several
``services`` on one route form an implicit weighted round robin (weight defaults to 1), and a
``TraefikService`` with ``weighted.services`` may nest further TraefikServices. Only the subset of
rule syntax the oracle can evaluate is accepted: ``Host``, ``Path``, ``PathPrefix`` and
``PathRegexp`` (Go RE2 syntax, refused where Python's ``re`` would read it differently), and the
request conditions ``Header``, ``HeaderRegexp``, ``Query``, ``QueryRegexp`` and ``Method``,
joined by ``&&``; anything else is refused up front rather than guessed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from typing import NoReturn

import yaml

from harness.intent.dialects._fields import INGRESSROUTE, MIDDLEWARE, TRAEFIKSERVICE, check_fields
from harness.intent.dialects._objects import TRAEFIK_OLD_GROUP, Context, Draft, K8sObject
from harness.intent.dialects._yaml import YNode, manifest_error
from harness.intent.model import (
    DIALECT_INGRESSROUTE,
    DIALECT_TRAEFIKSERVICE,
    FINDING_INGRESS_CLASS,
    FINDING_NOT_MODELED,
    FINDING_REMOVED_API_GROUP,
    FINDING_WEIGHTS,
    PROVIDER_CRD,
    ConditionKind,
    ConditionMatch,
    MatchKind,
    RequestCondition,
    RouteMiddleware,
    WeightedBackend,
)
from harness.traefik.goregexp import GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import (
    Chain,
    ChainRef,
    Inert,
    Middleware,
    MiddlewareSpecError,
    flatten,
    parse_middleware_spec,
)

_LITERAL = r"(`[^`]*`|\"(?:[^\"\\]|\\.)*\")"
_TERM = re.compile(rf"\s*([A-Za-z]+)\s*\(\s*{_LITERAL}\s*(?:,\s*{_LITERAL}\s*)?\)\s*")
_SUPPORTED_RULES = (
    "Host(`...`), Path(`...`), PathPrefix(`...`), PathRegexp(`...`), "
    "Header/HeaderRegexp/Query/QueryRegexp"
    "(`name`, `value`) and Method(`...`) joined by &&"
)
#: Path matchers and the match kind they make (a PathRegexp's value is the Go pattern).
_PATH_MATCHERS: dict[str, MatchKind] = {
    "Path": "exact",
    "PathPrefix": "prefix",
    "PathRegexp": "regex",
}
#: Rule matchers that are request conditions: (kind, match) of the condition they make.
_CONDITION_MATCHERS: dict[str, tuple[ConditionKind, ConditionMatch]] = {
    "Header": ("header", "exact"),
    "HeaderRegexp": ("header", "regex"),
    "Query": ("query", "exact"),
    "QueryRegexp": ("query", "regex"),
}


def _literal(text: str) -> str:
    value = text[1:-1]
    return re.sub(r"\\(.)", r"\1", value) if text.startswith('"') else value


def parse_match(
    at: YNode, rule: str
) -> tuple[str | None, str | None, MatchKind, tuple[RequestCondition, ...]]:
    """Host, path, match kind and request conditions from an IngressRoute ``match`` (the
    supported subset only)."""
    host: str | None = None
    path: str | None = None
    kind: MatchKind = "prefix"
    conditions: list[RequestCondition] = []
    pos = 0
    seen: set[str] = set()
    while True:
        m = _TERM.match(rule, pos)
        if m is None:
            at.fail(
                f"unsupported rule {rule!r} (at character {pos + 1})",
                f"The harness models {_SUPPORTED_RULES}; rewrite the rule or leave this route out",
            )
        name, literal, second = m.group(1), m.group(2), m.group(3)
        value = _literal(literal)
        if (second is not None) != (name in _CONDITION_MATCHERS):
            at.fail(
                f"{name}(...) in rule {rule!r} takes "
                f"{'two arguments' if name in _CONDITION_MATCHERS else 'one argument'}",
                f"The harness models {_SUPPORTED_RULES}",
            )
        if name in _CONDITION_MATCHERS and second is not None:
            cond_kind, cond_match = _CONDITION_MATCHERS[name]
            pattern = _literal(second)
            if cond_match == "regex":
                try:
                    compile_go_regexp(pattern)
                except GoRegexpError as err:
                    at.fail(f"{name}(...) in rule {rule!r}: {err}", "Use RE2 syntax Go accepts")
            conditions.append(RequestCondition(cond_kind, value, pattern, cond_match, at.source()))
        elif name == "Method":
            conditions.append(RequestCondition("method", "", value.upper(), "exact", at.source()))
        elif name == "Host":
            if "Host" in seen:
                at.fail(f"rule {rule!r} has two Host matchers", "Keep one Host(...) per route")
            host = None if value == "*" else value
        elif name in _PATH_MATCHERS:
            if "Path" in seen:
                at.fail(
                    f"rule {rule!r} has two path matchers",
                    "Keep one Path, PathPrefix or PathRegexp per route",
                )
            if name == "PathRegexp":
                try:
                    compile_go_regexp(value)
                except GoRegexpError as err:
                    at.fail(f"PathRegexp(...) in rule {rule!r}: {err}", "Use RE2 syntax Go accepts")
            elif not value.startswith("/"):
                at.fail(
                    f"path {value!r} in rule {rule!r} does not start with '/'",
                    "Start the path with '/'",
                )
            path = value
            kind = _PATH_MATCHERS[name]
            name = "Path"
        else:
            at.fail(
                f"unsupported matcher {name}(...) in rule {rule!r}",
                f"The harness models {_SUPPORTED_RULES}",
            )
        seen.add(name)
        pos = m.end()
        if pos == len(rule):
            break
        if not rule.startswith("&&", pos):
            at.fail(
                f"unsupported rule {rule!r} (at character {pos + 1}: only '&&' may join matchers)",
                f"The harness models {_SUPPORTED_RULES}",
            )
        pos += 2
    if host is None and path is None and "Host" not in seen:
        at.fail(f"rule {rule!r} has neither Host nor a path", "Add a Host(...) or PathPrefix(...)")
    return host, path, kind, tuple(conditions)


def _spec_error(spec: YNode, err: MiddlewareSpecError) -> NoReturn:
    """The model's refusal at the line of the field its path names (the deepest that exists;
    a key's own line, not its value's)."""
    node, line = spec, spec.line
    for part in err.field:
        child: YNode | None = None
        if isinstance(part, int) and isinstance(node.node, yaml.SequenceNode):
            items = node.sequence()
            child = items[part] if part < len(items) else None
            line = child.line if child is not None else line
        elif isinstance(part, str) and isinstance(node.node, yaml.MappingNode):
            child = node.get(part)
            key = next((k for k, _ in node.node.value if k.value == part), None)
            line = int(key.start_mark.line) + 1 if child is not None and key else line
        if child is None:
            break
        node = child
    where = dataclasses.replace(
        node.source(), line=line, field=f"spec.{err.field_path}".rstrip(".")
    )
    raise manifest_error(where, err.problem, err.advice)


def route_middlewares(
    ctx: Context, namespace: str, name: str, at: YNode
) -> tuple[RouteMiddleware, ...]:
    """The Middleware ``namespace/name`` of the manifests as the router applies it: parsed by
    the middleware model, a chain expanded in order (its references resolved in its own
    namespace, as Traefik's CRD provider does), each refusal at file:line:field."""
    leaves: list[RouteMiddleware] = []
    via: dict[ChainRef, tuple[str, ...]] = {}
    ref_nodes: dict[ChainRef, YNode] = {}

    def load(ns: str, mw_name: str, ref_at: YNode, chain: tuple[str, ...]) -> Middleware:
        obj = ctx.find("Middleware", ns, mw_name)
        if obj is None:
            ref_at.fail(
                f"Middleware {mw_name!r} (namespace {ns!r}) is not in the manifests",
                "Add the Middleware object to the manifest files or fix the reference",
            )
        check_fields(ctx, obj, MIDDLEWARE)
        spec = obj.doc.require("spec", "Add a spec with the middleware type, e.g. stripPrefix")
        try:
            model = parse_middleware_spec(spec.value())
        except MiddlewareSpecError as err:
            _spec_error(spec, err)
        kind, body = spec.mapping()[0]
        label = f"{ns}/{mw_name}"
        if isinstance(model, Chain):
            filled: list[ChainRef] = []
            for ref, node in zip(
                model.middlewares, body.require("middlewares").sequence(), strict=True
            ):
                if "@" in ref.name:
                    node.require("name").fail(
                        f"cross-provider middleware reference {ref.name!r} in a chain is not "
                        "supported by the harness",
                        "Reference a Middleware in the manifests by name",
                    )
                _check_namespace(node, ns, "a Middleware of a chain")
                full = ChainRef(ref.name, ns)
                via[full], ref_nodes[full] = (*chain, label), node
                filled.append(full)
            return Chain(tuple(filled))
        if isinstance(model, Inert):
            ctx.note(
                FINDING_NOT_MODELED,
                f"Middleware {mw_name!r} ({kind}) does not change the status, backend, path or "
                "forwarded headers of a probe; accepted as inert",
                body.source(),
                "info",
            )
        leaves.append(RouteMiddleware(ns, mw_name, kind, model, body.source(), spec.value(), chain))
        return model

    top = load(namespace, name, at, ())
    if isinstance(top, Chain):
        try:
            flatten(
                (top,),
                lambda ref: load(ref.namespace or namespace, ref.name, ref_nodes[ref], via[ref]),
            )
        except MiddlewareSpecError as err:  # a chain that contains itself
            at.fail(err.problem, err.advice)
    return tuple(leaves)


def _check_namespace(entry: YNode, namespace: str, what: str) -> None:
    ns_node = entry.get("namespace")
    if ns_node is not None and ns_node.string("a namespace") != namespace:
        ns_node.fail(
            f"{what} in another namespace ({ns_node.string()!r}, not {namespace!r}): Traefik "
            "refuses cross-namespace references by default (allowCrossNamespace=false)",
            "Keep the objects in one namespace",
        )


def _weight(entry: YNode) -> int:
    node = entry.get("weight")
    if node is None:
        return 1  # Traefik's default weight (buildServicesLB).
    value = node.integer("a weight (a whole number)")
    if value < 0:
        node.fail(f"weight {value} is negative", "Use 0 or more (0 sends no traffic)")
    return value


def _leaves(
    ctx: Context, namespace: str, services: YNode, stack: tuple[str, ...]
) -> tuple[list[tuple[WeightedBackend, Fraction]], bool]:
    """Backends with their share of traffic for a weighted list; True if a TraefikService was
    nested (then the written weights are not the final ones)."""
    entries = services.sequence()
    if not entries:
        services.fail("no services", "List at least one service")
    weights = [_weight(e) for e in entries]
    total = sum(w for w in weights if w > 0)
    if total == 0:
        services.fail(
            "every weight is 0: no backend would receive traffic",
            "Give one service a positive weight",
        )
    out: list[tuple[WeightedBackend, Fraction]] = []
    nested = False
    for entry, weight in zip(entries, weights, strict=True):
        share = Fraction(weight, total)
        name = entry.require("name", "Name the Service or TraefikService").string("a name")
        if "@" in name:
            entry.require("name").fail(
                f"cross-provider reference {name!r} is not supported by the harness",
                "Reference a Kubernetes Service or a TraefikService in the manifests",
            )
        _check_namespace(entry, namespace, "a service")
        kind_node = entry.get("kind")
        kind = kind_node.string("a kind") if kind_node else "Service"
        if kind == "Service":
            port_node = entry.get("port")
            port = port_node.int_or_string("a port") if port_node else None
            backend = ctx.backend(
                namespace,
                name,
                port,
                name_at=entry.require("name"),
                port_at=port_node or entry,
                weight=weight,
            )
            out.append((backend, share))
        elif kind == "TraefikService":
            nested = True
            children, _ = traefik_service(ctx, namespace, name, entry, stack)
            for backend, child_share in children:
                out.append((WeightedBackend(backend.service, backend.port, 0), share * child_share))
        else:
            (kind_node or entry).fail(
                f"unknown service kind {kind!r}", "Use Service or TraefikService"
            )
    return out, nested


def traefik_service(
    ctx: Context, namespace: str, name: str, at: YNode, stack: tuple[str, ...] = ()
) -> tuple[list[tuple[WeightedBackend, Fraction]], bool]:
    """The leaf backends of a weighted TraefikService with their shares (nesting flattened),
    and whether it nests further TraefikServices."""
    if name in stack:
        at.fail(
            f"TraefikService {name!r} refers to itself ({' → '.join((*stack, name))})",
            "Break the cycle",
        )
    obj = ctx.find("TraefikService", namespace, name)
    if obj is None:
        at.fail(
            f"TraefikService {name!r} (namespace {namespace!r}) is not in the manifests",
            "Add the TraefikService to the manifest files or fix the name",
        )
    check_fields(ctx, obj, TRAEFIKSERVICE)
    spec = obj.doc.require("spec", "Add spec.weighted.services")
    weighted = spec.get("weighted")
    if weighted is None:
        other = ", ".join(k for k, _ in spec.mapping()) or "nothing"
        spec.fail(
            f"TraefikService {name!r} has {other}; the harness models 'weighted' only",
            "Use spec.weighted.services",
        )
    if weighted.get("sticky") is not None:
        ctx.note(
            FINDING_WEIGHTS,
            f"TraefikService {name!r} uses sticky sessions: a client with the cookie stays on one "
            "backend, so shares only hold across clients without cookies",
            weighted.require("sticky").source(),
        )
    return _leaves(
        ctx, namespace, weighted.require("services", "List the weighted services"), (*stack, name)
    )


def _integer_weights(leaves: list[tuple[WeightedBackend, Fraction]]) -> tuple[WeightedBackend, ...]:
    """Integer WRR weights with exactly the given shares (smallest such integers)."""
    positive = [s for _, s in leaves if s > 0]
    scale = math.lcm(*(s.denominator for s in positive)) if positive else 1
    ints = [int(s * scale) for _, s in leaves]
    divisor = math.gcd(*ints) or 1
    return tuple(
        WeightedBackend(b.service, b.port, w // divisor)
        for (b, _), w in zip(leaves, ints, strict=True)
    )


def merge_backends(
    ctx: Context, backends: tuple[WeightedBackend, ...], at: YNode
) -> tuple[WeightedBackend, ...]:
    """One entry per (Service, port), weights added; note Services listed under two ports (the
    backends answer with the Service name, so the two cannot be told apart)."""
    merged: dict[tuple[str, int | str | None], int] = {}
    for b in backends:
        merged[(b.service, b.port)] = merged.get((b.service, b.port), 0) + b.weight
    names = [svc for svc, _ in merged]
    for svc in sorted({n for n in names if names.count(n) > 1}):
        ctx.note(
            FINDING_WEIGHTS,
            f"Service {svc!r} appears with several ports in one weighted route; its shares are "
            "counted together because backends are told apart by Service name",
            at.source(),
        )
    return tuple(WeightedBackend(svc, port, w) for (svc, port), w in merged.items())


def route_backends(
    ctx: Context, namespace: str, services: YNode
) -> tuple[tuple[WeightedBackend, ...], bool]:
    """Backends of one IngressRoute route; True when a TraefikService is involved."""
    entries = services.sequence()
    if not entries:
        services.fail(
            "the route has no services: Traefik would answer 404/503", "List at least one service"
        )
    if len(entries) == 1:
        entry = entries[0]
        kind_node = entry.get("kind")
        kind = kind_node.string("a kind") if kind_node else "Service"
        name = entry.require("name", "Name the Service").string("a name")
        if kind == "TraefikService":
            _check_namespace(entry, namespace, "a TraefikService")
            leaves, nested = traefik_service(ctx, namespace, name, entry)
            backends = _integer_weights(leaves) if nested else tuple(b for b, _ in leaves)
            return merge_backends(ctx, backends, entry), True
        if kind == "Service":
            # A single Kubernetes Service: Traefik ignores any weight on it.
            _check_namespace(entry, namespace, "a service")
            port_node = entry.get("port")
            port = port_node.int_or_string("a port") if port_node else None
            backend = ctx.backend(
                namespace, name, port, name_at=entry.require("name"), port_at=port_node or entry
            )
            return (backend,), False
    leaves, nested = _leaves(ctx, namespace, services, ())
    backends = _integer_weights(leaves) if nested else tuple(b for b, _ in leaves)
    return merge_backends(ctx, backends, services), nested


def read_ingressroute(ctx: Context, obj: K8sObject) -> list[Draft]:
    """The routes of an IngressRoute."""
    if obj.api_version == TRAEFIK_OLD_GROUP and not ctx.read_legacy:
        return []  # Traefik v3 does not watch the traefik.containo.us group.
    if obj.api_version == TRAEFIK_OLD_GROUP:
        ctx.note(
            FINDING_REMOVED_API_GROUP,
            f"IngressRoute {obj.name!r} uses the API group traefik.containo.us, removed in Traefik "
            "v3: a v3 proxy does not see it; " + ctx.renders("traefik.io/v1alpha1"),
            obj.doc.require("apiVersion").source(),
        )
    check_fields(ctx, obj, INGRESSROUTE)
    spec = obj.doc.require("spec", "Add spec.routes")
    klass_node = spec.get("ingressClassName") or obj.annotation("kubernetes.io/ingress.class")
    klass = klass_node.string("a class name") if klass_node is not None else None
    if klass not in (None, "", "traefik"):
        ctx.note(
            FINDING_INGRESS_CLASS,
            f"IngressRoute {obj.name!r} has ingress class {klass!r}: Traefik with its default "
            "configuration only serves IngressRoutes without a class or with class 'traefik'; "
            "skipped",
            klass_node.source() if klass_node else None,
        )
        return []
    entry_points: tuple[str, ...] | None = None
    eps_node = spec.get("entryPoints")
    if eps_node is not None:
        entry_points = tuple(n.string("an entry point name") for n in eps_node.sequence())
        if not entry_points:
            eps_node.fail(
                "entryPoints is empty: Traefik then serves the route on every entry point, "
                "which is what leaving it out says",
                "Name entry points (e.g. websecure), or remove entryPoints",
            )
    tls_node = spec.get("tls")
    secret_node = tls_node.get("secretName") if tls_node is not None else None
    tls_secrets = (secret_node.string("a Secret name"),) if secret_node is not None else ()
    drafts: list[Draft] = []
    for route in spec.require("routes", "List the routes").sequence():
        kind_node = route.get("kind")
        if kind_node is not None and kind_node.string("a kind") != "Rule":
            kind_node.fail(f"route kind {kind_node.string()!r} is not supported", "Use kind: Rule")
        match_node = route.require("match", "Add a match rule, e.g. Host(`example.com`)")
        rule = match_node.string("a rule")
        host, path, match, conditions = parse_match(match_node, rule)
        priority: int | None = None
        prio_node = route.get("priority")
        if prio_node is not None:
            priority = prio_node.integer("a priority (a whole number)") or None
        if route.get("syntax") is not None:
            ctx.note(
                FINDING_NOT_MODELED,
                "route 'syntax' is deprecated; the harness assumes the v3 rule syntax",
                route.require("syntax").source(),
            )
        middlewares: list[RouteMiddleware] = []
        mw_node = route.get("middlewares")
        for ref in mw_node.sequence() if mw_node is not None else []:
            name = ref.require("name", "Name the Middleware").string("a name")
            if "@" in name:
                ref.require("name").fail(
                    f"cross-provider middleware reference {name!r} is not supported by the harness",
                    "Reference a Middleware in the manifests by name",
                )
            _check_namespace(ref, obj.namespace, "a Middleware")
            middlewares += route_middlewares(ctx, obj.namespace, name, ref)
        backends, via_ts = route_backends(
            ctx, obj.namespace, route.require("services", "List the services")
        )
        dialects = (
            (DIALECT_INGRESSROUTE, DIALECT_TRAEFIKSERVICE) if via_ts else (DIALECT_INGRESSROUTE,)
        )
        drafts.append(
            Draft(
                obj=obj,
                host=host,
                path=path,
                match=match,
                middlewares=tuple(middlewares),
                priority=priority,
                backends=backends,
                provider=PROVIDER_CRD,
                source=route.source(),
                dialects=dialects,
                match_rule=rule,
                ingress_class=klass or None,
                entry_points=entry_points,
                tls=tls_node is not None,
                tls_secrets=tls_secrets,
                conditions=conditions,
            )
        )
    return drafts
