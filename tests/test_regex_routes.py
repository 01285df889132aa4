"""Regex routes (IngressRoute ``PathRegexp``) and regex request conditions: Traefik's semantics
as confirmed on the binary (found anywhere in the routing path, not anchored), the refusals, the
values generated from a pattern, and the real Traefik agreeing with the probes derived from
them."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from applied_verdicts import routing_verdicts
from test_traefik_requests import send_raw

from harness.checks.exact import applies, judge
from harness.checks.probes import (
    Probe,
    condition_breaks,
    condition_matches,
    generate_probes,
    regex_condition_values,
    regex_path_values,
    satisfying_request,
)
from harness.checks.regex_probes import PER_KIND
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import (
    FINDING_REGEX_UNPROBED,
    Intent,
    RequestCondition,
    Route,
    Source,
    WeightedBackend,
)
from harness.targets.base import LocalTarget
from harness.traefik.conditions import condition_met
from harness.traefik.goregexp import compile_go_regexp
from harness.traefik.oracle import expect, spec_matches, traefik_matches
from harness.traefik.render import render_manifests
from harness.traefik.requests import ROUTABLE, at_entry_point, path_matches
from harness.traffic.rounds import send_in_rounds

SERVICES = "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: http, port: 80}}]}}
"""
    for name in ("cheddar", "wensleydale", "stilton")
)


def _ingressroute(tmp_path: Path, *matches: str, name: str = "regex.yaml") -> Path:
    routes = "".join(
        f"  - match: {m}\n    services: [{{name: {svc}, port: 80}}]\n"
        for m, svc in zip(matches, ("cheddar", "wensleydale", "stilton"), strict=False)
    )
    path = tmp_path / name
    path.write_text(
        SERVICES
        + "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        + f"metadata: {{name: regex}}\nspec:\n  routes:\n{routes}"
    )
    return path


# -- semantics (confirmed on Traefik 3.7.15: test_the_semantics_table_is_what_the_binary_does) --


#: (pattern, request-target, whether PathRegexp matches): the unit table, and on the binary.
SEMANTICS = [
    # Go's MatchString: found anywhere, not anchored.
    ("/b", "/b", True),
    ("/b", "/a/bc", True),
    ("/b", "/x", False),
    ("^/p/x$", "/p/x", True),
    # Matched on the routing path: %2F and %3A stay encoded, %20 and %41 are decoded.
    ("^/p/x$", "/p%2Fx", False),
    ("^/p%2Fx$", "/p%2Fx", True),
    ("^/p:x$", "/p%3Ax", False),
    ("^/p%3Ax$", "/p%3Ax", True),
    ("^/p x$", "/p%20x", True),
    ("^/p%20x$", "/p%20x", False),
    ("^/AB$", "/%41B", True),
    # Case-sensitive; after the entry point's cleaning.
    ("^/AB$", "/ab", False),
    ("^/p/x$", "/p//x", True),
    ("^/p/x$", "/p/./x", True),
    ("^/x/$", "/x/.", False),
]


@pytest.mark.parametrize(("pattern", "target", "matches"), SEMANTICS)
def test_path_regexp_is_found_anywhere_in_the_routing_path(
    pattern: str, target: str, matches: bool
) -> None:
    assert path_matches("regex", pattern, at_entry_point(target, "h.test")) is matches


def test_an_ingressroute_path_regexp_is_read_and_rendered_as_written(tmp_path: Path) -> None:
    intent = load_intent(
        [_ingressroute(tmp_path, "Host(`rx.test`) && PathRegexp(`^/api/v[0-9]+$`)")]
    )
    (route,) = intent.routes
    assert (route.match, route.path) == ("regex", "^/api/v[0-9]+$")
    assert route.rule == "Host(`rx.test`) && PathRegexp(`^/api/v[0-9]+$`)"
    assert traefik_matches(route, "rx.test", "/api/v12")
    assert not traefik_matches(route, "rx.test", "/api/v12/x")
    # Rendered by the harness (no rule as written): the same matcher.
    rendered = dataclasses.replace(route, match_rule=None)
    assert rendered.rule == route.rule
    objects = render_manifests(Intent(routes=(rendered,)), "default")
    assert [o["spec"]["routes"][0]["match"] for o in objects] == [route.rule]
    # The Ingress spec has no regex: a regex route makes the spec comparison not applicable.
    assert expect(intent, "rx.test", "/api/v1").spec.outcome == "not-applicable"
    assert spec_matches(route, "rx.test", "/api/v1") is False


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("^/a(?=b)", "'(?=b'"),
        (r"^/(a)\1", r"'\1'"),
        (r"^/\p{L}", r"'\p'"),
        ("^/a{2,1}", "{2,1}"),
        ("^/[[:alpha:]]", "POSIX class"),
        ("^/(a", "missing ')'"),
    ],
)
def test_a_pattern_go_refuses_or_python_reads_differently_is_refused(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    manifest = _ingressroute(tmp_path, f"Host(`rx.test`) && PathRegexp(`{pattern}`)")
    with pytest.raises(ManifestError) as err:
        load_intent([manifest])
    message = str(err.value)
    assert f"{manifest.name}:" in message and "spec.routes[0].match" in message, message
    assert "PathRegexp" in message and construct in message, message


def _ingress(tmp_path: Path, path: str, name: str = "ingress.yaml") -> Path:
    """An Ingress with ``router.pathmatcher: PathRegexp`` (its path the pattern) next to a
    PathPrefix Ingress on the same host."""
    manifest = tmp_path / name
    manifest.write_text(
        SERVICES
        + f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: regex
  annotations:
    traefik.ingress.kubernetes.io/router.pathmatcher: PathRegexp
spec:
  rules:
  - host: ing.test
    http:
      paths:
      - path: {path}
        pathType: ImplementationSpecific
        backend: {{service: {{name: cheddar, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: plain}}
spec:
  rules:
  - host: ing.test
    http:
      paths:
      - path: /api
        pathType: Prefix
        backend: {{service: {{name: wensleydale, port: {{number: 80}}}}}}
"""
    )
    return manifest


def test_an_ingress_path_regexp_is_read_and_rendered(tmp_path: Path) -> None:
    intent = load_intent([_ingress(tmp_path, "/api/v[0-9]+/users$")])
    route = next(r for r in intent.routes if r.match == "regex")
    assert (route.path, route.path_type) == ("/api/v[0-9]+/users$", "ImplementationSpecific")
    # As Traefik's Ingress provider writes it (%q), and its priority is that rule's length.
    assert route.rule == 'Host("ing.test") && PathRegexp("/api/v[0-9]+/users$")'
    assert route.effective_priority == len(route.rule)
    # The Ingress spec has no regex paths: where the regex route matches, it does not apply.
    assert traefik_matches(route, "ing.test", "/api/v1/users")
    assert not spec_matches(route, "ing.test", "/api/v1/users")
    assert expect(intent, "ing.test", "/api/v1/users").spec.outcome == "not-applicable"
    assert expect(intent, "ing.test", "/api/x").spec.outcome == "routed"
    # Rendered back by the harness: the same annotation and path.
    rendered = dataclasses.replace(route, id="again")
    (ingress,) = render_manifests(Intent(routes=(rendered,)), "default")
    assert ingress["metadata"]["annotations"][
        "traefik.ingress.kubernetes.io/router.pathmatcher"
    ] == ("PathRegexp")
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == route.path


def test_an_ingress_path_go_refuses_is_refused_at_the_path(tmp_path: Path) -> None:
    manifest = _ingress(tmp_path, "/api(?!x)")
    with pytest.raises(ManifestError) as err:
        load_intent([manifest])
    assert "field spec.rules[0].http.paths[0].path" in str(err.value)
    assert "'(?!x'" in str(err.value) and "router.pathmatcher PathRegexp" in str(err.value)


# -- values generated from a pattern -------------------------------------------------------------

#: Patterns with the constructs whose reading differs between Go and Python (\d, \w, \b, $, .,
#: scoped flags, classes), anchored and not, and how many paths they match (at most PER_KIND).
PATTERNS = {
    r"^/api/v[0-9]+/users$": PER_KIND,
    r"^/api/v\d+(/.*)?$": PER_KIND,
    r"/b": PER_KIND,
    r"^/x/\w+\.json$": PER_KIND,
    r"(?i)^/Admin": PER_KIND,
    r"^/files/[^/]+\.(png|jpe?g)$": PER_KIND,
    r"^/w\b": PER_KIND,
    r"^/o\B": PER_KIND,
    r"(?m)^/l$": 1,
    r"^/a.c$": PER_KIND,
    r"^/(?i:ab)C$": PER_KIND,
    r"^/caf\x{e9}/[a-z]+$": PER_KIND,
    r"^/p{2,3}$": 2,
    r"^/q\Q.*\E$": 1,
}


@pytest.mark.parametrize(("pattern", "count"), PATTERNS.items())
def test_generated_paths_match_and_near_misses_do_not_as_the_oracle_reads_them(
    pattern: str, count: int
) -> None:
    values = regex_path_values(pattern)
    assert len(values.matching) == count and len(values.missing) == PER_KIND, values
    regexp = compile_go_regexp(pattern)
    for target in values.matching + values.missing:
        request = at_entry_point(target, "h.test")
        # A valid request-target, routed on the very text that was generated.
        assert request.outcome == ROUTABLE and target.startswith("/"), target
        assert all(c.isascii() and c.isprintable() and c not in " #?" for c in target), target
        assert unquote(target) == request.routing_path, target
    for target in values.matching:
        assert regexp.search(at_entry_point(target, "h.test").routing_path), target
    for target in values.missing:
        assert not regexp.search(at_entry_point(target, "h.test").routing_path), target


def test_near_misses_keep_the_literal_prefix_and_change_the_case() -> None:
    values = regex_path_values(r"^/api/v[0-9]+/users$")
    assert values.missing[0].startswith("/api/v") and values.missing[0] != "/api/v"
    values = regex_path_values(r"^/Admin/x")
    assert any(m.startswith("/aDMIN") for m in values.missing), values


def test_generation_is_seeded_whatever_modules_are_loaded(tmp_path: Path) -> None:
    """Hypothesis draws constants from local modules: the harness turns that off, so the values
    (and so the probe ids) do not depend on the folder or the modules a run has loaded."""
    local = tmp_path / "local_constants.py"
    local.write_text("CONSTANTS = ['/api/v9', '/api/v77', 'x', 7, 9999, '/']\n")
    code = (
        "import json, local_constants\n"
        "from hypothesis.configuration import storage_directory\n"
        "from harness.checks.probes import regex_path_values\n"
        f"values = [regex_path_values(p).matching for p in {list(PATTERNS)!r}]\n"
        "home = str(storage_directory(intent_to_write=False).home_directory)\n"
        "print(json.dumps([values, home]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    here = [list(regex_path_values(p).matching) for p in PATTERNS]
    values, home = json.loads(out.stdout)
    assert values == here
    # Nothing written to the working folder; Hypothesis's own setting restored after drawing.
    assert not (tmp_path / ".hypothesis").exists()
    assert Path(home).resolve() == (tmp_path / ".hypothesis").resolve()


@pytest.mark.parametrize(
    ("condition", "sendable"),
    [
        (RequestCondition("header", "X-Id", "^[0-9]+$", "regex"), str.isdigit),
        (RequestCondition("header", "X-Env", "(?i)prod", "regex"), lambda v: v == v.strip()),
        (RequestCondition("query", "v", "^v[12]( beta)?$", "regex"), lambda v: " " not in v[:2]),
        (RequestCondition("cookie", "c", "^[a-z]+=?$", "regex"), lambda v: ";" not in v),
    ],
)
def test_generated_condition_values_meet_it_and_near_misses_do_not(
    condition: RequestCondition, sendable: Callable[[str], bool]
) -> None:
    values = regex_condition_values(condition)
    assert len(values.matching) == PER_KIND and len(values.missing) == PER_KIND, values
    route = Route(
        "r", "h.test", "/", "prefix", (), None, (WeightedBackend("cheddar", 80, 1),),
        "kubernetescrd", Source("m.yaml", 1, 1, "spec"), conditions=(condition,),
    )  # fmt: skip
    own = satisfying_request(route)
    assert own is not None
    assert condition_met(condition, own.method, own.headers, own.query)
    for value in values.matching:
        assert sendable(value), value
    broken = condition_breaks(route)
    near = [r for r, why in broken if "near miss" in why]
    assert len(near) == PER_KIND and len(broken) == PER_KIND + 1
    for request in near:
        assert not condition_met(condition, request.method, request.headers, request.query)
    more = condition_matches(route)
    assert len(more) == PER_KIND - 1
    for request, _ in more:
        assert condition_met(condition, request.method, request.headers, request.query)


def test_a_pattern_nothing_sendable_matches_is_a_finding(tmp_path: Path) -> None:
    intent = load_intent(
        [
            _ingressroute(
                tmp_path,
                "Host(`rx.test`) && PathRegexp(`^api`)",
                "Host(`rx.test`) && PathPrefix(`/h`) && HeaderRegexp(`X-A`, `^\\x{1}$`)",
            )
        ]
    )
    found = [f for f in intent.findings if f.kind == FINDING_REGEX_UNPROBED]
    assert len(found) == 2, intent.findings
    assert "PathRegexp `^api`" in found[0].message and found[0].source is not None
    assert "header X-A ~" in found[1].message
    probes = generate_probes(intent, edge=False)
    # Nothing reaches either route, and nothing is sent as if it did.
    assert all(p.expectation.outcome != "routed" for p in probes), [p.id for p in probes]


# -- on the real Traefik ------------------------------------------------------------------------

ROUTES = (
    "Host(`rx.test`) && PathRegexp(`^/api/v[0-9]+/users$`)",
    "Host(`rx.test`) && PathPrefix(`/api`) && HeaderRegexp(`X-Id`, `^[0-9]+$`)",
    "Host(`rx.test`) && PathRegexp(`/files/[^/]+\\.png$`) && QueryRegexp(`size`, `^(s|m)$`)",
)


def _answer(intent: Intent, probe: Probe) -> tuple[int | None, tuple[str, ...]]:
    e = expect(intent, probe.host, probe.path, headers=probe.headers, method=probe.method)
    return e.status, tuple(b.service for b in e.backends)


@pytest.mark.stack
def test_traefik_agrees_and_a_changed_pattern_fails_exactly_the_probes_it_changes(
    local_stack: Any, tmp_path: Path
) -> None:
    declared = load_intent([_ingressroute(tmp_path, *ROUTES)])
    probes = generate_probes(declared, edge=False)
    # Behind the oracle's back: one digit only in the version, at most three in X-Id.
    changed_routes = (
        ROUTES[0].replace("[0-9]+", "[0-9]"),
        ROUTES[1].replace("[0-9]+", "[0-9]{1,3}"),
        ROUTES[2],
    )
    changed = load_intent([_ingressroute(tmp_path, *changed_routes, name="changed.yaml")])
    target = LocalTarget(local_stack)

    def verdicts(applied: Intent) -> dict[str, bool | None]:
        return routing_verdicts(target, probes, declared, applied, "regex")

    correct = verdicts(declared)
    assert len(correct) > 20 and all(correct.values()), [k for k, v in correct.items() if not v]
    # Generated values reach each route, near misses do not.
    routed = {p.expectation.route_id for p in probes if p.expectation.outcome == "routed"}
    assert routed == {r.id for r in declared.routes}
    failed = sorted(k for k, v in verdicts(changed).items() if not v)
    # Exactly the probes the oracle answers differently under the changed patterns.
    differ = sorted(
        p.id
        for p in probes
        if applies("routing", p) and _answer(declared, p) != _answer(changed, p)
    )
    assert failed and failed == differ, (failed, differ)


@pytest.mark.stack
def test_the_semantics_table_is_what_the_binary_does(local_stack: Any, tmp_path: Path) -> None:
    """Each row of SEMANTICS sent byte for byte to the real Traefik: answered by the route
    exactly when the table (and so the oracle) says PathRegexp matches."""
    patterns = list(dict.fromkeys(p for p, _, _ in SEMANTICS))
    host = {p: f"s{i}.rx.test" for i, p in enumerate(patterns)}
    routes = "".join(
        f"  - match: Host(`{host[p]}`) && PathRegexp(`{p}`)\n"
        "    services: [{name: cheddar, port: 80}]\n"
        for p in patterns
    )
    manifest = tmp_path / "semantics.yaml"
    manifest.write_text(
        SERVICES + "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        f"metadata: {{name: semantics}}\nspec:\n  routes:\n{routes}"
    )
    intent = load_intent([manifest])
    target = LocalTarget(local_stack)
    port = urlsplit(target.proxy_url).port
    assert port is not None
    target.apply_intent(intent)
    try:
        observed = [
            (p, t, send_raw(port, t, host[p]).service == "cheddar") for p, t, _ in SEMANTICS
        ]
    finally:
        target.remove_intent(intent)
    assert observed == SEMANTICS


@pytest.mark.stack
def test_traefik_serves_an_ingress_path_regexp_as_the_oracle_says(
    local_stack: Any, tmp_path: Path
) -> None:
    """router.pathmatcher PathRegexp on the real Traefik: its router is the predicted rule and
    priority (the target waits for exactly those), and every probe answers as predicted."""
    intent = load_intent([_ingress(tmp_path, "/api/v[0-9]+/users$")])
    probes = generate_probes(intent, edge=False)
    target = LocalTarget(local_stack)
    target.apply_intent(intent)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(intent)
    verdicts = {
        p.id: judge("routing", run.records[p.id], intent, scenario="ingress-regex").passed
        for p in probes
        if applies("routing", p)
    }
    assert all(verdicts.values()), [k for k, v in verdicts.items() if not v]
    services = {
        b.service
        for p in probes
        if p.expectation.outcome == "routed"
        for b in p.expectation.backends
    }
    assert services == {"cheddar", "wensleydale"}
