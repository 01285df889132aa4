"""Prefix stripping: every routed probe whose route strips a prefix reaches its backend with the
path the oracle computes and the X-Forwarded-Prefix header Traefik adds."""

from __future__ import annotations

from typing import Any

import pytest

from harness.plugin.outcomes import check_exact, record_for

pytestmark = pytest.mark.harness_aspect("strip")


def test_strip(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    check_exact(scenario_run, exact_case, evidence)


@pytest.mark.parametrize("scenario_run", ["cheeses"], indirect=True, scope="session")
@pytest.mark.parametrize(
    ("path", "upstream"), [("/cheddar/", "/"), ("/cheddar", "/"), ("/cheddar/x", "/x")]
)
def test_tutorial_cheddar_is_stripped(
    scenario_run: Any, path: str, upstream: str, evidence: Any
) -> None:
    """The tutorial: the backend sees / when the client asked for /cheddar/."""
    record = record_for(scenario_run, "cheeses.minikube", path, evidence, "strip")
    assert {(o.backend, o.upstream_path, o.forwarded_prefix) for o in record.observations} == {
        ("cheddar", upstream, "/cheddar")
    }
