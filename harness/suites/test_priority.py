"""Priority: where several routes match one request, the route Traefik's precedence picks
(explicit priority, else the length of the rule) is the one that answers. Ties between routes
with different effects are reported as undefined."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.harness_kind("priority")


def test_priority(scenario_run: Any, exact_case: Any, evidence: Any) -> None:
    evidence.record(scenario_run.exact_check(exact_case))


@pytest.mark.parametrize(
    ("scenario_run", "service"),
    [("priority-longest-path", "wensleydale"), ("priority-explicit", "cheddar")],
    indirect=["scenario_run"],
    scope="session",
)
def test_tutorial_longest_path_and_its_override(
    scenario_run: Any, service: str, evidence: Any
) -> None:
    """The tutorial: /cheddar/wensleydale/x goes to wensleydale (the longer path), and to cheddar
    once cheddar's Ingress has priority 2 and wensleydale's priority 1."""
    verdict = scenario_run.claim_check(
        "cheeses.minikube",
        "/cheddar/wensleydale/x",
        "priority",
        f"every answer comes from {service}",
        lambda o: o.backend == service,
    )
    evidence.record(verdict)
