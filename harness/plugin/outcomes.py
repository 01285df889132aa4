"""What the verification suites call: judge a probe's answers, record evidence, fail clearly."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks.exact import Aspect, judge
from harness.traffic.rounds import ProbeRecord


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
