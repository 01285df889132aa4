"""Prefix stripping: every routed probe whose route strips a prefix reaches its backend with the
path the oracle computes and the X-Forwarded-Prefix header Traefik adds."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.harness_kind("strip")


def test_strip(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    evidence.record(scenario_run.exact_check(exact_case))


@pytest.mark.parametrize("scenario_run", ["cheeses"], indirect=True, scope="session")
@pytest.mark.parametrize(
    ("path", "upstream"), [("/cheddar/", "/"), ("/cheddar", "/"), ("/cheddar/x", "/x")]
)
def test_tutorial_cheddar_is_stripped(
    scenario_run: Any, path: str, upstream: str, evidence: Any
) -> None:
    """The tutorial: the backend sees / when the client asked for /cheddar/."""
    verdict = scenario_run.claim_check(
        "cheeses.minikube",
        path,
        "strip",
        f"cheddar sees {upstream} with X-Forwarded-Prefix /cheddar",
        lambda o: (
            (o.backend, o.upstream_path, o.forwarded_prefix) == ("cheddar", upstream, "/cheddar")
        ),
    )
    evidence.record(verdict)
