"""Weighted splits: every weighted route's traffic is split as declared, judged statistically
with a planned sample size, controlled false alarms across the run, and the evidence (counts,
shares with confidence intervals, statistic, p-value or e-value, planned and used N, power) in
the results. Covers the tutorial's 75/25, its remainder rule, a three-way split and weight 0,
each over several backend instances on the local target."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks.weights import check_split
from harness.plugin.cases import weighted_cases

pytestmark = pytest.mark.harness_kind("weights")


def test_weights(
    scenario_run: Any,
    weighted_case: str,
    target: Any,
    harness_settings: Any,
    evidence: Any,
    traffic_progress: Any,
) -> None:
    route = scenario_run.intent.route(weighted_case)
    verdict = check_split(
        target.url_for(route),
        scenario_run.intent,
        route,
        harness_settings.weights,
        scenario=scenario_run.name,
        n_checks=len(weighted_cases(harness_settings)),
        service_of=target.service_of,
        progress=traffic_progress,
        tls=target.tls_verify,
    )
    evidence.record(verdict)
