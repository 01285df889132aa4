"""Dialects: reading the tutorial's and v3 manifests into intent, errors, and rendering."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ManifestError
from harness.intent.dialects import load_intent, load_scenarios, render_manifests
from harness.intent.model import (
    DIALECT_INGRESS_V1,
    DIALECT_INGRESS_V1BETA1,
    DIALECT_INGRESSROUTE,
    DIALECT_TRAEFIK_V1_ANNOTATIONS,
    DIALECT_TRAEFIK_V3_ANNOTATIONS,
    DIALECT_TRAEFIKSERVICE,
    FINDING_DUPLICATE_ROUTER,
    FINDING_IGNORED_OBJECT,
    FINDING_INGRESS_CLASS,
    FINDING_LEGACY_ANNOTATION,
    FINDING_LEGACY_API,
    FINDING_REMOVED_API_GROUP,
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    Intent,
    WeightedBackend,
)

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
SERVICES = MANIFESTS / "services.yaml"


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str, **kw: Any) -> Intent:
    return load_intent([SERVICES, _write(tmp_path, text)], **kw)


def _error(tmp_path: Path, text: str, **kw: Any) -> str:
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, text, **kw)
    return str(info.value)


def _line(text: str, marker: str) -> int:
    """1-based line of the first line containing ``marker`` in the dedented text."""
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if marker in line)


V1_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - path: /cheddar
        pathType: Prefix
        backend:
          service:
            name: cheddar
            port:
              name: http
"""


# -- the tutorial's manifests ---------------------------------------------------------------


def test_scenarios_are_the_tutorial_steps() -> None:
    scenarios = load_scenarios(MANIFESTS)
    assert sorted(scenarios) == [
        "cheeses",
        "priority-explicit",
        "priority-longest-path",
        "registration",
        "registration-duplicate",
        "weights",
        "weights-remainder",
        "weights-three-way",
        "weights-zero",
    ]
    for intent in scenarios.values():
        assert str(SERVICES) in intent.files


def test_tutorial_cheeses_ingress() -> None:
    intent = load_scenarios(MANIFESTS)["cheeses"]
    assert [r.id for r in intent.routes] == [
        "cheeses:stilton.minikube/",
        "cheeses:cheeses.minikube/cheddar",
        "cheeses:cheeses.minikube/wensleydale",
    ]
    cheddar = intent.route("cheeses:cheeses.minikube/cheddar")
    assert (cheddar.host, cheddar.path, cheddar.match) == ("cheeses.minikube", "/cheddar", "prefix")
    assert cheddar.strip_prefixes == ("/cheddar",)
    # servicePort "http" resolved through the Service in services.yaml.
    assert cheddar.backends == (WeightedBackend("cheddar", 80, 1),)
    assert cheddar.provider == PROVIDER_INGRESS
    assert cheddar.path_type == "Prefix"
    assert cheddar.dialects == (DIALECT_INGRESS_V1BETA1, DIALECT_TRAEFIK_V1_ANNOTATIONS)
    assert cheddar.source.file.endswith("cheeses.yaml")
    lines = (MANIFESTS / "cheeses.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[cheddar.source.line - 1].strip() == "- path: /cheddar"
    assert cheddar.source.field == "spec.rules[1].http.paths[0]"
    kinds = {f.kind for f in intent.findings}
    assert {FINDING_LEGACY_API, FINDING_LEGACY_ANNOTATION} <= kinds
    assert any("PathPrefixStrip" in f.message and "v3" in f.message for f in intent.findings)
    assert {s.name for s in intent.services} == {"stilton", "cheddar", "wensleydale"}
    assert all(s.declared and s.ports[0].name == "http" for s in intent.services)


def test_tutorial_weights_are_one_weighted_route() -> None:
    scenarios = load_scenarios(MANIFESTS)
    for name in ("weights", "weights-remainder"):
        intent = scenarios[name]
        (route,) = intent.routes
        assert route.shares() == {"cheddar": 0.75, "wensleydale": 0.25}, name
        assert route.provider == PROVIDER_CRD  # rendered as IngressRoute + TraefikService
        assert route.strip_prefixes == ("/",)
        assert any("TraefikService" in f.message for f in intent.findings)
    remainder = scenarios["weights-remainder"]
    assert any("gets the remaining 75%" in f.message for f in remainder.findings)


def test_tutorial_priorities() -> None:
    scenarios = load_scenarios(MANIFESTS)
    explicit = scenarios["priority-explicit"]
    assert [r.priority for r in explicit.routes] == [2, 1]
    default = scenarios["priority-longest-path"]
    assert [r.priority for r in default.routes] == [None, None]
    assert [r.effective_priority for r in default.routes] == [50, 62]


def test_weighted_crd_scenarios() -> None:
    scenarios = load_scenarios(MANIFESTS)
    (three,) = scenarios["weights-three-way"].routes
    assert three.shares() == pytest.approx({"stilton": 0.5, "cheddar": 0.3, "wensleydale": 0.2})
    assert three.dialects == (DIALECT_INGRESSROUTE, DIALECT_TRAEFIKSERVICE)
    assert three.rule == "Host(`cheeses.minikube`) && PathPrefix(`/`)"
    (zero,) = scenarios["weights-zero"].routes
    assert [(b.service, b.weight) for b in zero.backends] == [("cheddar", 1), ("wensleydale", 0)]
    assert zero.shares() == {"cheddar": 1.0, "wensleydale": 0.0}


# -- v3 Ingress -----------------------------------------------------------------------------


def test_v1_ingress_with_v3_annotations(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: traefik.io/v1alpha1
        kind: Middleware
        metadata:
          name: strip
        spec:
          stripPrefix:
            prefixes: ["/stat", "/status"]
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: shop
          annotations:
            traefik.ingress.kubernetes.io/router.priority: "7"
            traefik.ingress.kubernetes.io/router.middlewares: default-strip@kubernetescrd
            traefik.ingress.kubernetes.io/router.pathmatcher: Path
        spec:
          ingressClassName: traefik
          rules:
          - host: shop.example
            http:
              paths:
              - path: /exact
                pathType: Exact
                backend: {service: {name: cheddar, port: {number: 80}}}
              - path: /prefix
                pathType: Prefix
                backend: {service: {name: cheddar, port: {name: http}}}
              - path: /impl
                pathType: ImplementationSpecific
                backend: {service: {name: stilton, port: {number: 80}}}
        """,
    )
    exact, prefix, impl = intent.routes
    assert (exact.match, prefix.match, impl.match) == ("exact", "prefix", "exact")
    assert impl.path_type == "ImplementationSpecific"
    assert all(r.priority == 7 and r.strip_prefixes == ("/stat", "/status") for r in intent.routes)
    assert exact.dialects == (DIALECT_INGRESS_V1, DIALECT_TRAEFIK_V3_ANNOTATIONS)
    assert exact.ingress_class == "traefik"
    assert any(f.kind == FINDING_INGRESS_CLASS and f.severity == "info" for f in intent.findings)
    # Rendered back: one Ingress per annotation set (router.pathmatcher applies Ingress-wide).
    objects = render_manifests(intent, "default")
    matchers = [
        i["metadata"]["annotations"].get("traefik.ingress.kubernetes.io/router.pathmatcher")
        for i in _by_kind(objects, "Ingress")
    ]
    assert matchers == [None, "Path"]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    assert _semantics(load_intent([SERVICES, rendered])) == _semantics(intent)


def test_default_backend(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: fallback}
        spec:
          defaultBackend: {service: {name: stilton, port: {number: 80}}}
        """,
    )
    (route,) = intent.routes
    assert route.id == "fallback:default-backend"
    assert (route.rule, route.effective_priority) == ('PathPrefix("/")', -(2**31))
    (ingress,) = render_manifests(intent, "default")
    assert ingress["spec"] == {
        "defaultBackend": {"service": {"name": "stilton", "port": {"number": 80}}}
    }


def test_unset_path_type_defaults_to_pathprefix(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: networking.k8s.io/v1beta1
        kind: Ingress
        metadata:
          name: old
        spec:
          rules:
          - http:
              paths:
              - path: /cheddar
                backend: {serviceName: cheddar, servicePort: 80}
        """,
    )
    (route,) = intent.routes
    assert route.host is None and route.match == "prefix"
    assert route.path_type == "ImplementationSpecific"
    assert route.rule == 'PathPrefix("/cheddar")'
    assert route.dialects == (DIALECT_INGRESS_V1BETA1,)


def test_duplicate_path_in_one_ingress_keeps_the_last(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: dup}
        spec:
          rules:
          - host: a.example
            http:
              paths:
              - {path: /, pathType: Prefix, backend: {service: {name: cheddar, port: {number: 80}}}}
              - {path: /, pathType: Prefix, backend: {service: {name: stilton, port: {number: 80}}}}
        """,
    )
    (route,) = intent.routes
    assert route.backends[0].service == "stilton"
    assert any(f.kind == FINDING_DUPLICATE_ROUTER for f in intent.findings)


def test_other_ingress_class_is_skipped(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: haproxy-only
          annotations: {kubernetes.io/ingress.class: haproxy}
        spec:
          rules:
          - http:
              paths:
              - {path: /, pathType: Prefix, backend: {service: {name: cheddar, port: {number: 80}}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: cheddar}
        """,
    )
    assert intent.routes == ()
    assert any(f.kind == FINDING_INGRESS_CLASS and "haproxy" in f.message for f in intent.findings)
    assert any(f.kind == FINDING_IGNORED_OBJECT for f in intent.findings)


# -- IngressRoute / TraefikService ----------------------------------------------------------


def test_ingressroute_weighted_nested_and_containo_us(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        """
        apiVersion: traefik.containo.us/v1alpha1
        kind: TraefikService
        metadata: {name: inner}
        spec:
          weighted:
            services:
            - {name: cheddar, port: 80, weight: 1}
            - {name: wensleydale, port: 80, weight: 1}
        ---
        apiVersion: traefik.io/v1alpha1
        kind: TraefikService
        metadata: {name: outer}
        spec:
          weighted:
            services:
            - {name: stilton, port: http, weight: 2}
            - {name: inner, kind: TraefikService, weight: 2}
        ---
        apiVersion: traefik.containo.us/v1alpha1
        kind: IngressRoute
        metadata: {name: nested}
        spec:
          routes:
          - match: Host(`a.example`) && PathPrefix(`/n`)
            priority: 9
            services: [{name: outer, kind: TraefikService}]
          - match: Path("/implicit")
            services:
            - {name: cheddar, port: 80, weight: 3}
            - {name: stilton, port: 80}
          - match: Host(`a.example`)
            services: [{name: wensleydale, port: 80, weight: 0}]
        """,
    )
    nested, implicit, host_only = intent.routes
    assert nested.shares() == pytest.approx({"stilton": 0.5, "cheddar": 0.25, "wensleydale": 0.25})
    assert [b.weight for b in nested.backends] == [2, 1, 1]
    assert nested.priority == 9 and nested.effective_priority == 9
    assert implicit.shares() == pytest.approx({"cheddar": 0.75, "stilton": 0.25})
    assert (implicit.host, implicit.path, implicit.match) == (None, "/implicit", "exact")
    assert implicit.rule == 'Path("/implicit")'
    # A single Kubernetes Service: Traefik ignores its weight.
    assert host_only.backends == (WeightedBackend("wensleydale", 80, 1),)
    assert host_only.path is None
    assert any(f.kind == FINDING_REMOVED_API_GROUP for f in intent.findings)
    assert nested.provider == PROVIDER_CRD and nested.path_type is None


# -- errors: file, line, field, what to do ---------------------------------------------------


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = """
    apiVersion: v1
    kind: Service
    metadata:
      name: [broken
    spec: {}
    """
    message = _error(tmp_path, text)
    assert re.search(r"m\.yaml:\d+: invalid YAML", message), message
    assert "Fix the YAML syntax" in message


def test_unknown_kind_and_api_version(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.k8s.io/v1
    kind: Ingres
    metadata: {name: typo}
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'kind: Ingres')}:" in message
    assert "unknown kind 'Ingres'" in message and "field kind" in message
    text = """
    apiVersion: networking.k8s.io/v2
    kind: Ingress
    metadata: {name: future}
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'apiVersion')}:" in message
    assert "unknown apiVersion 'networking.k8s.io/v2'" in message
    assert "networking.k8s.io/v1" in message


def test_missing_field(tmp_path: Path) -> None:
    text = """
    apiVersion: extensions/v1beta1
    kind: Ingress
    metadata: {name: cheeses}
    spec:
      rules:
      - host: cheeses.minikube
        http:
          paths:
          - path: /cheddar
            backend:
              servicePort: http
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'servicePort: http')}:" in message
    assert "field spec.rules[0].http.paths[0].backend.serviceName" in message
    assert "required field 'serviceName' is missing" in message
    assert "Ingress 'cheeses'" in message


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("traefik.ingress.kubernetes.io/priority", '"high"'),
        ("traefik.ingress.kubernetes.io/router.priority", '"1.5"'),
    ],
)
def test_non_numeric_priority(tmp_path: Path, annotation: str, value: str) -> None:
    text = f"""
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: prio
      annotations:
        {annotation}: {value}
    spec:
      rules:
      - http:
          paths:
          - path: /
            pathType: Prefix
            backend: {{service: {{name: cheddar, port: {{number: 80}}}}}}
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, annotation)}:" in message
    assert f"field metadata.annotations['{annotation}']" in message
    assert "is not a whole number" in message and "Write a number" in message


def test_unquoted_annotation_value(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: prio
      annotations:
        traefik.ingress.kubernetes.io/router.priority: 2
    spec: {}
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'router.priority')}:" in message
    assert 'Quote the value ("2")' in message


WEIGHTS = """
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: cheeses
  annotations:
    traefik.ingress.kubernetes.io/service-weights: |
      cheddar: {cheddar}
      wensleydale: {wensleydale}
spec:
  rules:
  - host: cheeses.minikube
    http:
      paths:
      - path: /
        backend:
          serviceName: cheddar
          servicePort: http
      - path: /
        backend:
          serviceName: wensleydale
          servicePort: http
"""


@pytest.mark.parametrize(
    ("cheddar", "wensleydale", "marker", "problem"),
    [
        ("70%", "20%", "service-weights", "add up to 90%, not 100%"),
        ("80%", "30%", "service-weights", "add up to 110% (more than 100%)"),
        ("75%", "-25%", "wensleydale:", "is negative"),
        ("75.0001%", "24.9999%", "cheddar:", "more than 3 decimals"),
        ("lots", "25%", "cheddar:", "is not a percentage"),
        ("101%", "0%", "cheddar:", "exceeds 100%"),
    ],
)
def test_bad_service_weights(
    tmp_path: Path, cheddar: str, wensleydale: str, marker: str, problem: str
) -> None:
    text = WEIGHTS.replace("{cheddar}", cheddar).replace("{wensleydale}", wensleydale)
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, marker)}:" in message, message
    assert "service-weights" in message and problem in message


def test_service_weights_with_unknown_service(tmp_path: Path) -> None:
    text = WEIGHTS.replace("cheddar: {cheddar}", "chedar: 75%").replace("{wensleydale}", "25%")
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'chedar')}:" in message
    assert "service 'chedar' in service-weights is not a backend" in message


def test_service_weights_good_forms(tmp_path: Path) -> None:
    text = WEIGHTS.replace("{cheddar}", "12.5").replace("{wensleydale}", "87.500%")
    (route,) = _load(tmp_path, text).routes
    assert route.shares() == {"cheddar": 0.125, "wensleydale": 0.875}
    assert [b.weight for b in route.backends] == [1, 7]


def test_missing_backend_service(tmp_path: Path) -> None:
    text = V1_INGRESS.replace("name: cheddar", "name: gouda")
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'name: gouda')}:" in message
    assert "backend Service 'gouda' (namespace 'default') is not in the manifests" in message
    assert "Add its Service object to one of the --manifests files, or fix the name" in message
    # The caller can vouch for it (the harness creates it), or accept any (external mode).
    intent = _load(tmp_path, text, known_services={"gouda"})
    (ref,) = (s for s in intent.services if s.name == "gouda")
    assert not ref.declared and ref.ports[0].name == "http"
    assert _load(tmp_path, text, known_services="*").routes[0].backends[0].port == "http"


def test_unknown_named_port(tmp_path: Path) -> None:
    text = V1_INGRESS.replace("name: http", "name: htp")
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'name: htp')}:" in message
    assert "port 'htp' is not a port of Service 'cheddar' (ports: http=80" in message


@pytest.mark.parametrize(
    "match",
    ["HostRegexp(`.*`)", "Host(`a`) || Path(`/b`)", "PathPrefix(`/a`) && ClientIP(`10.0.0.1`)"],
)
def test_unsupported_rule(tmp_path: Path, match: str) -> None:
    text = f"""
    apiVersion: traefik.io/v1alpha1
    kind: IngressRoute
    metadata: {{name: r}}
    spec:
      routes:
      - match: {match}
        services: [{{name: cheddar, port: 80}}]
    """
    message = _error(tmp_path, text)
    assert f"m.yaml:{_line(text, 'match:')}:" in message
    assert "field spec.routes[0].match" in message and "unsupported" in message
    assert "Path(`...`), PathPrefix(`...`), PathRegexp(`...`), Header/HeaderRegexp" in message


def test_matcher_arguments_and_regexps_are_checked(tmp_path: Path) -> None:
    for match, said in [
        ("PathPrefix(`/a`) && Header(`X`)", "Header(...) in rule"),
        ("Host(`a`, `b`)", "Host(...) in rule"),
        ("PathPrefix(`/a`) && HeaderRegexp(`X`, `(?=y)`)", "RE2 has no lookaround"),
    ]:
        text = f"""
    apiVersion: traefik.io/v1alpha1
    kind: IngressRoute
    metadata: {{name: r}}
    spec:
      routes:
      - match: {match}
        services: [{{name: cheddar, port: 80}}]
    """
        message = _error(tmp_path, text)
        assert f"m.yaml:{_line(text, 'match:')}:" in message and said in message, message


def test_middleware_references(tmp_path: Path) -> None:
    base = V1_INGRESS.replace(
        "  name: shop\n",
        "  name: shop\n  annotations:\n    traefik.ingress.kubernetes.io/router.middlewares: REF\n",
    )
    message = _error(tmp_path, base.replace("REF", "default-strip@kubernetescrd"))
    assert "no Middleware in the manifests matches 'default-strip@kubernetescrd'" in message
    assert f"m.yaml:{_line(base, 'router.middlewares')}:" in message
    message = _error(tmp_path, base.replace("REF", "strip"))
    assert "default-strip@kubernetescrd" in message and "has no provider" in message


def test_duplicate_objects(tmp_path: Path) -> None:
    text = V1_INGRESS + "---\n" + textwrap.dedent(V1_INGRESS).lstrip("\n")
    message = _error(tmp_path, text)
    assert "Ingress 'shop' in namespace 'default' is declared twice (first at" in message


def test_errors_are_manifest_errors_not_tracebacks(tmp_path: Path) -> None:
    bad = [
        "just a string",
        "- a\n- list",
        "kind: Ingress\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: http}]}\n",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec: {rules: 3}\n",
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: r}\n"
        "spec: {routes: [{}]}\n",
        "a: 1\na: 2\n",
        "apiVersion: v1\nkind: !custom Service\nmetadata: {name: s}\n",
    ]
    for text in bad:
        with pytest.raises(ManifestError, match=r"m\.yaml:\d+"):
            _load(tmp_path, text)
    with pytest.raises(ManifestError, match="no such manifest file"):
        load_intent([tmp_path / "absent.yaml"])


# -- rendering -------------------------------------------------------------------------------


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_render_tutorial_cheeses_as_v1(tmp_path: Path) -> None:
    objects = render_manifests(load_scenarios(MANIFESTS)["cheeses"], "harness-test")
    ingresses = _by_kind(objects, "Ingress")
    middlewares = {m["metadata"]["name"]: m for m in _by_kind(objects, "Middleware")}
    # PathPrefixStrip strips each path's own prefix: one Ingress (and Middleware) per path.
    assert [i["metadata"]["name"] for i in ingresses] == [
        "cheeses-root",
        "cheeses-cheddar",
        "cheeses-wensleydale",
    ]
    for ingress in ingresses:
        assert ingress["apiVersion"] == "networking.k8s.io/v1"
        assert ingress["metadata"]["namespace"] == "harness-test"
        ref = ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
        assert ref == f"harness-test-{ingress['metadata']['name']}-strip@kubernetescrd"
        assert f"{ingress['metadata']['name']}-strip" in middlewares
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["pathType"] == "Prefix"
        assert path["backend"]["service"]["port"] == {"number": 80}
    cheddar = middlewares["cheeses-cheddar-strip"]
    assert cheddar["spec"] == {"stripPrefix": {"prefixes": ["/cheddar"]}}
    assert cheddar["apiVersion"] == "traefik.io/v1alpha1"
    # Dependencies first: Middlewares before the Ingresses that use them.
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Ingress") > kinds.index("Middleware")


def test_render_weights_as_traefikservice() -> None:
    objects = render_manifests(load_scenarios(MANIFESTS)["weights"], "t")
    (ts,) = _by_kind(objects, "TraefikService")
    (ir,) = _by_kind(objects, "IngressRoute")
    assert ts["spec"] == {
        "weighted": {
            "services": [
                {"name": "cheddar", "port": 80, "weight": 3},
                {"name": "wensleydale", "port": 80, "weight": 1},
            ]
        }
    }
    (route,) = ir["spec"]["routes"]
    assert route["match"] == "Host(`cheeses.minikube`) && PathPrefix(`/`)"
    assert route["services"] == [{"name": ts["metadata"]["name"], "kind": "TraefikService"}]
    (mw,) = _by_kind(objects, "Middleware")
    assert route["middlewares"] == [{"name": mw["metadata"]["name"]}]
    assert "priority" not in route


def test_render_priority_and_class(tmp_path: Path) -> None:
    objects = render_manifests(
        load_scenarios(MANIFESTS)["priority-explicit"], "t", ingress_class_name="traefik"
    )
    priorities = [
        i["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.priority"]
        for i in objects
        if i["kind"] == "Ingress"
    ]
    assert priorities == ["2", "1"]
    assert all(i["spec"]["ingressClassName"] == "traefik" for i in _by_kind(objects, "Ingress"))


def _semantics(intent: Intent) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r.host,
            r.path,
            r.match,
            r.strip_prefixes,
            r.priority,
            r.rule,
            r.effective_priority,
            r.provider,
            tuple(sorted(r.shares().items())),
        )
        for r in intent.routes
    )


@pytest.mark.parametrize(
    # ingress-nginx's Ingresses are only ever applied as written (Traefik's NGINX provider).
    "scenario",
    sorted(n for n in load_scenarios(MANIFESTS) if not n.startswith("nginx-")),
)
def test_render_round_trip(tmp_path: Path, scenario: str) -> None:
    """Rendered v3 objects read back into the same routes (rule, priority, strip, shares)."""
    intent = load_scenarios(MANIFESTS)[scenario]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(render_manifests(intent, "default")), encoding="utf-8")
    again = load_intent([SERVICES, rendered])
    assert _semantics(again) == _semantics(intent)
    assert not any(
        f.kind in (FINDING_LEGACY_API, FINDING_LEGACY_ANNOTATION) for f in again.findings
    )


RULE_SYNTAX = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: syntax
  annotations:
    traefik.ingress.kubernetes.io/router.rulesyntax: {value}
spec:
  rules:
  - host: "*.wild.test"
    http:
      paths:
      - path: /p
        pathType: Prefix
        backend: {{service: {{name: cheddar, port: {{number: 80}}}}}}
"""


def test_rule_syntax_v3_is_the_default_and_v2_is_refused(tmp_path: Path) -> None:
    (route,) = _load(tmp_path, RULE_SYNTAX.format(value="v3")).routes
    assert (route.host, route.path, route.match) == ("*.wild.test", "/p", "prefix")
    message = _error(tmp_path, RULE_SYNTAX.format(value="v2"))
    assert f"m.yaml:{_line(RULE_SYNTAX, 'rulesyntax')}:" in message
    assert "router.rulesyntax v2 matches differently" in message and "HostRegexp" in message
    assert "invalid router.rulesyntax 'v9'" in _error(tmp_path, RULE_SYNTAX.format(value="v9"))
