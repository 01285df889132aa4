"""HTTPRoute URLRewrite and RequestRedirect on Traefik's Gateway provider: the model of its own
middlewares (harness.traefik.middlewares ``URLRewrite``/``RequestRedirect``) at the boundary
cases, the dialect's refusals with file:line:field, and the real Traefik 3.7.15 serving the
conformance-style rewrite-path and redirect scenarios as predicted (every routing and strip
check passes), while a filter changed behind the oracle's back fails only the check that sees
it (strip for a rewrite or a header modifier's add, routing for a redirect); add appends to the
value the client sent. The stack tests share one Traefik."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from applied_verdicts import applied_judgements

from harness.checks.exact import Aspect, ExactVerdict, applies, judge
from harness.checks.probes import REMOVED_HEADER_VALUE, generate_probes
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_GATEWAY_UNSUPPORTED_FILTER, Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack
from harness.traefik.middlewares import (
    Forwarded,
    Redirect,
    Request,
    RequestRedirect,
    Unpredictable,
    URLRewrite,
    apply_middlewares,
)
from harness.traefik.oracle import expect
from harness.traffic.rounds import send_in_rounds

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
SERVICES = MANIFESTS / "services.yaml"
REWRITE = MANIFESTS / "gateway" / "gateway-rewrite-path.yaml"
REDIRECT = MANIFESTS / "gateway" / "gateway-redirect.yaml"


def _target(mw: URLRewrite | RequestRedirect, target: str, host: str = "h.test") -> str:
    outcome = apply_middlewares([mw], Request(host=host, target=target))
    if isinstance(outcome, Forwarded):
        return outcome.target
    assert isinstance(outcome, Redirect), outcome
    return f"{outcome.status} {outcome.location}"


# -- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replacement", "target", "upstream"),
    [
        ("/one", "/prefix", "/one"),
        ("/one", "/prefix/", "/one/"),
        ("/one", "/prefix/x", "/one/x"),
        ("/one", "/prefix/x/?q=1;r", "/one/x/?q=1&r"),
        ("/", "/prefix", "/"),
        ("/", "/prefix/x", "/x"),
        # path.Join drops the replacement's trailing slash; the request's comes back.
        ("/new/", "/prefix", "/new"),
        ("/new/", "/prefix/", "/new/"),
        ("/new/", "/prefix/x", "/new/x"),
        # TrimPrefix is a string prefix: /prefixx (never routed here) would keep its x.
        ("/new", "/prefixx", "/new/x"),
    ],
)
def test_replace_prefix_match_joins_the_rest_as_traefik_does(
    replacement: str, target: str, upstream: str
) -> None:
    mw = URLRewrite(path=replacement, path_prefix="/prefix")
    assert _target(mw, target) == upstream


def test_replace_full_path_keeps_the_query_and_hostname_sets_the_host() -> None:
    mw = URLRewrite(hostname="up.test", path="/full")
    outcome = apply_middlewares([mw], Request(host="h.test", target="/a/b?x=1"))
    assert isinstance(outcome, Forwarded)
    assert (outcome.target, outcome.host) == ("/full?x=1", "up.test")
    # An encoded path through a path modifier is not predicted (3.7.15 keeps %2F).
    encoded = apply_middlewares([mw], Request(host="h.test", target="/a%2Fb"))
    assert isinstance(encoded, Unpredictable)


@pytest.mark.parametrize(
    ("mw", "host", "location"),
    [
        (RequestRedirect(), "h.test", "302 http://h.test/p/x?q=1"),
        (RequestRedirect(), "h.test:8080", "302 http://h.test:8080/p/x?q=1"),
        (RequestRedirect(scheme="https", port=""), "h.test:8080", "302 https://h.test/p/x?q=1"),
        (RequestRedirect(port="8443"), "h.test:8080", "302 http://h.test:8443/p/x?q=1"),
        (RequestRedirect(scheme="https", port="443"), "h.test", "302 https://h.test:443/p/x?q=1"),
        (
            RequestRedirect(hostname="o.test", status=301),
            "h.test:81",
            "301 http://o.test:81/p/x?q=1",
        ),
        (RequestRedirect(path="/f"), "h.test", "302 http://h.test/f?q=1"),
        (RequestRedirect(path="/r", path_prefix="/p"), "h.test", "302 http://h.test/r/x?q=1"),
    ],
)
def test_the_redirect_location_takes_each_field(
    mw: RequestRedirect, host: str, location: str
) -> None:
    assert _target(mw, "/p/x?q=1", host) == location


# -- the dialect ----------------------------------------------------------------------------------

_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: traefik
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{match}]
      filters:
        - {filter}
{backends}"""
_BACKENDS = "      backendRefs: [{name: cheddar, port: 80}]\n"


def _load(tmp_path: Path, filter_: str, match: str = "{path: {type: PathPrefix, value: /p}}",
          backends: str = _BACKENDS) -> Intent:  # fmt: skip
    path = tmp_path / "route.yaml"
    path.write_text(_ROUTE.format(match=match, filter=filter_, backends=backends), "utf-8")
    return load_intent([SERVICES, path])


def test_replace_prefix_match_takes_the_match_of_its_router(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        "{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, "
        "replacePrefixMatch: /q}}}",
    )
    decided = expect(intent, "any.test", "/p/x").decided_by
    assert decided is not None and decided.upstream_path == "/q/x"
    assert [m.model for m in intent.routes[0].middlewares] == [
        URLRewrite(path="/q", path_prefix="/p")
    ]


def test_add_appends_to_what_the_client_sends_after_set_and_remove(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-S, value: s}], "
        "add: [{name: X-A, value: a}], remove: [X-R]}}\n"
        "        - {type: ResponseHeaderModifier, responseHeaderModifier: "
        "{add: [{name: X-Out, value: o}]}}",
    )
    sent = [("X-A", "client"), ("X-S", "client"), ("X-R", "client")]
    decided = expect(intent, "any.test", "/p", headers=sent).decided_by
    assert decided is not None
    assert dict(decided.request_headers) == {"X-A": ("client", "a"), "X-S": ("s",), "X-R": ()}
    assert dict(decided.response_headers) == {"X-Out": "o"}
    alone = expect(intent, "any.test", "/p").decided_by
    assert alone is not None and dict(alone.request_headers)["X-A"] == ("a",)


@pytest.mark.parametrize(
    ("filter_", "match", "backends", "field", "says"),
    [
        (
            "{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, "
            "replacePrefixMatch: /q}}}",
            "{path: {type: Exact, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].urlRewrite.path.type",
            "exactly one PathPrefix match",
        ),
        (
            "{type: RequestRedirect, requestRedirect: {scheme: https}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].backendRefs",
            "RequestRedirect filter and backendRefs",
        ),
        (
            "{type: RequestRedirect, requestRedirect: {statusCode: 305}}",
            "{path: {type: PathPrefix, value: /p}}",
            "",
            "spec.rules[0].filters[0].requestRedirect.statusCode",
            "statusCode 305",
        ),
        (
            "{type: URLRewrite, urlRewrite: {}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].urlRewrite",
            "neither path nor hostname",
        ),
        (
            "{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: x}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].extensionRef.kind",
            "resolves traefik.io/Middleware only; it answers 500",
        ),
        (
            "{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, "
            "name: absent}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].extensionRef.name",
            "Traefik serves no router for the rule (404)",
        ),
        (
            "{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: Host, "
            "value: h.test}]}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].requestHeaderModifier.add[0]",
            "never a Host in the header map",
        ),
        (
            "{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: content-type, "
            "value: text/x}]}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].responseHeaderModifier.add[0]",
            "the echo backend or Go's server writes it",
        ),
        (
            "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: a}], "
            "add: [{name: x-a, value: b}]}}",
            "{path: {type: PathPrefix, value: /p}}",
            _BACKENDS,
            "spec.rules[0].filters[0].requestHeaderModifier.add[0]",
            "appears twice in one filter",
        ),
    ],
    ids=[
        "prefix-on-exact",
        "redirect-with-backends",
        "status-305",
        "empty-rewrite",
        "extension-of-another-kind",
        "extension-middleware-absent",
        "add-host",
        "add-server-written",
        "set-and-add",
    ],
)
def test_what_is_still_refused_names_file_line_field(
    tmp_path: Path, filter_: str, match: str, backends: str, field: str, says: str
) -> None:
    with pytest.raises(ManifestError) as err:
        _load(tmp_path, filter_, match, backends)
    message = str(err.value)
    assert "route.yaml:" in message and f"field {field}" in message and says in message


# -- on the real Traefik --------------------------------------------------------------------------


def _verdicts(target: LocalTarget, declared: Intent, applied: Intent) -> list[ExactVerdict]:
    """Every routing and strip verdict on ``declared``'s probes, with ``applied`` on Traefik."""
    probes = generate_probes(declared)
    aspects: tuple[Aspect, ...] = ("routing", "strip")
    return list(applied_judgements(target, probes, declared, applied, "filters", aspects).values())


#: Requests beyond the probes: the boundaries, a query, a Host with a port.
BOUNDARIES = [
    ("rewrite.gateway.test", t)
    for t in (
        "/prefix/one", "/prefix/one/", "/prefix/one/two", "/prefix/one/two?q=1&r=a;b",
        "/strip-prefix", "/strip-prefix/", "/strip-prefix/three", "/slash", "/slash/",
        "/slash/x/", "/full/one/two?x=1", "/full/rewrite-path-and-modify-headers/x",
    )
] + [
    ("redirect.gateway.test", t)
    for t in ("/original-prefix", "/original-prefix/", "/original-prefix/x?q=1",
              "/full-path/x?q=1", "/host-and-status/a", "/scheme/a?b=1", "/port/a",
              "/scheme-and-port/a", "/other")
] + [("redirect.gateway.test:8080", t)
      for t in ("/port/a", "/scheme/a", "/original-prefix/a")]  # fmt: skip


@pytest.mark.stack
def test_the_scenarios_are_served_as_predicted_at_every_boundary(
    gateway_stack: LocalStack,
) -> None:
    intent = load_intent([SERVICES, REWRITE, REDIRECT])
    target = LocalTarget(gateway_stack)
    probes = generate_probes(intent)
    target.apply_intent(intent)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
        answers = {
            (host, t): httpx.get(target.proxy_url + t, headers={"Host": host}, trust_env=False)
            for host, t in BOUNDARIES
        }
        unrouted = httpx.get(
            target.proxy_url + "/prefix/onex",
            headers={"Host": "rewrite.gateway.test"},
            trust_env=False,
        )
    finally:
        target.remove_intent(intent)
    verdicts = [
        judge(aspect, run.records[p.id], intent, scenario="filters")
        for p in probes
        for aspect in ("routing", "strip")
        if applies(aspect, p)
    ]
    assert len(verdicts) > 20 and all(v.passed for v in verdicts), [
        v.summary() for v in verdicts if not v.passed
    ]
    assert unrouted.status_code == 404
    for (host, t), answer in answers.items():
        decided = expect(intent, host, t).decided_by
        assert decided is not None, (host, t)
        if decided.location is not None:
            assert (answer.status_code, answer.headers["location"]) == (
                decided.status,
                decided.location,
            ), (host, t)
            continue
        lines = answer.text.splitlines()
        assert f"GET {decided.upstream_path} HTTP/1.1" in lines, (host, t, lines[:3])
        assert f"Host: {decided.host_header}" in lines, (host, t)
    # The figures the model was confirmed on, spelled out.
    assert answers["redirect.gateway.test", "/scheme-and-port/a"].headers["location"] == (
        "https://redirect.gateway.test:443/scheme-and-port/a"
    )
    assert answers["redirect.gateway.test:8080", "/scheme/a"].headers["location"] == (
        "https://redirect.gateway.test/scheme/a"
    )
    assert answers["redirect.gateway.test", "/original-prefix/x?q=1"].status_code == 302
    assert "GET /new HTTP/1.1" in answers["rewrite.gateway.test", "/slash"].text
    # add appends (Header.Add): one value without the client's, the client's then the added
    # one with it (the probes above send it; whoami prints one line per value).
    lines = answers["rewrite.gateway.test", "/full/rewrite-path-and-modify-headers/x"].text
    assert "X-Header-Add: header-val-1" in lines.splitlines()
    (probe,) = [
        p for p in probes if p.id == "rewrite.gateway.test/full/rewrite-path-and-modify-headers"
    ]
    (observed, *_) = run.records[probe.id].observations
    seen = dict(observed.request_headers)
    assert seen["X-Header-Add-Append"] == (REMOVED_HEADER_VALUE, "header-val-2")


def _changed(tmp_path: Path, source: Path, old: str, new: str) -> Intent:
    text = source.read_text("utf-8")
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, 1), "utf-8")
    return load_intent([SERVICES, path])


@pytest.mark.stack
@pytest.mark.parametrize(
    ("source", "old", "new", "fails", "says"),
    [
        (
            REWRITE,
            "replacePrefixMatch: /one}",
            "replacePrefixMatch: /two}",
            "strip",
            "rewrite-path-rule0-urlrewrite-0 (URLRewrite)",
        ),
        (
            REWRITE,
            "hostname: upstream.gateway.test",
            "hostname: elsewhere.gateway.test",
            "strip",
            "Host: expected upstream.gateway.test, observed elsewhere.gateway.test",
        ),
        (
            REWRITE,
            "value: header-val-1}",
            "value: header-val-9}",
            "strip",
            "request header X-Header-Add: expected sent-by-ingress-harness, header-val-1",
        ),
        (
            REDIRECT,
            "statusCode: 301",
            "statusCode: 302",
            "routing",
            "redirect-rule2-requestredirect-0 (RequestRedirect)",
        ),
        (
            REDIRECT,
            "replaceFullPath: /replacement-full}",
            "replaceFullPath: /elsewhere}",
            "routing",
            "Location",
        ),
    ],
    ids=["rewrite-prefix", "rewrite-hostname", "header-add", "redirect-status", "redirect-path"],
)
def test_a_filter_changed_behind_the_oracles_back_fails_only_its_check(
    gateway_stack: LocalStack,
    tmp_path: Path,
    source: Path,
    old: str,
    new: str,
    fails: str,
    says: str,
) -> None:
    declared = load_intent([SERVICES, source])
    verdicts = _verdicts(LocalTarget(gateway_stack), declared, _changed(tmp_path, source, old, new))
    failed = [v for v in verdicts if v.outcome == "failed"]
    assert failed and {v.aspect for v in failed} == {fails}, [v.summary() for v in verdicts]
    assert {str(v.outcome) for v in verdicts if v.aspect != fails} <= {"passed"}
    messages = "\n".join(v.message for v in failed)
    assert says in messages, messages


# -- the filters Traefik cannot load, and ExtensionRef ---------------------------------------------

_UNSUPPORTED_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: unsupported}
spec:
  gatewayClassName: traefik
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip-ext}
spec:
  stripPrefix: {prefixes: [/ext]}
"""


def _unsupported_route(name: str, rule: str) -> str:
    """An HTTPRoute of the ``unsupported`` Gateway for host ``<name>.gateway.test``."""
    return f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: unsupported}}]
  hostnames: [{name}.gateway.test]
  rules:
{rule}"""


_UNSUPPORTED_ROUTES = _unsupported_route(
    "mirror",
    """\
    - matches: [{path: {type: PathPrefix, value: /m}}]
      filters:
        - {type: RequestMirror, requestMirror: {backendRef: {name: stilton, port: 80}}}
      backendRefs: [{name: cheddar, port: 80}]
""",
) + _unsupported_route(
    "cors",
    """\
    - filters:
        - {type: CORS, cors: {allowOrigins: ["https://a.test"], allowMethods: [GET]}}
      backendRefs: [{name: stilton, port: 80}]
""",
)
_EXTENSION_ROUTE = _unsupported_route(
    "ext",
    """\
    - matches: [{path: {type: PathPrefix, value: /ext}}]
      filters:
        - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: strip-ext}}
      backendRefs: [{name: wensleydale, port: 80}]
""",
)
UNSUPPORTED = _UNSUPPORTED_GATEWAY + _UNSUPPORTED_ROUTES + _EXTENSION_ROUTE


def _unsupported(tmp_path: Path, text: str = UNSUPPORTED, name: str = "filters.yaml") -> Intent:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return load_intent([SERVICES, path])


def test_a_filter_traefik_cannot_load_is_the_spec_declared_and_500_served(
    tmp_path: Path,
) -> None:
    intent = _unsupported(tmp_path)
    assert intent.effective is not None
    for host, path, service, kind in (
        ("mirror.gateway.test", "/m/x", "cheddar", "RequestMirror"),
        ("cors.gateway.test", "/", "stilton", "CORS"),
    ):
        declared, served = expect(intent, host, path), expect(intent.effective, host, path)
        # The spec: forwarded to the backend; Traefik: 500, whatever the request.
        assert declared.status is None, declared
        assert [b.service for b in declared.backends] == [service], declared
        assert served.status == 500 and served.route_id == declared.route_id, served
        note = intent.route_note(intent.route(str(declared.route_id)))
        assert note is not None and note[0] == "traefik", note
        assert f"cannot load the {kind} filter" in note[1] and "forwarded to the backend" in note[1]
    said = [f.message for f in intent.findings if f.kind == FINDING_GATEWAY_UNSUPPORTED_FILTER]
    assert len(said) == 2 and all("answers 500" in m and "Accepted" in m for m in said), said
    # An ExtensionRef to a Middleware of the manifests is that Middleware's model.
    ext = expect(intent, "ext.gateway.test", "/ext/x").decided_by
    assert ext is not None and ext.upstream_path == "/x"
    assert expect(intent.effective, "ext.gateway.test", "/ext/x").decided_by == ext


@pytest.mark.stack
def test_traefik_answers_500_where_a_filter_it_cannot_load_is_and_the_checks_say_so(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    intent = _unsupported(tmp_path)
    assert intent.effective is not None
    target = LocalTarget(gateway_stack)
    declared, served = generate_probes(intent), generate_probes(intent.effective)
    target.apply_intent(intent)
    try:
        # Apart: the two sets send the same requests under the same ids.
        run, served_run = (
            send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
            for probes in (declared, served)
        )
        conditions = gateway_stack.route_conditions(intent)
        preflight = httpx.options(
            target.proxy_url + "/",
            headers={
                "Host": "cors.gateway.test",
                "Origin": "https://a.test",
                "Access-Control-Request-Method": "GET",
            },
            trust_env=False,
        )
    finally:
        target.remove_intent(intent)
    # The model of what Traefik serves predicts every answer, the 500s included.
    predicted = [
        judge(aspect, served_run.records[p.id], intent.effective, scenario="served")
        for p in served
        for aspect in ("routing", "strip")
        if applies(aspect, p)
    ]
    assert len(predicted) > 10 and all(v.passed for v in predicted), [
        v.summary() for v in predicted if not v.passed
    ]
    assert any(v.expected.startswith("500") for v in predicted), [v.expected for v in predicted]
    # While Traefik says the routes are Accepted, and answers the CORS preflight 500 too.
    assert conditions["mirror", "Accepted"][0] == conditions["cors", "Accepted"][0] == "True"
    assert preflight.status_code == 500
    # Judged against the spec's meaning: the routing check fails on those routes only, naming
    # the filter and both answers; the ExtensionRef route passes its routing and strip checks.
    verdicts = [
        judge(aspect, run.records[p.id], intent, scenario="filters")
        for p in declared
        for aspect in ("routing", "strip")
        if applies(aspect, p)
    ]
    failed = [v for v in verdicts if v.outcome == "failed"]
    assert failed and {v.aspect for v in failed} == {"routing"}, [v.summary() for v in verdicts]
    assert {v.probe.host for v in failed} == {"mirror.gateway.test", "cors.gateway.test"}
    assert all(v.passed for v in verdicts if v.probe.host == "ext.gateway.test")
    mirror = next(v.message for v in failed if v.probe.host == "mirror.gateway.test")
    assert "cannot load the RequestMirror filter" in mirror, mirror
    assert "forwarded to the backend" in mirror and "500" in mirror, mirror


@pytest.mark.stack
def test_an_extension_middleware_changed_behind_the_oracles_back_fails_only_the_strip(
    gateway_stack: LocalStack, tmp_path: Path
) -> None:
    ext_only = _UNSUPPORTED_GATEWAY + _EXTENSION_ROUTE
    declared = _unsupported(tmp_path, ext_only)
    changed = _unsupported(tmp_path, ext_only.replace("[/ext]", "[/e]"), "changed.yaml")
    verdicts = _verdicts(LocalTarget(gateway_stack), declared, changed)
    failed = [v for v in verdicts if v.outcome == "failed"]
    assert failed and {v.aspect for v in failed} == {"strip"}, [v.summary() for v in verdicts]
    assert "default/strip-ext (stripPrefix)" in "\n".join(v.message for v in failed)
