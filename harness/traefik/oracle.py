"""The routing oracle: for a request, what Traefik 3.7 must do with it under the intent, and what
the Kubernetes Ingress spec would prescribe instead.

Traefik's rules, each from its source (traefik/traefik v3.7):

- Before any router, the entry point parses, normalises and cleans the request-target and Host
  (:func:`harness.traefik.requests.at_entry_point`, which also says where Traefik answers 400 by
  itself or the model cannot predict the answer); routers match the request's *routing path* and
  canonical host (port, case and one trailing dot removed).
- Routers are sorted by priority, higher first; the default priority is ``len(rule)`` and an
  explicit one wins (pkg/muxer/http/mux.go, pkg/server/router/router.go). The first router
  whose rule matches handles the request; none → 404.
- On equal priority, routers of different providers are ordered by ``providers.precedence``
  (new in 3.7; default kubernetesgateway, kubernetescrd, kubernetes, ...). Within one provider
  the order is unspecified (map iteration, unstable sort): if the tied routers would answer
  differently, the outcome is UNDEFINED, reported rather than passed or failed.
- ``Host`` compares case-insensitively, port removed; ``*.example.com`` matches one label
  (:func:`harness.traefik.requests.host_matches`).
  ``Path`` is string equality; ``PathPrefix`` is ``strings.HasPrefix`` (character-wise) unless
  the Ingress provider's ``strictPrefixMatching`` rewrote the rule to
  ``(Path("/p") || PathPrefix("/p/"))`` (matcher.go, ingress/kubernetes.go), as the Gateway
  provider does for every HTTPRoute PathPrefix (:mod:`harness.traefik.gateway`).
- The winning router's middlewares, in declared order (chains expanded), decide what the client
  and the backend observe: harness.traefik.middlewares (``apply_middlewares``, confirmed on
  Traefik ``CONFIRMED_ON``) gives the forwarded request (path, request headers, Host, response
  headers), a redirect (status, ``Location``), Traefik's own answer (400, 500) or "cannot
  predict" (the probe is then recorded, not judged). Client-sent ``X-Forwarded-*`` headers from
  an untrusted source are removed before (forwardedheaders).

The Kubernetes Ingress spec (networking.k8s.io/v1): ``Exact`` matches the path exactly;
``Prefix`` matches element-wise on ``/`` boundaries (``/foo`` matches ``/foo``, ``/foo/``,
``/foo/bar`` but not ``/foobar``); the longest matching path wins and, on equal length, Exact
beats Prefix. Hosts: exact, ``*.`` wildcards match one label; as commonly implemented, a precise
host wins over a wildcard, which wins over a rule without host. ImplementationSpecific paths are
judged by Traefik's own semantics (the spec leaves them to the controller). IngressRoutes are
outside the Ingress spec: where one matches, the spec comparison is "not applicable".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.errors import ConfigError
from harness.intent.model import (
    DEFAULT_PROVIDER_PRECEDENCE,
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_EDGE_DEVIATION,
    FINDING_EXPLICIT_PRIORITY,
    FINDING_MIDDLEWARE_UNPREDICTABLE,
    FINDING_PREFIX_OUTRANKS_EXACT,
    FINDING_PROVIDER_PRECEDENCE,
    FINDING_RULE_LENGTH_ORDER,
    FINDING_TRAILING_SLASH_PREFIX,
    FINDING_UNDEFINED_TIE,
    PROVIDER_GATEWAY,
    PROVIDER_INGRESS,
    PROVIDER_NGINX,
    Finding,
    Intent,
    Route,
    WeightedBackend,
)
from harness.traefik import gateway
from harness.traefik import middlewares as mw
from harness.traefik.conditions import conditions_met
from harness.traefik.entrypoints import Arrival, serving_routes
from harness.traefik.gateway import precedence_findings
from harness.traefik.requests import (
    CONFIRMED_ON,
    DEVIATIONS,
    REJECTED,
    ROUTABLE,
    EdgeRequest,
    EntryPointOptions,
    at_entry_point,
    host_matches,
    path_matches,
    through_router,
    wildcard_deviation,
)
from harness.traefik.versions import (
    PINNED_BEHAVIOUR,
    Behaviour,
    behaviour_of,
    model_confirmed_on,
)

Outcome = Literal[
    "routed", "not-found", "undefined", "bad-request", "redirect", "answered", "unpredictable"
]
SpecOutcome = Literal["routed", "not-found", "undefined", "not-applicable"]

ROUTED: Outcome = "routed"
NOT_FOUND: Outcome = "not-found"
UNDEFINED: Outcome = "undefined"
BAD_REQUEST: Outcome = "bad-request"
#: A redirect middleware answers (status 301/302/307/308 and ``Location``).
REDIRECT: Outcome = "redirect"
#: A middleware answers by itself with another status (500 for an invalid escape).
ANSWERED: Outcome = "answered"
#: The model (of the request or of the middlewares) cannot predict Traefik's answer: the
#: answer is recorded as observed, not judged.
UNPREDICTABLE: Outcome = "unpredictable"


@dataclass(frozen=True)
class RoutingOptions:
    """Traefik settings that change routing decisions."""

    #: ``providers.kubernetesIngress.strictPrefixMatching`` (Traefik ≥ 3.5).
    strict_prefix_matching: bool = False
    #: ``providers.precedence`` (Traefik ≥ 3.7); earlier wins on equal priority.
    provider_precedence: tuple[str, ...] = DEFAULT_PROVIDER_PRECEDENCE
    #: The entry point's ``http`` options that change what the routers see.
    entry_point: EntryPointOptions = field(default_factory=EntryPointOptions)
    #: The version of the Traefik under test, when known (the local target's binary); the
    #: request model was confirmed on :data:`CONFIRMED_ON` and, with the behaviour changes of
    #: harness.traefik.versions, on ``CONFIRMED_VERSIONS``.
    traefik_version: str | None = None

    @property
    def behaviour(self) -> Behaviour:
        """The side of each behaviour change the Traefik under test is modeled with."""
        return behaviour_of(self.traefik_version)

    @property
    def edge_model_applies(self) -> bool:
        """Whether the request model was confirmed on the Traefik under test (an unknown
        version, e.g. an external proxy, is judged against the model)."""
        return self.behaviour.confirmed

    def to_dict(self) -> dict[str, Any]:
        return {
            "strict_prefix_matching": self.strict_prefix_matching,
            "provider_precedence": list(self.provider_precedence),
            "entry_point": self.entry_point.to_static(),
            "traefik_version": self.traefik_version,
            "request_model_confirmed_on": model_confirmed_on(self.traefik_version),
        }


@dataclass(frozen=True)
class Candidate:
    """A route that matches the request, with what the client and the backend would observe
    through its middlewares.

    ``status``: Traefik's own answer (400, 500, a redirect's 301/302/307/308) or None when the
    backend answers; then ``upstream_path`` (the request target the backend reads),
    ``forwarded_prefix`` (``X-Forwarded-Prefix``), ``host_header`` (the Host it sees) and
    ``request_headers`` (every header a middleware set, ``()`` for one it removed; the prefix
    header apart). ``response_headers``: set (value) or removed (None) on the answer, whoever
    gives it. ``unpredictable``: why the middleware model cannot tell (then nothing else holds).
    """

    route_id: str
    rule: str
    priority: int
    priority_source: Literal["explicit", "rule-length"]
    provider: str
    backends: tuple[WeightedBackend, ...]
    status: int | None
    upstream_path: str | None
    forwarded_prefix: str | None
    location: str | None = None
    host_header: str | None = None
    request_headers: mw.HeaderValues = ()
    response_headers: mw.ResponseHeaders = ()
    unpredictable: str | None = None
    #: Why Traefik answers by itself (from the middleware that does), for messages.
    answer_reason: str | None = None
    #: The Traefik version the middleware semantics were confirmed on (None: no middleware).
    modeled_on: str | None = None

    def effect(self) -> tuple[Any, ...]:
        """What the client and backend would observe; two candidates with the same effect are
        indistinguishable, so a tie between them is harmless. Where Traefik answers by itself
        (``status``), no backend is reached: which one the route has makes no difference."""
        return (
            self.backends if self.status is None else (),
            self.status,
            self.upstream_path,
            self.forwarded_prefix,
            self.location,
            self.host_header,
            self.request_headers,
            self.response_headers,
            self.unpredictable,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "rule": self.rule,
            "priority": self.priority,
            "priority_source": self.priority_source,
            "provider": self.provider,
            "backends": [b.to_dict() for b in self.backends],
            "status": self.status,
            "upstream_path": self.upstream_path,
            "forwarded_prefix": self.forwarded_prefix,
            "location": self.location,
            "host_header": self.host_header,
            "request_headers": {k: list(v) for k, v in self.request_headers},
            "response_headers": dict(self.response_headers),
            "unpredictable": self.unpredictable,
            "answer_reason": self.answer_reason,
            "modeled_on": self.modeled_on,
        }


@dataclass(frozen=True)
class SpecExpectation:
    """What the Kubernetes Ingress spec prescribes for the request."""

    outcome: SpecOutcome
    route_id: str | None
    candidates: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "route_id": self.route_id,
            "candidates": list(self.candidates),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Expectation:
    """The expected outcome of one request under Traefik's rules, with the evidence for it.

    ``status``: 404 (no route), 400 (Traefik rejected the request before routing), Traefik's own
    answer through the winner's middlewares (400, 500, a redirect), or None (the backend answers,
    or unpredictable). ``decided_by`` is the winning route (None when not found, rejected,
    unpredictable before routing, or undefined); ``competing`` the other matching routes in
    Traefik's order; ``tied`` the routes tied at the top when the outcome is undefined.
    ``request`` is what the entry point made of the request; ``traefik_version`` the Traefik
    under test (None: unknown), the request model's own version being :data:`CONFIRMED_ON`.
    """

    host: str
    path: str
    outcome: Outcome
    status: int | None
    decided_by: Candidate | None
    competing: tuple[Candidate, ...]
    tied: tuple[Candidate, ...]
    spec: SpecExpectation
    findings: tuple[Finding, ...]
    reason: str
    request: EdgeRequest | None = None
    traefik_version: str | None = None

    @property
    def route_id(self) -> str | None:
        return None if self.decided_by is None else self.decided_by.route_id

    @property
    def rule(self) -> str | None:
        return None if self.decided_by is None else self.decided_by.rule

    @property
    def priority(self) -> int | None:
        return None if self.decided_by is None else self.decided_by.priority

    @property
    def backends(self) -> tuple[WeightedBackend, ...]:
        return () if self.decided_by is None else self.decided_by.backends

    @property
    def upstream_path(self) -> str | None:
        return None if self.decided_by is None else self.decided_by.upstream_path

    @property
    def forwarded_prefix(self) -> str | None:
        return None if self.decided_by is None else self.decided_by.forwarded_prefix

    @property
    def location(self) -> str | None:
        return None if self.decided_by is None else self.decided_by.location

    def _answering(self) -> tuple[Candidate, ...]:
        return (self.decided_by,) if self.decided_by is not None else self.tied

    @property
    def request_header_names(self) -> tuple[str, ...]:
        """The request headers a middleware of a deciding (or tied) route sets or removes: the
        ones to read from the backend's echo."""
        return tuple(sorted({k for c in self._answering() for k, _ in c.request_headers}))

    @property
    def response_header_names(self) -> tuple[str, ...]:
        """The response headers a middleware of a deciding (or tied) route sets or removes."""
        return tuple(sorted({k for c in self._answering() for k, _ in c.response_headers}))

    def shares(self) -> dict[str, float]:
        """Expected share per backend Service (empty when nothing is routed)."""
        total = sum(b.weight for b in self.backends if b.weight > 0)
        out: dict[str, float] = {}
        for b in self.backends:
            out[b.service] = out.get(b.service, 0.0) + (
                b.weight / total if total and b.weight > 0 else 0.0
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "path": self.path,
            "outcome": self.outcome,
            "status": self.status,
            "decided_by": None if self.decided_by is None else self.decided_by.to_dict(),
            "shares": self.shares(),
            "competing": [c.to_dict() for c in self.competing],
            "tied": [c.to_dict() for c in self.tied],
            "spec": self.spec.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "reason": self.reason,
            "request": None if self.request is None else self.request.to_dict(),
            "traefik_version": self.traefik_version,
            "model_confirmed_on": model_confirmed_on(self.traefik_version),
        }


# -- matching, on the request as the entry point hands it to the routers ---------------------


def _traefik_path_matches(route: Route, request: EdgeRequest, strict_prefix_matching: bool) -> bool:
    """Whether the route's path matcher accepts the request's routing path in Traefik."""
    if route.path is None:
        return True
    if route.match in ("exact", "regex"):
        return path_matches(route.match, route.path, request)
    if route.path != "/" and (
        route.provider == PROVIDER_GATEWAY
        or (strict_prefix_matching and route.provider == PROVIDER_INGRESS and not route.match_rule)
        or _nginx_element_wise(route)
    ):
        # Both build (Path("/p") || PathPrefix("/p/")): the Gateway provider always
        # (harness.traefik.gateway.path_rule), the Ingress one with strictPrefixMatching.
        base = route.path.removesuffix("/")
        return path_matches("exact", base, request) or path_matches("prefix", base + "/", request)
    return path_matches("prefix", route.path, request)


def _nginx_element_wise(route: Route) -> bool:
    """An ingress-nginx Prefix path matches element by element; Traefik's NGINX provider (a
    route with its rule) builds ImplementationSpecific the same way, ingress-nginx does not."""
    return route.provider == PROVIDER_NGINX and (
        route.path_type == "Prefix"
        or (route.match_rule is not None and route.path_type == "ImplementationSpecific")
    )


def _routes_request(
    route: Route,
    request: EdgeRequest,
    strict_prefix_matching: bool,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    behaviour: Behaviour = PINNED_BEHAVIOUR,
) -> bool:
    hosts_match = (
        gateway.host_matches(route.host, request.host)
        if route.provider == PROVIDER_GATEWAY
        else host_matches(route.host, request.host, behaviour)
    )
    return (
        hosts_match
        and _traefik_path_matches(route, request, strict_prefix_matching)
        and conditions_met(route.conditions, method, headers, request.raw_query)
    )


def _entry(host: str, target: str, options: EntryPointOptions | None = None) -> EdgeRequest:
    if not target.startswith("/"):
        raise ConfigError(f"request path {target!r} must start with '/'")
    return at_entry_point(target, host, options)


def traefik_matches(
    route: Route,
    host: str,
    path: str,
    *,
    strict_prefix_matching: bool = False,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
) -> bool:
    """Whether Traefik's router for ``route`` matches ``method path`` with ``Host: host`` and
    ``headers`` (all as sent; a request the entry point rejects matches nothing)."""
    request = _entry(host, path)
    return request.outcome == ROUTABLE and _routes_request(
        route, request, strict_prefix_matching, method=method, headers=headers
    )


def _elements(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def spec_matches(
    route: Route, host: str, path: str, *, strict_prefix_matching: bool = False
) -> bool:
    """Whether the Kubernetes Ingress spec says ``route`` matches ``GET path`` with ``Host:
    host`` (Ingress routes only). The spec says nothing about normalising a request, so it is
    applied to the path Traefik routes on; what the entry point changed before is a finding of
    its own (:data:`FINDING_EDGE_DEVIATION`)."""
    request = _entry(host, path)
    return request.outcome == ROUTABLE and _spec_routes(route, request, strict_prefix_matching)


def _spec_routes(route: Route, request: EdgeRequest, strict_prefix_matching: bool) -> bool:
    if route.path_type is None or not host_matches(route.host, request.host):
        return False
    return _spec_path_matches(route, request, strict_prefix_matching)


def _spec_path_matches(route: Route, request: EdgeRequest, strict_prefix_matching: bool) -> bool:
    if route.path is None:
        return True
    if route.match == "regex":
        # The Ingress spec has no regex paths: such a route is outside what it says.
        return False
    if route.path_type == "Exact":
        return path_matches("exact", route.path, request)
    if route.path_type == "Prefix":
        want = _elements(route.path)
        return _elements(request.routing_path)[: len(want)] == want
    return _traefik_path_matches(route, request, strict_prefix_matching)


# -- the oracle ---------------------------------------------------------------------------------

#: Request headers the entry point's forwardedheaders removes from an untrusted client (and sets
#: itself), so a probe's own value never reaches the middlewares.
_ENTRY_POINT_HEADERS = frozenset(
    {"X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Server",
     "X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Tls-Client-Cert",
     "X-Forwarded-Tls-Client-Cert-Info", "X-Real-Ip"}
)  # fmt: skip


def middleware_request(
    host: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    scheme: Literal["http", "https"] = "http",
) -> mw.Request:
    """The request as the entry point hands it to a router's middlewares: ``target`` the
    escaped, cleaned request target, ``host`` the Host, the client's headers without those the
    entry point replaces, and ``X-Forwarded-Proto`` (redirectScheme reads it)."""
    kept = tuple((k, v) for k, v in headers if k.title() not in _ENTRY_POINT_HEADERS)
    return mw.Request(
        host=host, target=target, scheme=scheme, headers=(("X-Forwarded-Proto", scheme), *kept)
    )


def _candidate(
    route: Route, request: mw.Request, strict: bool, behaviour: Behaviour = PINNED_BEHAVIOUR
) -> Candidate:
    outcome = mw.apply_middlewares([m.model for m in route.middlewares], request, behaviour)
    fields: dict[str, Any] = {"status": None, "upstream_path": None, "forwarded_prefix": None}
    if isinstance(outcome, mw.Forwarded):
        prefix = outcome.header("X-Forwarded-Prefix")
        fields.update(
            upstream_path=outcome.target,
            forwarded_prefix=prefix[0] if prefix else None,
            host_header=outcome.host,
            request_headers=tuple(h for h in outcome.headers if h[0] != "X-Forwarded-Prefix"),
            response_headers=outcome.response_headers,
        )
    elif isinstance(outcome, mw.Redirect):
        fields.update(
            status=outcome.status,
            location=outcome.location,
            response_headers=outcome.response_headers,
        )
    elif isinstance(outcome, mw.Answered):
        fields.update(
            status=outcome.status,
            answer_reason=outcome.reason,
            response_headers=outcome.response_headers,
        )
    else:
        fields.update(unpredictable=outcome.reason)
    return Candidate(
        route_id=route.id,
        rule=route.rule_for(strict_prefix_matching=strict),
        priority=route.priority_for(strict_prefix_matching=strict),
        priority_source="explicit" if route.priority else "rule-length",
        provider=route.provider,
        backends=route.backends,
        modeled_on=(behaviour.version if behaviour.confirmed else None) or mw.CONFIRMED_ON
        if route.effect_middlewares
        else None,
        **fields,
    )


def _served_at(intent: Intent, arrival: Arrival | None) -> Intent:
    """``intent`` as a request arriving at ``arrival`` sees it: only the routes bound to that
    entry point, in that scheme (harness.traefik.entrypoints), for Traefik and the spec alike."""
    served = serving_routes(intent.routes, arrival)
    return intent if len(served) == len(intent.routes) else replace(intent, routes=served)


def _describe(c: Candidate) -> str:
    how = "explicit priority" if c.priority_source == "explicit" else "priority = length of rule"
    return f"{c.route_id} [{c.rule}, {how} {c.priority}, provider {c.provider}]"


def expect(
    intent: Intent,
    host: str,
    path: str,
    options: RoutingOptions | None = None,
    arrival: Arrival | None = None,
    *,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
) -> Expectation:
    """What Traefik must do with ``method path`` for ``Host: host`` (and the request ``headers``)
    under ``intent``, for a request arriving at ``arrival`` (entry point and scheme; None: any):
    ``path`` is the request-target exactly as sent (not normalised), ``host`` the Host header as
    sent."""
    intent = _served_at(intent, arrival)
    opts = options or RoutingOptions()
    strict = opts.strict_prefix_matching
    request = _entry(host, path, opts.entry_point)
    if request.outcome != ROUTABLE:
        return _unrouted(host, path, request, opts)
    rpath = request.routing_path
    scheme: Literal["http", "https"] = "https" if arrival is not None and arrival.https else "http"
    to_middlewares = middleware_request(
        request.host_header or "", request.router_target, headers, scheme
    )
    order = {name: i for i, name in enumerate(opts.provider_precedence)}

    def rank(c: Candidate) -> tuple[int, int]:
        return (-c.priority, order.get(c.provider, len(order)))

    behaviour = opts.behaviour
    matching = [
        r
        for r in intent.routes
        if _routes_request(r, request, strict, method=method, headers=headers, behaviour=behaviour)
    ]
    label = f"{method} {host}{path}" + (
        f" [{', '.join(f'{k}: {v}' for k, v in headers)}]" if headers else ""
    )
    candidates = sorted(
        (_candidate(r, to_middlewares, strict, behaviour) for r in matching), key=rank
    )
    spec = _spec(intent, request, matching, strict)
    findings: list[Finding] = []

    if not candidates:
        return Expectation(
            host=host,
            path=path,
            outcome=NOT_FOUND,
            status=404,
            decided_by=None,
            competing=(),
            tied=(),
            spec=spec,
            findings=tuple(_compare(intent, None, spec, request, strict)),
            reason=f"no route matches host {request.host!r} path {rpath!r}: Traefik answers 404",
            request=request,
            traefik_version=opts.traefik_version,
        )

    top = candidates[0]
    tied = [c for c in candidates if rank(c) == rank(top)]
    if len(tied) > 1 and len({c.effect() for c in tied}) > 1:
        ids = tuple(c.route_id for c in tied)
        findings.append(
            Finding(
                FINDING_UNDEFINED_TIE,
                f"{' and '.join(ids)} tie at priority {top.priority} in provider {top.provider} "
                f"and answer {host}{rpath} differently: Traefik picks either, and the pick can "
                "change on every reload and differ between replicas. Set router.priority to "
                "decide",
                intent.route(ids[0]).source,
                "warning",
                ids,
            )
        )
        findings.extend(precedence_findings(matching, [intent.route(i) for i in ids], label))
        return Expectation(
            host=host,
            path=path,
            outcome=UNDEFINED,
            status=None,
            decided_by=None,
            competing=tuple(candidates),
            tied=tuple(tied),
            spec=spec,
            findings=tuple(findings),
            reason="undefined: " + "; ".join(_describe(c) for c in tied) + " tie",
            request=request,
            traefik_version=opts.traefik_version,
        )

    competing = tuple(c for c in candidates if c is not top)
    same_priority_other_provider = [
        c
        for c in competing
        if c.priority == top.priority and c.provider != top.provider and c.effect() != top.effect()
    ]
    for other in same_priority_other_provider:
        findings.append(
            Finding(
                FINDING_PROVIDER_PRECEDENCE,
                f"{top.route_id} and {other.route_id} tie at priority {top.priority}; provider "
                f"{top.provider} wins by providers.precedence (Traefik >= 3.7; older versions pick "
                "either)",
                intent.route(top.route_id).source,
                "info",
                (top.route_id, other.route_id),
            )
        )
    findings.extend(_compare(intent, top, spec, request, strict))
    findings.extend(precedence_findings(matching, [intent.route(top.route_id)], label))
    findings.extend(_edge_findings(intent.route(top.route_id), request))
    denied = through_router(request, options=opts.entry_point)
    if denied.status is not None:
        # The entry point's encodedCharacters answers before any middleware runs.
        top = replace(
            top,
            status=denied.status,
            upstream_path=None,
            forwarded_prefix=None,
            location=None,
            unpredictable=None,
            answer_reason=None,
            request_headers=(),
            response_headers=(),
        )
    outcome = _outcome(top)
    if outcome == UNPREDICTABLE:
        findings.append(
            Finding(
                FINDING_MIDDLEWARE_UNPREDICTABLE,
                f"{top.route_id}: the harness cannot predict what Traefik's middlewares do with "
                f"{host}{path} ({top.unpredictable}; model of Traefik {top.modeled_on}): the "
                "answers are recorded as observed behaviour, not judged",
                intent.route(top.route_id).source,
                "info",
                (top.route_id,),
            )
        )
    reason = f"{_describe(top)} matches"
    if len(tied) > 1:
        reason += f" (tied with {', '.join(c.route_id for c in tied[1:])}, same effect)"
    outranked = [c for c in competing if c not in tied]
    if outranked:
        reason += "; it outranks " + "; ".join(_describe(c) for c in outranked)
    if denied.status is not None:
        reason += f"; {denied.reason}"
    elif top.answer_reason is not None:
        reason += f"; {top.answer_reason}, so Traefik answers {top.status}"
    elif outcome == REDIRECT:
        reason += f"; a redirect middleware answers {top.status} to {top.location}"
    if top.modeled_on is not None:
        reason += f" (middlewares as on Traefik {top.modeled_on})"
    return Expectation(
        host=host,
        path=path,
        outcome=outcome,
        status=top.status,
        decided_by=top,
        competing=competing,
        tied=(),
        spec=spec,
        findings=tuple(findings),
        reason=reason,
        request=request,
        traefik_version=opts.traefik_version,
    )


def _outcome(top: Candidate) -> Outcome:
    if top.unpredictable is not None:
        return UNPREDICTABLE
    if top.status is None:
        return ROUTED
    if top.status == 400:
        return BAD_REQUEST
    return REDIRECT if top.location is not None else ANSWERED


def _unrouted(host: str, path: str, request: EdgeRequest, opts: RoutingOptions) -> Expectation:
    """A request no router sees: rejected by Go or the entry point (400), or unpredictable."""
    rejected = request.outcome == REJECTED
    return Expectation(
        host=host,
        path=path,
        outcome=BAD_REQUEST if rejected else UNPREDICTABLE,
        status=400 if rejected else None,
        decided_by=None,
        competing=(),
        tied=(),
        spec=SpecExpectation("not-applicable", None, (), "the request does not reach the routers"),
        findings=(),
        reason=(
            f"rejected before routing: {request.reason}"
            if rejected
            else f"unpredictable (recorded, not judged): {request.reason}"
        ),
        request=request,
        traefik_version=opts.traefik_version,
    )


def _edge_findings(route: Route, request: EdgeRequest) -> list[Finding]:
    """What the entry point did to a request that reached ``route``, where that differs from
    RFC 3986 or the Ingress spec (Traefik :data:`CONFIRMED_ON`)."""
    slugs = list(request.deviations)
    # The Gateway provider's wildcards are a HostRegexp over letters, digits, '-' and '.'.
    wildcard = (
        None if route.provider == PROVIDER_GATEWAY else wildcard_deviation(route.host, request.host)
    )
    if wildcard is not None:
        slugs.append(wildcard)
    return [
        Finding(
            FINDING_EDGE_DEVIATION,
            f"{request.target!r} (Host {request.host_sent!r}) reached {route.id}: "
            f"{DEVIATIONS[slug]} (Traefik {CONFIRMED_ON})",
            route.source,
            "info",
            (route.id,),
        )
        for slug in slugs
    ]


def _spec(
    intent: Intent, request: EdgeRequest, matching: list[Route], strict: bool
) -> SpecExpectation:
    if any(r.path_type is None for r in matching):
        return SpecExpectation(
            "not-applicable",
            None,
            (),
            "an IngressRoute matches: the Kubernetes Ingress spec does not apply",
        )
    if any(r.match == "regex" for r in matching):
        return SpecExpectation(
            "not-applicable",
            None,
            (),
            "a regex path matches: the Kubernetes Ingress spec has no regex paths",
        )
    found = [r for r in intent.routes if _spec_routes(r, request, strict)]
    if not found:
        return SpecExpectation(
            "not-found", None, (), "no Ingress path matches under the Ingress spec"
        )

    def key(r: Route) -> tuple[int, int, int]:
        host_rank = 0 if r.host is None else (1 if r.host.startswith("*") else 2)
        length = len((r.path or "").removesuffix("/")) if r.path != "/" else 0
        return (host_rank, length, 1 if r.path_type == "Exact" else 0)

    best = max(key(r) for r in found)
    top = [r for r in found if key(r) == best]
    ids = tuple(r.id for r in found)
    effects = {(r.backends, r.effect_middlewares) for r in top}
    if len(effects) > 1:
        return SpecExpectation(
            "undefined",
            None,
            ids,
            f"{', '.join(r.id for r in top)} match equally under the Ingress spec",
        )
    winner = top[0]
    return SpecExpectation(
        "routed",
        winner.id,
        ids,
        f"{winner.id}: most specific host, then longest path, then Exact over Prefix",
    )


def _compare(
    intent: Intent, top: Candidate | None, spec: SpecExpectation, request: EdgeRequest, strict: bool
) -> list[Finding]:
    """Findings where Traefik's decision differs from the Ingress spec's."""
    path = request.routing_path
    if spec.outcome in ("not-applicable", "undefined"):
        return []
    t = None if top is None else intent.route(top.route_id)
    s = None if spec.route_id is None else intent.route(spec.route_id)
    if t is None and s is None:
        return []
    if t is not None and s is not None:
        if t.id == s.id:
            return []
        if (t.backends, t.effect_middlewares) == (s.backends, s.effect_middlewares):
            return []
    if t is None:
        assert s is not None
        if (
            s.path_type == "Prefix"
            and s.path
            and s.path.endswith("/")
            and path == s.path.removesuffix("/")
        ):
            kind, text = (
                FINDING_TRAILING_SLASH_PREFIX,
                f"{path} does not match PathPrefix({s.path}) in Traefik, but the Ingress spec's "
                f"Prefix {s.path} matches it (element-wise, trailing slash ignored): {s.id} "
                "expected by the spec, 404 from Traefik",
            )
        else:
            kind, text = (
                FINDING_RULE_LENGTH_ORDER,
                f"Traefik finds no route for {path}, the Ingress spec picks {s.id}",
            )
        return [Finding(kind, text, s.source, "warning", (s.id,))]
    if (
        t.match == "prefix"
        and t.path_type == "Prefix"
        and not _spec_path_matches(t, request, strict)
    ):
        other = (
            f"the Ingress spec picks {s.id}" if s is not None else "the Ingress spec answers 404"
        )
        text = (
            f"{path} matches PathPrefix({t.path}) of {t.id} because Traefik compares characters, "
            f"not path elements; {other}"
            + (" (set strictPrefixMatching to follow the spec)" if not strict else "")
        )
        return [
            Finding(
                FINDING_CHARACTER_WISE_PREFIX,
                text,
                t.source,
                "warning",
                (t.id,) + ((s.id,) if s else ()),
            )
        ]
    if s is None:
        return [
            Finding(
                FINDING_RULE_LENGTH_ORDER,
                f"Traefik routes {path} to {t.id}; the Ingress spec matches nothing",
                t.source,
                "warning",
                (t.id,),
            )
        ]
    pair = (t.id, s.id)
    t_prio = t.priority_for(strict_prefix_matching=strict)
    s_prio = s.priority_for(strict_prefix_matching=strict)
    if s.path_type == "Exact" and t.match == "prefix":
        same = " on the same path" if s.path == t.path else ""
        return [
            Finding(
                FINDING_PREFIX_OUTRANKS_EXACT,
                f"Prefix {t.path} ({t.id}, priority {t_prio}) outranks Exact {s.path} ({s.id}, "
                f"priority {s_prio}){same} for {path}: Traefik ranks by rule length, the Ingress "
                "spec puts Exact first",
                t.source,
                "warning",
                pair,
            )
        ]
    if t.priority:
        return [
            Finding(
                FINDING_EXPLICIT_PRIORITY,
                f"explicit priority {t.priority} sends {path} to {t.id}; the Ingress spec (longest "
                f"path) would pick {s.id}",
                t.source,
                "info",
                pair,
            )
        ]
    return [
        Finding(
            FINDING_RULE_LENGTH_ORDER,
            f"Traefik sends {path} to {t.id} (priority = rule length {t_prio} > {s_prio}); "
            "the Ingress spec (most specific "
            f"host, longest path) picks {s.id}",
            t.source,
            "warning",
            pair,
        )
    ]
