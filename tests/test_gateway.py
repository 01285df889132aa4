"""Gateway API on Traefik's Gateway provider: the CRDs the local API serves (defaults,
``/status``, ``kubectl``), the HTTPRoute dialect (Traefik's rule and additive priority, the
API server's defaults, refusals with file:line:field), and the real Traefik 3.7.15 routing
HTTPRoutes built to hit the additive-priority departures from the Gateway API spec (with header
filters, regular expressions and a wildcard hostname): every probe's routing, strip and edge
check passes (the oracle predicts the binary) and each departure is a finding with both answers;
route status read back; a 70/30 split served 75/25 through a fault proxy fails the weights check
and passes the conformance suite's tolerance. The stack tests share one Traefik with its Gateway
provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from applied_verdicts import GATEWAY_SERVICES
from faultproxy import Fault, FaultProxy
from test_kubectl import KUBECTL, Kubectl

from harness.checks.evidence import Outcome
from harness.checks.exact import applies, judge
from harness.checks.probes import generate_probes
from harness.checks.weights import WeightSettings, check_split
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_GATEWAY_PRECEDENCE, RequestCondition
from harness.kubeapi.server import KubeAPIServer
from harness.kubeapi.store import KINDS, ObjectStore, StatusError
from harness.targets.base import LocalTarget, supplied_gateway_classes
from harness.targets.local_stack import LocalStack
from harness.traefik.gateway import (
    GatewayMatch,
    router_priority,
    router_rule,
)
from harness.traefik.oracle import expect
from harness.traffic.rounds import send_in_rounds

SERVICES = GATEWAY_SERVICES
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: shop
spec:
  gatewayClassName: traefik
  listeners:
    - name: http
      port: 80
      protocol: HTTP
"""


def _route(
    name: str, rules: str, hostnames: str = '["gw.test"]', parent: str = "{name: shop}"
) -> str:
    return f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
spec:
  parentRefs:
    - {parent}
  hostnames: {hostnames}
  rules:
{rules}"""


#: Header filters, mapped onto the headers middleware model (a response add included).
HEADER_FILTERS = _route(
    "with-headers",
    """\
    - matches:
        - path: {type: Exact, value: /hdr}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set:
              - {name: X-Env, value: gateway}
            remove: [X-Drop]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set:
              - {name: X-Served-By, value: traefik-gateway}
            add:
              - {name: X-Trace, value: gateway-add}
      backendRefs:
        - {name: wensleydale, port: 80}
""",
)

#: RegularExpression matches: PathRegexp, HeaderRegexp, QueryRegexp, none of them anchored.
REGEX = _route(
    "by-pattern",
    """\
    - matches:
        - path: {type: RegularExpression, value: "/re/[0-9]+"}
      backendRefs:
        - {name: wensleydale, port: 80}
    - matches:
        - headers:
            - {type: RegularExpression, name: X-Build, value: "^[0-9]+$"}
          queryParams:
            - {type: RegularExpression, name: v, value: "beta"}
      backendRefs:
        - {name: stilton, port: 80}
""",
    hostnames='["re.test"]',
)

#: A wildcard hostname: Traefik's HostRegexp over one or more labels.
WILDCARD = _route(
    "wildcard",
    "    - backendRefs:\n        - {name: stilton, port: 80}\n",
    hostnames='["*.wild.test"]',
)

#: PathPrefix /api + GET outranks PathPrefix /api/v1/users (11400 + 8 > 11300 + 8); eleven
#: query parameters outrank one header (110 > 100); the spec orders both the other way.
DEPARTURES = (
    GATEWAY
    + _route(
        "api-get",
        """\
    - matches:
        - path: {type: PathPrefix, value: /api}
          method: GET
      backendRefs:
        - {name: cheddar, port: 80}
""",
    )
    + _route(
        "users",
        """\
    - matches:
        - path: {type: PathPrefix, value: /api/v1/users}
      backendRefs:
        - {name: stilton, port: 80}
""",
    )
    + _route(
        "by-header",
        """\
    - matches:
        - path: {type: PathPrefix, value: /search}
          headers:
            - {name: X-Beta, value: "on"}
      backendRefs:
        - {name: wensleydale, port: 80}
""",
    )
    + _route(
        "by-query",
        """\
    - matches:
        - path: {type: PathPrefix, value: /search}
          queryParams:
"""
        + "".join(f'            - {{name: {c}, value: "1"}}\n' for c in "abcdefghijk")
        + """\
      backendRefs:
        - {name: cheddar, port: 80}
""",
    )
)


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return load_intent([path], known_services=SERVICES)


# -- Traefik's rule and priority ----------------------------------------------------------------


def test_the_priority_adds_scores_as_traefik_does() -> None:
    api_get = GatewayMatch("/api", "prefix", (RequestCondition("method", "", "GET"),))
    rule, score = router_rule(["gw.test"], api_get)
    assert rule == 'Host("gw.test") && (Path("/api") || PathPrefix("/api/")) && Method("GET")'
    assert score == 10_000 + 4 * 100 + 1_000 + len("gw.test")
    _, users = router_rule(["gw.test"], GatewayMatch("/api/v1/users", "prefix"))
    assert users == 10_000 + 13 * 100 + 7 < score
    # The catch-all scores 1, Exact 100000; headers 100 and query parameters 10 each.
    assert router_rule([], GatewayMatch("/", "prefix")) == ('PathPrefix("/")', 1)
    assert router_rule([], GatewayMatch("/x", "exact")) == ('Path("/x")', 100_000)
    header = RequestCondition("header", "X-A", "1")
    query = RequestCondition("query", "q", "x")
    assert router_rule(["a.test", "bb.test"], GatewayMatch("/", "prefix", (header, query))) == (
        '(Host("a.test") || Host("bb.test")) && PathPrefix("/") && Header("X-A","1") && '
        'Query("q","x")',
        1 + 100 + 10 + len("bb.test"),
    )
    # Earlier rules of one HTTPRoute get the larger bonus.
    assert router_priority(9, rules=3, index=0) == 12 > router_priority(9, rules=3, index=2)


# -- the dialect ----------------------------------------------------------------------------------


def test_a_rule_without_matches_is_pathprefix_slash_with_its_rule_bonus(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        GATEWAY
        + _route(
            "catch-all",
            """\
    - backendRefs:
        - {name: cheddar, port: 80, weight: 7}
        - {name: stilton, port: 80, weight: 3}
        - {name: wensleydale, port: 80, weight: 0}
""",
        ),
    )
    (route,) = intent.routes
    assert (route.host, route.path, route.match) == ("gw.test", "/", "prefix")
    assert route.rule == 'Host("gw.test") && PathPrefix("/")'
    assert route.effective_priority == 1 + 7 + 1
    assert route.entry_points == ("web",) and route.provider == "kubernetesgateway"
    assert route.exact_shares()["wensleydale"] == 0 and route.shares()["cheddar"] == 0.7
    kinds = {f.kind for f in intent.findings}
    assert {"gateway-class", "gateway-listener-port"} <= kinds


def test_listener_hostname_narrows_the_route_and_sectionname_selects(tmp_path: Path) -> None:
    gateway = GATEWAY.replace(
        "      protocol: HTTP\n",
        "      protocol: HTTP\n      hostname: b.test\n"
        "    - name: other\n      port: 80\n      protocol: HTTP\n      hostname: c.test\n",
    )
    text = gateway + _route(
        "r",
        "    - backendRefs:\n        - {name: cheddar, port: 80}\n",
        hostnames='["a.test", "b.test"]',
    ).replace("    - name: shop\n", "    - name: shop\n      sectionName: http\n")
    intent = _load(tmp_path, text)
    assert [r.host for r in intent.routes] == ["b.test"]
    assert intent.routes[0].rule == 'Host("b.test") && PathPrefix("/")'


def test_a_gateway_of_another_controller_is_not_served(tmp_path: Path) -> None:
    other = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n"
        "  name: traefik\nspec:\n  controllerName: example.com/other\n---\n"
    )
    rules = "    - backendRefs:\n        - {name: cheddar, port: 80}\n"
    intent = _load(tmp_path, other + GATEWAY + _route("r", rules))
    assert intent.routes == ()
    (finding,) = [f for f in intent.findings if "example.com/other" in f.message]
    assert "Traefik does not serve it" in finding.message and finding.source is not None


@pytest.mark.parametrize(
    ("rules", "field", "says"),
    [
        (
            "    - matches:\n        - path: {type: RegularExpression, value: '/(?=x)'}\n"
            "      backendRefs:\n        - {name: cheddar, port: 80}\n",
            "spec.rules[0].matches[0].path.value",
            "path pattern",
        ),
        (
            "    - matches:\n        - headers: [{type: RegularExpression, name: X, "
            "value: '[[:alpha:]]'}]\n"
            "      backendRefs:\n        - {name: cheddar, port: 80}\n",
            "spec.rules[0].matches[0].headers[0].value",
            "header pattern",
        ),
        (
            "    - filters:\n        - type: RequestMirror\n"
            "      backendRefs:\n        - {name: cheddar, port: 80}\n",
            "spec.rules[0].filters",
            "filters",
        ),
        (
            "    - backendRefs:\n        - {name: cheddar}\n",
            "spec.rules[0].backendRefs[0]",
            "port",
        ),
        (
            "    - backendRefs:\n        - {name: cheddar, port: 80, weight: 0}\n",
            "spec.rules[0].backendRefs",
            "weight 0",
        ),
    ],
    ids=["lookahead-path", "posix-class-header", "mirror-filter", "no-port", "all-weights-zero"],
)
def test_what_is_refused_names_file_line_field(
    tmp_path: Path, rules: str, field: str, says: str
) -> None:
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, GATEWAY + _route("r", rules))
    message = str(err.value)
    assert "gateway.yaml:" in message and f"field {field}" in message and says in message


# -- the local API --------------------------------------------------------------------------------


def _kind(plural: str) -> Any:
    return next(k for k in KINDS if k.plural == plural and k.group == "gateway.networking.k8s.io")


def test_the_api_applies_the_crd_defaults_and_guards_status_writes() -> None:
    store = ObjectStore()
    httproutes = _kind("httproutes")
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "shop"}], "rules": [{"backendRefs": [{"name": "a"}]}]},
    }
    created = store.create(httproutes, "default", route)
    spec = created["spec"]
    assert spec["parentRefs"] == [
        {"name": "shop", "group": "gateway.networking.k8s.io", "kind": "Gateway"}
    ]
    assert spec["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert spec["rules"][0]["backendRefs"] == [
        {"name": "a", "group": "", "kind": "Service", "weight": 1}
    ]
    gateways = _kind("gateways")
    gateway = store.create(
        gateways,
        "default",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {
                "gatewayClassName": "traefik",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            },
        },
    )
    assert gateway["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert {c["type"]: c["status"] for c in gateway["status"]["conditions"]} == {
        "Accepted": "Unknown",
        "Programmed": "Unknown",
    }
    # Traefik writes status with PUT .../status: the spec stays, a stale write is a conflict.
    status = {**created, "status": {"parents": []}, "spec": {"rules": []}}
    written = store.replace(httproutes, "default", "r", status, subresource="status")
    assert written["status"] == {"parents": []} and written["spec"] == spec
    with pytest.raises(StatusError) as err:
        store.replace(httproutes, "default", "r", status, subresource="status")
    assert err.value.code == 409
    with pytest.raises(StatusError) as invalid:
        store.create(gateways, "default", {**gateway, "metadata": {"name": "b"}, "spec": {}})
    assert invalid.value.code == 422 and "spec.gatewayClassName" in invalid.value.message


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_applies_and_lists_the_gateway_kinds(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(DEPARTURES, encoding="utf-8")
    with KubeAPIServer() as server:
        kubectl = Kubectl(server, tmp_path / "home")
        kubectl.ok("apply", "-f", str(tmp_path / "gateway.yaml"))
        names = kubectl.ok("get", "httproutes", "-o", "name").split()
        assert sorted(names) == [
            f"httproute.gateway.networking.k8s.io/{n}"
            for n in ("api-get", "by-header", "by-query", "users")
        ]
        assert "shop" in kubectl.ok("get", "gateways")
        resources = kubectl.ok("api-resources", "--api-group=gateway.networking.k8s.io")
        for plural in ("gatewayclasses", "httproutes", "grpcroutes", "tlsroutes",
                       "backendtlspolicies", "referencegrants"):  # fmt: skip
            assert plural in resources
        defaulted = kubectl.ok(
            "get", "httproute", "users", "-o", "jsonpath={.spec.rules[0].backendRefs[0].weight}"
        )
        assert defaulted == "1"


# -- the real Traefik -----------------------------------------------------------------------------


@pytest.mark.stack
def test_traefik_routes_the_departures_as_predicted_and_each_is_a_finding(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    intent = _load(tmp_path, DEPARTURES + HEADER_FILTERS + REGEX + WILDCARD)
    probes = generate_probes(intent)
    target = LocalTarget(gateway_stack)
    # Applying waits until Traefik's /api/http/routers lists every (rule, priority) the
    # dialect computed: the priority model, confirmed on the binary.
    target.apply_intent(intent)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
        statuses = gateway_stack.route_conditions(intent)
        # RegularExpression paths are not anchored, in Traefik as in the oracle.
        unanchored = httpx.get(
            f"{target.proxy_url}/x/re/12/y", headers={"Host": "re.test"}, trust_env=False
        )
    finally:
        target.remove_intent(intent)
    verdicts = {
        (aspect, p.id): judge(aspect, run.records[p.id], intent, scenario="departures").passed
        for p in probes
        for aspect in ("routing", "strip", "edge")
        if applies(aspect, p)
    }
    assert len(verdicts) > 40 and all(verdicts.values()), [k for k, v in verdicts.items() if not v]
    assert "Name: wensleydale" in unanchored.text
    # The wildcard's probes: a deeper subdomain is served, the bare domain is not.
    wild = {p.id: p.expectation.route_id for p in probes if "wild.test" in p.id}
    assert any(r == "wildcard:*.wild.test/" for r in wild.values())
    assert any(r is None for r in wild.values()), wild
    assert expect(intent, "re.test", "/x/re/12/y").route_id == "by-pattern:re.test/re/[0-9]+"
    # Requests generated from the pattern reached it (regex conditions get none yet).
    assert any(
        p.id.startswith("re.test/re/") and p.expectation.route_id == "by-pattern:re.test/re/[0-9]+"
        for p in probes
    )
    # The header filters were judged on what the backend saw and the client got.
    hdr = next(p for p in probes if p.id == "gw.test/hdr")
    assert "X-Drop" in dict(hdr.headers)
    top = hdr.expectation.decided_by
    assert top is not None and dict(top.response_headers)["X-Served-By"] == "traefik-gateway"
    # A response add: the echo backend sends no X-Trace, so the client sees the added value.
    assert dict(top.response_headers)["X-Trace"] == "gateway-add"
    assert dict(top.request_headers)["X-Env"] == ("gateway",)
    assert "X-Drop" in dict(top.request_headers)
    names = ("api-get", "by-header", "by-pattern", "by-query", "users", "wildcard", "with-headers")
    assert statuses == {
        (name, kind): ("True", kind) for name in names for kind in ("Accepted", "ResolvedRefs")
    }
    # Each departure: Traefik's answer (observed above) and the spec's, in one finding.
    users = expect(intent, "gw.test", "/api/v1/users")
    assert users.decided_by is not None and users.decided_by.route_id == "api-get:gw.test/api"
    (users_finding,) = [f for f in users.findings if f.kind == FINDING_GATEWAY_PRECEDENCE]
    assert "picks api-get:gw.test/api" in users_finding.message
    assert "spec's precedence" in users_finding.message
    assert users_finding.message.endswith(
        "picks users:gw.test/api/v1/users (priority 11308, to stilton)"
    )
    query = "?" + "&".join(f"{c}=1" for c in "abcdefghijk")
    both = expect(intent, "gw.test", "/search" + query, headers=[("X-Beta", "on")])
    assert both.decided_by is not None and both.decided_by.route_id == "by-query:gw.test/search"
    (search_finding,) = [f for f in both.findings if f.kind == FINDING_GATEWAY_PRECEDENCE]
    assert "by-header:gw.test/search" in search_finding.message
    # Where the two orders agree there is no finding.
    plain = expect(intent, "gw.test", "/api/v2")
    assert not [f for f in plain.findings if f.kind == FINDING_GATEWAY_PRECEDENCE]


def test_an_equal_priority_tie_is_undefined_where_the_spec_decides_by_name(
    tmp_path: Path,
) -> None:
    rules = "    - backendRefs:\n        - {{name: {svc}, port: 80}}\n"
    intent = _load(
        tmp_path,
        GATEWAY
        + _route("b-route", rules.format(svc="stilton"))
        + _route("a-route", rules.format(svc="cheddar")),
    )
    found = expect(intent, "gw.test", "/x")
    assert found.outcome == "undefined"
    (finding,) = [f for f in found.findings if f.kind == FINDING_GATEWAY_PRECEDENCE]
    assert "does not implement the spec's tie-breaks" in finding.message
    assert finding.message.endswith("picks a-route:gw.test/ (priority 9, to cheddar)")


# -- weights: the harness's planned test against the conformance suite's tolerance -------------

GATEWAY_MANIFESTS = Path(__file__).resolve().parent.parent / "harness" / "suites" / "manifests"
CONFORMANCE_REQUESTS = 500
CONFORMANCE_TOLERANCE = 0.05
CONFORMANCE_ATTEMPTS = 10


def conformance_weight_check(
    url: str, host: str, expected: dict[str, float]
) -> tuple[bool, int, dict[str, float]]:
    """The Gateway API conformance suite's weight check (HTTPRouteWeight): 500 requests, every
    backend's share within ±5 points of its weight, up to 10 attempts; (passed, attempts used,
    the last attempt's shares)."""
    shares: dict[str, float] = {}
    with httpx.Client(base_url=url, headers={"Host": host}, trust_env=False) as client:
        for attempt in range(1, CONFORMANCE_ATTEMPTS + 1):
            counts = dict.fromkeys(expected, 0)
            for _ in range(CONFORMANCE_REQUESTS):
                body = client.get("/", timeout=5.0).text
                name = next(
                    (
                        ln.split(":", 1)[1].strip()
                        for ln in body.splitlines()
                        if ln.startswith("Name:")
                    ),
                    "",
                )
                counts[name] = counts.get(name, 0) + 1
            shares = {k: v / CONFORMANCE_REQUESTS for k, v in counts.items()}
            if all(
                abs(shares.get(k, 0.0) - want) <= CONFORMANCE_TOLERANCE
                for k, want in expected.items()
            ):
                return True, attempt, shares
    return False, CONFORMANCE_ATTEMPTS, shares


@pytest.mark.stack
def test_a_70_30_split_served_75_25_fails_the_weights_check_and_passes_conformance(
    gateway_stack: LocalStack,
) -> None:
    intent = load_intent(
        [
            GATEWAY_MANIFESTS / "services.yaml",
            GATEWAY_MANIFESTS / "gateway" / "gateway-weights.yaml",
        ]
    )
    (route,) = intent.weighted_routes
    assert route.shares() == {"cheddar": 0.7, "stilton": 0.3, "wensleydale": 0.0}
    target = LocalTarget(gateway_stack)
    target.apply_intent(intent)
    settings = WeightSettings(min_deviation=0.03)
    try:
        with FaultProxy(target.proxy_url) as proxy:
            # Correct: both pass.
            correct = check_split(proxy.url, intent, route, settings, scenario="w", n_checks=1)
            assert correct.outcome == Outcome.PASSED, correct.message
            # 1 in 6 of stilton's answers claim cheddar: 70/30 served as 75/25.
            fault = Fault(
                "relabel", host="weights.gateway.test", from_name="stilton", name="cheddar",
                share=1 / 6, seed=11,
            )  # fmt: skip
            with proxy.faults(fault):
                skewed = check_split(proxy.url, intent, route, settings, scenario="w", n_checks=1)
                passed, attempts, shares = conformance_weight_check(
                    proxy.url, "weights.gateway.test", route.shares()
                )
                (armed,) = proxy.stats()
    finally:
        target.remove_intent(intent)
    assert armed["applied"] > 0
    assert skewed.outcome == Outcome.FAILED, skewed.message
    cheddar = skewed.evidence["verdict"]["counts"][0] / skewed.evidence["verdict"]["n"]
    assert abs(cheddar - 0.75) < 0.02, skewed.evidence["verdict"]
    # The conformance suite's tolerance lets the same fault through.
    assert passed, (attempts, shares)
    assert abs(shares["cheddar"] - 0.75) <= 0.05


@pytest.mark.stack
def test_a_route_traefik_rejects_is_reported_with_its_reason(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    path = tmp_path / "ghost.yaml"
    path.write_text(
        GATEWAY + _route("ghost", "    - backendRefs:\n        - {name: ghost, port: 80}\n"),
        encoding="utf-8",
    )
    # A Service nobody publishes: the dialect vouches for it, the API has none.
    intent = load_intent([path], known_services=["ghost"])
    objects = gateway_stack.local_listeners(
        [o.body for o in intent.objects] + supplied_gateway_classes(intent)
    )
    applier = gateway_stack.running_applier()
    applier.apply_all(objects)
    try:
        rejected = gateway_stack.rejected_routes(intent)
        conditions = gateway_stack.route_conditions(intent)
    finally:
        applier.delete_all(objects)
    # Accepted (it attaches to the listener), its backend not resolved: Traefik's own words.
    assert conditions[("ghost", "Accepted")] == ("True", "Accepted")
    assert len(rejected) == 1 and rejected[0].startswith("HTTPRoute 'ghost': ResolvedRefs False")
    assert "BackendNotFound" in rejected[0] and "ghost" in rejected[0].split("reason", 1)[1]
