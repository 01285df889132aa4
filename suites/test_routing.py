"""Routing: every probe derived from the intent reaches the backend Service the oracle expects,
or gets 404 where no route matches (hosts, paths, boundaries such as /p, /p/, /p/x, /pX)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.plugin.outcomes import check_exact, record_for

pytestmark = pytest.mark.harness_aspect("routing")


def test_routing(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    check_exact(scenario_run, exact_case, evidence)


# The tutorial's own claims, by name, on its own manifests (suites/manifests/cheeses.yaml).
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
    record = record_for(scenario_run, host, path, evidence)
    assert {(o.status, o.backend) for o in record.observations} == {(200, service)}


@TUTORIAL
@pytest.mark.parametrize(
    ("host", "path"), [("unknown.invalid", "/"), ("cheeses.minikube", "/no-such-route")]
)
def test_tutorial_anything_else_is_404(
    scenario_run: Any, host: str, path: str, evidence: Any
) -> None:
    record = record_for(scenario_run, host, path, evidence)
    assert {o.status for o in record.observations} == {404}
