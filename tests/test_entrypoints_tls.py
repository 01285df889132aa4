"""Entry points and TLS: read from the manifests, modeled by the oracle, verified on the local
target's ``web`` and ``websecure`` with the harness's generated certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from applied_verdicts import routing_judgements
from suite_runs import run_pytest

from harness.checks.probes import generate_probes
from harness.errors import ManifestError, TargetUnreachable
from harness.intent.dialects import load_intent
from harness.intent.model import FINDING_TLS_WITHOUT_ROUTER_TLS, Intent
from harness.targets.base import ExternalTarget, LocalTarget
from harness.traefik.entrypoints import Arrival, local_arrivals, serves
from harness.traefik.process import LOOPBACK, free_port
from harness.traffic.tls import TLSVerify

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: cheddar
spec:
  ports:
  - name: http
    port: 80
---
"""
WEBSECURE_ONLY = (
    SERVICE
    + """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  annotations:
    traefik.ingress.kubernetes.io/router.entrypoints: websecure
    traefik.ingress.kubernetes.io/router.tls: "true"
spec:
  tls:
  - hosts: [secure.test]
    secretName: secure-tls
  rules:
  - host: secure.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: cheddar
            port:
              number: 80
"""
)
INGRESSROUTE = (
    SERVICE
    + """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: secure-crd
spec:
  entryPoints: [websecure]
  tls:
    certResolver: letsencrypt
  routes:
  - match: Host(`crd.test`)
    kind: Rule
    services:
    - name: cheddar
      port: 80
"""
)


def _load(tmp_path: Path, text: str) -> Intent:
    path = tmp_path / "m.yaml"
    path.write_text(text, "utf-8")
    return load_intent([path])


def test_entry_points_and_tls_are_read(tmp_path: Path) -> None:
    (route,) = _load(tmp_path, WEBSECURE_ONLY).routes
    assert (route.entry_points, route.tls, route.tls_secrets) == (
        ("websecure",),
        True,
        ("secure-tls",),
    )
    crd = _load(tmp_path, INGRESSROUTE.replace("    certResolver: letsencrypt\n", "    {}\n"))
    assert (crd.routes[0].entry_points, crd.routes[0].tls) == (("websecure",), True)


def test_ingressroute_entry_points_default_to_all_and_tls_to_plain(tmp_path: Path) -> None:
    text = INGRESSROUTE.replace("  entryPoints: [websecure]\n", "").replace(
        "  tls:\n    certResolver: letsencrypt\n", ""
    )
    (route,) = _load(tmp_path, text).routes
    assert (route.entry_points, route.tls) == (None, False)
    assert all(serves(route, Arrival(ep, False)) for ep in ("web", "websecure"))
    assert not any(serves(route, Arrival(ep, True)) for ep in ("web", "websecure"))


def test_a_certificate_resolver_is_refused_with_file_line_field(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, INGRESSROUTE)
    line = INGRESSROUTE.splitlines().index("    certResolver: letsencrypt") + 1
    assert f"m.yaml:{line}:" in str(info.value)
    assert "certificate resolver (ACME)" in str(info.value)


def test_an_unparsable_router_tls_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is not a boolean"):
        _load(tmp_path, WEBSECURE_ONLY.replace('router.tls: "true"', "router.tls: yes please"))


def test_spec_tls_without_router_tls_is_a_finding_and_served_over_http(tmp_path: Path) -> None:
    intent = _load(
        tmp_path,
        WEBSECURE_ONLY.replace('    traefik.ingress.kubernetes.io/router.tls: "true"\n', ""),
    )
    assert FINDING_TLS_WITHOUT_ROUTER_TLS in {f.kind for f in intent.findings}
    (route,) = intent.routes
    assert serves(route, Arrival("websecure", False))
    assert not serves(route, Arrival("websecure", True))


def test_the_oracle_expects_404_off_the_bound_entry_point_and_scheme(tmp_path: Path) -> None:
    intent = _load(tmp_path, WEBSECURE_ONLY)
    probes = {p.id: p for p in generate_probes(intent, None, local_arrivals(intent))}
    assert probes["https@websecure:secure.test/"].expectation.status is None  # routed
    assert probes["https@websecure:secure.test/"].expectation.route_id == "secure:secure.test/"
    for elsewhere in ("http@web", "https@web", "http@websecure"):
        assert probes[f"{elsewhere}:secure.test/"].expectation.status == 404


# -- on the local target --------------------------------------------------------------------------


def _verdicts(
    target: LocalTarget, judged: Intent, applied: Intent, tls: TLSVerify | None = None
) -> dict[str, str]:
    """Apply ``applied``, probe and judge against ``judged`` (the two differ when a fault is
    injected behind the oracle's back)."""
    probes = generate_probes(judged, None, local_arrivals(judged))
    verdicts = routing_judgements(target, probes, judged, applied, "tls", tls)
    return {probe_id: v.outcome for probe_id, v in verdicts.items()} | {
        f"{probe_id} observed": "; ".join(o.describe() for o, _, _ in v.observed)
        for probe_id, v in verdicts.items()
    }


def _outcomes(verdicts: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in verdicts.items() if not k.endswith(" observed")}


@pytest.mark.stack
def test_a_websecure_only_tls_route_passes_on_the_local_target(
    local_stack: Any, tmp_path: Path
) -> None:
    intent = _load(tmp_path, WEBSECURE_ONLY)
    verdicts = _verdicts(LocalTarget(local_stack), intent, intent)
    assert set(_outcomes(verdicts).values()) == {"passed"}, verdicts
    # Over HTTPS with SNI secure.test, the generated certificate verified for that host.
    assert "200 from cheddar" in verdicts["https@websecure:secure.test/ observed"]


@pytest.mark.stack
def test_a_route_applied_on_web_instead_fails_the_entry_point_probes(
    local_stack: Any, tmp_path: Path
) -> None:
    declared = _load(tmp_path, WEBSECURE_ONLY)
    # The fault, behind the oracle's back: what is applied binds the route to web, plain HTTP.
    wrong = _load(
        tmp_path,
        WEBSECURE_ONLY.replace("router.entrypoints: websecure", "router.entrypoints: web").replace(
            '    traefik.ingress.kubernetes.io/router.tls: "true"\n', ""
        ),
    )
    outcomes = _outcomes(_verdicts(LocalTarget(local_stack), declared, wrong))
    failed = {k for k, v in outcomes.items() if v == "failed"}
    # Expected 404 on web over HTTP (answered), expected cheddar over HTTPS on websecure (404).
    assert "http@web:secure.test/" in failed
    assert "https@websecure:secure.test/" in failed
    assert "http@websecure:secure.test/" not in failed


@pytest.mark.stack
def test_a_certificate_not_for_the_host_fails_the_https_probes(
    local_stack: Any, tmp_path: Path
) -> None:
    intent = _load(tmp_path, WEBSECURE_ONLY)
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(trustme.CA().cert_pem.bytes())
    verdicts = _verdicts(LocalTarget(local_stack), intent, intent, TLSVerify(ca_file=stranger))
    assert _outcomes(verdicts)["https@websecure:secure.test/"] == "failed"
    assert "certificate for secure.test" in verdicts["https@websecure:secure.test/ observed"]
    # Probes that expect 404 are judged on their status alone.
    assert _outcomes(verdicts)["https@web:secure.test/"] == "passed"


@pytest.mark.stack
@pytest.mark.slow
def test_the_suites_pass_a_websecure_only_tls_route_as_a_user_runs_them(tmp_path: Path) -> None:
    """Routing at every entry point and scheme, and registration where the route is served."""
    manifest = tmp_path / "secure.yaml"
    manifest.write_text(WEBSECURE_ONLY, "utf-8")
    run = run_pytest(
        "harness/suites/test_routing.py",
        "harness/suites/test_registration.py",
        "--manifests",
        manifest,
        "--probe-rounds",
        "3",
        "--report-dir",
        tmp_path,
    )
    assert run.returncode == 0, run.output[-3000:]
    checks = run.results(tmp_path)["checks"]
    outcomes = {c["nodeid"]: c["outcome"] for c in checks}
    assert set(outcomes.values()) <= {"passed", "skipped"}, outcomes  # skipped: tutorial claims
    passed = {n for n, o in outcomes.items() if o == "passed"}
    assert any(n.endswith(":https@websecure:secure.test/]") for n in passed)
    assert any(n.endswith(":http@web:secure.test/]") for n in passed)  # its 404 there
    assert any("test_applying_an_ingress_registers_its_routes" in n for n in passed)


@pytest.mark.stack
def test_an_external_https_proxy_at_an_address_is_reachable_whatever_its_certificate(
    local_stack: Any,
) -> None:
    """The proxy URL names an address (no SNI): Traefik presents its default certificate, which
    no CA trusts and which does not name the address. Reaching it is not judging it: each probe
    judges the certificate for its route's host (the test above)."""
    url = local_stack.running_traefik().entry_url("websecure", https=True)
    assert ExternalTarget(url).tls_verify.verify is True  # the system's CAs, for the probes
    target = ExternalTarget(url, tls_verify=TLSVerify(verify=False))  # a self-signed staging proxy
    assert (target.proxy_url, target.tls_verify.verify) == (url, False)
    with pytest.raises(TargetUnreachable, match="does not answer"):
        ExternalTarget(f"https://{LOOPBACK}:{free_port()}")
