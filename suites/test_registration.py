"""Registration: applying an Ingress registers its routes, removing it deregisters them, and
registering a route that already exists (same host and path, another Service) is checked for
what Traefik actually does.

The tutorial (for Traefik 1.x) says registering the same route again moves it to the new
service. On Traefik v3 both routers then have the same rule, so the same default priority, and
Traefik picks one in unspecified order that can change at every reload: the oracle calls that
undefined and the check reports the observed distribution. The v3 way to override a route is an
explicit, higher priority on the new Ingress; that is checked to move the route, every time.

These checks apply intent, so they need the local target (or a cluster); with --proxy-url they
are skipped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.checks.exact import judge
from harness.checks.probes import probe_for
from harness.intent.model import Route, sub_intent
from harness.plugin.settings import settings_of
from harness.traffic.rounds import send_in_rounds

NOTHING_APPLIED = pytest.mark.parametrize(
    "scenario_run", [None], indirect=True, scope="session", ids=["clean"]
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = settings_of(metafunc.config)
    if "scenario_name" in metafunc.fixturenames:
        metafunc.parametrize("scenario_name", list(settings.scenarios))
    if "tie" in metafunc.fixturenames:
        ties = []
        for name, intent in settings.scenarios.items():
            routes = intent.routes
            for i, first in enumerate(routes):
                for second in routes[i + 1 :]:
                    same_rule = first.rule == second.rule
                    different = {b.service for b in first.backends} != {
                        b.service for b in second.backends
                    }
                    if same_rule and different and first.provider == second.provider:
                        ties.append(
                            pytest.param((name, first.id, second.id), id=f"{name}:{second.id}")
                        )
        metafunc.parametrize("tie", ties)


@pytest.fixture
def applying_target(target: Any) -> Any:
    if not target.can_apply:
        pytest.skip("registration checks apply Ingresses; the external target is verify-only")
    return target


def _judge_rounds(
    target: Any, intent: Any, route: Route, rounds: int, evidence: Any, *, reload: bool = False
) -> Any:
    """Send the route's own probe ``rounds`` times (with a reload halfway if asked) and judge
    its routing against ``intent``."""
    probe = probe_for(intent, route)
    run = send_in_rounds(
        target.proxy_url,
        [probe],
        rounds=rounds,
        reload=target.reload if reload else None,
        service_of=target.service_of,
    )
    context = f" in {rounds} rounds" + (
        f", one configuration reload after round {run.reload_after_round}"
        if run.reload_after_round is not None
        else ""
    )
    verdict = judge("routing", run.records[probe.id], intent, context=context)
    evidence.add(verdict.to_dict())
    return verdict


@NOTHING_APPLIED
def test_applying_an_ingress_registers_its_routes(
    scenario_run: Any,
    scenario_name: str,
    applying_target: Any,
    harness_settings: Any,
    evidence: Any,
) -> None:
    """Before: every route's path is 404. Applied: each answers as the oracle says. Removed:
    404 again."""
    intent = harness_settings.scenarios[scenario_name]
    empty = sub_intent(intent, [])
    rounds = max(3, harness_settings.probe_rounds // 10)
    failures = []
    for route in intent.routes:
        verdict = _judge_rounds(applying_target, empty, route, 1, evidence)
        if not verdict.passed:
            failures.append(f"before applying:\n{verdict.message}")
    applying_target.apply_intent(intent)
    try:
        for route in intent.routes:
            verdict = _judge_rounds(applying_target, intent, route, rounds, evidence)
            if verdict.outcome == "failed":
                failures.append(f"after applying:\n{verdict.message}")
    finally:
        applying_target.remove_intent(intent)
    for route in intent.routes:
        verdict = _judge_rounds(applying_target, empty, route, 1, evidence)
        if not verdict.passed:
            failures.append(f"after removing:\n{verdict.message}")
    evidence.add_findings([f.to_dict() for f in intent.findings])
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@NOTHING_APPLIED
def test_registering_an_existing_route_again(
    scenario_run: Any,
    tie: tuple[str, str, str],
    applying_target: Any,
    harness_settings: Any,
    evidence: Any,
) -> None:
    """The first registration answers; a second Ingress with the same rule ties (undefined on
    Traefik v3: the observed distribution is the evidence); a second one with a higher explicit
    priority takes the route over, deterministically."""
    name, first_id, second_id = tie
    intent = harness_settings.scenarios[name]
    first, second = intent.route(first_id), intent.route(second_id)
    rounds = harness_settings.probe_rounds
    failures: list[str] = []

    alone = sub_intent(intent, [first])
    applying_target.apply_intent(alone)
    try:
        verdict = _judge_rounds(applying_target, alone, first, max(3, rounds // 10), evidence)
        if not verdict.passed:
            failures.append(f"first registration alone:\n{verdict.message}")

        overriding = replace(second, priority=first.effective_priority + 1)
        both = sub_intent(intent, [first, overriding])
        applying_target.apply_intent(both)
        try:
            verdict = _judge_rounds(applying_target, both, first, max(3, rounds // 10), evidence)
            if not verdict.passed:
                failures.append(f"override with explicit priority:\n{verdict.message}")
        finally:
            applying_target.remove_intent(sub_intent(intent, [overriding]))

        tied = sub_intent(intent, [first, second])
        applying_target.apply_intent(tied)
        try:
            tie_verdict = _judge_rounds(applying_target, tied, first, rounds, evidence, reload=True)
        finally:
            applying_target.remove_intent(tied)
    finally:
        applying_target.remove_intent(alone)
    evidence.add_findings([f.to_dict() for f in intent.findings])
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    if tie_verdict.outcome == "undefined":
        evidence.mark_undefined(tie_verdict.message)
    assert tie_verdict.passed, tie_verdict.message
