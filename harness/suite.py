"""What the verification suites call: judge a probe's answers, record evidence, fail clearly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from harness.intent import Intent, Route
from harness.oracle import expect
from harness.probes import KIND_ROUTE, UNKNOWN_HOST, Probe
from harness.probing import ProbeRecord
from harness.verdicts import Aspect, judge


def record_for(
    scenario_run: Any, host: str, path: str, evidence: Any, aspect: Aspect = "routing"
) -> ProbeRecord:
    """The answers to the probe ``host`` + ``path`` of a scenario (fails if there is none),
    recorded as evidence with the oracle's verdict on ``aspect`` beside the test's own claim."""
    for record in scenario_run.run.records.values():
        if record.probe.host == host and record.probe.path == path:
            verdict = judge(aspect, record, scenario_run.intent, context=scenario_run.context())
            evidence.add({**verdict.to_dict(), "scenario": scenario_run.name})
            return record  # type: ignore[no-any-return]
    pytest.fail(
        f"scenario {scenario_run.name!r} has no probe for {host}{path}; its probes: "
        + ", ".join(sorted(scenario_run.probes)),
        pytrace=False,
    )


def check_exact(scenario_run: Any, exact_case: tuple[Aspect, str], evidence: Any) -> None:
    """Judge one probe on one aspect; pass, fail with a one-screen message, or report undefined."""
    aspect, probe_id = exact_case
    record = scenario_run.run.records[probe_id]
    verdict = judge(aspect, record, scenario_run.intent, context=scenario_run.context())
    evidence.add({**verdict.to_dict(), "scenario": scenario_run.name})
    evidence.add_findings([f.to_dict() for f in scenario_run.intent.findings])
    evidence.add_findings([f.to_dict() for f in record.probe.expectation.findings])
    if verdict.outcome == "undefined":
        evidence.mark_undefined(verdict.message)
    if verdict.outcome == "not-judged":
        pytest.skip(verdict.message)
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)


def probe_for(intent: Intent, route: Route, path: str | None = None) -> Probe:
    """A probe at ``route``'s own path (or ``path``), judged against ``intent``."""
    host = route.host if route.host and "*" not in route.host else UNKNOWN_HOST
    target_path = path or (route.path or "/")
    expectation = expect(intent, host, target_path)
    return Probe(
        id=f"{host}{target_path}",
        method="GET",
        host=host,
        path=target_path,
        headers=(),
        expectation=expectation,
        reasons=(f"at the path of {route.id}",),
        routes=(route.id,),
        kinds=(KIND_ROUTE,),
    )


def sub_intent(intent: Intent, routes: Sequence[Route]) -> Intent:
    """``intent`` with only ``routes`` (and the Services they use)."""
    used = {b.service for r in routes for b in r.backends}
    return replace(
        intent,
        routes=tuple(routes),
        services=tuple(s for s in intent.services if s.name in used),
    )
