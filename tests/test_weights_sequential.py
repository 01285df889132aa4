"""Sequential weights mode counts good answers against its cap: a correct 75/25 split behind a
proxy that fails a few requests (503s from the fault proxy, seeded) still passes, having sent
more requests than the cap, and its evidence counts the failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import Fault, FaultProxy

from harness.checks.evidence import Outcome
from harness.checks.weights import WeightSettings, check_split
from harness.intent.dialects import load_intent
from harness.targets.base import LocalTarget

pytestmark = pytest.mark.stack

MANIFESTS = Path(__file__).resolve().parent.parent / "harness" / "suites" / "manifests"


@pytest.fixture(scope="module")
def split_behind_faults(local_stack: Any) -> Iterator[tuple[Any, FaultProxy]]:
    """The tutorial's 75/25 on the local Traefik, behind a fault proxy."""
    target = LocalTarget(local_stack)
    intent = load_intent([MANIFESTS / "services.yaml", MANIFESTS / "weights.yaml"])
    target.apply_intent(intent)
    with FaultProxy(target.proxy_url) as proxy:
        yield intent, proxy
    target.remove_intent(intent)


def test_a_few_failed_requests_do_not_stop_a_correct_split_from_passing(
    split_behind_faults: tuple[Any, FaultProxy],
) -> None:
    intent, proxy = split_behind_faults
    (route,) = intent.weighted_routes
    settings = WeightSettings(
        mode="sequential", min_deviation=0.05, run_alpha=0.01, max_error_rate=0.01
    )
    with proxy.faults(Fault(kind="status", status=503, share=0.002, seed=7)):
        verdict = check_split(proxy.url, intent, route, settings, scenario="weights", n_checks=1)
        (armed,) = proxy.stats()
    evidence = verdict.evidence
    assert evidence["type"] == "weights"
    failed = evidence["failures"].get("503", 0)
    assert failed == armed["applied"] and failed > 0, evidence["failures"]
    assert verdict.outcome == Outcome.PASSED, verdict.message
    cap = evidence["plan"]["n_sequential"]
    state = evidence["verdict"]
    assert state is not None and state["verdict"] == "pass"
    # The cap is of good answers; the failed requests came on top of it.
    assert evidence["sent"] - failed >= cap
