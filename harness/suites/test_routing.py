"""Routing: every probe derived from the intent reaches the backend Service the oracle expects,
or gets 404 where no route matches (hosts, paths, boundaries such as /p, /p/, /p/x, /pX)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.harness_kind("routing")


def test_routing(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    evidence.record(scenario_run.exact_check(exact_case))


# The tutorial's own claims, by name, on its own manifests (harness/suites/manifests/cheeses.yaml).
TUTORIAL = pytest.mark.parametrize("scenario_run", ["cheeses"], indirect=True, scope="session")


@TUTORIAL
@pytest.mark.parametrize(
    ("host", "path", "service"),
    [
        ("stilton.minikube", "/", "stilton"),
        ("cheeses.minikube", "/cheddar", "cheddar"),
        ("cheeses.minikube", "/wensleydale", "wensleydale"),
    ],
)
def test_tutorial_host_and_path_routing(
    scenario_run: Any, host: str, path: str, service: str, evidence: Any
) -> None:
    verdict = scenario_run.claim_check(
        host,
        path,
        "routing",
        f"every answer is 200 from {service}",
        lambda o: (o.status, o.backend) == (200, service),
    )
    evidence.record(verdict)


@TUTORIAL
@pytest.mark.parametrize(
    ("host", "path"), [("unknown.invalid", "/"), ("cheeses.minikube", "/no-such-route")]
)
def test_tutorial_anything_else_is_404(
    scenario_run: Any, host: str, path: str, evidence: Any
) -> None:
    verdict = scenario_run.claim_check(
        host, path, "routing", "every answer is 404", lambda o: o.status == 404
    )
    evidence.record(verdict)


@pytest.mark.harness_kind("edge")
def test_edge_requests(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    """Unusual requests derived from every route (dot segments, encoded characters, double
    slashes, upper case, a Host with a port, in upper case or with a trailing dot), sent as
    written: the answer is what Traefik's entry point and routers make of them (the oracle's
    request model for the running version), or recorded where the model cannot say."""
    evidence.record(scenario_run.exact_check(exact_case))
