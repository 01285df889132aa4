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

from typing import Any

import pytest

from harness.checks.registration import (
    check_registration,
    check_reregistration,
    same_rule_pairs,
)
from harness.plugin.settings import settings_of

pytestmark = pytest.mark.harness_kind("registration")

NOTHING_APPLIED = pytest.mark.parametrize(
    "scenario_run", [None], indirect=True, scope="session", ids=["clean"]
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = settings_of(metafunc.config)
    if "scenario_name" in metafunc.fixturenames:
        metafunc.parametrize("scenario_name", list(settings.scenarios))
    if "tie" in metafunc.fixturenames:
        ties = [
            pytest.param((name, first.id, second.id), id=f"{name}:{second.id}")
            for name, intent in settings.scenarios.items()
            for first, second in same_rule_pairs(intent)
        ]
        metafunc.parametrize("tie", ties)


@pytest.fixture
def applying_target(target: Any) -> Any:
    if not target.can_apply:
        pytest.skip("registration checks apply Ingresses; the external target is verify-only")
    return target


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
    rounds = max(3, harness_settings.probe_rounds // 10)
    evidence.record(check_registration(applying_target, scenario_name, intent, rounds=rounds))


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
    verdict = check_reregistration(
        applying_target,
        name,
        intent,
        intent.route(first_id),
        intent.route(second_id),
        rounds=harness_settings.probe_rounds,
    )
    evidence.record(verdict)
