"""Probe generation: every route, boundary and overlap gets requests with expectations."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from harness.checks.probes import (
    KIND_BOUNDARY,
    KIND_EDGE,
    KIND_NOT_FOUND,
    KIND_PRECEDENCE,
    KIND_STRIP,
    UNKNOWN_HOST,
    Probe,
    collect_findings,
    edge_paths,
    generate_probes,
    non_matching_host,
    probe_for,
    probe_host,
)
from harness.errors import ManifestError
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_EDGE_DEVIATION,
    FINDING_PREFIX_OUTRANKS_EXACT,
    FINDING_UNDEFINED_TIE,
    sub_intent,
)
from harness.traefik.oracle import (
    BAD_REQUEST,
    NOT_FOUND,
    ROUTED,
    UNDEFINED,
    RoutingOptions,
    expect,
)
from harness.traefik.requests import host_matches

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
SERVICES = MANIFESTS / "services.yaml"
SCENARIOS = load_scenarios(MANIFESTS)


def _by_id(probes: tuple[Probe, ...]) -> dict[str, Probe]:
    return {p.id: p for p in probes}


def test_tutorial_cheeses_probes() -> None:
    probes = generate_probes(SCENARIOS["cheeses"])
    by_id = _by_id(probes)
    assert len(by_id) == len(probes)  # ids are unique
    expected = {
        # Host routing and 404.
        "stilton.minikube/": ("routed", "stilton"),
        "unknown.invalid/": ("not-found", None),
        "unknown.invalid/cheddar": ("not-found", None),
        "cheeses.minikube/no-such-route": ("not-found", None),
        # At, under and at the boundaries of /cheddar.
        "cheeses.minikube/cheddar": ("routed", "cheddar"),
        "cheeses.minikube/cheddar/": ("routed", "cheddar"),
        "cheeses.minikube/cheddar/x": ("routed", "cheddar"),
        "cheeses.minikube/cheddarX": ("routed", "cheddar"),
        "cheeses.minikube/wensleydale/x": ("routed", "wensleydale"),
    }
    for probe_id, (outcome, service) in expected.items():
        e = by_id[probe_id].expectation
        assert e.outcome == outcome, probe_id
        assert (e.backends[0].service if e.backends else None) == service, probe_id
    strip = by_id["cheeses.minikube/cheddar/x"]
    assert (strip.expectation.upstream_path, strip.expectation.forwarded_prefix) == (
        "/x",
        "/cheddar",
    )
    assert KIND_STRIP in strip.kinds and strip.routes == ("cheeses:cheeses.minikube/cheddar",)
    assert KIND_BOUNDARY in by_id["cheeses.minikube/cheddarX"].kinds
    assert KIND_NOT_FOUND in by_id["unknown.invalid/cheddar"].kinds
    assert all(p.method == "GET" and p.headers == () for p in probes)
    assert [(p.host, p.path) for p in probes] == sorted((p.host, p.path) for p in probes)
    # Deterministic: the same intent gives the same probes.
    assert generate_probes(SCENARIOS["cheeses"]) == probes


def test_precedence_probes_tell_overlaps_apart() -> None:
    default = _by_id(generate_probes(SCENARIOS["priority-longest-path"]))
    probe = default["cheeses.minikube/cheddar/wensleydale/x"]
    assert KIND_PRECEDENCE in probe.kinds
    assert set(probe.routes) == {
        "cheddar:cheeses.minikube/cheddar",
        "wensleydale:cheeses.minikube/cheddar/wensleydale",
    }
    assert probe.expectation.backends[0].service == "wensleydale"
    explicit = _by_id(generate_probes(SCENARIOS["priority-explicit"]))
    assert (
        explicit["cheeses.minikube/cheddar/wensleydale/x"].expectation.backends[0].service
        == "cheddar"
    )
    assert "precedence decides" in probe.reason


def test_undefined_probes_for_duplicate_registration() -> None:
    probes = generate_probes(SCENARIOS["registration-duplicate"])
    undefined = [p for p in probes if p.expectation.outcome == UNDEFINED]
    assert {p.id for p in undefined} >= {"cheeses.minikube/cheddar", "cheeses.minikube/cheddar/x"}
    # Both tied routes strip /cheddar, so Traefik answers /cheddar./x with 400 whichever wins:
    # no tie there, only the character-wise match every /cheddar route has.
    dot = _by_id(probes)["cheeses.minikube/cheddar./x"]
    assert dot.expectation.outcome == BAD_REQUEST and not dot.expectation.tied
    assert [f.kind for f in collect_findings(probes)] == [
        FINDING_UNDEFINED_TIE,
        FINDING_CHARACTER_WISE_PREFIX,
    ]


def test_weighted_probe_carries_shares() -> None:
    by_id = _by_id(generate_probes(SCENARIOS["weights"]))
    assert by_id["cheeses.minikube/"].expectation.shares() == {"cheddar": 0.75, "wensleydale": 0.25}


def test_adding_a_route_adds_probes_without_code_changes(tmp_path: Path) -> None:
    manifest = tmp_path / "cheeses.yaml"
    shutil.copy(MANIFESTS / "cheeses.yaml", manifest)
    before = generate_probes(load_intent([SERVICES, manifest]))
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(
        text
        + textwrap.indent(
            "- path: /stilton\n  backend:\n    serviceName: stilton\n    servicePort: http\n",
            " " * 6,
        ),
        encoding="utf-8",
    )
    intent = load_intent([SERVICES, manifest])
    assert "cheeses:cheeses.minikube/stilton" in {r.id for r in intent.routes}
    after = generate_probes(intent)
    added = {p.id for p in after if KIND_EDGE not in p.kinds} - set(_by_id(before))
    edge = {p.id for p in after if KIND_EDGE in p.kinds} - set(_by_id(before))
    route = intent.route("cheeses:cheeses.minikube/stilton")
    assert edge == {f"cheeses.minikube{path}" for path, _ in edge_paths(route)}
    assert added == {
        "cheeses.minikube/stilton",
        "cheeses.minikube/stilton/",
        "cheeses.minikube/stilton/x",
        "cheeses.minikube/stiltonX",
        "unknown.invalid/stilton",
    }
    new = _by_id(after)["cheeses.minikube/stilton/x"].expectation
    assert (new.backends[0].service, new.upstream_path, new.forwarded_prefix) == (
        "stilton",
        "/x",
        "/stilton",
    )


def test_findings_on_purpose_built_manifests(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        textwrap.dedent(
            """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: exact}
            spec:
              rules:
              - host: cheeses.minikube
                http:
                  paths:
                  - path: /cheddar
                    pathType: Exact
                    backend: {service: {name: stilton, port: {number: 80}}}
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: prefix}
            spec:
              rules:
              - host: cheeses.minikube
                http:
                  paths:
                  - path: /cheddar
                    pathType: Prefix
                    backend: {service: {name: cheddar, port: {number: 80}}}
            """
        ),
        encoding="utf-8",
    )
    intent = load_intent([SERVICES, manifest])
    probes = generate_probes(intent)
    kinds = {f.kind for f in collect_findings(probes)} - {FINDING_EDGE_DEVIATION}
    assert kinds == {FINDING_PREFIX_OUTRANKS_EXACT, FINDING_CHARACTER_WISE_PREFIX}
    # With strict prefix matching the character-wise finding goes away; Prefix still outranks.
    strict = generate_probes(intent, RoutingOptions(strict_prefix_matching=True))
    strict_kinds = {f.kind for f in collect_findings(strict)} - {FINDING_EDGE_DEVIATION}
    assert strict_kinds == {FINDING_PREFIX_OUTRANKS_EXACT}
    assert _by_id(strict)["cheeses.minikube/cheddarX"].expectation.outcome == NOT_FOUND


def test_hostless_and_wildcard_routes(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        textwrap.dedent(
            """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: mixed}
            spec:
              rules:
              - http:
                  paths:
                  - path: /any
                    pathType: Prefix
                    backend: {service: {name: stilton, port: {number: 80}}}
              - host: "*.cheeses.example"
                http:
                  paths:
                  - path: /
                    pathType: Prefix
                    backend: {service: {name: cheddar, port: {number: 80}}}
            """
        ),
        encoding="utf-8",
    )
    by_id = _by_id(generate_probes(load_intent([SERVICES, manifest])))
    assert by_id[f"{UNKNOWN_HOST}/any/x"].expectation.outcome == ROUTED
    assert by_id["wild.cheeses.example/x"].expectation.backends[0].service == "cheddar"
    # Overlap on the wildcard host: /any is matched by both routes.
    assert KIND_PRECEDENCE in by_id["wild.cheeses.example/any"].kinds


def test_probes_are_json_serialisable() -> None:
    for intent in SCENARIOS.values():
        for probe in generate_probes(intent):
            data = json.loads(json.dumps(probe.to_dict()))
            assert data["id"] == probe.id
            assert data["expectation"]["outcome"] == probe.expectation.outcome


@pytest.mark.parametrize(
    ("route_host", "send", "elsewhere"),
    [
        ("cheeses.minikube", "cheeses.minikube", UNKNOWN_HOST),
        ("*.cheeses.example", "wild.cheeses.example", UNKNOWN_HOST),
        # A route whose own host is the usual unknown host gets another one.
        ("unknown.invalid", "unknown.invalid", "no.such.host.invalid"),
        ("*.invalid", "wild.invalid", "no.such.host.invalid"),
        (None, UNKNOWN_HOST, None),
        ("*", UNKNOWN_HOST, None),
    ],
)
def test_probe_host_matches_the_route_and_non_matching_host_does_not(
    route_host: str | None, send: str, elsewhere: str | None
) -> None:
    assert probe_host(route_host) == send
    assert host_matches(route_host, send)
    assert non_matching_host(route_host) == elsewhere
    if elsewhere is not None:
        assert not host_matches(route_host, elsewhere)


WILDCARD_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: wild}
spec:
  rules:
  - host: "*.cheeses.example"
    http:
      paths:
      - path: /cheddar
        pathType: Prefix
        backend: {service: {name: cheddar, port: {number: 80}}}
"""


def test_a_wildcard_routes_registration_probe_can_fail(tmp_path: Path) -> None:
    """The registration check sends each route's own probe before applying, applied and after
    removing. For a wildcard route it goes to a host the wildcard matches, so "applied" expects
    the route's Service where a proxy without the route answers 404: the check can fail (it
    used to go to unknown.invalid, a 404 either way)."""
    manifest = tmp_path / "wild.yaml"
    manifest.write_text(WILDCARD_INGRESS, encoding="utf-8")
    intent = load_intent([SERVICES, manifest])
    (route,) = intent.routes
    probe = probe_for(intent, route)
    assert (probe.host, probe.path) == ("wild.cheeses.example", "/cheddar")
    assert probe.expectation.outcome == ROUTED
    assert probe.expectation.route_id == route.id
    assert [b.service for b in probe.expectation.backends] == ["cheddar"]
    missing = expect(sub_intent(intent, []), probe.host, probe.path)
    assert missing.outcome == NOT_FOUND
    # The undeclared-host probe of the same route stays off it.
    by_id = _by_id(generate_probes(intent))
    assert by_id[f"{UNKNOWN_HOST}/cheddar"].expectation.outcome == NOT_FOUND


def test_edge_probes_are_judged_against_the_entry_point_model() -> None:
    by_id = _by_id(generate_probes(SCENARIOS["cheeses"]))
    cheddar = "cheeses:cheeses.minikube/cheddar"
    expected = {
        # target -> (outcome, route, upstream path)
        "cheeses.minikube/cheddar/./x": ("routed", cheddar, "/x"),
        "cheeses.minikube/cheddar//x": ("routed", cheddar, "/x"),
        "cheeses.minikube/cheddar/%2e/x": ("routed", cheddar, "/x"),
        "cheeses.minikube/cheddar%2Fx": ("routed", cheddar, "/x"),
        "cheeses.minikube/cheddar%5Cx": ("routed", cheddar, "/%5Cx"),
        # A dot adjoining the stripped prefix: the rest, /./x, is not clean: 400 from strip.
        "cheeses.minikube/cheddar./x": ("bad-request", cheddar, None),
        "cheeses.minikube/cheddar/../x": ("not-found", None, None),
        "cheeses.minikube/CHEDDAR/X": ("not-found", None, None),
        "CHEESES.MINIKUBE/cheddar": ("routed", cheddar, "/"),
        "cheeses.minikube:8080/cheddar": ("routed", cheddar, "/"),
        "cheeses.minikube./cheddar": ("routed", cheddar, "/"),
    }
    for probe_id, (outcome, route, upstream) in expected.items():
        probe = by_id[probe_id]
        e = probe.expectation
        assert KIND_EDGE in probe.kinds, probe_id
        assert (e.outcome, e.route_id, e.upstream_path) == (outcome, route, upstream), probe_id
    # Every edge probe is an Exact route's too: Exact /x/. is /x after cleaning.
    assert by_id["cheeses.minikube/cheddar./x"].path == "/cheddar./x"  # sent as written


def test_wildcard_hosts_are_probed_with_a_match_and_two_misses(tmp_path: Path) -> None:
    manifest = tmp_path / "wild.yaml"
    manifest.write_text(WILDCARD_INGRESS, encoding="utf-8")
    by_id = _by_id(generate_probes(load_intent([SERVICES, manifest])))
    assert by_id["wild.cheeses.example/cheddar"].expectation.outcome == ROUTED
    for miss in ("a.wild.cheeses.example/cheddar", "cheeses.example/cheddar"):
        assert by_id[miss].expectation.outcome == NOT_FOUND, miss
        assert KIND_NOT_FOUND in by_id[miss].kinds


OTHER_CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: haproxy}
spec: {controller: haproxy.org/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: served}
spec:
  rules:
  - host: served.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: cheddar, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: by-name}
spec:
  ingressClassName: haproxy
  rules:
  - host: haproxy.test
    http:
      paths:
      - {path: /n, pathType: Prefix, backend: {service: {name: stilton, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: by-annotation
  annotations: {kubernetes.io/ingress.class: haproxy}
spec:
  rules:
  - host: annotated.test
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: stilton, port: {number: 80}}}}
"""


def test_an_ingress_of_another_class_is_probed_for_404(tmp_path: Path) -> None:
    manifest = tmp_path / "classes.yaml"
    manifest.write_text(OTHER_CLASS, encoding="utf-8")
    intent = load_intent([SERVICES, manifest])
    assert [r.id for r in intent.routes] == ["served:served.test/"]
    assert [u.route.id for u in intent.unserved] == [
        "by-name:haproxy.test/n",
        "by-annotation:annotated.test/a",
    ]
    assert "stilton" in {s.name for s in intent.services}  # its backend runs, to catch a leak
    by_id = _by_id(generate_probes(intent))
    for probe_id in (
        "haproxy.test/n",
        "haproxy.test/n/x",
        "annotated.test/a",
        "annotated.test/a/x",
    ):
        assert by_id[probe_id].expectation.outcome == NOT_FOUND, probe_id
        assert "not serve" in by_id[probe_id].reason


def test_a_default_class_of_another_controller_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "default.yaml"
    manifest.write_text(
        OTHER_CLASS.replace(
            "metadata: {name: haproxy}",
            "metadata:\n  name: haproxy\n  annotations:\n"
            '    ingressclass.kubernetes.io/is-default-class: "true"',
        ),
        encoding="utf-8",
    )
    with pytest.raises(ManifestError, match=r"default\.yaml:\d+: .*default IngressClass 'haproxy'"):
        load_intent([SERVICES, manifest])


def test_edge_probes_can_be_left_out_without_changing_the_others() -> None:
    every = generate_probes(SCENARIOS["cheeses"])
    without = generate_probes(SCENARIOS["cheeses"], edge=False)
    assert [p for p in every if KIND_EDGE not in p.kinds] == list(without)
    assert len(every) - len(without) == 3 * 8 + 2 * 3
