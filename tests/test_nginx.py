"""Ingresses written for ingress-nginx, read without Traefik: which Ingresses Traefik's NGINX
provider selects, what they mean on ingress-nginx (the declared routes and their order), what
the provider builds from them (rules, weights, router names), each annotation's fate, and the
refusals, each naming file, line and field."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import (
    FINDING_NGINX_CANARY_PER_SERVICE,
    FINDING_NGINX_IGNORED,
    FINDING_NGINX_MEANING_CHANGED,
    FINDING_SERVED_TWICE,
    PROVIDER_INGRESS,
    PROVIDER_NGINX,
    Intent,
)
from harness.traefik import nginx
from harness.traefik.oracle import expect
from harness.traefik.process import TraefikSettings, static_configuration

SERVICES = "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{port: 80}}]}}
"""
    for name in ("prod", "canary", "cheddar")
)


def _ingress(
    name: str,
    paths: str,
    *,
    annotations: str = "",
    klass: str = "ingressClassName: nginx",
    host: str = "a.test",
) -> str:
    meta = f"\n  annotations:\n{annotations}" if annotations else ""
    klass = f"\n  {klass}" if klass else ""
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}{meta}
spec:{klass}
  rules:
  - host: {host}
    http:
      paths:
{paths}"""


def _path(path: str, service: str, path_type: str = "Prefix") -> str:
    return f"""      - path: {path}
        pathType: {path_type}
        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}
"""


def _load(tmp_path: Path, *docs: str, **kw: bool) -> Intent:
    path = tmp_path / "nginx.yaml"
    path.write_text(SERVICES + "".join(docs))
    return load_intent([path], **kw)


def _canary(annotations: str, path: str = "/") -> str:
    return _ingress(
        "can",
        _path(path, "canary"),
        annotations='    nginx.ingress.kubernetes.io/canary: "true"\n' + annotations,
    )


def _backend(intent: Intent, path: str, headers: list[tuple[str, str]] | None = None) -> str:
    e = expect(intent, "a.test", path, headers=headers or [])
    return "/".join(b.service for b in e.backends) if e.backends else str(e.status)


@pytest.mark.parametrize(
    ("klass", "nginx_served"),
    [
        ("ingressClassName: nginx", True),
        ("ingressClassName: traefik", False),
        ("", False),
    ],
)
def test_ingresses_are_selected_as_the_nginx_provider_selects_them(
    tmp_path: Path, klass: str, nginx_served: bool
) -> None:
    intent = _load(tmp_path, _ingress("prod", _path("/", "prod"), klass=klass))
    providers = {r.provider for r in intent.routes}
    assert providers == {PROVIDER_NGINX if nginx_served else PROVIDER_INGRESS}


def test_the_class_annotation_and_an_ingressclass_of_its_controller_select_it(
    tmp_path: Path,
) -> None:
    by_annotation = _load(
        tmp_path,
        _ingress(
            "prod",
            _path("/", "prod"),
            annotations="    kubernetes.io/ingress.class: nginx\n",
            klass="",
        ),
    )
    assert {r.provider for r in by_annotation.routes} == {PROVIDER_NGINX}
    klass = """---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: public}
spec: {controller: k8s.io/ingress-nginx}
"""
    by_class = _load(
        tmp_path, klass, _ingress("prod", _path("/", "prod"), klass="ingressClassName: public")
    )
    assert {r.provider for r in by_class.routes} == {PROVIDER_NGINX}


def test_without_class_both_providers_serve_it_and_a_finding_says_so(tmp_path: Path) -> None:
    intent = _load(
        tmp_path, _ingress("prod", _path("/api", "prod"), klass=""), nginx_without_class=True
    )
    assert {r.provider for r in intent.routes} == {PROVIDER_NGINX}
    assert {r.provider for r in intent.served.routes} == {PROVIDER_NGINX, PROVIDER_INGRESS}
    assert any(f.kind == FINDING_SERVED_TWICE for f in intent.findings)


def test_rules_and_router_names_are_the_providers() -> None:
    assert nginx.router_rule("a.test", "/api/", "Prefix", regex=False) == (
        'Host("a.test") && (Path("/api") || PathPrefix("/api/"))'
    )
    assert nginx.router_rule("a.test", "/", "ImplementationSpecific", regex=False) == (
        'Host("a.test") && PathPrefix("/")'
    )
    assert nginx.router_rule("a.test", "/x", "Exact", regex=True) == 'Host("a.test") && Path("/x")'
    assert nginx.router_rule("a.test", "/x", "Prefix", regex=True) == (
        'Host("a.test") && PathRegexp("(?i)^/x")'
    )
    assert nginx.router_name("default", "my.app", 0, 2) == "default-my-app-rule-0-path-2"
    assert nginx.go_quote_meta("a.b+c") == r"a\.b\+c"
    c = nginx.Canary(header="X-C", cookie="ck", weight=5)
    assert c.canary_rule("R") == (
        '(R) && (Header("X-C", "always") || (HeaderRegexp("Cookie", '
        '"(^|;\\\\s*)ck=always(;|$)") && !Header("X-C", "never")))'
    )
    assert nginx.Canary(header="X-C").non_canary_rule("R") is None  # no weight: no router


@pytest.mark.parametrize(
    ("weight", "total", "declared", "traefik"),
    [
        ("40", None, (60, 40), (60, 40)),
        ("5", "10", (5, 5), (95, 5)),
        ("30", "1000", (97, 3), (970, 30)),
    ],
)
def test_weights_on_ingress_nginx_and_on_traefik(
    tmp_path: Path,
    weight: str,
    total: str | None,
    declared: tuple[int, int],
    traefik: tuple[int, int],
) -> None:
    ann = f'    nginx.ingress.kubernetes.io/canary-weight: "{weight}"\n'
    if total:
        ann += f'    nginx.ingress.kubernetes.io/canary-weight-total: "{total}"\n'
    intent = _load(tmp_path, _ingress("prod", _path("/", "prod")), _canary(ann))
    (route,) = intent.weighted_routes
    shares = route.exact_shares()
    assert (shares["prod"], shares["canary"]) == (
        Fraction(declared[0], sum(declared)),
        Fraction(declared[1], sum(declared)),
    )
    (served,) = [r for r in intent.served.routes if r.weighted]
    assert tuple(b.weight for b in served.backends) == traefik
    changed = Fraction(declared[1], sum(declared)) != Fraction(traefik[1], sum(traefik))
    assert (route.id in intent.route_notes) is changed
    assert any(f.kind == FINDING_NGINX_MEANING_CHANGED for f in intent.findings) is changed


def test_canary_precedence_header_then_cookie_then_weight(tmp_path: Path) -> None:
    ann = (
        '    nginx.ingress.kubernetes.io/canary-by-header: "X-C"\n'
        '    nginx.ingress.kubernetes.io/canary-by-cookie: "ck"\n'
    )
    intent = _load(tmp_path, _ingress("prod", _path("/", "prod")), _canary(ann))
    assert _backend(intent, "/") == "prod"
    assert _backend(intent, "/", [("X-C", "always")]) == "canary"
    assert _backend(intent, "/", [("X-C", "never"), ("Cookie", "ck=always")]) == "prod"
    assert _backend(intent, "/", [("X-C", "maybe"), ("Cookie", "ck=always")]) == "canary"
    assert _backend(intent, "/", [("Cookie", "ck=never")]) == "prod"


def test_header_value_and_pattern_select_only_their_values(tmp_path: Path) -> None:
    value = _load(
        tmp_path,
        _ingress("prod", _path("/", "prod")),
        _canary(
            '    nginx.ingress.kubernetes.io/canary-by-header: "Canary"\n'
            '    nginx.ingress.kubernetes.io/canary-by-header-value: "DoCanary"\n'
        ),
    )
    assert _backend(value, "/", [("Canary", "DoCanary")]) == "canary"
    assert _backend(value, "/", [("Canary", "always")]) == "prod"
    pattern = _load(
        tmp_path,
        _ingress("prod", _path("/", "prod")),
        _canary(
            '    nginx.ingress.kubernetes.io/canary-by-header: "Region"\n'
            '    nginx.ingress.kubernetes.io/canary-by-header-pattern: "cd|sz"\n'
        ),
    )
    assert _backend(pattern, "/", [("Region", "sz")]) == "canary"
    assert _backend(pattern, "/", [("Region", "AM")]) == "prod"


def test_a_canary_applies_to_every_path_of_its_primary_service(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        _ingress("prod", _path("/", "prod") + _path("/other", "prod")),
        _canary('    nginx.ingress.kubernetes.io/canary-by-header: "X-C"\n'),
    )
    assert _backend(intent, "/other", [("X-C", "always")]) == "canary"
    assert any(f.kind == FINDING_NGINX_CANARY_PER_SERVICE for f in intent.findings)


def test_location_order_exact_first_then_longest_prefix(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        _ingress(
            "prod",
            _path("/", "prod") + _path("/x", "canary", "Exact") + _path("/api", "cheddar"),
        ),
    )
    assert _backend(intent, "/x") == "canary"
    assert _backend(intent, "/api/v") == "cheddar"
    assert _backend(intent, "/apiX") == "prod"  # Prefix is element-wise
    # On Traefik the Prefix / router's rule is longer than the Exact /x one: it wins.
    note = intent.route_notes["prod:a.test/x"]
    assert 'PathPrefix("/") (priority 33) outranks Host("a.test") && Path("/x") (priority 28)' in (
        note
    )
    assert any(f.kind == FINDING_NGINX_MEANING_CHANGED for f in intent.findings)


def test_implementation_specific_is_a_character_prefix_on_ingress_nginx(tmp_path: Path) -> None:
    intent = _load(tmp_path, _ingress("prod", _path("/app", "prod", "ImplementationSpecific")))
    assert _backend(intent, "/appX") == "prod"
    assert _backend(intent.served, "/appX") == "404"
    assert "character by character" in intent.route_notes["prod:a.test/app"]


def test_every_annotation_has_a_fate(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        _ingress(
            "prod",
            _path("/", "prod"),
            annotations=(
                '    nginx.ingress.kubernetes.io/proxy-read-timeout: "30"\n'
                '    nginx.ingress.kubernetes.io/limit-rate: "100"\n'
            ),
        ),
        _canary(
            '    nginx.ingress.kubernetes.io/canary-weight: "5"\n'
            '    nginx.ingress.kubernetes.io/canary-weight-total: "10"\n'
        ),
    )
    fates = {(m.ingress, m.key.rsplit("/", 1)[1]): m.fate for m in intent.migration}
    assert fates == {
        ("prod", "proxy-read-timeout"): "honoured",
        ("prod", "limit-rate"): "ignored",
        ("can", "canary"): "honoured",
        ("can", "canary-weight"): "honoured",
        ("can", "canary-weight-total"): "changed",
    }
    assert any(f.kind == FINDING_NGINX_IGNORED for f in intent.findings)
    assert all(m.source.line > 0 for m in intent.migration)


@pytest.mark.parametrize(
    ("annotations", "error"),
    [
        (
            '    nginx.ingress.kubernetes.io/canary-wieght: "5"\n',
            "unknown ingress-nginx annotation",
        ),
        ('    nginx.ingress.kubernetes.io/auth-url: "http://auth"\n', "decides whether the route"),
        ('    nginx.ingress.kubernetes.io/server-snippet: "x"\n', "allowSnippetAnnotations"),
        ('    nginx.ingress.kubernetes.io/canary: "1"\n', "neither true nor false"),
        (
            '    nginx.ingress.kubernetes.io/canary: "true"\n'
            '    nginx.ingress.kubernetes.io/canary-weight: "ten"\n',
            "not a whole number",
        ),
        (
            '    nginx.ingress.kubernetes.io/permanent-redirect: "https://b.test$request_uri"\n',
            "not an absolute http(s) URL of letters, digits and -._~/:,?&=",
        ),
        ('    nginx.ingress.kubernetes.io/temporal-redirect: "/moved"\n', "absolute URLs only"),
        (
            '    nginx.ingress.kubernetes.io/permanent-redirect: "https://b.test/"\n'
            '    nginx.ingress.kubernetes.io/permanent-redirect-code: "300"\n',
            "sends the URL as the body",
        ),
        (
            '    nginx.ingress.kubernetes.io/temporal-redirect: "https://b.test/"\n'
            '    nginx.ingress.kubernetes.io/temporal-redirect-code: "soon"\n',
            "not a whole number",
        ),
        ('    nginx.ingress.kubernetes.io/force-ssl-redirect: "1"\n', "neither true nor false"),
        ('    nginx.ingress.kubernetes.io/app-root: "/app?x=1"\n', "is not a plain path"),
        ('    nginx.ingress.kubernetes.io/from-to-www-redirect: "yes"\n', "neither true nor"),
        (
            '    nginx.ingress.kubernetes.io/rewrite-target: "/"\n'
            '    nginx.ingress.kubernetes.io/permanent-redirect: "https://b.test/"\n',
            "rewrite-target together with a redirect",
        ),
        (
            '    nginx.ingress.kubernetes.io/canary: "true"\n'
            '    nginx.ingress.kubernetes.io/canary-weight: "10"\n'
            '    nginx.ingress.kubernetes.io/temporal-redirect: "https://b.test/"\n',
            "a redirect annotation on a canary Ingress",
        ),
    ],
)
def test_refusals_name_file_line_and_annotation(
    tmp_path: Path, annotations: str, error: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, _ingress("prod", _path("/", "prod"), annotations=annotations))
    message = str(caught.value)
    assert error in message and "nginx.yaml:" in message
    assert "metadata.annotations" in message


def test_static_configuration_runs_the_nginx_provider_beside_or_alone() -> None:
    base = {"kube_endpoint": "http://127.0.0.1:1", "binary": Path("/bin/true")}
    beside = static_configuration(TraefikSettings(**base, nginx_provider="beside"), 1, 2)
    assert {"kubernetesIngress", "kubernetesCRD", "kubernetesIngressNGINX"} <= set(
        beside["providers"]
    )
    alone = static_configuration(
        TraefikSettings(**base, nginx_provider="alone", nginx_without_class=True), 1, 2
    )
    assert "kubernetesIngress" not in alone["providers"]
    assert alone["providers"]["kubernetesIngressNGINX"]["watchIngressWithoutClass"] is True
    assert alone["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}


REDIRECTS = Path(__file__).resolve().parent / "manifests" / "nginx" / "redirects.yaml"


def _answer(intent: Intent, host: str, path: str, method: str = "GET") -> tuple[object, ...]:
    e = expect(intent, host, path, method=method)
    return (e.status, e.location) if e.status else ("routed", *(b.service for b in e.backends))


@pytest.mark.parametrize(
    ("host", "path", "method", "declared", "traefik"),
    [
        ("old.test", "/x", "POST", (308, "https://new.test/"), None),
        ("promo.test", "/", "GET", (302, "https://www.test/sale"), None),
        ("www.test", "/?q=1", "GET", (302, "http://www.test/home"), None),
        ("www.test", "/x", "GET", ("routed", "web"), None),
        ("api.test", "/", "GET", (302, "http://api.test/v2"), None),
        ("plain.test", "/", "GET", ("routed", "web"), None),
        ("secure.test", "/account/x", "GET", (308, "https://secure.test/account/x"), None),
        ("www.shop.test", "/a/", "GET", (308, "http://shop.test/a"), None),
        ("www.shop.test", "/", "POST", (308, "http://shop.test/"), None),
        ("shop.test", "/", "GET", ("routed", "web"), None),
        # Where Traefik's NGINX provider departs.
        (
            "status.test",
            "/",
            "GET",
            (302, "https://status.example.com/"),
            (308, "https://status.example.com/"),
        ),
        (
            "secure.test",
            "/account/",
            "GET",
            (308, "https://secure.test/account"),
            (308, "https://secure.test/account/"),
        ),
        (
            "docs.test",
            "/v1/x",
            "GET",
            (301, "https://new.test/docs"),
            (301, "https://new.test/docs/x"),
        ),
        ("docs.test", "/V1", "GET", (301, "https://new.test/docs"), ("routed", "legacy")),
        ("pay.test", "/", "GET", (301, "https://pay.example.com/"), (308, "https://pay.test/")),
        (
            "www.shop.test:8000",
            "/a",
            "GET",
            (308, "http://shop.test/a"),
            (308, "http://shop.test:8000/a"),
        ),
        (
            "portal.test",
            "/",
            "GET",
            (302, "http://portal.test/portal"),
            (308, "https://portal.test/"),
        ),
    ],
)
def test_redirects_on_ingress_nginx_and_on_traefik(
    host: str,
    path: str,
    method: str,
    declared: tuple[object, ...],
    traefik: tuple[object, ...] | None,
) -> None:
    intent = load_intent([REDIRECTS])
    assert intent.effective is not None
    assert _answer(intent, host, path, method) == declared
    assert _answer(intent.effective, host, path, method) == (traefik or declared)


def test_app_root_without_a_root_path_gets_the_providers_own_router() -> None:
    intent = load_intent([REDIRECTS])
    assert intent.effective is not None
    top = expect(intent.effective, "api.test", "/").decided_by
    assert top is not None and top.route_id.endswith("default-api-rule-0-path-0-app-root-redirect")
    assert top.rule == 'Host("api.test") && Path("/")'
    # A host with a / path gets none: the app-root rides on that path's router.
    www = [r.id for r in intent.effective.routes if r.host == "www.test"]
    assert www and not any(i.endswith("-app-root-redirect") for i in www)


def test_redirect_fates_and_the_notes_of_the_routes_they_change() -> None:
    intent = load_intent([REDIRECTS])
    fates = {(m.ingress, m.key.rsplit("/", 1)[1]): m.fate for m in intent.migration}
    assert fates == {
        ("web", "app-root"): "honoured",
        ("api", "app-root"): "honoured",
        ("moved", "permanent-redirect"): "honoured",
        ("moved", "permanent-redirect-code"): "honoured",
        ("promo", "temporal-redirect"): "honoured",
        ("maintenance", "temporal-redirect"): "honoured",
        ("maintenance", "temporal-redirect-code"): "changed",
        ("account", "force-ssl-redirect"): "changed",
        ("plain", "ssl-redirect"): "honoured",
        ("docs", "use-regex"): "honoured",
        ("docs", "permanent-redirect"): "changed",
        ("checkout", "force-ssl-redirect"): "changed",
        ("checkout", "permanent-redirect"): "changed",
        ("portal", "app-root"): "changed",
        ("portal", "force-ssl-redirect"): "changed",
        ("shop", "from-to-www-redirect"): "honoured",
    }
    changed = [f for f in intent.findings if f.kind == FINDING_NGINX_MEANING_CHANGED]
    assert len(changed) == sum(f == "changed" for f in fates.values()) == 7
    assert "answers 302" in intent.route_notes["maintenance:status.test/"]
    assert "drops a trailing /" in intent.route_notes["account:secure.test/account"]
    assert "server level" in intent.route_notes["portal:portal.test/ app-root"]
    assert "its own port" in intent.route_notes["shop:www.shop.test from-to-www-redirect"]


def test_from_to_www_is_skipped_where_an_ingress_serves_the_other_name(tmp_path: Path) -> None:
    www = '    nginx.ingress.kubernetes.io/from-to-www-redirect: "true"\n'
    site = _ingress("site", _path("/", "prod"), annotations=www, host="www.a.test")
    intent = _load(tmp_path, site, _ingress("bare", _path("/", "cheddar"), host="a.test"))
    assert _answer(intent, "a.test", "/") == ("routed", "cheddar")
    (fate,) = [m for m in intent.migration if m.key.endswith("from-to-www-redirect")]
    assert fate.fate == "honoured" and "a no-op: Ingresses serve a.test" in fate.note
    alone = _load(tmp_path, site)
    assert _answer(alone, "a.test", "/x/") == (308, "http://www.a.test/x")
    assert alone.effective is not None
    assert _answer(alone.effective, "a.test", "/x/") == (308, "http://www.a.test/x")


def test_two_app_roots_on_one_host_are_refused(tmp_path: Path) -> None:
    def root(name: str, value: str, path: str) -> str:
        annotation = f'    nginx.ingress.kubernetes.io/app-root: "{value}"\n'
        return _ingress(name, _path(path, "prod"), annotations=annotation)

    assert _load(tmp_path, root("one", "/app", "/"), root("two", "/app", "/x")).migration
    with pytest.raises(ManifestError, match=r"a second app-root \(/other\) for host a.test"):
        _load(tmp_path, root("one", "/app", "/"), root("two", "/other", "/x"))
