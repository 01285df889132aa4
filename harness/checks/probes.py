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

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from harness.intent.model import Finding, Intent, Route
from harness.traefik.entrypoints import Arrival
from harness.traefik.middlewares import Headers
from harness.traefik.oracle import (
    Expectation,
    RoutingOptions,
    expect,
    spec_matches,
    traefik_matches,
)
from harness.traefik.requests import host_matches

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


@dataclass
class _Draft:
    host: str
    path: str
    reasons: list[str]
    routes: list[str]
    kinds: list[str]


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
    """(request-target, why) for the unusual requests derived from ``route``'s path."""
    p = route.path or "/"
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


def _route_paths(route: Route) -> list[tuple[str, str, str]]:
    """(path, kind, reason) for the requests that check one route on its own."""
    p = route.path
    if p is None:
        return [("/", KIND_ROUTE, "any path"), ("/x", KIND_ROUTE, "any path")]
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


def _add(
    drafts: dict[tuple[str, str], _Draft],
    *,
    host: str,
    path: str,
    kind: str,
    reason: str,
    routes: Iterable[str],
) -> None:
    d = drafts.setdefault((host, path), _Draft(host, path, [], [], []))
    if reason not in d.reasons:
        d.reasons.append(reason)
    for rid in routes:
        if rid not in d.routes:
            d.routes.append(rid)
    if kind not in d.kinds:
        d.kinds.append(kind)


def _under(route: Route) -> str:
    return (route.path or "/").removesuffix("/") + "/x"


def _hosts_overlap(a: Route, b: Route) -> str | None:
    """A host both routes can match, or None."""
    for host in (probe_host(a.host), probe_host(b.host)):
        if host_matches(a.host, host) and host_matches(b.host, host):
            return host
    return None


#: The value probes send in the request headers a headers middleware removes.
REMOVED_HEADER_VALUE = "sent-by-ingress-harness"


def removed_request_headers(intent: Intent) -> tuple[tuple[str, str], ...]:
    """The request headers some headers middleware of ``intent`` removes, as a probe sends them
    (with :data:`REMOVED_HEADER_VALUE`), so that the removal can be seen in the backend's echo."""
    names = {
        name
        for route in intent.routes
        for m in route.middlewares
        if isinstance(m.model, Headers)
        for name, value in m.model.custom_request_headers
        if value == "" and name.lower() != "host"
    }
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
    (``https@websecure:host/path``); each sends the request headers a middleware
    removes (:func:`removed_request_headers`); ``edge`` False leaves the edge probes out (a run
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
    headers = removed_request_headers(intent)
    strict = opts.strict_prefix_matching
    drafts: dict[tuple[str, str], _Draft] = {}
    hosts: list[str] = []
    for route in intent.routes:
        host = probe_host(route.host)
        if host not in hosts:
            hosts.append(host)
        for path, kind, why in _route_paths(route):
            _add(
                drafts,
                host=host,
                path=path,
                kind=kind,
                reason=f"{route.id}: {why}",
                routes=[route.id],
            )
        elsewhere = non_matching_host(route.host)
        if elsewhere is not None:
            p = route.path or "/"
            _add(
                drafts,
                host=elsewhere,
                path=p,
                kind=KIND_NOT_FOUND,
                reason=f"{route.id}: {p} on an undeclared host",
                routes=[route.id],
            )
        for miss, why in wildcard_misses(route.host):
            p = route.path or "/"
            _add(
                drafts,
                host=miss,
                path=p,
                kind=KIND_NOT_FOUND,
                reason=f"{route.id}: {p} on {miss}, {why}",
                routes=[route.id],
            )
        for path, why in edge_paths(route) if edge else ():
            _add(
                drafts,
                host=host,
                path=path,
                kind=KIND_EDGE,
                reason=f"{route.id}: {why}",
                routes=[route.id],
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
                path=first.path or "/",
                kind=KIND_EDGE,
                reason=f"{first.id}: {why}",
                routes=[first.id],
            )
    for unserved in intent.unserved:
        route = unserved.route
        host = probe_host(route.host)
        for path in dict.fromkeys([route.path or "/", _under(route)]):
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
        if shared is None:
            continue
        seen: set[str] = set()
        for route in (a, b):
            for path, _, _ in _route_paths(route):
                if path in seen:
                    continue
                seen.add(path)
                both_traefik = all(
                    traefik_matches(r, shared, path, strict_prefix_matching=strict) for r in (a, b)
                )
                both_spec = all(
                    spec_matches(r, shared, path, strict_prefix_matching=strict) for r in (a, b)
                )
                if both_traefik or both_spec:
                    _add(
                        drafts,
                        host=shared,
                        path=path,
                        kind=KIND_PRECEDENCE,
                        reason=f"{a.id} and {b.id} both match {path}: precedence decides",
                        routes=[a.id, b.id],
                    )

    probes: list[Probe] = []
    for key in sorted(drafts):
        d = drafts[key]
        expectation = expect(intent, d.host, d.path, opts, arrival, headers=headers)
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
                id=f"{prefix}{d.host}{d.path}",
                method="GET",
                host=d.host,
                path=d.path,
                headers=headers,
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
    target_path = path or (route.path or "/")
    expectation = expect(intent, host, target_path, arrival=arrival)
    return Probe(
        id=f"{host}{target_path}",
        method="GET",
        host=host,
        path=target_path,
        headers=(),
        expectation=expectation,
        reasons=(f"at the path of {route.id}",),
        routes=(route.id,),
        kinds=(KIND_ROUTE,),
        arrival=arrival,
    )
