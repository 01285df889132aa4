"""The conformance suite's HTTPRoute scenarios Traefik claims, as this harness verifies them:
``harness/suites/manifests/gateway/`` (matching across routes, path match order, query and
method matching, rewrite path, redirects, weights 70/30/0; and a canary's 100/0 split) through
the packaged routing, strip, priority, registration and weights suites on the local target, in
one run (the edge and gap suites are left out to keep it short). Every check passes on Traefik
3.7.15, and the
path-match-order scenario shows a departure from the spec that the conformance suite does not
exercise."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_runs import ROOT, run_pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MANIFESTS = ROOT / "harness" / "suites" / "manifests"
CANARY = MANIFESTS / "gateway" / "gateway-canary.yaml"


def test_the_conformance_scenarios_pass_every_suite(tmp_path: Path) -> None:
    run = run_pytest(
        "harness/suites", "-q", "-k", "not gap and not edge",
        "--manifests", MANIFESTS / "services.yaml", MANIFESTS / "gateway",
        "--probe-rounds", "3", "--report-dir", tmp_path, "--baseline", "none",
        timeout=900,
    )  # fmt: skip
    results = run.results(tmp_path)
    outcomes = {c["nodeid"]: c["outcome"] for c in results["checks"]}
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert run.returncode == 0 and not bad, (bad, run.output[-3000:])
    suites = {k.split("::")[0].rsplit("/", 1)[-1] for k in outcomes}
    assert {"test_routing.py", "test_strip.py", "test_priority.py", "test_weights.py",
            "test_registration.py"} <= suites  # fmt: skip
    # (The canary's 100/0 split, gateway-canary.yaml, is checked too.)
    (weights,) = [
        c
        for c in results["checks"]
        if "test_weights.py" in c["nodeid"] and "weighted-backends" in c["nodeid"]
    ]
    assert weights["evidence"]["declared"] == {"cheddar": 0.7, "stilton": 0.3, "wensleydale": 0.0}
    assert weights["evidence"]["verdict"]["counts"][2] == 0  # weight 0: none at all
    departures = [f for f in results["findings"] if f["kind"] == "gateway-precedence"]
    assert departures and all("order.gateway.test/match/prefix/one" in f["message"]
                              for f in departures)  # fmt: skip


def test_the_gap_suite_shifts_a_canary_httproute_without_a_failed_request(
    tmp_path: Path,
) -> None:
    """The packaged gap suite on the canary HTTPRoute at a 2 s throttle: its weights shifted
    100/0 to 0/100 under traffic lose no request; the overrides by a second Ingress are skipped
    with the reason (tests/test_strategies.py times the other strategies on an HTTPRoute)."""
    for attempt in range(2):  # once more when the run came out invalid (the sender lagged)
        report_dir = tmp_path / str(attempt)
        run = run_pytest(
            "harness/suites", "-q", "-k", "gap and (weight-shift or override)",
            "--manifests", MANIFESTS / "services.yaml", CANARY,
            "--gap-repeats", "1", "--traefik-throttle", "2", "--report-dir", report_dir,
            "--baseline", "none",
            timeout=600,
        )  # fmt: skip
        checks = {c["nodeid"].rsplit("[", 1)[-1]: c for c in run.results(report_dir)["checks"]}
        if checks["weight-shift-clean]"]["outcome"] != "invalid":
            break
    shift = checks["weight-shift-clean]"]
    assert shift["outcome"] == "passed", (shift["message"], run.output[-3000:])
    assert shift["figures"]["failed_requests"] == 0 and shift["figures"]["gap_ms"] == 0
    for name in ("override-priority", "override-tie"):
        skipped = checks[f"{name}-clean]"]
        assert skipped["outcome"] == "skipped"
        assert "does not apply to an HTTPRoute rule" in skipped["message"]
