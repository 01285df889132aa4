"""The oracle: Traefik 3.7's decisions for the tutorial's cases, and where they differ from the
Kubernetes Ingress spec."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ConfigError
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import (
    FINDING_CHARACTER_WISE_PREFIX,
    FINDING_EDGE_DEVIATION,
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
    ANSWERED,
    BAD_REQUEST,
    NOT_FOUND,
    REDIRECT,
    ROUTED,
    UNDEFINED,
    UNPREDICTABLE,
    RoutingOptions,
    expect,
)
from harness.traefik.requests import (
    CONFIRMED_ON,
    EncodedCharacters,
    EntryPointOptions,
    at_entry_point,
    through_router,
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


def _with_middlewares(tmp_path: Path, *specs: dict[str, Any]) -> Intent:
    """An IngressRoute on cheeses.minikube/api through Middlewares m0, m1, ... (``specs``)."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": f"m{i}"},
            "spec": spec,
        }
        for i, spec in enumerate(specs)
    ]
    docs.append(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "api"},
            "spec": {
                "routes": [
                    {
                        "match": "Host(`cheeses.minikube`) && PathPrefix(`/api`)",
                        "middlewares": [{"name": f"m{i}"} for i in range(len(specs))],
                        "services": [{"name": "cheddar", "port": 80}],
                    }
                ]
            },
        }
    )
    path = tmp_path / "mw.yaml"
    path.write_text(yaml.safe_dump_all(docs), "utf-8")
    return load_intent([SERVICES, path])


def test_strip_prefix_semantics(tmp_path: Path) -> None:
    def strip(prefixes: list[str], path: str) -> tuple[int | None, str | None, str | None]:
        intent = _with_middlewares(tmp_path, {"stripPrefix": {"prefixes": prefixes}})
        e = expect(intent, "cheeses.minikube", path)
        return e.status, e.upstream_path, e.forwarded_prefix

    # First listed prefix that is a string prefix wins, not the longest.
    assert strip(["/api", "/apis"], "/apis") == (None, "/s", "/api")
    assert strip(["/apis", "/api"], "/apis") == (None, "/", "/apis")
    assert strip(["/"], "/api/x") == (None, "/api/x", "/")
    assert strip(["/other"], "/api/x") == (None, "/api/x", None)
    # The rest is cleaned; if cleaning changes it Traefik answers 400 (strip_prefix.go).
    assert strip(["/api"], "/api./foo")[0] == 400


@pytest.mark.parametrize(
    ("prefixes", "target", "answer"),
    [
        # First listed prefix that is a string prefix wins, not the longest.
        (["/stat", "/status"], "/status", (None, "/us", "/stat")),
        (["/status", "/stat"], "/status", (None, "/", "/status")),
        (["/cheddar"], "/cheddar", (None, "/", "/cheddar")),
        (["/"], "/x", (None, "/x", "/")),
        (["/other"], "/x", (None, "/x", None)),
        # An encoded slash right after the prefix: Traefik's stripped RawPath no longer decodes
        # to the stripped Path, so the backend gets the path re-escaped (confirmed on 3.7.15).
        (["/cheddar"], "/cheddar%2Fx", (None, "/x", "/cheddar")),
        # The rest is cleaned; if cleaning changes it Traefik answers 400 (strip_prefix.go).
        (["/api"], "/api./foo", (400, None, "/api")),
    ],
)
def test_strip_prefix_semantics_of_the_request_model(
    prefixes: list[str], target: str, answer: tuple[int | None, str | None, str | None]
) -> None:
    result = through_router(at_entry_point(target, "e.test"), strip_prefixes=prefixes)
    assert (result.status, result.upstream_target, result.forwarded_prefix) == answer


def test_each_middleware_changes_what_the_backend_and_the_client_observe(tmp_path: Path) -> None:
    def through(*specs: dict[str, Any], path: str = "/api/x") -> Any:
        return expect(_with_middlewares(tmp_path, *specs), "cheeses.minikube", path)

    e = through({"addPrefix": {"prefix": "/v1"}})
    assert (e.outcome, e.upstream_path, e.forwarded_prefix) == (ROUTED, "/v1/api/x", None)
    assert e.decided_by is not None and e.decided_by.modeled_on == CONFIRMED_ON
    assert f"Traefik {CONFIRMED_ON}" in e.reason
    e = through({"stripPrefixRegex": {"regex": ["/a[p]i"]}})
    assert (e.upstream_path, e.forwarded_prefix) == ("/x", "/api")
    e = through({"replacePath": {"path": "/new"}})
    assert e.upstream_path == "/new"
    assert e.decided_by is not None
    assert dict(e.decided_by.request_headers) == {"X-Replaced-Path": ("/api/x",)}
    e = through({"replacePathRegex": {"regex": "^/api/(.*)", "replacement": "/v2/$1"}})
    assert e.upstream_path == "/v2/x"
    # forceSlash (default false on 3.7): stripped to nothing, then addPrefix.
    strip_then_add = ({"stripPrefix": {"prefixes": ["/api"]}}, {"addPrefix": {"prefix": "/v1"}})
    assert through(*strip_then_add, path="/api").upstream_path == "/v1"
    forced = ({"stripPrefix": {"prefixes": ["/api"], "forceSlash": True}}, strip_then_add[1])
    assert through(*forced, path="/api").upstream_path == "/v1/"
    # Redirects answer by themselves: status and Location, no backend.
    e = through({"redirectScheme": {"scheme": "https", "permanent": True}})
    assert (e.outcome, e.status, e.location) == (REDIRECT, 301, "https://cheeses.minikube/api/x")
    e = through({"redirectRegex": {"regex": "^http://([^/]+)/api/(.*)", "replacement": "/r/$2"}})
    assert (e.status, e.location) == (302, "/r/x")
    # Headers: what the backend sees (set, removed, Host) and what the client gets back.
    e = through(
        {
            "headers": {
                "customRequestHeaders": {"X-Tenant": "blue", "X-Drop": "", "Host": "inner.test"},
                "customResponseHeaders": {"X-Served-By": "edge", "Server": ""},
            }
        }
    )
    c = e.decided_by
    assert c is not None and e.outcome == ROUTED
    assert dict(c.request_headers) == {"X-Drop": (), "X-Tenant": ("blue",)}
    assert c.host_header == "inner.test"
    assert dict(c.response_headers) == {"X-Served-By": "edge", "Server": None}
    # An invalid escape after replacePath is Traefik's own 500.
    bad = through({"replacePath": {"path": "/%zz"}})
    assert (bad.outcome, bad.status) == (ANSWERED, 500)
    # Without middlewares the Host is passed as sent and nothing else is touched.
    plain_intent = _intent(tmp_path, _ingress("plain", "/p", "Prefix", "cheddar"))
    plain = expect(plain_intent, "cheeses.minikube", "/p")
    assert plain.decided_by is not None
    assert (plain.decided_by.host_header, plain.decided_by.request_headers) == (
        "cheeses.minikube",
        (),
    )
    assert plain.decided_by.modeled_on is None


def test_a_chain_applies_its_middlewares_in_order(tmp_path: Path) -> None:
    intent = _with_middlewares(
        tmp_path,
        {"chain": {"middlewares": [{"name": "m1"}, {"name": "m2"}]}},
        {"stripPrefix": {"prefixes": ["/api"]}},
        {"addPrefix": {"prefix": "/v1"}},
    )
    route = intent.routes[0]
    # m1 and m2 twice: through the chain, then referenced by the route itself.
    assert [m.name for m in route.middlewares] == ["m1", "m2", "m1", "m2"]
    assert route.middlewares[0].chain == ("default/m0",)
    assert "chain default/m0" in route.middlewares[0].label
    e = expect(intent, "cheeses.minikube", "/api/api/x")
    # m1 strips /api, m2 adds /v1 (/v1/api/x); m1 again finds no /api; m2 adds /v1 again.
    assert e.upstream_path == "/v1/v1/api/x"


def test_unpredictable_middleware_answers_are_recorded_not_judged(tmp_path: Path) -> None:
    intent = _with_middlewares(
        tmp_path, {"redirectRegex": {"regex": "^(.*)$", "replacement": "mailto:x"}}
    )
    e = expect(intent, "cheeses.minikube", "/api/x")
    assert e.outcome == UNPREDICTABLE and e.decided_by is not None
    assert "outside the modeled URL forms" in str(e.decided_by.unpredictable)
    (finding,) = e.findings
    assert "not judged" in finding.message and CONFIRMED_ON in finding.message


def test_ties_compare_middleware_effects(tmp_path: Path) -> None:
    one = _with_middlewares(tmp_path, {"headers": {"customRequestHeaders": {"X-A": "1"}}})
    other = _with_middlewares(tmp_path, {"headers": {"customRequestHeaders": {"X-A": "2"}}})
    a, b = (expect(i, "cheeses.minikube", "/api").decided_by for i in (one, other))
    assert a is not None and b is not None
    assert a.effect() != b.effect()
    assert a.effect() == expect(one, "cheeses.minikube", "/api").decided_by.effect()  # type: ignore[union-attr]


def test_unclean_strip_is_bad_request(tmp_path: Path) -> None:
    intent = SCENARIOS["cheeses"]
    e = expect(intent, "cheeses.minikube", "/cheddar./x")
    assert (e.outcome, e.status) == (BAD_REQUEST, 400)


def test_request_path_is_sanitized_before_routing() -> None:
    e = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar/../wensleydale//x/")
    assert e.route_id == "cheeses:cheeses.minikube/wensleydale"
    assert e.request is not None and e.request.routing_path == "/wensleydale/x/"
    assert e.upstream_path == "/x/"  # stripped from the cleaned path
    assert {f.kind for f in e.findings} >= {FINDING_EDGE_DEVIATION}
    with pytest.raises(ConfigError, match="must start with '/'"):
        expect(SCENARIOS["cheeses"], "cheeses.minikube", "cheddar")


@pytest.mark.parametrize(
    ("host", "target", "route"),
    [
        ("CHEESES.minikube", "/cheddar", "cheeses:cheeses.minikube/cheddar"),
        ("cheeses.minikube:8080", "/cheddar", "cheeses:cheeses.minikube/cheddar"),
        ("cheeses.minikube.", "/cheddar", "cheeses:cheeses.minikube/cheddar"),
        ("cheeses.minikube..", "/cheddar", None),
        ("cheeses.minikube", "/%63heddar/x", "cheeses:cheeses.minikube/cheddar"),  # %63 is c
        ("cheeses.minikube", "/CHEDDAR", None),
    ],
)
def test_routes_match_on_the_canonical_host_and_the_routing_path(
    host: str, target: str, route: str | None
) -> None:
    e = expect(SCENARIOS["cheeses"], host, target)
    assert e.route_id == route
    assert e.outcome == (ROUTED if route else NOT_FOUND)


def test_a_request_the_entry_point_rejects_expects_400_from_no_route() -> None:
    e = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar%zz")
    assert (e.outcome, e.status, e.decided_by) == (BAD_REQUEST, 400, None)
    assert "percent-encoding" in e.reason and e.spec.outcome == "not-applicable"
    e = expect(SCENARIOS["cheeses"], "bad/host", "/cheddar")
    assert (e.outcome, e.status) == (BAD_REQUEST, 400)


def test_an_unpredictable_request_is_recorded_not_judged() -> None:
    e = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar\x01")
    assert (e.outcome, e.status, e.decided_by) == (UNPREDICTABLE, None, None)
    assert "recorded, not judged" in e.reason


def test_encoded_slash_is_routed_as_written_and_forwarded_encoded() -> None:
    e = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar%2fx")
    assert e.route_id == "cheeses:cheeses.minikube/cheddar"
    # Stripped from the decoded path; the stripped RawPath no longer matches it, so re-escaped.
    assert e.upstream_path == "/x"
    assert any("encoded slash" in f.message for f in e.findings)


def test_a_denied_encoding_answers_400_only_once_routed() -> None:
    options = RoutingOptions(
        entry_point=EntryPointOptions(
            encoded_characters=EncodedCharacters({"allowEncodedSlash": False})
        )
    )
    routed = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar%2Fx", options)
    assert (routed.outcome, routed.status, routed.route_id) == (BAD_REQUEST, 400, routed.route_id)
    assert routed.route_id == "cheeses:cheeses.minikube/cheddar"
    unrouted = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/none%2Fx", options)
    assert unrouted.outcome == NOT_FOUND


def test_expectation_records_the_traefik_version() -> None:
    options = RoutingOptions(traefik_version="3.7.15")
    data = expect(SCENARIOS["cheeses"], "cheeses.minikube", "/cheddar", options).to_dict()
    assert data["traefik_version"] == "3.7.15" and data["model_confirmed_on"] == CONFIRMED_ON
    # Each release is said to be judged by the models confirmed on it, or on none.
    for version, confirmed_on in (("3.6.0", "3.6.0"), ("3.6.5", None), (None, CONFIRMED_ON)):
        data = expect(
            SCENARIOS["cheeses"],
            "cheeses.minikube",
            "/cheddar",
            RoutingOptions(traefik_version=version),
        ).to_dict()
        assert data["model_confirmed_on"] == confirmed_on, version
    assert data["request"]["routing_path"] == "/cheddar"
    assert RoutingOptions(traefik_version="3.5.0").edge_model_applies is False
    assert RoutingOptions(traefik_version="3.6.0").edge_model_applies is True
    assert RoutingOptions().edge_model_applies is True


def test_expectation_is_json_serialisable() -> None:
    e = expect(SCENARIOS["priority-longest-path"], "cheeses.minikube", "/cheddar/wensleydale/x")
    data = json.loads(json.dumps(e.to_dict()))
    assert data["decided_by"]["route_id"] == e.route_id
    assert data["competing"][0]["priority"] == 50
    assert data["spec"]["outcome"] == "routed"
    assert data["shares"] == {"wensleydale": 1.0}
