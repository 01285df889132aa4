"""Every modeled Middleware type, end to end on the local target: the user's manifests are
applied as written, the oracle reads the same bytes, and every routing and strip verdict passes;
then a changed Middleware is applied behind the oracle's back (the manifests still declare the
original) and exactly the check that sees the change fails, naming the Middleware and both
values. Without the stack: inert types are accepted and said to be, and what the dialects
refuse names file:line:field."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from suite_runs import run_pytest

from harness.checks.exact import ExactVerdict, applies, judge
from harness.checks.probes import REMOVED_HEADER_VALUE, generate_probes
from harness.errors import ManifestError
from harness.intent.dialects import load_intent
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.traffic.rounds import send_in_rounds

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "cheddar"},
    "spec": {"ports": [{"name": "http", "port": 80}]},
}


def _middleware(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": name},
        "spec": spec,
    }


def _ingress(names: list[str]) -> dict[str, Any]:
    """An Ingress on mw.test/api through the Middlewares ``names`` (router.middlewares)."""
    refs = ",".join(f"default-{n}@kubernetescrd" for n in names)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "mw",
            "annotations": {"traefik.ingress.kubernetes.io/router.middlewares": refs},
        },
        "spec": {
            "rules": [
                {
                    "host": "mw.test",
                    "http": {
                        "paths": [
                            {
                                "path": "/api",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "cheddar", "port": {"name": "http"}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }


def _ingressroute(names: list[str]) -> dict[str, Any]:
    """The same route as an IngressRoute (its own ``middlewares`` list)."""
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "mw"},
        "spec": {
            "routes": [
                {
                    "match": "Host(`mw.test`) && PathPrefix(`/api`)",
                    "middlewares": [{"name": n} for n in names],
                    "services": [{"name": "cheddar", "port": 80}],
                }
            ]
        },
    }


@dataclass(frozen=True)
class Case:
    """Middlewares (name -> spec) a route uses in order, and a change that one check catches."""

    name: str
    middlewares: dict[str, dict[str, Any]]
    #: The Middleware changed behind the oracle's back, and its changed spec.
    changed: tuple[str, dict[str, Any]]
    #: The aspect that must fail with the change, and what its message must say.
    fails: str
    says: tuple[str, ...]
    #: The route's middlewares are referenced by the router (default: all, in order).
    used: tuple[str, ...] = ()
    ingressroute: bool = False

    def manifest(self, tmp_path: Path, *, changed: bool) -> Path:
        specs = copy.deepcopy(self.middlewares)
        if changed:
            specs[self.changed[0]] = self.changed[1]
        used = list(self.used or specs)
        route = _ingressroute(used) if self.ingressroute else _ingress(used)
        docs = [SERVICE, *(_middleware(n, s) for n, s in specs.items()), route]
        path = tmp_path / f"{self.name}{'-changed' if changed else ''}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), "utf-8")
        return path


STRIP = {"stripPrefix": {"prefixes": ["/api"]}}
CASES = [
    Case(
        "stripPrefix",
        {"strip": STRIP},
        ("strip", {"stripPrefix": {"prefixes": ["/ap"]}}),
        "strip",
        ("upstream path: expected /x, observed /i/x", "set by default/strip (stripPrefix)"),
    ),
    Case(
        "stripPrefix-forceSlash",
        {
            "strip": {"stripPrefix": {"prefixes": ["/api"], "forceSlash": True}},
            "add": {"addPrefix": {"prefix": "/v1"}},
        },
        ("strip", STRIP),
        "strip",
        ("upstream path: expected /v1/, observed /v1",),
    ),
    Case(
        "stripPrefixRegex",
        {"strip": {"stripPrefixRegex": {"regex": ["/a[p]i"]}}},
        ("strip", {"stripPrefixRegex": {"regex": ["/a"]}}),
        "strip",
        ("X-Forwarded-Prefix: expected /api, observed /a", "default/strip (stripPrefixRegex)"),
        ingressroute=True,
    ),
    Case(
        "addPrefix",
        {"add": {"addPrefix": {"prefix": "/v1"}}},
        ("add", {"addPrefix": {"prefix": "/v2"}}),
        "strip",
        ("expected /v1/api/x, observed /v2/api/x", "set by default/add (addPrefix)"),
    ),
    Case(
        "replacePath",
        {"replace": {"replacePath": {"path": "/new"}}},
        ("replace", {"replacePath": {"path": "/old"}}),
        "strip",
        ("expected /new, observed /old", "default/replace (replacePath)"),
        ingressroute=True,
    ),
    Case(
        "replacePathRegex",
        {"rx": {"replacePathRegex": {"regex": "^/api/(.*)", "replacement": "/v2/$1"}}},
        ("rx", {"replacePathRegex": {"regex": "^/api/(.*)", "replacement": "/v3/$1"}}),
        "strip",
        ("expected /v2/x, observed /v3/x", "default/rx (replacePathRegex)"),
    ),
    Case(
        "redirectScheme",
        {"https": {"redirectScheme": {"scheme": "https", "permanent": True}}},
        ("https", {"redirectScheme": {"scheme": "https"}}),
        "routing",
        ("status: expected 301, observed 302", "set by default/https (redirectScheme)"),
    ),
    Case(
        "redirectRegex",
        {"moved": {"redirectRegex": {"regex": "^http://([^/]+)/api/(.*)", "replacement": "/r/$2"}}},
        ("moved", {"redirectRegex": {"regex": "^http://([^/]+)/api/(.*)", "replacement": "/s/$2"}}),
        "routing",
        ("Location: expected /r/x, observed /s/x", "default/moved (redirectRegex)"),
        ingressroute=True,
    ),
    Case(
        "headers-request",
        {"h": {"headers": {"customRequestHeaders": {"X-Tenant": "blue", "X-Drop": ""}}}},
        ("h", {"headers": {"customRequestHeaders": {"X-Tenant": "red"}}}),
        "strip",
        (
            "request header X-Tenant: expected blue, observed red",
            f"request header X-Drop: expected absent, observed {REMOVED_HEADER_VALUE}",
            "set by default/h (headers)",
        ),
    ),
    Case(
        "headers-host",
        {"h": {"headers": {"customRequestHeaders": {"Host": "inner.test"}}}},
        ("h", {"headers": {"customRequestHeaders": {"Host": "other.test"}}}),
        "strip",
        ("Host: expected inner.test, observed other.test", "set by default/h (headers)"),
        ingressroute=True,
    ),
    Case(
        "headers-response",
        {"h": {"headers": {"customResponseHeaders": {"X-Served-By": "edge"}}}},
        ("h", {"headers": {"customResponseHeaders": {"X-Served-By": "other"}}}),
        "strip",
        ("response header X-Served-By: expected edge, observed other", "default/h (headers)"),
    ),
    Case(
        "chain",
        {
            "both": {"chain": {"middlewares": [{"name": "strip"}, {"name": "add"}]}},
            "strip": STRIP,
            "add": {"addPrefix": {"prefix": "/v1"}},
        },
        ("both", {"chain": {"middlewares": [{"name": "add"}, {"name": "strip"}]}}),
        "strip",
        ("expected /v1/x, observed /v1/api/x", "default/add (addPrefix, in chain default/both)"),
        used=("both",),
        ingressroute=True,
    ),
]


def _verdicts(target: LocalTarget, declared: Intent, applied: Intent) -> list[ExactVerdict]:
    """Every routing and strip verdict on ``declared``'s probes, with ``applied`` on Traefik."""
    probes = generate_probes(declared)
    target.apply_intent(applied)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(applied)
    return [
        judge(aspect, run.records[p.id], declared, scenario="mw")
        for p in probes
        for aspect in ("routing", "strip")
        if applies(aspect, p)
    ]


@pytest.mark.stack
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_middleware_passes_as_declared_and_a_changed_one_fails_its_check(
    case: Case, local_stack: Any, tmp_path: Path
) -> None:
    declared = load_intent([case.manifest(tmp_path, changed=False)])
    target = LocalTarget(local_stack)
    correct = _verdicts(target, declared, declared)
    failing = [v for v in correct if not v.passed]
    assert not failing, "\n\n".join(v.message for v in failing)

    changed = load_intent([case.manifest(tmp_path, changed=True)])
    verdicts = _verdicts(target, declared, changed)
    failed = [v for v in verdicts if v.outcome == "failed"]
    assert failed and {v.aspect for v in failed} == {case.fails}, [v.summary() for v in verdicts]
    others = {str(v.outcome) for v in verdicts if v.aspect != case.fails}
    assert others <= {"passed"}
    messages = "\n".join(v.message for v in failed)
    for text in case.says:
        assert text in messages, messages


# -- without traffic: inert and refused --------------------------------------------------------


def _load(tmp_path: Path, middlewares: dict[str, dict[str, Any]]) -> Intent:
    case = Case("load", middlewares, ("", {}), "", ())
    return load_intent([case.manifest(tmp_path, changed=False)])


@pytest.mark.parametrize(
    "spec",
    [
        {"compress": {}},
        {"contentType": {}},
        {"retry": {"attempts": 2}},
        {"buffering": {"maxRequestBodyBytes": 1000}},
        {"headers": {"stsSeconds": 60, "frameDeny": True}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_inert_middlewares_are_accepted_and_said_to_be(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    intent = _load(tmp_path, {"m": spec})
    (route,) = intent.routes
    assert [m.kind for m in route.middlewares] == [next(iter(spec))]
    probe = next(p for p in generate_probes(intent) if p.path == "/api/x")
    # Nothing the probe observes changes: path and Host as sent, no header touched.
    c = probe.expectation.decided_by
    assert c is not None and (c.upstream_path, c.host_header) == ("/api/x", "mw.test")
    assert c.request_headers == () and c.response_headers == ()
    if "headers" not in spec:
        assert any("accepted as inert" in f.message for f in intent.findings)


def _refusal(tmp_path: Path, middlewares: dict[str, dict[str, Any]]) -> str:
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, middlewares)
    return str(info.value)


def _line(tmp_path: Path, marker: str) -> int:
    text = (tmp_path / "load.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(text, 1) if marker in line)


@pytest.mark.parametrize(
    ("spec", "marker", "field", "says"),
    [
        ({"basicAuth": {"secret": "s"}}, "basicAuth:", "spec.basicAuth", "answers 401"),
        ({"ipAllowList": {"sourceRange": ["1.2.3.4"]}}, "ipAllowList:", "spec.ipAllowList", "403"),
        ({"rateLimit": {"average": 1}}, "rateLimit:", "spec.rateLimit", "429"),
        ({"plugin": {"x": {}}}, "plugin:", "spec.plugin", "cannot model"),
        ({"addPrefix": {"prefix": ""}}, "prefix:", "spec.addPrefix.prefix", "cannot be empty"),
        (
            {"headers": {"allowedHosts": ["a.test"]}},
            "allowedHosts:",
            "spec.headers.allowedHosts",
            "answer 500",
        ),
        (
            {"stripPrefix": {"prefixes": ["/a"], "forcSlash": True}},
            "forcSlash:",
            "spec.stripPrefix.forcSlash",
            "not a field of stripPrefix",
        ),
    ],
    ids=["basicAuth", "ipAllowList", "rateLimit", "plugin", "empty-prefix", "allowedHosts", "typo"],
)
def test_refused_middlewares_name_file_line_and_field(
    spec: dict[str, Any], marker: str, field: str, says: str, tmp_path: Path
) -> None:
    message = _refusal(tmp_path, {"m": spec})
    assert f"load.yaml:{_line(tmp_path, marker)}: document 2 Middleware 'm', field {field}:" in (
        message
    )
    assert says in message


def test_chains_are_refused_where_traefik_refuses_them(tmp_path: Path) -> None:
    loop = {"a": {"chain": {"middlewares": [{"name": "b"}]}}, "b": {"chain": {"middlewares": [
        {"name": "a"}
    ]}}}  # fmt: skip
    assert "recursion in chain" in _refusal(tmp_path, loop)
    other_ns = {"a": {"chain": {"middlewares": [{"name": "b", "namespace": "elsewhere"}]}}}
    assert "cross-namespace" in _refusal(tmp_path, other_ns)


# -- as a user runs it ---------------------------------------------------------------------------

SUITE_MANIFEST = {
    "rewrite": {"addPrefix": {"prefix": "/v1"}},
    "tenant": {"headers": {"customRequestHeaders": {"X-Tenant": "blue", "X-Drop": ""}}},
    "https": {"redirectScheme": {"scheme": "https", "permanent": True}},
}


@pytest.mark.stack
@pytest.mark.slow
def test_suites_verify_middlewares_as_written(tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [SERVICE]
    docs += [_middleware(n, s) for n, s in SUITE_MANIFEST.items()]
    docs.append(_ingress(["rewrite", "tenant"]))
    secure = _ingressroute(["https"])
    secure["metadata"]["name"] = "secure"
    secure["spec"]["routes"][0]["match"] = "Host(`secure.test`)"
    docs.append(secure)
    manifest = tmp_path / "mw.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False), "utf-8")
    out = tmp_path / "report"
    run = run_pytest(
        "harness/suites/test_routing.py::test_routing", "harness/suites/test_strip.py::test_strip",
        "--manifests", manifest, "--probe-rounds", "2", "--report-dir", out, "--baseline", "none",
    )  # fmt: skip
    assert run.returncode == 0, run.output[-4000:]
    checks = run.results(out)["checks"]  # validated against results.schema.json
    assert {c["outcome"] for c in checks} == {"passed"}
    by_probe = {(c["kind"], c["evidence"]["probe_id"]): c["evidence"] for c in checks}
    seen = by_probe[("strip", "mw.test/api/x")]["observed"][0]
    assert seen["upstream_path"] == "/v1/api/x"
    assert seen["request_headers"] == {"X-Drop": [], "X-Tenant": ["blue"]}
    redirect = by_probe[("routing", "secure.test/x")]["observed"][0]
    assert (redirect["status"], redirect["location"]) == (301, "https://secure.test/x")
    html = (out / "index.html").read_text("utf-8")
    assert "to https://secure.test/x" in html and "X-Tenant: blue" in html


def test_ingress_middlewares_resolve_by_id_in_any_namespace_and_other_providers_are_refused(
    tmp_path: Path,
) -> None:
    shared = _middleware("add", {"addPrefix": {"prefix": "/v1"}})
    shared["metadata"]["namespace"] = "shared"
    ingress = _ingress(["strip"])
    refs = "default-strip@kubernetescrd,shared-add@kubernetescrd"
    ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] = refs
    path = tmp_path / "ns.yaml"
    path.write_text(
        yaml.safe_dump_all([SERVICE, _middleware("strip", STRIP), shared, ingress]), "utf-8"
    )
    (route,) = load_intent([path]).routes
    assert [m.label for m in route.middlewares] == [
        "default/strip (stripPrefix)",
        "shared/add (addPrefix)",
    ]
    ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] = (
        "auth@file"
    )
    path.write_text(yaml.safe_dump_all([SERVICE, ingress]), "utf-8")
    with pytest.raises(ManifestError, match="comes from provider 'file'"):
        load_intent([path])
