"""The oracle: Traefik 3.7's decisions for the tutorial's cases, and where they differ from the
Kubernetes Ingress spec."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_EXPLICIT_PRIORITY,
    FINDING_PREFIX_OUTRANKS_EXACT,
    FINDING_PROVIDER_PRECEDENCE,
    FINDING_RULE_LENGTH_ORDER,
    FINDING_TRAILING_SLASH_PREFIX,
    FINDING_UNDEFINED_TIE,
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    Intent,
)
from harness.traefik.oracle import (
    BAD_REQUEST,
    NOT_FOUND,
    ROUTED,
    UNDEFINED,
    RoutingOptions,
    clean_path,
    expect,
    request_host,
    strip,
)

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
SERVICES = MANIFESTS / "services.yaml"
SCENARIOS = load_scenarios(MANIFESTS)


def _intent(tmp_path: Path, text: str) -> Intent:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_intent([SERVICES, path])


def _ingress(
    name: str, path: str, path_type: str, service: str, host: str = "cheeses.minikube"
) -> str:
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: {path_type}
        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}
"""


# -- the tutorial, by name -----------------------------------------------------------------


def test_tutorial_host_routing_and_404() -> None:
    intent = SCENARIOS["cheeses"]
    stilton = expect(intent, "stilton.minikube", "/")
    assert stilton.outcome == ROUTED and stilton.backends[0].service == "stilton"
    for host, path in [
        ("unknown.invalid", "/cheddar"),
        ("cheeses.minikube", "/"),
        ("cheeses.minikube", "/stilton"),
    ]:
        e = expect(intent, host, path)
        assert (e.outcome, e.status, e.decided_by) == (NOT_FOUND, 404, None), (host, path)
    # Host matching ignores case and port, as Traefik's Host matcher does.
    assert expect(intent, "Stilton.Minikube:32044", "/").route_id == "cheeses:stilton.minikube/"


def test_tutorial_strip_reaches_cheddar_as_root_relative() -> None:
    intent = SCENARIOS["cheeses"]
    e = expect(intent, "cheeses.minikube", "/cheddar/x")
    assert e.route_id == "cheeses:cheeses.minikube/cheddar"
    assert e.backends[0].service == "cheddar"
    assert (e.upstream_path, e.forwarded_prefix) == ("/x", "/cheddar")
    exact = expect(intent, "cheeses.minikube", "/cheddar")
    assert (exact.upstream_path, exact.forwarded_prefix) == ("/", "/cheddar")
    assert expect(intent, "cheeses.minikube", "/cheddar/x?a=1").upstream_path == "/x?a=1"


def test_tutorial_longest_path_wins() -> None:
    e = expect(SCENARIOS["priority-longest-path"], "cheeses.minikube", "/cheddar/wensleydale/x")
    assert e.route_id == "wensleydale:cheeses.minikube/cheddar/wensleydale"
    assert e.rule == 'Host("cheeses.minikube") && PathPrefix("/cheddar/wensleydale")'
    assert e.priority == 62
    assert e.decided_by is not None and e.decided_by.priority_source == "rule-length"
    assert [c.route_id for c in e.competing] == ["cheddar:cheeses.minikube/cheddar"]
    assert e.competing[0].priority == 50
    assert (e.upstream_path, e.forwarded_prefix) == ("/x", "/cheddar/wensleydale")
    assert e.spec.route_id == e.route_id
    assert e.findings == ()


def test_tutorial_explicit_priority_reverses_it() -> None:
    e = expect(SCENARIOS["priority-explicit"], "cheeses.minikube", "/cheddar/wensleydale/x")
    assert e.route_id == "cheddar:cheeses.minikube/cheddar"
    assert (e.priority, e.decided_by.priority_source if e.decided_by else None) == (2, "explicit")
    assert e.upstream_path == "/wensleydale/x"
    assert e.spec.route_id == "wensleydale:cheeses.minikube/cheddar/wensleydale"
    (finding,) = e.findings
    assert finding.kind == FINDING_EXPLICIT_PRIORITY and finding.severity == "info"


def test_tutorial_weights_75_25_and_remainder() -> None:
    for name in ("weights", "weights-remainder"):
        e = expect(SCENARIOS[name], "cheeses.minikube", "/")
        assert e.outcome == ROUTED
        assert e.shares() == {"cheddar": 0.75, "wensleydale": 0.25}
        assert e.decided_by is not None and e.decided_by.provider == PROVIDER_CRD


def test_tutorial_duplicate_registration_is_undefined() -> None:
    e = expect(SCENARIOS["registration-duplicate"], "cheeses.minikube", "/cheddar/x")
    assert (e.outcome, e.status, e.decided_by) == (UNDEFINED, None, None)
    assert {c.route_id for c in e.tied} == {
        "cheddar:cheeses.minikube/cheddar",
        "cheddar-moved:cheeses.minikube/cheddar",
    }
    assert {c.backends[0].service for c in e.tied} == {"cheddar", "wensleydale"}
    (finding,) = e.findings
    assert finding.kind == FINDING_UNDEFINED_TIE and "router.priority" in finding.message
    assert e.spec.outcome == "undefined"


# -- Traefik versus the Ingress spec (purpose-built manifests) -------------------------------


def test_prefix_outranks_exact_on_the_same_path(tmp_path: Path) -> None:
    intent = _intent(
        tmp_path,
        _ingress("exact", "/cheddar", "Exact", "stilton")
        + _ingress("prefix", "/cheddar", "Prefix", "cheddar"),
    )
    e = expect(intent, "cheeses.minikube", "/cheddar")
    # len('Host("cheeses.minikube") && PathPrefix("/cheddar")') = 50 > Path(...) = 44.
    assert e.route_id == "prefix:cheeses.minikube/cheddar" and e.priority == 50
    assert (
        e.competing[0].route_id == "exact:cheeses.minikube/cheddar"
        and e.competing[0].priority == 44
    )
    assert e.spec.route_id == "exact:cheeses.minikube/cheddar"
    (finding,) = e.findings
    assert finding.kind == FINDING_PREFIX_OUTRANKS_EXACT
    assert "on the same path" in finding.message
    assert finding.routes == ("prefix:cheeses.minikube/cheddar", "exact:cheeses.minikube/cheddar")


@pytest.mark.parametrize(
    ("exact_path", "exact_wins"), [("/abcde", False), ("/abcdef", False), ("/abcdefg", True)]
)
def test_short_exact_path_loses_to_catch_all(
    tmp_path: Path, exact_path: str, exact_wins: bool
) -> None:
    intent = _intent(
        tmp_path,
        _ingress("exact", exact_path, "Exact", "stilton")
        + _ingress("all", "/", "Prefix", "cheddar"),
    )
    e = expect(intent, "cheeses.minikube", exact_path)
    if len(exact_path) == 7:
        # Path("/abcdef") and PathPrefix("/") have the same length (15): a tie.
        assert e.outcome == UNDEFINED
        return
    assert (e.route_id == f"exact:cheeses.minikube{exact_path}") is exact_wins
    kinds = {f.kind for f in e.findings}
    assert (FINDING_PREFIX_OUTRANKS_EXACT in kinds) is not exact_wins


def test_character_wise_prefix(tmp_path: Path) -> None:
    intent = _intent(tmp_path, _ingress("cheddar", "/cheddar", "Prefix", "cheddar"))
    e = expect(intent, "cheeses.minikube", "/cheddarX")
    assert e.route_id == "cheddar:cheeses.minikube/cheddar"
    assert (e.upstream_path, e.spec.outcome) == ("/cheddarX", "not-found")
    (finding,) = e.findings
    assert finding.kind == FINDING_CHARACTER_WISE_PREFIX
    assert "/cheddarX matches PathPrefix(/cheddar)" in finding.message
    assert "strictPrefixMatching" in finding.message
    strict = RoutingOptions(strict_prefix_matching=True)
    e = expect(intent, "cheeses.minikube", "/cheddarX", strict)
    assert (e.outcome, e.findings) == (NOT_FOUND, ())
    e = expect(intent, "cheeses.minikube", "/cheddar/x", strict)
    assert e.rule == 'Host("cheeses.minikube") && (Path("/cheddar") || PathPrefix("/cheddar/"))'
    assert e.priority == len(e.rule)


def test_trailing_slash_prefix_differs_from_spec(tmp_path: Path) -> None:
    intent = _intent(tmp_path, _ingress("slash", "/cheddar/", "Prefix", "cheddar"))
    e = expect(intent, "cheeses.minikube", "/cheddar")
    assert e.outcome == NOT_FOUND and e.spec.route_id == "slash:cheeses.minikube/cheddar/"
    assert [f.kind for f in e.findings] == [FINDING_TRAILING_SLASH_PREFIX]
    assert (
        expect(
            intent, "cheeses.minikube", "/cheddar", RoutingOptions(strict_prefix_matching=True)
        ).outcome
        == ROUTED
    )


def test_host_length_decides_over_path_length(tmp_path: Path) -> None:
    # A host rule makes the router longer than a host-less one with a longer path; the spec
    # reading (precise host first) agrees, so no finding.
    intent = _intent(
        tmp_path,
        _ingress("hosted", "/a", "Prefix", "cheddar")
        + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hostless}
spec:
  rules:
  - http:
      paths:
      - {path: /a/longer, pathType: Prefix, backend: {service: {name: stilton, port: {number: 80}}}}
""",
    )
    e = expect(intent, "cheeses.minikube", "/a/longer/x")
    assert e.route_id == "hosted:cheeses.minikube/a" and e.findings == ()
    assert expect(intent, "other.example", "/a/longer/x").route_id == "hostless:*/a/longer"
    # A wildcard host with a long path outranks the precise host by rule length (50 > 44).
    wild = _intent(
        tmp_path,
        _ingress("precise", "/a", "Prefix", "cheddar")
        + _ingress("wild", "/a/longer/path", "Prefix", "stilton", host='"*.minikube"'),
    )
    e = expect(wild, "cheeses.minikube", "/a/longer/path")
    assert e.route_id == "wild:*.minikube/a/longer/path" and e.priority == 50
    assert e.spec.route_id == "precise:cheeses.minikube/a"
    assert [f.kind for f in e.findings] == [FINDING_RULE_LENGTH_ORDER]


def test_equal_effect_tie_is_not_undefined(tmp_path: Path) -> None:
    intent = _intent(
        tmp_path,
        _ingress("one", "/c", "Prefix", "cheddar") + _ingress("two", "/c", "Prefix", "cheddar"),
    )
    e = expect(intent, "cheeses.minikube", "/c")
    assert e.outcome == ROUTED and "tied with" in e.reason and e.findings == ()


def test_provider_precedence_breaks_cross_provider_ties(tmp_path: Path) -> None:
    intent = _intent(
        tmp_path,
        _ingress("ing", "/c", "Prefix", "cheddar")
        + """
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: crd}
spec:
  routes:
  - match: Host(`cheeses.minikube`) && PathPrefix(`/c`)
    services: [{name: stilton, port: 80}]
""",
    )
    e = expect(intent, "cheeses.minikube", "/c")
    assert e.route_id == "crd:cheeses.minikube/c"
    assert e.spec.outcome == "not-applicable"
    assert [f.kind for f in e.findings] == [FINDING_PROVIDER_PRECEDENCE]
    reversed_order = RoutingOptions(provider_precedence=(PROVIDER_INGRESS, PROVIDER_CRD))
    assert (
        expect(intent, "cheeses.minikube", "/c", reversed_order).route_id
        == "ing:cheeses.minikube/c"
    )


def test_wildcard_host(tmp_path: Path) -> None:
    intent = _intent(tmp_path, _ingress("wild", "/", "Prefix", "cheddar", host='"*.minikube"'))
    assert expect(intent, "cheeses.minikube", "/").outcome == ROUTED
    assert expect(intent, "a.cheeses.minikube", "/").outcome == NOT_FOUND
    assert expect(intent, "minikube", "/").outcome == NOT_FOUND


# -- strip and path details -------------------------------------------------------------------


def test_strip_prefix_semantics() -> None:
    # First listed prefix that is a string prefix wins, not the longest.
    assert strip(["/stat", "/status"], "/status") == (None, "/us", "/stat")
    assert strip(["/status", "/stat"], "/status") == (None, "/", "/status")
    assert strip(["/cheddar"], "/cheddar") == (None, "/", "/cheddar")
    assert strip(["/"], "/x") == (None, "/x", "/")
    assert strip(["/other"], "/x") == (None, "/x", None)
    # The rest is cleaned; if cleaning changes it Traefik answers 400 (strip_prefix.go).
    assert strip(["/api"], "/api./foo")[0] == 400


def test_unclean_strip_is_bad_request(tmp_path: Path) -> None:
    intent = SCENARIOS["cheeses"]
    e = expect(intent, "cheeses.minikube", "/cheddar./x")
    assert (e.outcome, e.status) == (BAD_REQUEST, 400)


def test_request_path_is_sanitized_before_routing() -> None:
    assert clean_path("/cheddar/../wensleydale//x/") == "/wensleydale/x/"
    assert clean_path("/") == "/"
    e = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar/../wensleydale/x")
    assert e.route_id == "cheeses:cheeses.minikube/wensleydale"
    assert request_host("[::1]:80") == "::1" and request_host("A.B:1") == "a.b"
    with pytest.raises(ConfigError, match="must start with '/'"):
        expect(SCENARIOS["cheeses"], "cheeses.minikube", "cheddar")


def test_expectation_is_json_serialisable() -> None:
    e = expect(SCENARIOS["priority-longest-path"], "cheeses.minikube", "/cheddar/wensleydale/x")
    data = json.loads(json.dumps(e.to_dict()))
    assert data["decided_by"]["route_id"] == e.route_id
    assert data["competing"][0]["priority"] == 50
    assert data["spec"]["outcome"] == "routed"
    assert data["shares"] == {"wensleydale": 1.0}
