"""Gaps while a change is applied: every apply strategy, under open-loop traffic, repeated.

The tutorial warns that re-applying an Ingress, or registering an existing route on a new
Ingress, interrupts the route while the proxy updates. These checks measure it on the route the
intent offers (the tutorial: ``cheeses.minikube/cheddar`` moved from cheddar to wensleydale; or,
with Gateway API manifests only, an HTTPRoute rule: its backendRefs moved to another Service or
their weights shifted 100/0 to 0/100, ``weight-shift``):
for each way of applying the change (see :mod:`harness.checks.strategies`) the change is made
``--gap-repeats`` times at ``--gap-rate`` requests per second, each time at another phase of
Traefik's configuration throttle, and judged against the strategy's budget of failed requests
per run (``--gap-budget``; defaults: none may fail for a patch, a replace, an override with a
higher priority or an endpoint change of a backend that keeps serving; report only for
delete-then-create, the priority tie and a backend that stops before its endpoint is removed).
A strategy that does not apply to the route (an override by a second Ingress on an HTTPRoute,
a weight shift on an Ingress) is skipped with the reason.
A run whose sender fell behind its schedule is invalid. When it failed no more requests than the
budget (none, for a report-only strategy) it is made again at its phase, at most
``--gap-lag-retries`` times, and the attempts made again stay in its evidence; a lagged run that
showed failures is never made again (that would select the easy runs). A strategy with an
invalid run left is invalid, never green, and the evidence says how many of its runs were.

The evidence (``harness.checks.evidence.GapsEvidence``) holds every run's figures, its
downsampled timeline with the markers (change call start and end, steps, when Traefik showed the
change) and the gap interval, and the distributions over the runs.

These checks apply changes, so they need the local target; against an external proxy
(``--proxy-url``) only ``--change-command`` is measured: the command is the change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.checks.evidence import Subject as CheckSubject
from harness.checks.evidence import route_subject
from harness.checks.gaps import GapOptions, GapSettings, gaps_check, judge_repeats
from harness.checks.probes import probe_host, route_path
from harness.checks.strategies import (
    LOCAL_STRATEGIES,
    CommandChange,
    StrategyRuns,
    Subject,
    find_subject,
    lane_targets,
    measure_strategies,
    not_applicable,
    run_repeats,
)
from harness.traffic.engine import RequestSpec

pytestmark = pytest.mark.harness_kind("gaps")

NOTHING_APPLIED = pytest.mark.parametrize(
    "scenario_run", [None], indirect=True, scope="session", ids=["clean"]
)
#: The gap runs of one session run one after the other on one worker (they time the proxy).
GAPS_GROUP = pytest.mark.xdist_group("gaps")


@pytest.fixture(scope="session")
def gap_subject(target: Any, harness_settings: Any) -> Subject:
    if not target.can_apply:
        pytest.skip(
            "apply strategies change the configuration through the Kubernetes API; the external "
            "target is verify-only (give --change-command to measure a change of your own)"
        )
    if target.kind != "local":
        pytest.skip(
            "apply strategies time Traefik's providers and publish EndpointSlices through the "
            "local stack; not yet on the cluster target"
        )
    subject = find_subject(harness_settings.scenarios)
    if subject is None:
        pytest.skip(
            "the intent has no plain Ingress route or HTTPRoute rule with a host and a path, "
            "sending to one Service, and another Service to move it to"
        )
    return subject


@pytest.fixture(scope="session")
def strategy_runs(
    request: pytest.FixtureRequest,
    gap_subject: Subject,
    target: Any,
    harness_settings: Any,
    tmp_path_factory: Any,
) -> dict[str, StrategyRuns]:
    """Every selected strategy measured once per session, ``--gap-lanes`` of them at a time,
    each on a local stack of its own (see ``harness.checks.strategies.measure_strategies``)."""
    names = [
        name
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_apply_strategy_gaps"
        and not_applicable(name := str(item.callspec.params["strategy_name"]), gap_subject) is None
    ]
    settings = harness_settings.gaps
    # The lanes run Traefik with --traefik-throttle (the session's own stack may not).
    options = replace(target.stack.options, throttle_seconds=harness_settings.traefik_throttle_s)
    with lane_targets(
        options, min(settings.lanes, len(names)), tmp_path_factory.mktemp("gap-lanes")
    ) as targets:
        return measure_strategies(
            targets,
            gap_subject,
            list(dict.fromkeys(names)),
            repeats=settings.repeats,
            rate=settings.rate,
            options=GapOptions(
                max_lag_s=settings.max_lag_s, latency_budget_s=settings.latency_budget_s
            ),
            budgets=settings.budgets,
            lag_retries=settings.lag_retries,
        )


def _settings(settings: GapSettings, options: GapOptions) -> dict[str, float]:
    return {
        "rate": settings.rate,
        "repeats": settings.repeats,
        "max_lag_ms": settings.max_lag_s * 1e3,
        "lag_retries": settings.lag_retries,
        "latency_budget_ms": options.latency_budget_s * 1e3,
        "k": options.k,
        "window_ms": options.window_s * 1e3,
        "bucket_ms": options.bucket_s * 1e3,
    }


@NOTHING_APPLIED
@GAPS_GROUP
@pytest.mark.parametrize("strategy_name", LOCAL_STRATEGIES)
def test_apply_strategy_gaps(
    scenario_run: Any,
    strategy_name: str,
    gap_subject: Subject,
    strategy_runs: dict[str, StrategyRuns],
    target: Any,
    harness_settings: Any,
    evidence: Any,
) -> None:
    """The change, made by this strategy on the intent's route, repeated: failed requests by
    class, gap, convergence and latency per run, judged against the strategy's budget."""
    reason = not_applicable(strategy_name, gap_subject)
    if reason is not None:
        pytest.skip(reason)
    settings = harness_settings.gaps
    options = GapOptions(max_lag_s=settings.max_lag_s, latency_budget_s=settings.latency_budget_s)
    runs = strategy_runs[strategy_name]
    if runs.error is not None:
        raise runs.error
    reports = runs.reports
    budget = settings.budgets.get(strategy_name)
    verdict = judge_repeats(strategy_name, reports, budget, require_convergence=runs.must_converge)
    route = gap_subject.route
    check = gaps_check(
        verdict,
        reports,
        described=runs.described,
        subject=route_subject(gap_subject.scenario, route),
        settings=_settings(settings, options),
        throttle_s=harness_settings.traefik_throttle_s,
        route=route,
        moved_to=gap_subject.other.service,
        findings=gap_subject.intent.findings,
        # The same host and path on a second Ingress, no priority: a tie.
        undefined=strategy_name == "override-tie",
    )
    evidence.record(check)


@NOTHING_APPLIED
@GAPS_GROUP
def test_change_command_gaps(
    scenario_run: Any,
    target: Any,
    harness_settings: Any,
    evidence: Any,
    traffic_progress: Any,
    tmp_path: Any,
) -> None:
    """External mode: the user's --change-command is run under traffic to every route of the
    intent, repeated; what it did is measured and judged against the ``command`` budget."""
    settings = harness_settings.gaps
    if not settings.change_command:
        pytest.skip("no --change-command given: there is no change of your own to measure")
    if target.can_apply:
        pytest.skip("--change-command measures an external proxy (--proxy-url)")
    # External mode has exactly one scenario: --proxy-url is refused without --manifests.
    ((name, intent),) = harness_settings.scenarios.items()
    specs = list(
        dict.fromkeys(
            RequestSpec(path=path, host=probe_host(r.host))
            for r in intent.routes
            if (path := route_path(r)) is not None
        )
    )
    if not specs:
        pytest.skip("the intent has no route to send traffic to")
    options = GapOptions(max_lag_s=settings.max_lag_s, latency_budget_s=settings.latency_budget_s)
    strategy = CommandChange(
        settings.change_command,
        specs,
        proxy_url=target.proxy_url,
        window=settings.change_window,
        log_dir=tmp_path,
    )
    reports = run_repeats(
        target.proxy_url,
        strategy,
        repeats=settings.repeats,
        rate=settings.rate,
        throttle_s=2.0,
        options=options,
        progress=traffic_progress,
        tls=target.tls_verify,
        budget=settings.budgets.get("command"),
        lag_retries=settings.lag_retries,
    )
    verdict = judge_repeats(
        "command", reports, settings.budgets.get("command"), require_convergence=False
    )
    check = gaps_check(
        verdict,
        reports,
        described=strategy.describe(),
        subject=CheckSubject(scenario=name, route=None, label="the change command"),
        settings=_settings(settings, options),
        throttle_s=2.0,
        command=settings.change_command,
        change_window=settings.change_window.describe(),
        findings=intent.findings,
    )
    evidence.record(check)
