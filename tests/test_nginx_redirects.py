"""The redirect annotations of Ingresses written for ingress-nginx on the real Traefik's NGINX
provider (this module's own local stack): Traefik builds the routers the model predicts (the
app-root router included), every probe passes where the model says Traefik answers as
ingress-nginx documents and fails, naming the annotation and both answers, where it says
Traefik departs, and a redirect changed behind the oracle's back fails exactly its probes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from applied_verdicts import routing_verdicts

from harness.checks.exact import applies, judge
from harness.checks.probes import generate_probes
from harness.intent.dialects import load_intent
from harness.intent.model import PROVIDER_NGINX, Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack, LocalStackOptions
from harness.traefik.nginx import traefik_side
from harness.traefik.oracle import expect
from harness.traffic.rounds import send_in_rounds

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
REDIRECTS = ROOT / "tests" / "manifests" / "nginx" / "redirects.yaml"
#: The hosts of the Ingresses whose redirects Traefik answers as ingress-nginx does.
HONOURED = {"www.test", "api.test", "old.test", "promo.test", "plain.test", "www.shop.test"}
#: The hosts where the model predicts a departure, and what the failure names.
DEPARTING = {
    "status.test": "temporal-redirect-code 308: ingress-nginx takes 300-307 only",
    "secure.test": "force-ssl-redirect: ingress-nginx drops a trailing /",
    "docs.test": "permanent-redirect https://new.test/docs on a regex host",
    "pay.test": "permanent-redirect with force-ssl-redirect",
    "portal.test": "app-root /portal: ingress-nginx answers / of the host with 302",
}


@pytest.fixture(scope="module")
def redirects() -> Intent:
    return load_intent([REDIRECTS])


@pytest.fixture(scope="module")
def local_stack(
    tmp_path_factory: pytest.TempPathFactory, redirects: Intent
) -> Iterator[LocalStack]:
    """A local stack whose Traefik runs the NGINX provider beside the Ingress provider."""
    names = sorted({ref.name for ref in redirects.services})
    options = LocalStackOptions(
        services=dict.fromkeys(names, 1), throttle_seconds=0.2, nginx_provider="beside"
    )
    with LocalStack(options, tmp_path_factory.mktemp("nginx-redirects")) as stack:
        yield stack


def test_traefik_builds_the_redirect_routers_the_model_predicts(
    local_stack: Any, redirects: Intent
) -> None:
    target = LocalTarget(local_stack)
    target.apply_intent(redirects)
    try:
        served = {
            str(r["name"]).removesuffix("@kubernetesingressnginx"): r
            for r in local_stack.running_traefik().routers()
            if r.get("provider") == PROVIDER_NGINX and "harness" not in str(r["name"])
        }
        # A port in the Host: Traefik keeps it, as the model of the provider says.
        answer = httpx.get(
            target.proxy_url + "/a/", headers={"Host": "www.shop.test:8000"}, timeout=5
        )
        assert answer.status_code == 308
        assert answer.headers["location"] == "http://shop.test:8000/a"
        assert redirects.effective is not None
        assert (
            expect(redirects.effective, "www.shop.test:8000", "/a/").location
            == (answer.headers["location"])
        )
    finally:
        target.remove_intent(redirects)
    predicted = {r.id.split(":", 1)[1]: r for r in redirects.served.routes}
    assert "default-api-rule-0-path-0-app-root-redirect" in predicted
    for name, route in predicted.items():
        assert name in served, sorted(served)
        assert served[name]["rule"] == route.rule
    # The model's routers are the non-TLS ones; Traefik builds a -tls twin of each.
    twin = r"-tls(-app-root-redirect|-from-to-www-redirect)?$"
    assert {re.sub(twin, r"\1", n) for n in served} == set(predicted)


def test_each_redirect_answers_as_modeled_and_a_departure_names_both(
    local_stack: Any, redirects: Intent
) -> None:
    target = LocalTarget(local_stack)
    probes = [p for p in generate_probes(redirects, edge=False) if applies("routing", p)]
    target.apply_intent(redirects)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(redirects)
    assert redirects.effective is not None
    failed: dict[str, list[str]] = {}
    for p in probes:
        verdict = judge("routing", run.records[p.id], redirects, scenario="redirects")
        departs = traefik_side(redirects.effective, p) is not None
        assert verdict.passed is not departs, (p.id, verdict.message)
        if departs:
            failed.setdefault(p.host, []).append(verdict.message)
    redirected = [p for p in probes if p.expectation.outcome == "redirect"]
    assert {p.host for p in redirected} >= HONOURED - {"plain.test"}
    assert set(failed) == set(DEPARTING), sorted(failed)
    for host, names in DEPARTING.items():
        message = failed[host][0]
        assert names in message, message
        assert "traefik   Traefik's NGINX provider (model, 3.7.15)" in message
        assert "redirect to" in message
    status = next(m for m in failed["status.test"] if m.split("\n")[0].endswith("status.test/"))
    assert "expected  302 redirect to https://status.example.com/" in status
    assert "decides: 308 redirect to https://status.example.com/" in status


def _changed(tmp_path: Path) -> Path:
    text = REDIRECTS.read_text()
    for old, new in (
        ('permanent-redirect: "https://new.test/"', 'permanent-redirect: "https://else.test/"'),
        ('app-root: "/home"', 'app-root: "/start"'),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "redirects-changed.yaml"
    path.write_text(text)
    return path


def test_a_redirect_changed_behind_the_oracles_back_fails_exactly_its_probes(
    local_stack: Any, redirects: Intent, tmp_path: Path
) -> None:
    target = LocalTarget(local_stack)
    probes = generate_probes(redirects, edge=False)
    as_declared = routing_verdicts(target, probes, redirects, redirects, "redirects")
    changed = routing_verdicts(
        target, probes, redirects, load_intent([_changed(tmp_path)]), "redirects"
    )
    newly_failed = {pid for pid, ok in changed.items() if as_declared[pid] and not ok}
    by_id = {p.id: p for p in probes}
    expected = {
        p.id
        for p in probes
        if p.id in changed and (p.host == "old.test" or (p.host == "www.test" and p.path == "/"))
    }
    assert expected and newly_failed == expected, sorted(
        (by_id[i].host, by_id[i].path) for i in newly_failed ^ expected
    )
