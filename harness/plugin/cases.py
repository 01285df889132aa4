"""Cases: the checks derived from the intent (pytest parametrisation), in scenario order."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.plugin.settings import HarnessSettings, settings_of

if TYPE_CHECKING:
    from harness.intent.model import Intent
    from harness.traefik.entrypoints import Arrival
    from harness.traefik.oracle import RoutingOptions

# -- parametrisation over intent --------------------------------------------------------------


def weighted_cases(settings: HarnessSettings) -> list[tuple[str, str]]:
    """(scenario, route id) of every weighted route: one statistical check each."""
    return [
        (name, route.id)
        for name, intent in settings.scenarios.items()
        for route in intent.weighted_routes
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Suites ask for ``exact_case`` (naming their aspect) or ``weighted_case``; the cases come
    from the intent."""
    if "weighted_case" in metafunc.fixturenames:
        settings = settings_of(metafunc.config)
        metafunc.parametrize(
            ("scenario_run", "weighted_case"),
            [
                pytest.param(
                    name, route_id, id=f"{name}:{route_id}", marks=pytest.mark.xdist_group(name)
                )
                for name, route_id in weighted_cases(settings)
            ],
            indirect=["scenario_run"],
            scope="session",
        )
        return
    if "exact_case" not in metafunc.fixturenames:
        return
    from harness.checks.exact import ASPECTS, applies
    from harness.checks.probes import generate_probes

    marker = metafunc.definition.get_closest_marker("harness_kind")
    if marker is None or marker.args[0] not in ASPECTS:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: exact_case needs @pytest.mark.harness_kind(name) "
            f"with name in {ASPECTS}"
        )
    aspect = marker.args[0]
    settings = settings_of(metafunc.config)
    params = []
    for name, intent in settings.scenarios.items():
        for probe in generate_probes(
            intent, routing_options(settings), probe_arrivals(settings, intent)
        ):
            if applies(aspect, probe):
                params.append(
                    pytest.param(
                        name,
                        (aspect, probe.id),
                        id=f"{name}:{probe.id}",
                        marks=pytest.mark.xdist_group(name),
                    )
                )
    metafunc.parametrize(
        ("scenario_run", "exact_case"), params, indirect=["scenario_run"], scope="session"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the checks of one scenario together, so each scenario is applied (and its probes
    sent) once per session. pytest's own grouping of session-scoped parameters cannot do it
    here: every (scenario, probe) pair is its own parameter."""
    order = {name: i for i, name in enumerate(settings_of(config).scenarios)}

    def scenario(item: pytest.Item) -> str | None:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("scenario_run") if callspec is not None else None

    def not_applicable(item: pytest.Item) -> bool:
        # The tutorial's named checks ask for its scenarios by name: with --manifests they do
        # not apply. A derived check with no case at all (e.g. no overlapping routes) is not a
        # check either.
        name = scenario(item)
        derived = {"exact_case", "weighted_case"} & set(getattr(item, "fixturenames", ()))
        return (name is not None and name not in order) or (
            bool(derived) and item.name.endswith("[NOTSET]")
        )

    dropped = [item for item in items if not_applicable(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not not_applicable(item)]

    def key(item: pytest.Item) -> int:
        name = scenario(item)
        # Checks that need nothing applied (scenario_run=None) run before any scenario.
        return -1 if name is None else order[name]

    items.sort(key=key)  # stable: within a scenario the original order stays


def routing_options(settings: HarnessSettings) -> RoutingOptions:
    """The oracle's options for this run (Traefik's strictPrefixMatching as configured, and the
    version of the local target's Traefik; an external or cluster proxy's version is unknown)."""
    from harness.traefik.oracle import RoutingOptions

    local = settings.target_kind == "local"
    version = _local_traefik_version(settings.traefik_binary) if local else None
    return RoutingOptions(
        strict_prefix_matching=settings.strict_prefix_matching, traefik_version=version
    )


def probe_arrivals(settings: HarnessSettings, intent: Intent) -> tuple[Arrival | None, ...]:
    """Where the probes of ``intent`` go: on the local target each entry point in both schemes
    when a route declares entry points or TLS (else plain HTTP on web); on an external proxy its
    URL, as given (the URL is the entry point)."""
    from harness.traefik.entrypoints import local_arrivals

    if settings.target_kind != "local":
        return (None,)
    return local_arrivals(intent)


@functools.cache
def _local_traefik_version(binary: Path | None) -> str | None:
    """The version the local target's Traefik reports (asked once per binary and process);
    None when there is no usable binary (the local stack then says why, before any traffic)."""
    from harness.errors import HarnessError
    from harness.traefik.process import find_traefik_binary, traefik_version

    try:
        return traefik_version(binary or find_traefik_binary())
    except HarnessError:
        return None
