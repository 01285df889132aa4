"""Ingresses written for ingress-nginx on the real Traefik's NGINX provider (this module's local
stack runs it beside the Ingress provider, as the plugin's stack does for manifests that hold
such Ingresses):
the routers it builds are the ones the model predicts (names, rules, priorities, the weighted
service of a canary), ingress-nginx's canary examples pass as ingress-nginx documents them, and
a canary-weight-total that Traefik reads differently fails the weights check with a message
naming the annotation and both shares; upstream-vhost, custom-headers, backend-protocol,
server-alias and x-forwarded-prefix reach the backend and the client as modeled, and each changed
behind the oracle's back fails exactly its probes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from applied_verdicts import applied_judgements
from suite_runs import run_pytest

from harness.checks.evidence import Outcome
from harness.checks.exact import applies, judge
from harness.checks.probes import Probe, generate_probes, probe_for
from harness.checks.weights import WeightSettings, check_split
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import FINDING_SERVED_TWICE, PROVIDER_NGINX, Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import TUTORIAL_SERVICES, LocalStack, LocalStackOptions
from harness.traefik.nginx import nginx_response_headers
from harness.traffic.rounds import send_in_rounds

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "harness" / "suites" / "manifests"
MIGRATION = ROOT / "tests" / "manifests" / "nginx" / "migration.yaml"
ANNOTATIONS = ROOT / "tests" / "manifests" / "nginx" / "annotations.yaml"
CANARY_ALIAS = ROOT / "tests" / "manifests" / "nginx" / "canary-alias.yaml"
#: Small, so the split checks stay short: a 50 % versus 5 % difference is far beyond it.
QUICK = WeightSettings(min_deviation=0.05, power=0.95)


def _nginx_scenarios() -> dict[str, Intent]:
    return load_scenarios(MANIFESTS / "nginx")


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack whose Traefik runs the NGINX provider beside the Ingress provider, with
    a backend for every Service of the canary examples and the migration set."""
    intents = [
        *_nginx_scenarios().values(),
        *(load_intent([f]) for f in (MIGRATION, ANNOTATIONS, CANARY_ALIAS)),
    ]
    names = set(TUTORIAL_SERVICES) | {ref.name for i in intents for ref in i.services}
    options = LocalStackOptions(
        services=dict.fromkeys(sorted(names), 1),
        throttle_seconds=0.2,
        nginx_provider="beside",
        # As the plugin's stack: the response headers of the manifests' custom-headers.
        nginx_allowed_response_headers=tuple(
            sorted({h for i in intents for h in nginx_response_headers(i)})
        ),
    )
    stack = LocalStack(options, tmp_path_factory.mktemp("nginx-stack"))
    with stack:
        yield stack


def _routing_verdicts(target: LocalTarget, intent: Intent, name: str) -> dict[str, Any]:
    probes = generate_probes(intent, edge=False)
    run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    return {
        p.id: judge("routing", run.records[p.id], intent, scenario=name)
        for p in probes
        if applies("routing", p)
    }


def test_the_stack_serves_the_nginx_canary_route(local_stack: Any) -> None:
    routers = local_stack.running_traefik().routers()
    assert any(r.get("provider") == PROVIDER_NGINX for r in routers)
    assert "kubernetesingressnginx" in local_stack.running_traefik().describe()["providers"]


def test_traefik_builds_the_routers_and_weights_the_model_predicts(
    local_stack: Any, tmp_path: Path
) -> None:
    intent = load_intent([MANIFESTS / "nginx" / "nginx-canary-by-header.yaml"])
    target = LocalTarget(local_stack)
    target.apply_intent(intent)
    try:
        traefik = local_stack.running_traefik()
        served = {
            str(r["name"]).removesuffix("@kubernetesingressnginx"): r
            for r in traefik.routers()
            if r.get("provider") == PROVIDER_NGINX and "harness" not in str(r["name"])
        }
        predicted = {r.id.split(":", 1)[1]: r for r in intent.served.routes}
        # Each router of the model, with its rule and rule-length priority, and its -tls twin.
        for name, route in predicted.items():
            for key in (name, f"{name}-tls"):
                assert key in served, sorted(served)
                assert served[key]["rule"] == route.rule
                assert served[key]["priority"] == len(route.rule)
        services = httpx.get(f"{traefik.api_url}/api/http/services", timeout=5).json()
        wrr = next(s for s in services if s["name"].endswith("-wrr@kubernetesingressnginx"))
        weights = {w["name"].rsplit("-", 2)[-2]: w["weight"] for w in wrr["weighted"]["services"]}
        main = next(r for r in intent.served.routes if r.id.endswith("path-0"))
        assert sorted(weights.values()) == sorted(b.weight for b in main.backends)
    finally:
        target.remove_intent(intent)


@pytest.mark.parametrize("name", sorted(_nginx_scenarios()))
def test_ingress_nginx_canary_examples_pass_on_traefik(local_stack: Any, name: str) -> None:
    intent = _nginx_scenarios()[name]
    target = LocalTarget(local_stack)
    target.apply_intent(intent)
    try:
        verdicts = _routing_verdicts(target, intent, name)
        failed = [v.message for v in verdicts.values() if not v.passed]
        assert len(verdicts) >= 3 and not failed, "\n\n".join(failed)
        if intent.route_notes:
            pytest.fail(f"{name}: the model expects a difference: {dict(intent.route_notes)}")
        for route in intent.weighted_routes:
            verdict = check_split(target.proxy_url, intent, route, QUICK, scenario=name, n_checks=1)
            assert verdict.outcome is Outcome.PASSED, verdict.message
    finally:
        target.remove_intent(intent)


def _weight_total(tmp_path: Path) -> Path:
    text = (MANIFESTS / "nginx" / "nginx-canary-weight.yaml").read_text()
    text = text.replace(
        'canary-weight: "40"',
        'canary-weight: "5"\n    nginx.ingress.kubernetes.io/canary-weight-total: "10"',
    )
    path = tmp_path / "nginx-canary-weight-total.yaml"
    path.write_text(text)
    return path


def test_a_weight_total_traefik_reads_differently_fails_naming_both_shares(
    local_stack: Any, tmp_path: Path
) -> None:
    intent = load_intent([_weight_total(tmp_path)])
    (route,) = intent.weighted_routes
    assert route.shares() == {"prod": 0.5, "canary": 0.5}
    target = LocalTarget(local_stack)
    target.apply_intent(intent)
    try:
        verdict = check_split(
            target.proxy_url, intent, route, QUICK, scenario="weight-total", n_checks=1
        )
    finally:
        target.remove_intent(intent)
    assert verdict.outcome is Outcome.FAILED
    message = verdict.message
    assert "canary-weight-total 10" in message
    assert "ingress-nginx sends 50% to canary" in message
    assert "max(10, 100) = 100 and sends 5%" in message
    assert "declared  prod 50.00%, canary 50.00%" in message
    measured = verdict.evidence["verdict"]
    canary_share = dict(zip(measured["backends"], measured["observed"], strict=True))["canary"]
    assert canary_share == pytest.approx(0.05, abs=0.01)
    assert f"canary {canary_share:.2%}" in message
    (fate,) = [m for m in intent.migration if m.key.endswith("canary-weight-total")]
    assert fate.fate == "changed" and route.id in fate.routes


def test_a_migration_report_lists_each_annotation_and_the_checks_it_failed(
    local_stack: Any, tmp_path: Path
) -> None:
    """The realistic set, applied to the local Traefik; the routing and priority suites run in
    external mode against it, as a user would run them (one subprocess), and write the report."""
    intent = load_intent([MIGRATION])
    target = LocalTarget(local_stack)
    target.apply_intent(intent)
    report_dir = tmp_path / "report"
    try:
        run = run_pytest(
            ROOT / "harness" / "suites" / "test_routing.py",
            ROOT / "harness" / "suites" / "test_priority.py",
            "-q", "--proxy-url", target.proxy_url, "--manifests", MIGRATION,
            "--report-dir", report_dir, "--baseline", "none", "--probe-rounds", "2",
            timeout=300,
        )  # fmt: skip
    finally:
        target.remove_intent(intent)
    assert run.returncode == 1, run.output
    results = run.results(report_dir)
    failed = {c["subject"]["route"] for c in results["checks"] if c["outcome"] == "failed"}
    fates = {(m["ingress"], m["key"].rsplit("/", 1)[1]): m for m in results["migration"]}
    assert {k: m["fate"] for k, m in fates.items()} == {
        ("shop", "limit-rate"): "ignored",
        ("shop", "proxy-read-timeout"): "honoured",
        ("shop-canary", "canary"): "honoured",
        ("shop-canary", "canary-by-header"): "changed",
        ("api", "use-regex"): "changed",
        ("rewrite", "rewrite-target"): "honoured",
        ("legacy-api", "rewrite-target"): "changed",
    }
    # Every failed check is one a changed annotation's routes explain; none an honoured one's.
    explained = {r for m in fates.values() if m["fate"] == "changed" for r in m["routes"]}
    assert failed and failed <= explained, (failed, explained)
    assert "api-status:api.test/status" in failed  # Exact /status loses to the regex /
    assert "api:api.test/v[0-9]+/users" in failed  # the canary router outranks it
    assert not failed & set(fates["rewrite", "rewrite-target"]["routes"])
    # The failure names both behaviours and what is responsible.
    assert "ingress-nginx serves it first (location = /status)" in run.output
    assert "traefik   Traefik's NGINX provider (model, 3.7.15): router" in run.output
    html = (report_dir / "index.html").read_text()
    section = html.split('<section id="migration">', 1)[1].split("</section>", 1)[0]
    assert "limit-rate: 512" in section and "<b>ignored</b>" in section
    assert section.count('class="fate-changed"') == 3
    # The failed checks, linked to their blocks.
    links = re.findall(r'<a href="#[^"]+">([^<]*)</a>', section)
    assert len(links) >= len(failed) and any("api.test/status" in t for t in links), links
    # Escaped, never markup: the field paths' quotes come out as entities.
    assert "annotations[&#39;nginx.ingress.kubernetes.io/use-regex&#39;]" in section


def test_the_nginx_provider_alone_serves_and_reloads(tmp_path: Path) -> None:
    """Without Traefik's Ingress provider (a stack of its own): ready on the NGINX provider's
    canary, reloaded by moving it, and a scenario applied and removed."""
    options = LocalStackOptions(services={"prod": 1, "canary": 1}, nginx_provider="alone")
    with LocalStack(options, tmp_path / "alone") as stack:
        traefik = stack.running_traefik()
        providers = {r.get("provider") for r in traefik.routers()}
        assert PROVIDER_NGINX in providers and "kubernetes" not in providers
        stack.reload_traefik()
        assert any(
            r.get("provider") == PROVIDER_NGINX and "canary-1.harness.invalid" in str(r["rule"])
            for r in traefik.routers()
        )
        intent = load_intent([MANIFESTS / "nginx" / "nginx-canary-weight.yaml"])
        target = LocalTarget(stack)
        target.apply_intent(intent)
        target.remove_intent(intent)


#: The routes Traefik serves otherwise because of server-alias (the model's notes say why).
ALIAS_LOST = ("front-api:front.test/api", "front-api:www.front.test/api")
LEGACY = "legacy:legacy.test/legacy"
#: What fails with the annotations applied as written: each a departure the model notes.
AS_DECLARED = {**{r: {"routing"} for r in ALIAS_LOST}, LEGACY: {"strip"}}


def _probes(intent: Intent, legacy: str = LEGACY) -> tuple[Probe, ...]:
    """The generated probes, and one under /legacy (a regex path's probes stay at its match)."""
    extra = probe_for(intent, intent.route(legacy), "/legacy/v2/users")
    return (*generate_probes(intent, edge=False), extra)


def _failed_routes(verdicts: dict[tuple[str, str], Any]) -> dict[str, set[str]]:
    """Route id → the aspects of its failed probes."""
    out: dict[str, set[str]] = {}
    for (_, aspect), v in verdicts.items():
        if v.outcome is Outcome.FAILED:
            out.setdefault(v.subject["route"], set()).add(aspect)
    return out


def test_the_annotations_reach_backend_and_client_as_modeled(local_stack: Any) -> None:
    """What the backend sees (Host, path, X-Forwarded-Prefix) and the client gets (response
    headers) on the binary: Traefik's side of the model holds for every probe, and ingress-nginx's
    fails only where server-alias departs, with a message naming the annotation and both sides."""
    intent = load_intent([ANNOTATIONS])
    target = LocalTarget(local_stack)
    aspects = ("routing", "strip")
    assert intent.effective is not None
    served = _probes(intent.effective, "legacy:default-legacy-rule-0-path-0")
    on_traefik = applied_judgements(target, served, intent.effective, intent, "served", aspects)
    failed = [v.message for v in on_traefik.values() if not v.passed]
    assert len(on_traefik) >= 10 and not failed, "\n\n".join(failed)
    # The observables the annotations set, as the backend and the client saw them.
    observed = {
        (v.probe.host, v.probe.path): obs
        for v in on_traefik.values()
        if v.aspect == "strip"
        for obs, _, _ in v.observed
    }
    front = observed["front.test", "/"]
    assert front.host == "internal.front"
    assert dict(front.response_headers) == {"X-Frame-Options": "DENY", "X-Served-By": "front"}
    app = next(o for (h, path), o in observed.items() if h == "app.test" and path != "/app")
    assert app.forwarded_prefix == "/app" and app.upstream_path != "/app"

    declared = _probes(intent)
    verdicts = applied_judgements(target, declared, intent, intent, "annotations", aspects)
    lost = {m.routes for m in intent.migration if m.key.endswith("server-alias")}
    # The alias's rule is longer than /api's: Traefik's / router answers /api on both hosts;
    # under /legacy Traefik keeps the rest of the path, in the path and in X-Forwarded-Prefix.
    assert _failed_routes(verdicts) == {**AS_DECLARED, LEGACY: {"strip"}}
    legacy = [v for v in verdicts.values() if v.outcome is Outcome.FAILED and v.aspect == "strip"]
    assert {v.probe.path for v in legacy} == {
        p.path for p in declared if p.path.startswith("/legacy/")
    }
    for v in legacy:
        (obs,) = [o for o, _, _ in v.observed]
        assert obs.upstream_path == "/v1" + v.probe.path.removeprefix("/legacy")
        assert obs.forwarded_prefix == v.probe.path
        assert (
            "x-forwarded-prefix /legacy: ingress-nginx sets X-Forwarded-Prefix to /legacy"
            in v.message
        )
        assert f"X-Forwarded-Prefix {v.probe.path}" in v.message  # Traefik's side, in the message
    assert any(set(ALIAS_LOST) <= set(routes) for routes in lost)
    messages = "\n".join(v.message for v in verdicts.values() if v.outcome is Outcome.FAILED)
    assert "server-alias www.front.test (Ingress 'front')" in messages
    assert "server-alias of Ingress 'front' lengthens its router's rule" in messages
    assert "traefik   Traefik's NGINX provider (model, 3.7.15): router" in messages
    assert "decides: cheddar as /api" in messages


@pytest.mark.parametrize(
    ("old", "new", "fails"),
    [
        (
            "upstream-vhost: internal.front",
            "upstream-vhost: other.front",
            {"front:front.test/": {"strip"}, "front:www.front.test/": {"strip"}},
        ),
        (
            "X-Served-By: front",
            "X-Served-By: back",
            {"front:front.test/": {"strip"}, "front:www.front.test/": {"strip"}},
        ),
        (
            "x-forwarded-prefix: /app",
            "x-forwarded-prefix: /application",
            {"app:app.test/app(/|$)(.*)": {"strip"}},
        ),
        (
            "server-alias: www.front.test",
            "server-alias: www2.front.test",
            {"front:www.front.test/": {"routing"}},  # 404 there: no strip to judge
        ),
        (
            # Not in globalAllowedResponseHeaders: the provider sends the paths to an
            # unavailable service (503), so no backend answers and there is no strip to judge.
            "X-Served-By: front",
            "X-Unlisted: front",
            {"front:front.test/": {"routing"}, "front:www.front.test/": {"routing"}},
        ),
    ],
    ids=[
        "upstream-vhost",
        "custom-headers",
        "x-forwarded-prefix",
        "server-alias",
        "unlisted-header",
    ],
)
def test_an_annotation_changed_behind_the_oracles_back_fails_exactly_its_probes(
    local_stack: Any, tmp_path: Path, old: str, new: str, fails: dict[str, set[str]]
) -> None:
    intent = load_intent([ANNOTATIONS])
    text = ANNOTATIONS.read_text()
    assert text.count(old) == 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace(old, new))
    verdicts = applied_judgements(
        LocalTarget(local_stack),
        _probes(intent),
        intent,
        load_intent([changed]),
        "changed",
        ("routing", "strip"),
    )
    # /api and /legacy/... fail already as declared (see the test above).
    assert _failed_routes(verdicts) == {**AS_DECLARED, **fails}


def test_the_plugins_local_target_serves_the_annotations_and_reports_their_fates(
    tmp_path: Path,
) -> None:
    """The suites on the plugin's own local target (one subprocess, as a user runs them): it
    applies the custom-headers ConfigMap and allows its headers on the NGINX provider, so only
    the departures fail, each explained by a changed annotation."""
    report_dir = tmp_path / "report"
    run = run_pytest(
        ROOT / "harness" / "suites" / "test_routing.py",
        ROOT / "harness" / "suites" / "test_strip.py",
        "-q", "--manifests", ANNOTATIONS, "--report-dir", report_dir, "--baseline", "none",
        "--probe-rounds", "2",
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.output
    results = run.results(report_dir)
    failed = {c["subject"]["route"] for c in results["checks"] if c["outcome"] == "failed"}
    # /legacy/... through the strip suite's edge probes (paths below a regex path).
    assert failed == {*ALIAS_LOST, LEGACY}, run.output
    changed = {r for m in results["migration"] if m["fate"] == "changed" for r in m["routes"]}
    assert failed <= changed
    passed = {c["subject"]["route"] for c in results["checks"] if c["outcome"] == "passed"}
    assert {"front:front.test/", "front:www.front.test/", "app:app.test/app(/|$)(.*)"} <= passed
    fates = {m["key"].rsplit("/", 1)[1]: m for m in results["migration"] if m["ingress"] == "front"}
    assert fates["server-alias"]["fate"] == "changed"
    assert set(ALIAS_LOST) <= set(fates["server-alias"]["routes"])
    assert {fates[k]["fate"] for k in ("upstream-vhost", "custom-headers", "backend-protocol")} == {
        "honoured"
    }


def test_nginx_without_class_reads_a_classless_ingress_as_ingress_nginxs(tmp_path: Path) -> None:
    """--nginx-without-class on the plugin's local target: the NGINX provider serves the
    class-less Ingress (its upstream-vhost reaches the backend), and so does Traefik's Ingress
    provider, whose character-wise PathPrefix answers /cheeseX where ingress-nginx has no
    location: that check fails naming the other provider's router."""
    manifests = ROOT / "tests" / "manifests" / "nginx" / "classless.yaml"
    report_dir = tmp_path / "report"
    run = run_pytest(
        ROOT / "harness" / "suites" / "test_routing.py",
        ROOT / "harness" / "suites" / "test_strip.py",
        "-q", "--manifests", manifests, "--nginx-without-class=true", "--report-dir",
        report_dir, "--baseline", "none", "--probe-rounds", "2",
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.output
    results = run.results(report_dir)
    assert results["parameters"]["nginx_without_class"] is True
    outcomes = {c["subject"]["label"]: c["outcome"] for c in results["checks"]}
    checks = {(c["evidence"].get("probe_id"), c["outcome"]) for c in results["checks"]}
    assert ("classless.test/cheeseX", "failed") in checks, outcomes
    assert ("classless.test/cheese", "passed") in checks  # the Host internal.cheese included
    assert any(f["kind"] == FINDING_SERVED_TWICE for f in results["findings"])
    assert "the kubernetes provider serves the Ingress too" in run.output


def test_a_canary_of_an_aliased_host_answers_on_the_alias_too(local_stack: Any) -> None:
    """Applying waits for the weighted service of each alias's router (one router, named
    after the Ingress path); the header probes and the split pass on both hosts."""
    intent = load_intent([CANARY_ALIAS])
    assert {r.host for r in intent.weighted_routes} == {"a.test", "www.a.test"}
    target = LocalTarget(local_stack)
    verdicts = applied_judgements(target, generate_probes(intent, edge=False), intent, intent, "ca")
    failed = [v.message for v in verdicts.values() if not v.passed]
    assert {v.probe.host for v in verdicts.values()} >= {"a.test", "www.a.test"}
    assert not failed, "\n\n".join(failed)
    target.apply_intent(intent)
    try:
        for route in intent.weighted_routes:
            verdict = check_split(target.proxy_url, intent, route, QUICK, scenario="ca", n_checks=2)
            assert verdict.outcome is Outcome.PASSED, verdict.message
    finally:
        target.remove_intent(intent)
