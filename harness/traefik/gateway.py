"""Traefik 3.7's Gateway API provider: the router rule and priority it builds for an HTTPRoute
match, and the Gateway API spec's precedence to compare it with.

Traefik (pkg/provider/kubernetes/gateway/httproute.go, ``buildMatchRule``, confirmed on the
3.7.15 binary by ``tests/test_gateway.py`` through ``/api/http/routers``) builds one router per
rule and match, with the rule

    Host("a") && (Path("/p") || PathPrefix("/p/")) && Method("GET") && Header("n","v") && Query(..)

(hostnames as ``(Host("a") || Host("b"))``, a wildcard as ``HostRegexp``; ``PathPrefix("/")``
for the catch-all; a RegularExpression path as ``PathRegexp("...")``, not anchored) and a
priority that *adds* scores: Exact +100000; PathPrefix and RegularExpression 10000 +
100·len(value) (the catch-all ``/``: 1); method +1000; each header +100; each query parameter
+10; the longest hostname's length; and ``len(rules) - index`` of the rule. Higher wins, ties
are Traefik's unspecified order.

The Gateway API spec (HTTPRoute, "Matching precedence") orders strictly instead: Exact path,
then the longest prefix, then a method, then the most headers, then the most query parameters;
then the oldest route, then ``namespace/name`` alphabetically, then the first rule. A sum is not
an order: ``PathPrefix /api`` + method (11400) outranks ``PathPrefix /api/v1/users`` (11300),
and ten query parameters tie one header. :func:`spec_key` is the spec's order, so the oracle can
report where the two disagree.

Traefik binds a listener to the entry point listening on the listener's port
(``entryPointName``). The local target's entry points listen on ports of their own, so
:func:`listener_entry_points` maps the user's listener ports onto them: the first HTTP port to
``web``, the second to ``webalt``, the HTTPS port to ``websecure``; the dialect refuses what
does not fit and says where each port is served, and the local target applies the Gateways
with those entry points' ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.intent.model import (
    FINDING_GATEWAY_PRECEDENCE,
    PROVIDER_GATEWAY,
    Finding,
    MatchKind,
    RequestCondition,
    Route,
    go_quote,
)
from harness.traefik import requests
from harness.traefik.entrypoints import WEB, WEBALT, WEBSECURE

#: Scores of buildMatchRule / buildPathRule / buildHeaderRules / buildQueryParamRules.
EXACT_SCORE = 100_000
PREFIX_SCORE = 10_000
PREFIX_PER_CHARACTER = 100
CATCH_ALL_SCORE = 1
METHOD_SCORE = 1_000
HEADER_SCORE = 100
QUERY_SCORE = 10

#: The local entry points listener ports are served on, per protocol, in the order the ports
#: first appear in the manifests' Gateways.
LISTENER_ENTRY_POINTS: Mapping[str, tuple[str, ...]] = {
    "HTTP": (WEB, WEBALT),
    "HTTPS": (WEBSECURE,),
}


def listener_entry_points(listeners: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """``(protocol, port)`` of every Gateway listener, in the manifests' order → the local entry
    point it is served on (:data:`LISTENER_ENTRY_POINTS`); a port with no entry point left,
    another protocol, or a port already taken by another protocol is absent (the dialect
    refuses it)."""
    out: dict[tuple[str, int], str] = {}
    for protocol, port in listeners:
        if (protocol, port) in out or any(p == port for _, p in out):
            continue
        free = [ep for ep in LISTENER_ENTRY_POINTS.get(protocol, ()) if ep not in out.values()]
        if free:
            out[protocol, port] = free[0]
    return out


def gateway_listeners(gateways: Iterable[Mapping[str, object]]) -> list[tuple[str, int]]:
    """``(protocol, port)`` of each listener of these Gateway bodies, in order."""
    out: list[tuple[str, int]] = []
    for gateway in gateways:
        spec = gateway.get("spec")
        listeners = spec.get("listeners") if isinstance(spec, Mapping) else None
        for listener in listeners if isinstance(listeners, list) else []:
            if isinstance(listener, Mapping) and isinstance(listener.get("port"), int):
                out.append((str(listener.get("protocol", "")), int(listener["port"])))
    return out


@dataclass(frozen=True)
class GatewayMatch:
    """One HTTPRoute match as Traefik reads it (defaults applied: PathPrefix ``/``)."""

    path: str
    match: MatchKind
    conditions: tuple[RequestCondition, ...] = ()

    @property
    def method(self) -> str | None:
        return next((c.value for c in self.conditions if c.kind == "method"), None)

    @property
    def headers(self) -> tuple[RequestCondition, ...]:
        return tuple(c for c in self.conditions if c.kind == "header")

    @property
    def query(self) -> tuple[RequestCondition, ...]:
        return tuple(c for c in self.conditions if c.kind == "query")


def path_rule(match: GatewayMatch) -> tuple[str, int]:
    """``buildPathRule``: the path matcher and its score."""
    if match.match == "exact":
        return f"Path({go_quote(match.path)})", EXACT_SCORE
    if match.match == "regex":
        # Not anchored: Traefik's PathRegexp is Go's MatchString on the path.
        return f"PathRegexp({go_quote(match.path)})", PREFIX_SCORE + PREFIX_PER_CHARACTER * len(
            match.path
        )
    if match.path == "/":
        return 'PathPrefix("/")', CATCH_ALL_SCORE
    base = match.path.removesuffix("/")
    rule = f"(Path({go_quote(base)}) || PathPrefix({go_quote(base + '/')}))"
    return rule, PREFIX_SCORE + PREFIX_PER_CHARACTER * len(match.path)


def _condition_rule(condition: RequestCondition) -> str:
    name = "Header" if condition.kind == "header" else "Query"
    regexp = "Regexp" if condition.match == "regex" else ""
    return f"{name}{regexp}({go_quote(condition.name)},{go_quote(condition.value)})"


#: What Go's ``regexp.QuoteMeta`` escapes.
_GO_META = frozenset("\\.+*?()|[]{}^$")
#: What ``buildHostRule`` puts in place of a hostname's leading ``*.``.
_WILDCARD_LABELS = "[a-z0-9-\\.]+\\."


def _host_matcher(hostname: str) -> str:
    if "*" not in hostname:
        return f"Host({go_quote(hostname)})"
    quoted = "".join("\\" + c if c in _GO_META else c for c in hostname)
    pattern = "^" + quoted.replace("\\*\\.", _WILDCARD_LABELS, 1) + "$"
    return f"HostRegexp({go_quote(pattern)})"


def host_matches(hostname: str | None, host: str) -> bool:
    """Whether the router of ``hostname`` matches the canonical ``host`` (lower case, port
    removed, a trailing dot kept): ``Host`` for an exact hostname; for ``*.example.com``
    Traefik's ``HostRegexp("^[a-z0-9-\\.]+\\.example\\.com$")``, one or more labels of
    letters, digits, ``-`` and ``.`` (so a trailing dot does not match; confirmed on 3.7.15)."""
    if hostname is None or not hostname.startswith("*."):
        return requests.host_matches(hostname, host)
    suffix = hostname[1:].lower()
    head = host[: -len(suffix)] if host.endswith(suffix) else ""
    return bool(head) and all(c.isascii() and (c.isalnum() or c in "-.") for c in head)


def host_rule(hostnames: Sequence[str]) -> tuple[str, int]:
    """``buildHostRule``: the Host matcher of the route's hostnames and the longest's length."""
    rules = [_host_matcher(h) for h in hostnames]
    longest = max((len(h) for h in hostnames), default=0)
    if len(rules) > 1:
        return f"({' || '.join(rules)})", longest
    return (rules[0] if rules else ""), longest


def router_rule(hostnames: Sequence[str], match: GatewayMatch) -> tuple[str, int]:
    """``buildMatchRule``: the router rule and its score before the rule-index bonus."""
    path, score = path_rule(match)
    parts = [path]
    if match.method is not None:
        parts.append(f"Method({go_quote(match.method)})")
        score += METHOD_SCORE
    for header in match.headers:
        parts.append(_condition_rule(header))
        score += HEADER_SCORE
    for param in match.query:
        parts.append(_condition_rule(param))
        score += QUERY_SCORE
    rule = " && ".join(parts)
    hosts, host_score = host_rule(hostnames)
    if not hosts:
        return rule, score
    return f"{hosts} && {rule}", score + host_score


def router_priority(score: int, rules: int, index: int) -> int:
    """The router's priority: the match's score plus ``len(rules) - index`` (earlier rules of
    one HTTPRoute first)."""
    return score + rules - index


def spec_key(
    host: str | None, match: GatewayMatch, namespace: str, name: str, rule_index: int
) -> tuple[object, ...]:
    """The Gateway API spec's precedence as a sort key, smaller first: the most specific
    hostname (exact, then wildcard, then none), then Exact, the longest prefix, a method, the
    most headers, the most query parameters; then ``namespace/name`` (the harness applies a
    scenario's routes together, so "oldest route" ties) and the first rule."""
    host_rank = 0 if host and not host.startswith("*") else (1 if host else 2)
    return (
        host_rank,
        0 if match.match == "exact" else 1,
        -len(match.path),
        0 if match.method is not None else 1,
        -len(match.headers),
        -len(match.query),
        f"{namespace}/{name}",
        rule_index,
    )


_RULE_INDEX = re.compile(r"\bspec\.rules\[(\d+)\]")


def rule_index(route: Route) -> int:
    """Which rule of its HTTPRoute ``route`` comes from (``spec.rules[i]`` of its source)."""
    found = _RULE_INDEX.search(route.source.field)
    return int(found.group(1)) if found else 0


def _spec_key_of(route: Route) -> tuple[object, ...]:
    match = GatewayMatch(route.path or "/", route.match, route.conditions)
    return spec_key(route.host, match, route.namespace, route.source.name, rule_index(route))


def spec_winner(matching: Sequence[Route]) -> Route | None:
    """The route the Gateway API spec's precedence picks among the HTTPRoute routes that match
    a request (None when none of them is an HTTPRoute's, or one has a RegularExpression path:
    the spec leaves their precedence to the implementation)."""
    gateway = [r for r in matching if r.provider == PROVIDER_GATEWAY]
    if not gateway or any(r.match == "regex" for r in gateway):
        return None
    return min(gateway, key=_spec_key_of)


def _answer(route: Route) -> str:
    backends = ", ".join(
        f"{b.service} weight {b.weight}" if route.weighted else b.service for b in route.backends
    )
    return f"{route.id} (priority {route.effective_priority}, to {backends})"


def precedence_findings(
    matching: Sequence[Route], traefik: Sequence[Route], request: str
) -> list[Finding]:
    """Where Traefik's pick for ``request`` (``traefik``: its winner, or the routes it picks
    among on a tie; empty: none) differs from the Gateway API spec's, with both answers."""
    spec = spec_winner(matching)
    if spec is None or not traefik:
        return []
    effect = (spec.backends, spec.effect_middlewares)
    if all((t.backends, t.effect_middlewares) == effect for t in traefik):
        return []
    ids = tuple(dict.fromkeys((*(t.id for t in traefik), spec.id)))
    if len(traefik) > 1:
        picked = (
            "Traefik picks any of " + "; ".join(_answer(t) for t in traefik) + " (equal "
            "priority: it does not implement the spec's tie-breaks, oldest route then "
            "namespace/name)"
        )
    else:
        picked = f"Traefik picks {_answer(traefik[0])} by its additive priority"
    return [
        Finding(
            FINDING_GATEWAY_PRECEDENCE,
            f"{request}: {picked}; the Gateway API spec's precedence (Exact, longest prefix, "
            f"method, most headers, most query parameters, then namespace/name, then rule "
            f"order) picks {_answer(spec)}",
            traefik[0].source,
            "warning",
            ids,
        )
    ]
