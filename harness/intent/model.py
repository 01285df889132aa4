"""The intent model: what the manifests declare, as plain frozen data.

Every stage after the dialects (oracle, probes, suites, stats, reports) works on these
dataclasses and nothing else, so a route read from a Traefik 1.x annotation, a v1 Ingress or an
IngressRoute looks the same downstream. Each object can say where it came from (``Source``) and
serialises to JSON with ``to_dict()`` for the results file.

The rule string of a route is computed the way Traefik 3.7 builds it, because Traefik's default
router priority is ``len(rule)``:

- Ingress provider (``kubernetes``): ``Host("h") && PathPrefix("/p")``, Go ``%q`` quoting,
  ``Path`` for Exact, and with ``strictPrefixMatching`` ``(Path("/p") || PathPrefix("/p/"))``
  (pkg/provider/kubernetes/ingress/kubernetes.go, ``loadRouter``/``buildRule``).
- CRD provider (``kubernetescrd``): the IngressRoute ``match`` string verbatim; routes the harness
  renders itself use backticks (same length as the Ingress form for plain hosts and paths).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from harness.traefik.middlewares import Inert, Middleware, StripPrefix

#: Traefik provider names, as used in ``@provider`` references and ``providers.precedence``.
PROVIDER_INGRESS = "kubernetes"
PROVIDER_CRD = "kubernetescrd"
PROVIDER_GATEWAY = "kubernetesgateway"
#: Traefik's provider for Ingresses written for ingress-nginx (kubernetesIngressNGINX).
PROVIDER_NGINX = "kubernetesingressnginx"

#: Traefik 3.7's default ``providers.precedence`` (pkg/config/static/static_config.go,
#: ``providerNames``): on equal priority, a router of an earlier provider wins.
DEFAULT_PROVIDER_PRECEDENCE: tuple[str, ...] = (
    PROVIDER_GATEWAY,
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    PROVIDER_NGINX,
    "swarm",
    "docker",
    "file",
    "redis",
    "knative",
    "consul",
    "consulcatalog",
    "nomad",
    "etcd",
    "ecs",
    "http",
    "zookeeper",
    "rest",
)

#: How a route's ``path`` is matched: Traefik ``Path``, ``PathPrefix`` or ``PathRegexp`` (then
#: ``path`` is the pattern, Go RE2 syntax, found anywhere in the routing path).
MatchKind = Literal["exact", "prefix", "regex"]
#: What a :class:`RequestCondition` looks at, and how it compares.
ConditionKind = Literal["header", "query", "method", "cookie"]
ConditionMatch = Literal["exact", "regex"]
Severity = Literal["info", "warning"]
#: How manifests in a legacy form (``extensions/v1beta1``, Traefik 1.x annotations, the
#: ``traefik.containo.us`` group) are verified: through a v3 translation of what they mean, or
#: applied as Traefik v3 sees them (which ignores the 1.x annotations).
LegacyMode = Literal["translate", "as-written"]
LEGACY_MODES: tuple[LegacyMode, ...] = ("translate", "as-written")
#: What the local target does with one object of the manifests.
#: applied: as written; converted: a legacy Ingress served as networking.k8s.io/v1 with its
#: annotations left in place (what a v1.22+ cluster stores); translated: replaced by the
#: harness's v3 rendering of its routes (``--legacy translate``); skipped: not applied, with why.
ObjectRole = Literal["applied", "converted", "translated", "skipped"]

#: Dialect tags a route can carry (a route may carry several, e.g. legacy API + 1.x annotations).
DIALECT_INGRESS_V1 = "ingress-v1"
DIALECT_INGRESS_V1BETA1 = "ingress-v1beta1"
DIALECT_TRAEFIK_V3_ANNOTATIONS = "traefik-v3-annotations"
DIALECT_TRAEFIK_V1_ANNOTATIONS = "traefik-v1-annotations"
DIALECT_INGRESSROUTE = "ingressroute"
DIALECT_TRAEFIKSERVICE = "traefikservice"
DIALECT_GATEWAY_API = "gateway-api"
#: An Ingress for ingress-nginx (its class), read with ingress-nginx's documented semantics.
DIALECT_INGRESS_NGINX = "ingress-nginx"


@dataclass(frozen=True)
class Source:
    """Where something was declared: file, 1-based YAML document and line, and the field path."""

    file: str
    document: int
    line: int
    field: str
    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        obj = f" {self.kind} {self.name!r}" if self.kind else ""
        return f"{self.file}:{self.line} (document {self.document}{obj}, field {self.field})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "document": self.document,
            "line": self.line,
            "field": self.field,
            "kind": self.kind,
            "name": self.name,
        }


@dataclass(frozen=True)
class Finding:
    """Something a person should know that is not an error: a deviation, a translation, a tie.

    ``kind`` is a stable slug (see the ``FINDING_*`` constants) so reports can group findings.
    """

    kind: str
    message: str
    source: Source | None = None
    severity: Severity = "warning"
    routes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "source": None if self.source is None else self.source.to_dict(),
            "routes": list(self.routes),
        }


#: The controller of the IngressClasses Traefik's Ingress provider serves.
TRAEFIK_CONTROLLER = "traefik.io/ingress-controller"
#: The Gateway API group, and the controller of the GatewayClasses Traefik's Gateway provider
#: serves.
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_V1 = f"{GATEWAY_GROUP}/v1"
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
#: The controller of ingress-nginx's IngressClasses (Traefik's NGINX provider serves them).
NGINX_CONTROLLER = "k8s.io/ingress-nginx"

# Findings from reading manifests.
FINDING_LEGACY_API = "legacy-api-version"
FINDING_LEGACY_ANNOTATION = "legacy-annotation"
FINDING_REMOVED_API_GROUP = "removed-api-group"
FINDING_DUPLICATE_ROUTER = "duplicate-router"
FINDING_INGRESS_CLASS = "ingress-class"
FINDING_NOT_MODELED = "not-modeled"
FINDING_IGNORED_OBJECT = "ignored-object"
FINDING_MISSING_PATH_TYPE = "missing-path-type"
FINDING_WEIGHTS = "weights"
FINDING_LEGACY_AS_WRITTEN = "legacy-as-written"
FINDING_TLS_WITHOUT_ROUTER_TLS = "tls-without-router-tls"
#: A regex path or condition no matching request value was generated for: not probed.
FINDING_REGEX_UNPROBED = "regex-unprobed"
#: A GatewayClass the manifests name but do not define, supplied as Traefik's.
FINDING_GATEWAY_CLASS = "gateway-class"
#: What the local target changes of a Gateway: each listener port, to its entry point's.
FINDING_GATEWAY_LISTENER_PORT = "gateway-listener-port"
#: An HTTPRoute filter Traefik's Gateway provider cannot load: it answers 500 (Accepted).
FINDING_GATEWAY_UNSUPPORTED_FILTER = "gateway-unsupported-filter"
#: An HTTPRoute backendRef to another namespace that no ReferenceGrant permits: Traefik sets
#: ResolvedRefs False (RefNotPermitted) and answers 500 instead, as the Gateway API spec says.
FINDING_GATEWAY_REF_NOT_PERMITTED = "gateway-ref-not-permitted"
#: ingress-nginx: an annotation Traefik's NGINX provider reads differently, or does not read.
FINDING_NGINX_MEANING_CHANGED = "nginx-meaning-changed"
FINDING_NGINX_IGNORED = "nginx-annotation-ignored"
#: ingress-nginx: a canary applies to every path routed to its primary Service (both sides).
FINDING_NGINX_CANARY_PER_SERVICE = "nginx-canary-per-service"
#: An Ingress that two of Traefik's providers serve (the Ingress and the NGINX provider).
FINDING_SERVED_TWICE = "served-by-two-providers"
# Findings from the oracle (Traefik 3.7 versus the Kubernetes Ingress spec).
FINDING_PREFIX_OUTRANKS_EXACT = "prefix-outranks-exact"
FINDING_CHARACTER_WISE_PREFIX = "character-wise-prefix"
FINDING_TRAILING_SLASH_PREFIX = "trailing-slash-prefix"
FINDING_RULE_LENGTH_ORDER = "rule-length-order"
FINDING_EXPLICIT_PRIORITY = "explicit-priority-overrides-spec"
FINDING_UNDEFINED_TIE = "undefined-tie"
FINDING_PROVIDER_PRECEDENCE = "provider-precedence"
FINDING_MIDDLEWARE_UNPREDICTABLE = "middleware-unpredictable"
#: Traefik's additive HTTPRoute priority picks another route than the Gateway API spec's order.
FINDING_GATEWAY_PRECEDENCE = "gateway-precedence"
#: What Traefik's entry point did to a request before routing, where that differs from RFC 3986
#: or the Ingress spec (the slugs of harness.traefik.requests.DEVIATIONS).
FINDING_EDGE_DEVIATION = "edge-request-deviation"


@dataclass(frozen=True)
class WeightedBackend:
    """One backend of a route: a Kubernetes Service, its port and its WRR weight.

    ``port`` is the Service port number when the Service is in the manifests (named ports are
    resolved), else the port as written (number or name). Weight 0 means "must get nothing".
    ``namespace``: the Service's namespace when it is not the route's (an HTTPRoute backendRef
    a ReferenceGrant permits); None: the route's.
    """

    service: str
    port: int | str | None
    weight: int
    namespace: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service": self.service, "port": self.port, "weight": self.weight}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        return out


@dataclass(frozen=True)
class ServicePortRef:
    """A Service port: its name (if any) and number (if known)."""

    name: str | None
    number: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "number": self.number}


@dataclass(frozen=True)
class ServiceRef:
    """A Kubernetes Service the routes send traffic to.

    ``declared`` is True when a ``Service`` object for it is in the manifests (then ``ports`` are
    all its ports and ``source`` points at it); otherwise the caller vouched for it through
    ``known_services`` and ``ports`` are the ports the routes reference.
    """

    name: str
    namespace: str
    ports: tuple[ServicePortRef, ...]
    declared: bool
    source: Source | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "ports": [p.to_dict() for p in self.ports],
            "declared": self.declared,
            "source": None if self.source is None else self.source.to_dict(),
        }


def go_quote(value: str) -> str:
    """Quote like Go's ``fmt.Sprintf("%q", s)``, which Traefik's Ingress provider uses in rules."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            # Go keeps printable non-ASCII as is; hosts and paths are ASCII in practice.
            out.append(ch)
    out.append('"')
    return "".join(out)


@dataclass(frozen=True)
class RouteMiddleware:
    """One middleware of a route, in the order Traefik applies them (chains expanded):
    ``model`` is :mod:`harness.traefik.middlewares`' reading of ``spec``, the Middleware's spec as
    written (rendered back for derived scenarios). ``name`` is empty for a strip the harness
    translated from a Traefik 1.x rule type; ``chain`` names the chains it was reached through."""

    namespace: str
    name: str
    kind: str
    model: Middleware
    source: Source
    spec: Mapping[str, Any] = field(compare=False, repr=False)
    chain: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``namespace/name (type)``, for messages."""
        name = f"{self.namespace}/{self.name}" if self.name else "a Traefik 1.x strip rule type"
        via = f", in chain {' > '.join(self.chain)}" if self.chain else ""
        return f"{name} ({self.kind}{via})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "type": self.kind,
            "chain": list(self.chain),
            "spec": dict(self.spec),
            "source": self.source.to_dict(),
        }


@dataclass(frozen=True)
class RequestCondition:
    """A condition on the request besides its host and path; a route matches only when all of
    its conditions hold (an HTTPRoute match's ``headers``, ``queryParams`` and ``method``, an
    ingress-nginx canary's header or cookie).

    - ``name``: the header (compared case-insensitively), query parameter or cookie name; empty
      for ``method``.
    - ``value``: the value for ``exact``; for ``regex`` the pattern, in Go's RE2 syntax, found
      anywhere in the value (anchor it with ``^...$`` for a whole-value match).
    - A header, parameter or cookie sent several times matches when one of its values does.
    """

    kind: ConditionKind
    name: str = ""
    value: str = ""
    match: ConditionMatch = "exact"
    source: Source | None = field(default=None, compare=False)

    def label(self) -> str:
        """The condition for people: ``header X-Canary = always``, ``method GET``."""
        if self.kind == "method":
            return f"method {self.value}"
        op = "=" if self.match == "exact" else "~"
        return f"{self.kind} {self.name} {op} {self.value}"

    def matcher(self) -> str:
        """The condition as a Traefik v3 rule matcher (a cookie: ``HeaderRegexp`` on ``Cookie``)."""
        regexp = "Regexp" if self.match == "regex" else ""
        if self.kind == "method":
            return f"Method(`{self.value}`)"
        if self.kind == "cookie":
            value = self.value if self.match == "regex" else re.escape(self.value)
            return f"HeaderRegexp(`Cookie`, `(^|;\\s*){re.escape(self.name)}=({value})(;|$)`)"
        name = "Header" if self.kind == "header" else "Query"
        return f"{name}{regexp}(`{self.name}`, `{self.value}`)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "value": self.value, "match": self.match}


@dataclass(frozen=True)
class Route:
    """One router as Traefik will build it: what it matches, what it does, where it sends traffic.

    - ``host`` None: any host. ``path`` None: any path (an IngressRoute ``Host(...)`` alone).
    - ``match``: ``exact`` (Traefik ``Path``), ``prefix`` (``PathPrefix``) or ``regex``
      (``PathRegexp``: ``path`` is a Go RE2 pattern, found anywhere in the routing path).
    - ``middlewares``: the router's middlewares in the order Traefik applies them.
    - ``priority``: the explicit priority, or None (0 counts as unset, as in Traefik).
    - ``provider``: the Traefik provider that serves this route once rendered and applied.
    - ``path_type``: the Kubernetes Ingress pathType (Exact, Prefix, ImplementationSpecific) for
      routes that come from an Ingress; None for IngressRoutes (the Ingress spec does not apply).
    - ``match_rule``: an IngressRoute's ``match`` as written (then it is the rule, verbatim).
    - ``entry_points``: the entry points the router is bound to (``router.entrypoints``,
      IngressRoute ``entryPoints``); None: every default entry point, which is what Traefik
      gives an Ingress or IngressRoute that names none.
    - ``tls``: a TLS router (``router.tls``, IngressRoute ``tls``): it answers over HTTPS only.
      An entry point with TLS of its own (``http.tls``) makes every router on it one as well.
    - ``tls_secrets``: the TLS Secrets the route's object names (Ingress ``spec.tls``,
      IngressRoute ``tls.secretName``); Traefik loads them as certificates, chosen by SNI.
    - ``conditions``: what the request must also carry to match (:class:`RequestCondition`).
    """

    id: str
    host: str | None
    path: str | None
    match: MatchKind
    middlewares: tuple[RouteMiddleware, ...]
    priority: int | None
    backends: tuple[WeightedBackend, ...]
    provider: str
    source: Source
    namespace: str = "default"
    dialects: tuple[str, ...] = ()
    path_type: str | None = None
    match_rule: str | None = None
    ingress_class: str | None = None
    entry_points: tuple[str, ...] | None = None
    tls: bool = False
    tls_secrets: tuple[str, ...] = ()
    conditions: tuple[RequestCondition, ...] = ()

    @property
    def declares_tls(self) -> bool:
        """True when the route is a TLS router or its object names TLS certificates."""
        return self.tls or bool(self.tls_secrets)

    def rule_for(self, *, strict_prefix_matching: bool = False) -> str:
        """The rule string Traefik builds for this route (``strictPrefixMatching`` only affects
        the Ingress provider)."""
        if self.match_rule is not None:
            return self.match_rule
        if self.provider == PROVIDER_INGRESS:
            parts = []
            if self.host:
                parts.append(f"Host({go_quote(self.host)})")
            if self.path:
                if self.match == "regex":
                    parts.append(f"PathRegexp({go_quote(self.path)})")
                elif self.match == "exact":
                    parts.append(f"Path({go_quote(self.path)})")
                elif strict_prefix_matching and self.path != "/":
                    base = self.path.removesuffix("/")
                    parts.append(f"(Path({go_quote(base)}) || PathPrefix({go_quote(base + '/')}))")
                else:
                    parts.append(f"PathPrefix({go_quote(self.path)})")
            return " && ".join(parts)
        # Rendered as an IngressRoute by the harness: backticks, the idiomatic CRD form.
        parts = []
        if self.host:
            parts.append(f"Host(`{self.host}`)")
        if self.path:
            matcher = {"exact": "Path", "prefix": "PathPrefix", "regex": "PathRegexp"}[self.match]
            parts.append(f"{matcher}(`{self.path}`)")
        parts.extend(c.matcher() for c in self.conditions)
        return " && ".join(parts)

    def priority_for(self, *, strict_prefix_matching: bool = False) -> int:
        """Traefik's effective priority: the explicit one, else ``len(rule)``."""
        if self.priority:
            return self.priority
        return len(self.rule_for(strict_prefix_matching=strict_prefix_matching))

    @property
    def strip_prefixes(self) -> tuple[str, ...]:
        """The prefixes of the route's stripPrefix middlewares, in order."""
        return tuple(
            p
            for m in self.middlewares
            if isinstance(m.model, StripPrefix)
            for p in m.model.prefixes
        )

    @property
    def effect_middlewares(self) -> tuple[Middleware, ...]:
        """The middlewares that can change an answer (inert ones left out), to compare routes."""
        return tuple(m.model for m in self.middlewares if not isinstance(m.model, Inert))

    @property
    def rule(self) -> str:
        """The rule string with Traefik's default options."""
        return self.rule_for()

    @property
    def effective_priority(self) -> int:
        """The priority Traefik uses with its default options."""
        return self.priority_for()

    @property
    def weighted(self) -> bool:
        """True when the route splits traffic over more than one backend."""
        return len(self.backends) > 1

    def shares(self) -> dict[str, float]:
        """Expected share of traffic per backend Service (weight 0 → 0.0)."""
        return {name: float(share) for name, share in self.exact_shares().items()}

    def exact_shares(self) -> dict[str, Fraction]:
        """Expected share per backend Service as exact fractions (non-positive weights get 0,
        as Traefik's WRR ignores them)."""
        total = sum(b.weight for b in self.backends if b.weight > 0)
        out: dict[str, Fraction] = {}
        for b in self.backends:
            share = Fraction(b.weight, total) if total and b.weight > 0 else Fraction(0)
            out[b.service] = out.get(b.service, Fraction(0)) + share
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "path": self.path,
            "match": self.match,
            "path_type": self.path_type,
            "strip_prefixes": list(self.strip_prefixes),
            "middlewares": [m.to_dict() for m in self.middlewares],
            "priority": self.priority,
            "rule": self.rule,
            "effective_priority": self.effective_priority,
            "provider": self.provider,
            "backends": [b.to_dict() for b in self.backends],
            "shares": self.shares(),
            "namespace": self.namespace,
            "dialects": list(self.dialects),
            "ingress_class": self.ingress_class,
            "entry_points": None if self.entry_points is None else list(self.entry_points),
            "tls": self.tls,
            "tls_secrets": list(self.tls_secrets),
            "conditions": [c.to_dict() for c in self.conditions],
            "source": self.source.to_dict(),
        }


@dataclass(frozen=True)
class ManifestObject:
    """One object of the manifests and what a target does with it (see ``ObjectRole``).

    ``body`` is the object as written (a plain mapping, ``metadata.namespace`` filled in); for a
    converted legacy Ingress it is the networking.k8s.io/v1 form. Secrets' bodies never leave
    the target (``to_dict`` gives only kind, name and role).
    """

    kind: str
    api_version: str
    name: str
    namespace: str
    body: dict[str, Any] = field(compare=False, repr=False)
    source: Source
    role: ObjectRole
    note: str = ""
    legacy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "api_version": self.api_version,
            "name": self.name,
            "namespace": self.namespace,
            "role": self.role,
            "note": self.note,
            "source": self.source.to_dict(),
        }


@dataclass(frozen=True)
class UnservedRoute:
    """A route as its manifest declares it, which Traefik does not build, and why."""

    route: Route
    reason: str


AnnotationFateKind = Literal["honoured", "ignored", "changed"]


@dataclass(frozen=True)
class AnnotationFate:
    """One annotation of an Ingress written for ingress-nginx, and what Traefik's NGINX provider
    does with it (the report's migration section): ``honoured`` (same meaning), ``ignored`` (the
    provider does not read it, and says nothing), ``changed`` (read, with another meaning).
    ``routes``: the routes whose checks depend on it (a failed check among them is one it
    caused)."""

    ingress: str
    namespace: str
    key: str
    value: str
    fate: AnnotationFateKind
    note: str
    source: Source
    routes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingress": self.ingress,
            "namespace": self.namespace,
            "key": self.key,
            "value": self.value,
            "fate": self.fate,
            "note": self.note,
            "source": self.source.to_dict(),
            "routes": list(self.routes),
        }


@dataclass(frozen=True)
class Intent:
    """Everything a set of manifests declares: routes, the Services they use, and findings.

    ``objects`` are the manifests' own objects, which the local target applies as written
    (empty for intent the harness derived itself: that is rendered). ``effective``: when the
    manifests are applied as written but Traefik v3 reads them differently from what they
    declare (legacy forms with ``--legacy as-written``), the intent Traefik will actually build;
    None when it builds what is declared.
    """

    routes: tuple[Route, ...]
    services: tuple[ServiceRef, ...] = ()
    findings: tuple[Finding, ...] = ()
    files: tuple[str, ...] = ()
    namespace: str = "default"
    objects: tuple[ManifestObject, ...] = ()
    legacy_mode: LegacyMode | None = None
    effective: Intent | None = None
    #: Routes of Ingresses Traefik does not serve (another IngressClass): probed for 404.
    unserved: tuple[UnservedRoute, ...] = ()
    #: Ingresses written for ingress-nginx: every annotation and its fate on Traefik.
    migration: tuple[AnnotationFate, ...] = ()
    #: Per route id, how Traefik serves it differently from what it declares (for messages).
    route_notes: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: HTTPRoutes (namespace, name) on which Traefik is expected to set ResolvedRefs False
    #: with reason RefNotPermitted (a backendRef no ReferenceGrant permits): not a rejection.
    refs_not_permitted: tuple[tuple[str, str], ...] = ()
    _by_id: dict[str, Route] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({r.id: r for r in self.routes})

    def route(self, route_id: str) -> Route:
        """The route with this id (KeyError names the known ids)."""
        try:
            return self._by_id[route_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise KeyError(f"no route {route_id!r} in the intent (routes: {known})") from None

    @property
    def weighted_routes(self) -> tuple[Route, ...]:
        """Routes that split traffic over several backends (the statistical checks' input)."""
        return tuple(r for r in self.routes if r.weighted)

    @property
    def dialects(self) -> tuple[str, ...]:
        """Every dialect tag that occurs, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.routes:
            for d in r.dialects:
                seen.setdefault(d, None)
        return tuple(seen)

    @property
    def served(self) -> Intent:
        """The intent Traefik builds from what is applied (see ``effective``)."""
        return self.effective or self

    def legacy_note(self, route: Route) -> str | None:
        """For a route of a legacy object applied as written: what Traefik v3 does not see of
        it, for failure messages (None otherwise)."""
        if self.legacy_mode != "as-written":
            return None
        for obj in self.objects:
            if obj.legacy and (obj.kind, obj.name, obj.namespace) == (
                route.source.kind,
                route.source.name,
                route.namespace,
            ):
                return (
                    f"{obj.kind} {obj.name!r} is applied as written: {obj.note}. This check judges "
                    "what it declares; --legacy translate verifies that through a v3 translation"
                )
        return None

    def route_note(self, route: Route) -> tuple[str, str] | None:
        """What a failure message says about how Traefik serves ``route`` differently from its
        declaration, labelled: ``legacy`` (see :meth:`legacy_note`), ``nginx`` (an annotation
        Traefik's NGINX provider reads differently) or ``traefik`` (an HTTPRoute filter its
        Gateway provider cannot load); None when it serves what is declared."""
        note = self.legacy_note(route)
        if note:
            return "legacy", note
        served = self.route_notes.get(route.id)
        if not served:
            return None
        return ("traefik" if route.provider == PROVIDER_GATEWAY else "nginx"), served

    @property
    def has_legacy(self) -> bool:
        """True when some object is in a legacy form (see ``LegacyMode``)."""
        return any(o.legacy for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "legacy_mode": self.legacy_mode,
            "objects": [o.to_dict() for o in self.objects],
            "files": list(self.files),
            "dialects": list(self.dialects),
            "routes": [r.to_dict() for r in self.routes],
            "services": [s.to_dict() for s in self.services],
            "findings": [f.to_dict() for f in self.findings],
            "migration": [m.to_dict() for m in self.migration],
        }


def sub_intent(intent: Intent, routes: Sequence[Route]) -> Intent:
    """``intent`` with only ``routes`` (and the Services they use): a derived intent, so it
    carries none of the manifests' objects and is rendered when applied."""
    used = {b.service for r in routes for b in r.backends}
    return replace(
        intent,
        routes=tuple(routes),
        services=tuple(s for s in intent.services if s.name in used),
        objects=(),
        effective=None,
    )
