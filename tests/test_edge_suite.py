"""Edge probes, wildcard hosts and IngressClass selection on the local target, end to end: the
suites run in a subprocess as a user runs them, and the verdicts are read from results.json.

The oracle's model of Traefik's entry point (harness/traefik/requests.py) and its reading of
wildcards and classes (harness/intent/dialects/_ingress.py) meet the real Traefik here: a probe
the model gets wrong fails, so these runs passing is the model confirmed on this binary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from suite_runs import run_pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MANIFESTS = Path(__file__).resolve().parents[1] / "harness" / "suites" / "manifests"
ROUTING = "harness/suites/test_routing.py::test_routing"
EDGE = "harness/suites/test_routing.py::test_edge_requests"


def _checks(document: dict[str, Any], test: str) -> dict[str, dict[str, Any]]:
    """The checks of one suite function by probe id."""
    prefix = f"{test}[manifests:"
    return {
        str(c["nodeid"])[len(prefix) : -1]: c
        for c in document["checks"]
        if str(c["nodeid"]).startswith(prefix)
    }


def _expectation(check: dict[str, Any]) -> dict[str, Any]:
    evidence = check["evidence"]
    assert evidence["type"] == "exact", evidence
    return dict(evidence["probe"]["expectation"])


def test_edge_probes_pass_on_the_tutorials_manifests(tmp_path: Path) -> None:
    run = run_pytest(
        EDGE,
        "--manifests",
        MANIFESTS / "services.yaml",
        MANIFESTS / "cheeses.yaml",
        "--legacy",
        "translate",
        "--probe-rounds",
        "3",
        "--report-dir",
        tmp_path,
    )
    assert run.returncode == 0, run.output[-3000:]
    edge = _checks(run.results(tmp_path), EDGE)
    # 8 per route (3 routes) and 3 per host (2 hosts).
    assert len(edge) == 3 * 8 + 2 * 3, sorted(edge)
    assert {c["outcome"] for c in edge.values()} == {"passed"}
    assert {c["kind"] for c in edge.values()} == {"edge"}
    # Judged against the model for the running binary, and said so in every expectation.
    for check in edge.values():
        expectation = _expectation(check)
        assert expectation["traefik_version"] == expectation["model_confirmed_on"] == "3.7.15"
    # What the edge cases came to on this Traefik: a sample of the table in the README.
    assert _expectation(edge["cheeses.minikube/cheddar./x"])["status"] == 400
    assert _expectation(edge["cheeses.minikube/CHEDDAR/X"])["status"] == 404
    assert _expectation(edge["cheeses.minikube/cheddar%5Cx"])["decided_by"]["upstream_path"] == (
        "/%5Cx"
    )


WILD_AND_CLASSES = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: haproxy}
spec: {controller: haproxy.org/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: wild}
spec:
  rules:
  - host: "*.wild.test"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: cheddar, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: by-name}
spec:
  ingressClassName: haproxy
  rules:
  - host: haproxy.test
    http:
      paths:
      - {path: /n, pathType: Prefix, backend: {service: {name: stilton, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: by-annotation
  annotations: {kubernetes.io/ingress.class: haproxy}
spec:
  rules:
  - host: annotated.test
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: wensleydale, port: {number: 80}}}}
"""


def test_wildcard_hosts_and_other_classes_on_the_local_target(tmp_path: Path) -> None:
    manifest = tmp_path / "wild.yaml"
    manifest.write_text(WILD_AND_CLASSES, encoding="utf-8")
    out = tmp_path / "out"
    run = run_pytest(
        ROUTING,
        "--manifests",
        MANIFESTS / "services.yaml",
        manifest,
        "--probe-rounds",
        "3",
        "--report-dir",
        out,
    )
    assert run.returncode == 0, run.output[-3000:]
    document = run.results(out)
    routing = _checks(document, ROUTING)
    assert {c["outcome"] for c in routing.values()} == {"passed"}
    # The wildcard: a concrete host of it routes; a deeper subdomain and the bare domain do not.
    assert _expectation(routing["wild.wild.test/"])["outcome"] == "routed"
    for miss in ("a.wild.wild.test/", "wild.test/"):
        assert _expectation(routing[miss])["outcome"] == "not-found", miss
    # Ingresses of another class: Traefik does not serve them (their backends run: a 404 is
    # Traefik's, not a missing backend's), and a finding says why.
    for probe in ("haproxy.test/n", "haproxy.test/n/x", "annotated.test/a", "annotated.test/a/x"):
        assert _expectation(routing[probe])["outcome"] == "not-found", probe
    findings = [
        f["message"]
        for check in document["checks"]
        for f in check["findings"]
        if f["kind"] == "ingress-class"
    ]
    assert any("'by-name'" in m and "does not serve it" in m for m in findings), findings
    assert any("'by-annotation'" in m and "not served" in m for m in findings), findings
