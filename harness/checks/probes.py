"""Probes derived from intent: the requests that check every route, boundary and overlap.

Users do not write tests for their routes; these functions turn an ``Intent`` into requests,
each with the oracle's ``Expectation`` and the reason it exists:

- every route: at its path, under it (``/p/x``), at its boundaries (``/p/``, ``/pX``; for a path
  with a trailing slash also the path without it);
- every host: an undeclared path (``/no-such-route``); every route with a host: the same path on
  an unknown host (``unknown.invalid``, :func:`non_matching_host`), which must not reach it;
- every pair of routes that can match the same request: the requests both match, which tell
  the precedence apart (e.g. ``/cheddar/wensleydale/x`` for ``/cheddar`` and
  ``/cheddar/wensleydale``);
- every route with a wildcard host (``*.example.com``): a deeper subdomain
  (``a.wild.example.com``) and the bare domain (``example.com``), which must not reach it;
- every route not served (an Ingress of another IngressClass): its own requests, which must
  not reach its backend;
- every route with request conditions (headers, query parameters, method, cookies): its
  requests carry what the conditions ask for (:func:`satisfying_request`), and at its path one
  request per condition breaks it (:func:`condition_breaks`: the other value, or none at all);
  two routes that both match a request overlap only where their conditions can hold together;
- every regex path or condition: values generated from its pattern, matches and near misses
  (:mod:`harness.checks.regex_probes`), each checked with the oracle's own matcher;
- edge probes (:func:`edge_paths`, :func:`edge_hosts`), sent as written (the request-target is
  not normalised on the way): per route, a dot segment, a dot-dot segment, a dot adjoining the
  path, an encoded slash, dot and backslash, a double slash and the path in upper case; per
  host, the Host in upper case, with a port and with a trailing dot. Each is judged against the
  oracle's model of Traefik's entry point (:mod:`harness.traefik.requests`).

Probes are deduplicated by request and returned sorted by host and path, so a suite
parametrized over them gets stable, readable ids (``cheeses.minikube/cheddar/x``). Adding a route
to a manifest adds its probes; nothing else changes.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from typing import Any
from urllib.parse import quote

from harness.checks.regex_probes import DRAWS, PatternValues, pattern_values
from harness.errors import ConfigError
from harness.intent.model import (
    FINDING_REGEX_UNPROBED,
    Finding,
    Intent,
    RequestCondition,
    Route,
)
from harness.traefik.conditions import condition_met
from harness.traefik.entrypoints import Arrival
from harness.traefik.middlewares import Headers
from harness.traefik.oracle import (
    Expectation,
    RoutingOptions,
    expect,
    spec_matches,
    traefik_matches,
)
from harness.traefik.requests import ROUTABLE, at_entry_point, host_matches, path_matches

#: A host no manifest declares (``.invalid`` is reserved, RFC 2606).
UNKNOWN_HOST = "unknown.invalid"
#: A path no manifest is expected to declare.
UNKNOWN_PATH = "/no-such-route"

# Probe kinds, so suites can pick theirs.
KIND_ROUTE = "route"
KIND_BOUNDARY = "boundary"
KIND_NOT_FOUND = "not-found"
KIND_STRIP = "strip"
KIND_PRECEDENCE = "precedence"
KIND_EDGE = "edge"

#: The port an edge probe adds to the Host (Traefik routes on the host without it).
EDGE_PORT = 8080


@dataclass(frozen=True)
class Probe:
    """One request to send, what must come back, and why it is sent."""

    id: str
    method: str
    host: str
    path: str
    headers: tuple[tuple[str, str], ...]
    expectation: Expectation
    reasons: tuple[str, ...]
    routes: tuple[str, ...]
    kinds: tuple[str, ...]
    #: Where it is sent (entry point and scheme); None: the target's proxy URL as it is.
    arrival: Arrival | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "headers": [list(h) for h in self.headers],
            "reasons": list(self.reasons),
            "routes": list(self.routes),
            "kinds": list(self.kinds),
            "arrival": None if self.arrival is None else self.arrival.to_dict(),
            "expectation": self.expectation.to_dict(),
        }


@dataclass(frozen=True)
class ProbeRequest:
    """What a probe sends besides Host and path: the method, headers (a ``Cookie`` header for
    cookies) and a query string (without the ``?``)."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    query: str = ""

    def target(self, path: str) -> str:
        """``path`` with the query, as sent."""
        return f"{path}?{self.query}" if self.query else path

    def label(self) -> str:
        """What the request carries, for probe ids (empty for a plain GET)."""
        sent = "; ".join(f"{k}: {v}" for k, v in self.headers)
        return (f" {self.method}" if self.method != "GET" else "") + (f" [{sent}]" if sent else "")


PLAIN_REQUEST = ProbeRequest()


def _carrying(conditions: Iterable[tuple[RequestCondition, str | None]]) -> ProbeRequest | None:
    """The request that sends each condition's value (None: the condition's subject left
    out), or None when two conditions ask for different methods."""
    method: str | None = None
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    query: list[str] = []
    for c, value in conditions:
        if value is None:
            continue
        if c.kind == "method":
            if method is not None and method != value:
                return None
            method = value
        elif c.kind == "header":
            headers.append((c.name, value))
        elif c.kind == "cookie":
            cookies.append(f"{c.name}={value}")
        else:
            query.append(f"{quote(c.name, safe='')}={quote(value, safe='')}")
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))
    return ProbeRequest(method or "GET", tuple(headers), "&".join(query))


#: What a header value may hold as sent (visible ASCII and inner blanks: Go trims the ends).
_HEADER_CHARS = frozenset(map(chr, range(0x20, 0x7F)))
#: Go's valid cookie-value bytes, without the blank and the comma it tolerates.
_COOKIE_CHARS = frozenset(map(chr, range(0x21, 0x7F))) - set('";\\,')
#: An HTTP token (RFC 9110), what a method is.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def _sendable(kind: str, text: str) -> str | None:
    """``text`` as the value of a ``kind`` condition on the wire, or None when it cannot be sent
    as such (a query value is percent-encoded, so any text is)."""
    if kind == "header":
        ok = set(text) <= _HEADER_CHARS and text == text.strip(" \t")
    elif kind == "cookie":
        ok = set(text) <= _COOKIE_CHARS
    elif kind == "method":
        ok = bool(text) and set(text) <= _TOKEN_CHARS
    else:
        ok = True
    return text if ok else None


@lru_cache(maxsize=256)
def regex_condition_values(condition: RequestCondition) -> PatternValues:
    """Values of a regex condition's header, query parameter or cookie that meet it and near
    misses that do not, each judged by the oracle on the request that carries it."""

    def meets(value: str) -> bool:
        request = _carrying([(condition, value)])
        assert request is not None  # one condition asks for at most one method
        return condition_met(condition, request.method, request.headers, request.query)

    return pattern_values(condition.value, lambda text: _sendable(condition.kind, text), meets)


def _meeting_value(c: RequestCondition) -> str | None:
    """The value a request sends to meet ``c``: its own for an exact condition, the first
    generated one for a regex (None: generation found none)."""
    if c.match == "exact":
        return c.value
    found = regex_condition_values(c).matching
    return found[0] if found else None


def satisfying_request(*routes: Route) -> ProbeRequest | None:
    """A request that meets every condition of ``routes`` (a regex one with a generated value),
    or None when there is none this can build (two methods, or a regex no value was found
    for)."""
    values = [(c, _meeting_value(c)) for r in routes for c in r.conditions]
    if any(v is None for _, v in values):
        return None
    return _carrying(values)


def _other_value(c: RequestCondition) -> str:
    if c.kind == "method":
        return "GET" if c.value != "GET" else "DELETE"
    return f"{c.value}-not" if c.value else "not"


def _varying_one(
    route: Route, ways: Callable[[RequestCondition], list[tuple[str | None, str]]]
) -> list[tuple[ProbeRequest, str]]:
    """(request, why) per way ``ways`` gives of sending one of ``route``'s conditions (None: not
    at all) while meeting the others; none when a condition cannot be met."""
    meeting = [_meeting_value(c) for c in route.conditions]
    if any(v is None for v in meeting):
        return []
    out: list[tuple[ProbeRequest, str]] = []
    for i, varied in enumerate(route.conditions):
        for value, why in ways(varied):
            request = _carrying(
                (c, value if j == i else meeting[j]) for j, c in enumerate(route.conditions)
            )
            if request is not None:
                out.append((request, why))
    return out


def condition_breaks(route: Route) -> list[tuple[ProbeRequest, str]]:
    """(request, why) per way of breaking one of ``route``'s conditions while meeting the
    others: the condition's subject with another value (a regex: each generated near miss),
    and (but for the method) left out."""

    def ways(c: RequestCondition) -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]]
        if c.match == "regex":
            missing = regex_condition_values(c).missing
            out = [(v, f"{c.label()} not met ({v!r}, a near miss)") for v in missing]
        else:
            out = [(_other_value(c), f"{c.label()} not met (another value)")]
        if c.kind != "method":
            out.append((None, f"{c.label()} not met (not sent)"))
        return out

    return _varying_one(route, ways)


def condition_matches(route: Route) -> list[tuple[ProbeRequest, str]]:
    """(request, why) per further generated value that meets one of ``route``'s regex
    conditions, the others met as in its own probes."""

    def ways(c: RequestCondition) -> list[tuple[str | None, str]]:
        if c.match != "regex":
            return []
        return [(v, f"{c.label()} met ({v!r})") for v in regex_condition_values(c).matching[1:]]

    return _varying_one(route, ways)


def unprobed_regex_findings(routes: Iterable[Route]) -> list[Finding]:
    """A finding per regex path or condition for which no matching request value was found
    within the bounded generation (:data:`DRAWS` draws per alphabet): what it matches is not
    probed, so it is said, not dropped."""
    out: list[Finding] = []
    for route in routes:
        subjects = [
            (c.label(), f"{c.kind} value", regex_condition_values(c))
            for c in route.conditions
            if c.match == "regex"
        ]
        if route.match == "regex" and route.path is not None:
            subjects.append((f"PathRegexp `{route.path}`", "path", regex_path_values(route.path)))
        for what, value, found in subjects:
            if not found.matching:
                out.append(
                    Finding(
                        FINDING_REGEX_UNPROBED,
                        f"route {route.id}: no {value} matching {what} was found in {DRAWS} "
                        "generated values: the requests it matches are not probed (only near "
                        "misses and the route's other requests are)",
                        route.source,
                        "warning",
                        (route.id,),
                    )
                )
    return out


@dataclass
class _Draft:
    host: str
    path: str
    reasons: list[str]
    routes: list[str]
    kinds: list[str]
    request: ProbeRequest = field(default=PLAIN_REQUEST)


def probe_host(route_host: str | None) -> str:
    """The concrete Host to send so that a route declaring ``route_host`` matches it: the host
    itself; for a wildcard (``*.example.com``) an instance of it (``wild.example.com``); for a
    route without a host (or ``*``), which matches any, a host no manifest declares.

    The one place that picks a probe host: every suite (routing, registration, weights, gaps)
    sends its traffic to the host this gives.
    """
    if route_host is None or route_host == "*":
        return UNKNOWN_HOST
    if route_host.startswith("*."):
        return "wild" + route_host[1:]
    return route_host


#: A host no manifest declares, with another label count than UNKNOWN_HOST: a route's host
#: (plain, or a wildcard, which stands for exactly one label) cannot match both.
_OTHER_UNKNOWN_HOST = "no.such.host.invalid"


def non_matching_host(route_host: str | None) -> str | None:
    """A concrete Host that a route declaring ``route_host`` must NOT match, or None for a route
    that matches every host (no host, or ``*``)."""
    if route_host is None or route_host == "*":
        return None
    return _OTHER_UNKNOWN_HOST if host_matches(route_host, UNKNOWN_HOST) else UNKNOWN_HOST


def wildcard_misses(route_host: str | None) -> list[tuple[str, str]]:
    """(host, why) for a wildcard host: the hosts it must not match (a deeper subdomain, the bare
    domain); empty for any other host."""
    if route_host is None or not route_host.startswith("*."):
        return []
    domain = route_host[2:]
    return [
        (f"a.{probe_host(route_host)}", "a deeper subdomain of the wildcard"),
        (domain, "the wildcard's bare domain"),
    ]


def edge_paths(route: Route) -> list[tuple[str, str]]:
    """(request-target, why) for the unusual requests derived from ``route``'s path (for a
    regex, from a path it matches; none when there is none)."""
    p = route_path(route)
    if p is None:
        return []
    base = p.removesuffix("/")
    out = [
        (f"{base}/./x", "a dot segment"),
        (f"{base}/../x" if base else "/x/../y", "a dot-dot segment"),
        (f"{base}./x" if base else "/.x", "a dot adjoining the path"),
        (f"{base or '/'}%2Fx", "an encoded slash (%2F)"),
        (f"{base}/%2e/x", "an encoded dot segment (%2e)"),
        (f"{base or '/'}%5Cx", "an encoded backslash (%5C)"),
        (f"{base}//x", "a double slash"),
    ]
    upper = (base + "/x").upper()
    if upper != base + "/x":
        out.append((upper, "the path in upper case"))
    return out


def edge_hosts(host: str) -> list[tuple[str, str]]:
    """(Host, why) for the unusual forms of a probed host."""
    return [
        (host.upper(), "the Host in upper case"),
        (f"{host}:{EDGE_PORT}", "a Host with a port"),
        (f"{host}.", "a Host with a trailing dot"),
    ]


#: Characters a request path carries as they are (RFC 3986 pchar and '/'); others are escaped.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


def _path_target(text: str) -> str | None:
    """``text`` (with a leading '/') as a request-target that Traefik routes on as that very
    text, escaped where needed; None when the entry point would route on anything else."""
    path = text if text.startswith("/") else "/" + text
    target = quote(path, safe=_PATH_SAFE)
    request = at_entry_point(target, UNKNOWN_HOST)
    return target if request.outcome == ROUTABLE and request.routing_path == path else None


@lru_cache(maxsize=256)
def regex_path_values(pattern: str) -> PatternValues:
    """Request paths that ``PathRegexp(pattern)`` matches and near misses it does not, each
    judged by the oracle's matcher on the path Traefik routes on."""
    return pattern_values(
        pattern,
        _path_target,
        lambda target: path_matches("regex", pattern, at_entry_point(target, UNKNOWN_HOST)),
    )


def route_path(route: Route) -> str | None:
    """A request path ``route``'s path matcher accepts: its path, ``/`` when it has none, for a
    regex the first generated match (None: generation found none)."""
    if route.path is None:
        return "/"
    if route.match == "regex":
        found = regex_path_values(route.path).matching
        return found[0] if found else None
    return route.path


def _route_paths(route: Route) -> list[tuple[str, str, str]]:
    """(path, kind, reason) for the requests that check one route on its own."""
    p = route.path
    if p is None:
        return [("/", KIND_ROUTE, "any path"), ("/x", KIND_ROUTE, "any path")]
    if route.match == "regex":
        values = regex_path_values(p)
        return [(v, KIND_ROUTE, f"matches {p}") for v in values.matching] + [
            (v, KIND_BOUNDARY, f"a near miss of {p}") for v in values.missing
        ]
    base = p.removesuffix("/")
    out = [(p, KIND_ROUTE, f"at {p}")]
    if p == "/":
        out += [("/x", KIND_ROUTE, "under /")]
        return out
    out.append(
        (base + "/x", KIND_ROUTE if route.match == "prefix" else KIND_BOUNDARY, f"under {p}")
    )
    if p.endswith("/"):
        out.append((base, KIND_BOUNDARY, f"{p} without its trailing slash"))
    else:
        out.append((p + "/", KIND_BOUNDARY, f"{p} with a trailing slash"))
    out.append((base + "X", KIND_BOUNDARY, f"character boundary of {p}"))
    return out


_Drafts = dict[tuple[str, str, ProbeRequest], _Draft]


def _add(
    drafts: _Drafts,
    *,
    host: str,
    path: str | None,
    kind: str,
    reason: str,
    routes: Iterable[str],
    request: ProbeRequest = PLAIN_REQUEST,
) -> None:
    if path is None:  # a regex route no matching path was generated for: nothing to send
        return
    d = drafts.setdefault((host, path, request), _Draft(host, path, [], [], [], request))
    if reason not in d.reasons:
        d.reasons.append(reason)
    for rid in routes:
        if rid not in d.routes:
            d.routes.append(rid)
    if kind not in d.kinds:
        d.kinds.append(kind)


def _unserved_paths(route: Route) -> list[str]:
    """The requests that must not reach a route that is not served: at its path and under it."""
    at = route_path(route)
    return [] if at is None else list(dict.fromkeys([at, at.removesuffix("/") + "/x"]))


def _hosts_overlap(a: Route, b: Route) -> str | None:
    """A host both routes can match, or None."""
    for host in (probe_host(a.host), probe_host(b.host)):
        if host_matches(a.host, host) and host_matches(b.host, host):
            return host
    return None


#: The value probes send in the request headers a headers middleware removes or adds to.
REMOVED_HEADER_VALUE = "sent-by-ingress-harness"


def probed_request_headers(intent: Intent) -> tuple[tuple[str, str], ...]:
    """The request headers some headers middleware of ``intent`` removes or adds a value to
    (a Gateway header modifier's ``add``), as a probe sends them (with
    :data:`REMOVED_HEADER_VALUE`), so that the removal, or the value appended to the client's,
    can be seen in the backend's echo."""
    names: set[str] = set()
    for route in intent.routes:
        for m in route.middlewares:
            if isinstance(m.model, Headers):
                names.update(n for n, v in m.model.custom_request_headers if v == "")
                names.update(n for n, _ in m.model.add_request_headers)
    names = {n for n in names if n.lower() != "host"}
    return tuple((name, REMOVED_HEADER_VALUE) for name in sorted(names))


def generate_probes(
    intent: Intent,
    options: RoutingOptions | None = None,
    arrivals: tuple[Arrival | None, ...] = (None,),
    *,
    edge: bool = True,
) -> tuple[Probe, ...]:
    """Every probe for ``intent``, deduplicated, sorted by host then path; at each of
    ``arrivals`` (entry point and scheme) when there are several, their ids prefixed with it
    (``https@websecure:host/path``); each sends the request headers a middleware removes or
    adds to (:func:`probed_request_headers`); ``edge`` False leaves the edge probes out (a run
    that does not judge them need not send them)."""
    if len(arrivals) == 1:
        return _probes_at(intent, options, arrivals[0], prefix="", edge=edge)
    return tuple(
        probe
        for arrival in arrivals
        for probe in _probes_at(
            intent,
            options,
            arrival,
            prefix="" if arrival is None else arrival.label() + ":",
            edge=edge,
        )
    )


def _probes_at(
    intent: Intent,
    options: RoutingOptions | None,
    arrival: Arrival | None,
    prefix: str,
    *,
    edge: bool,
) -> tuple[Probe, ...]:
    opts = options or RoutingOptions()
    headers = probed_request_headers(intent)
    strict = opts.strict_prefix_matching
    drafts: _Drafts = {}
    hosts: list[str] = []
    for route in intent.routes:
        host = probe_host(route.host)
        if host not in hosts:
            hosts.append(host)
        own = satisfying_request(route) or PLAIN_REQUEST
        at = route_path(route)
        for path, kind, why in _route_paths(route):
            _add(
                drafts,
                host=host,
                path=path,
                kind=kind,
                reason=f"{route.id}: {why}",
                routes=[route.id],
                request=own,
            )
        for request, why in condition_breaks(route):
            _add(
                drafts,
                host=host,
                path=at,
                kind=KIND_BOUNDARY,
                reason=f"{route.id}: {why}",
                routes=[route.id],
                request=request,
            )
        for request, why in condition_matches(route):
            _add(
                drafts,
                host=host,
                path=at,
                kind=KIND_ROUTE,
                reason=f"{route.id}: {why}",
                routes=[route.id],
                request=request,
            )
        elsewhere = non_matching_host(route.host)
        if elsewhere is not None:
            _add(
                drafts,
                host=elsewhere,
                path=at,
                kind=KIND_NOT_FOUND,
                reason=f"{route.id}: {at} on an undeclared host",
                routes=[route.id],
                request=own,
            )
        for miss, why in wildcard_misses(route.host):
            _add(
                drafts,
                host=miss,
                path=at,
                kind=KIND_NOT_FOUND,
                reason=f"{route.id}: {at} on {miss}, {why}",
                routes=[route.id],
                request=own,
            )
        for path, why in edge_paths(route) if edge else ():
            _add(
                drafts,
                host=host,
                path=path,
                kind=KIND_EDGE,
                reason=f"{route.id}: {why}",
                routes=[route.id],
                request=own,
            )
    for host in hosts:
        _add(
            drafts,
            host=host,
            path=UNKNOWN_PATH,
            kind=KIND_NOT_FOUND,
            reason=f"undeclared path on {host}",
            routes=[],
        )
        first = next(r for r in intent.routes if probe_host(r.host) == host)
        for variant, why in edge_hosts(host) if edge else ():
            _add(
                drafts,
                host=variant,
                path=route_path(first),
                kind=KIND_EDGE,
                reason=f"{first.id}: {why}",
                routes=[first.id],
                request=satisfying_request(first) or PLAIN_REQUEST,
            )
    for unserved in intent.unserved:
        route = unserved.route
        host = probe_host(route.host)
        for path in _unserved_paths(route):
            _add(
                drafts,
                host=host,
                path=path,
                kind=KIND_NOT_FOUND,
                reason=f"{route.id}: {unserved.reason}",
                routes=[],
            )

    for a, b in combinations(intent.routes, 2):
        shared = _hosts_overlap(a, b)
        both = satisfying_request(a, b)
        if shared is None or both is None:
            continue
        seen: set[str] = set()
        for route in (a, b):
            for path, _, _ in _route_paths(route):
                if path in seen:
                    continue
                seen.add(path)
                target = both.target(path)
                both_traefik = all(
                    traefik_matches(
                        r,
                        shared,
                        target,
                        strict_prefix_matching=strict,
                        method=both.method,
                        headers=both.headers,
                    )
                    for r in (a, b)
                )
                both_spec = all(
                    spec_matches(r, shared, target, strict_prefix_matching=strict) for r in (a, b)
                )
                if both_traefik or both_spec:
                    _add(
                        drafts,
                        host=shared,
                        path=path,
                        kind=KIND_PRECEDENCE,
                        reason=f"{a.id} and {b.id} both match {path}: precedence decides",
                        routes=[a.id, b.id],
                        request=both,
                    )

    probes: list[Probe] = []
    for key in sorted(drafts, key=lambda k: (k[0], k[1], k[2].method, k[2].headers, k[2].query)):
        d = drafts[key]
        target = d.request.target(d.path)
        sent = headers + d.request.headers
        expectation = expect(
            intent, d.host, target, opts, arrival, headers=sent, method=d.request.method
        )
        kinds = list(d.kinds)
        # An edge probe's strip is judged by the edge check, which judges the whole answer.
        if (
            expectation.forwarded_prefix is not None
            and KIND_STRIP not in kinds
            and kinds != [KIND_EDGE]
        ):
            kinds.append(KIND_STRIP)
        probes.append(
            Probe(
                id=f"{prefix}{d.host}{target}{d.request.label()}",
                method=d.request.method,
                host=d.host,
                path=target,
                headers=sent,
                expectation=expectation,
                reasons=tuple(d.reasons),
                routes=tuple(d.routes),
                kinds=tuple(kinds),
                arrival=arrival,
            )
        )
    return tuple(probes)


def collect_findings(probes: Iterable[Probe]) -> tuple[Finding, ...]:
    """The oracle's findings over all probes, one per (kind, routes), in probe order."""
    out: dict[tuple[str, tuple[str, ...]], Finding] = {}
    for probe in probes:
        for finding in probe.expectation.findings:
            out.setdefault((finding.kind, tuple(sorted(finding.routes))), finding)
    return tuple(out.values())


def probe_for(
    intent: Intent, route: Route, path: str | None = None, arrival: Arrival | None = None
) -> Probe:
    """A probe at ``route``'s own path (or ``path``), sent at ``arrival``, judged against
    ``intent``."""
    host = probe_host(route.host)
    target_path = path or route_path(route)
    if target_path is None:
        raise ConfigError(
            f"route {route.id} ({route.source}): no request path matches its regex "
            f"{route.path!r}, so it cannot be probed"
        )
    # The route's own conditions (header, query, method, cookie) are met, or the probe would
    # reach another route, or none, and a registered route would look absent.
    request = satisfying_request(route) or PLAIN_REQUEST
    target = request.target(target_path)
    expectation = expect(
        intent, host, target, arrival=arrival, headers=request.headers, method=request.method
    )
    return Probe(
        id=f"{host}{target}{request.label()}",
        method=request.method,
        host=host,
        path=target,
        headers=request.headers,
        expectation=expectation,
        reasons=(f"at the path of {route.id}",),
        routes=(route.id,),
        kinds=(KIND_ROUTE,),
        arrival=arrival,
    )
