"""The pre-release gate's comparison (harness.gate), on pairs of results documents.

The documents are built the way the suites build them: the real intent, probes and oracle
(harness.intent, harness.checks.probes) and the real exact verdicts (harness.checks.exact.judge);
only the proxy's answers are written by the test: what the oracle expects, unless the test
injects a different one. Weights and gap checks get counts drawn from a seeded generator. The
gate run end to end against real Traefik is in test_gate_cli.py.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from harness.checks.evidence import CheckRecord, Kind, Outcome, Subject
from harness.checks.exact import ASPECTS, applies, judge
from harness.checks.probes import Probe, generate_probes
from harness.gate.cli import EXIT_PASSED, EXIT_UNEXPECTED, exit_status
from harness.gate.compare import Comparison, compare
from harness.gate.report import gate_document, render_gate, write_gate
from harness.intent.dialects import load_intent
from harness.results.document import ResultsDocument, RunResults
from harness.traefik.oracle import RoutingOptions
from harness.traffic.rounds import Observation, ProbeRecord

GATE = Path(__file__).parent / "manifests" / "gate"
TUTORIAL = Path(__file__).parents[1] / "harness" / "suites" / "manifests"
HEADERS = (("X-Forwarded-Host", "cheeses.minikube"), ("X-Real-Ip", "127.0.0.1"))

Answers = Callable[[Probe], Observation | None]


def correct_answer(probe: Probe, tie_pick: int = 0) -> Observation:
    """What a proxy that does what the oracle says answers."""
    e = probe.expectation
    if e.outcome in ("not-found", "bad-request"):
        return Observation(status=404 if e.outcome == "not-found" else 400)
    decided = e.decided_by if e.decided_by is not None else e.tied[tie_pick % len(e.tied)]
    service = next(b.service for b in decided.backends if b.weight > 0)
    return Observation(
        status=200,
        backend=service,
        instance=f"{service}-0",
        upstream_path=decided.upstream_path,
        forwarded_prefix=decided.forwarded_prefix,
        host=decided.host_header,
        headers=HEADERS,
    )


def document(
    manifests: list[Path],
    *,
    scenario: str = "manifests",
    version: str = "3.7.15",
    inject: Answers = lambda probe: None,
    tie_pick: int = 0,
    extra: list[CheckRecord] | None = None,
    edge: bool = False,
) -> ResultsDocument:
    """A run's results.json over ``manifests``: every probe judged on each of its aspects, as
    the oracle of Traefik ``version`` expects."""
    intent = load_intent(manifests, legacy="translate")
    results = RunResults(
        run_id=f"run-{version}",
        harness_version="test",
        started=0.0,
        target={"target": "local", "traefik": {"version": version}},
        parameters={"probe_rounds": 10, "run_alpha": 0.001, "manifests": [str(manifests[0])]},
    )
    # The edge probes are compared like any other; left out unless asked, to keep the expected
    # sets short.
    for probe in generate_probes(intent, RoutingOptions(traefik_version=version), edge=edge):
        answer = inject(probe) or correct_answer(probe, tie_pick)
        record = ProbeRecord(probe, Counter({answer: 10}))
        for aspect in ASPECTS:
            if applies(aspect, probe):
                verdict = judge(aspect, record, intent, scenario=scenario).check()
                nodeid = f"harness/suites/test_{aspect}.py::test_{aspect}[{scenario}:{probe.id}]"
                results.add(verdict.record(nodeid, 0.0))
    for check in extra or []:
        results.add(check)
    return results.to_dict()


def weights_check(
    counts: dict[str, int], declared: dict[str, float], *, outcome: Outcome = Outcome.PASSED
) -> CheckRecord:
    """A weights check's record with these counts (what the suite's evidence carries)."""
    route = "weights:cheeses.minikube/"
    evidence: dict[str, Any] = {
        "type": "weights",
        "scenario": "weights",
        "route": route,
        "declared": declared,
        "counts_by_instance": [
            {"backend": b, "instance": f"{b}-0", "count": n} for b, n in counts.items()
        ],
        "verdict": {"p_value": 0.9},
    }
    return CheckRecord(
        nodeid=f"harness/suites/test_weights.py::test_weights[weights:{route}]",
        kind=Kind.WEIGHTS,
        outcome=outcome,
        subject=Subject(scenario="weights", route=route, label="cheeses.minikube/"),
        summary=f"weights {outcome}",
        message="",
        duration=0.0,
        evidence=cast(Any, evidence),
        findings=[],
        figures={},
    )


def gaps_check(
    gaps: list[float], failed: list[int], *, outcome: Outcome = Outcome.PASSED
) -> CheckRecord:
    evidence: dict[str, Any] = {
        "type": "gaps",
        "strategy": "delete-create",
        "scenario": "cheeses",
        "distribution": {"gap_ms_values": gaps, "failed_values": failed},
    }
    return CheckRecord(
        nodeid="harness/suites/test_apply_gaps.py::test_apply_gaps[delete-create]",
        kind=Kind.GAPS,
        outcome=outcome,
        subject=Subject(scenario="cheeses", route=None, label="cheeses"),
        summary=f"gaps {outcome}",
        message="",
        duration=0.0,
        evidence=cast(Any, evidence),
        findings=[],
        figures={},
    )


def _unexpected(comparison: Comparison) -> list[str]:
    return [
        f"{d.kind} {d.item}" for d in comparison.differences if d.classification == "unexpected"
    ]


# -- a version to itself -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_a_run_against_a_run_of_the_same_proxy_has_no_unexpected_difference(seed: int) -> None:
    """Two runs of one correct proxy: the tie answered differently, the weights' counts and the
    gap repeats drawn anew each time; nothing is unexpected, the differences are noise."""
    rng = np.random.default_rng(seed)
    manifests = [TUTORIAL / "registration-duplicate.yaml", TUTORIAL / "services.yaml"]

    def extra() -> list[CheckRecord]:
        n = rng.multinomial(17_467, (0.75, 0.25))
        gaps = np.where(rng.random(5) < 0.4, rng.uniform(1_900, 2_150, 5), 0.0)
        return [
            weights_check(
                {"cheddar": int(n[0]), "wensleydale": int(n[1])},
                {"cheddar": 0.75, "wensleydale": 0.25},
            ),
            gaps_check(list(gaps), [int(g * 2) for g in gaps]),
        ]

    before = document(manifests, scenario="registration-duplicate", extra=extra())
    after = document(manifests, scenario="registration-duplicate", extra=extra(), tie_pick=1)
    comparison = compare(before, after, mode="upgrade")
    assert _unexpected(comparison) == []
    assert comparison.verdict == "passed" and exit_status(comparison) == EXIT_PASSED
    kinds = {d.kind for d in comparison.differences}
    assert "probe" in kinds  # the tie, answered by the other route this time ...
    assert all(d.classification == "noise" for d in comparison.differences)  # ... is noise
    assert any(d.kind == "weights" for d in comparison.differences)


def test_which_backend_of_a_weighted_route_answered_a_probe_is_noise() -> None:
    """With few probe rounds, one run's answers to a 75/25 route may all come from cheddar."""
    manifests = [TUTORIAL / "weights.yaml", TUTORIAL / "services.yaml"]

    def other_backend(probe: Probe) -> Observation | None:
        answer = correct_answer(probe)
        if answer.backend == "cheddar" and len(probe.expectation.shares()) > 1:
            return Observation(
                200,
                "wensleydale",
                "wensleydale-0",
                answer.upstream_path,
                answer.forwarded_prefix,
                headers=HEADERS,
            )
        return None

    before = document(manifests, scenario="weights")
    after = document(manifests, scenario="weights", inject=other_backend)
    comparison = compare(before, after, mode="upgrade")
    assert comparison.differences and _unexpected(comparison) == []
    assert all("a weighted route" in d.why for d in comparison.differences)


def test_identical_runs_have_no_difference_at_all() -> None:
    manifests = [TUTORIAL / "cheeses.yaml", TUTORIAL / "services.yaml"]
    before, after = document(manifests), document(manifests)
    comparison = compare(before, after, mode="upgrade")
    assert comparison.differences == [] and comparison.verdict == "passed"


# -- an upgrade that changes behaviour ---------------------------------------------------------


def test_an_upgrade_that_changes_an_answer_lists_the_probe_with_both_answers() -> None:
    """The injected difference: the next version forwards /cheddar/x unstripped, and drops
    X-Real-Ip on /wensleydale. The oracle of B predicts neither: both unexpected, exit 1."""
    manifests = [TUTORIAL / "cheeses.yaml", TUTORIAL / "services.yaml"]

    def changed(probe: Probe) -> Observation | None:
        answer = correct_answer(probe)
        if probe.id == "cheeses.minikube/cheddar/x":
            return Observation(200, "cheddar", "cheddar-0", "/cheddar/x", None, headers=HEADERS)
        if probe.id == "cheeses.minikube/wensleydale":
            return Observation(
                200,
                "wensleydale",
                "wensleydale-0",
                answer.upstream_path,
                answer.forwarded_prefix,
                headers=HEADERS[:1],
            )
        return None

    before = document(manifests, version="3.6.0")
    after = document(manifests, version="3.7.15", inject=changed)
    comparison = compare(before, after, mode="upgrade")
    rows = {d.item: d for d in comparison.differences}
    assert set(rows) == {"cheeses.minikube/cheddar/x", "cheeses.minikube/wensleydale"}
    strip = rows["cheeses.minikube/cheddar/x"]
    assert strip.classification == "unexpected"
    assert "as /x, X-Forwarded-Prefix /cheddar" in strip.before
    assert "as /cheddar/x" in strip.after and "X-Forwarded-Prefix" not in strip.after
    assert "the oracle predicts the same" in strip.why
    header = rows["cheeses.minikube/wensleydale"]
    assert "X-Real-Ip: 127.0.0.1" in header.before and "X-Real-Ip" not in header.after
    assert comparison.verdict == "failed" and exit_status(comparison) == EXIT_UNEXPECTED


def test_an_upgrade_the_oracle_of_b_predicts_is_expected() -> None:
    """When the after run's oracle expects the new answer (a version-aware oracle), the
    difference is expected: the expectation recorded in B differs the same way."""
    before = document([GATE / "before.yaml"])
    after = document([GATE / "moved.yaml"])
    after["target"]["traefik"]["version"] = "3.7.15"
    comparison = compare(before, after, mode="upgrade")
    probes = [d for d in comparison.differences if d.kind == "probe"]
    assert probes and all(d.classification == "expected" for d in probes)
    assert all("oracle of each run predicts its answers" in d.why for d in probes)


VERSIONS = (("before", "3.6.0"), ("after", "3.7.15"))


def test_an_upgrade_across_a_modeled_behaviour_change_lists_it_as_expected(
    tmp_path: Path,
) -> None:
    """3.6.0 to 3.7.15 on the tutorial, each proxy answering as its version's oracle says: the
    dot adjoining a stripped prefix (forwarded on 3.6.0, 400 on 3.7.15) is the only difference,
    expected, with both answers; on a release where the side is not known it is not predicted:
    unexpected."""
    manifests = [TUTORIAL / "cheeses.yaml", TUTORIAL / "services.yaml"]
    before = document(manifests, version="3.6.0", edge=True)
    after = document(manifests, version="3.7.15", edge=True)
    comparison = compare(before, after, mode="upgrade")
    assert {d.item for d in comparison.differences} == {
        "cheeses.minikube/cheddar./x",
        "cheeses.minikube/wensleydale./x",
    }
    for d in comparison.differences:
        assert d.kind == "probe" and d.classification == "expected", d
        assert "200 from" in d.before and "as /./x" in d.before and "400" in d.after
    assert "strip-rejects-unclean-path" in {c.name for c in comparison.behaviour_changes}
    assert comparison.verdict == "passed" and exit_status(comparison) == EXIT_PASSED
    # The report lists the behaviour changes the oracle models between the two, both sides.
    runs = {
        w: {"run_id": w, "traefik_version": v, "manifests": [], "gate": "passed"}
        for w, v in VERSIONS
    }
    html = render_gate(gate_document(comparison, runs, "g"), tmp_path)
    assert "strip-rejects-unclean-path" in html and "forwarded as written" in html
    # A release between 3.7.1 and 3.7.4 (none is published): which side of the change it has
    # is not known, the oracle models the pinned one, so the same answers as 3.6.0's are not
    # predicted.
    intent = load_intent(manifests, legacy="translate")
    old = {p.id: p for p in generate_probes(intent, RoutingOptions(traefik_version="3.6.0"))}
    between = document(
        manifests, version="3.7.2", edge=True, inject=lambda p: correct_answer(old[p.id])
    )
    unmodeled = compare(between, after, mode="upgrade")
    assert {d.classification for d in unmodeled.differences} == {"unexpected"}
    assert "strip-rejects-unclean-path" not in {c.name for c in unmodeled.behaviour_changes}


def test_split_and_gap_differences_beyond_noise_are_unexpected() -> None:
    manifests = [GATE / "before.yaml"]
    declared = {"cheddar": 0.75, "wensleydale": 0.25}
    before = document(
        manifests,
        extra=[
            weights_check({"cheddar": 13_100, "wensleydale": 4_367}, declared),
            gaps_check([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
        ],
    )
    after = document(
        manifests,
        extra=[
            weights_check({"cheddar": 12_227, "wensleydale": 5_240}, declared),
            gaps_check([1_990, 2_004, 1_985, 2_001, 1_999], [3_980, 4_008, 3_970, 4_002, 3_998]),
        ],
    )
    comparison = compare(before, after, mode="upgrade")
    assert sorted(_unexpected(comparison)) == [
        "gaps failed requests delete-create",
        "gaps gap ms delete-create",
        "weights weights:cheeses.minikube/",
    ]
    weights = next(d for d in comparison.differences if d.kind == "weights")
    assert "cheddar 75.00%" in weights.before and "cheddar 70.00%" in weights.after


def test_what_cannot_be_compared_makes_the_gate_incomplete() -> None:
    manifests = [GATE / "before.yaml"]
    before = document(manifests, extra=[gaps_check([0, 0, 0, 0, 0], [0, 0, 0, 0, 0])])
    after = document(manifests, extra=[gaps_check([0, 5], [0, 9], outcome=Outcome.INVALID)])
    comparison = compare(before, after, mode="upgrade")
    assert [d.classification for d in comparison.differences] == ["not-compared"]
    assert comparison.verdict == "incomplete" and exit_status(comparison) == 3
    one_repeat = document(manifests, extra=[gaps_check([2_000], [4_000])])
    zero = document(manifests, extra=[gaps_check([0], [0])])
    few = compare(zero, one_repeat, mode="upgrade")
    assert {d.classification for d in few.differences} == {"not-compared"}
    assert "--gap-repeats" in few.differences[0].why


# -- a manifest change -------------------------------------------------------------------------

WENSLEYDALE = {
    "cheeses.minikube/wensleydale",
    "cheeses.minikube/wensleydale/",
    "cheeses.minikube/wensleydale/x",
    "cheeses.minikube/wensleydaleX",
}


def test_a_route_moved_to_another_backend_is_exactly_that_routes_probes_expected() -> None:
    before, after = document([GATE / "before.yaml"]), document([GATE / "moved.yaml"])
    for announced in ([], ["moved:cheeses.minikube/wensleydale"]):
        comparison = compare(before, after, mode="change", announced=announced)
        assert {d.item for d in comparison.differences} == WENSLEYDALE
        assert all(
            d.kind == "probe" and d.classification == "expected" for d in comparison.differences
        )
        assert all(
            "from wensleydale" in d.before and "from cheddar" in d.after
            for d in comparison.differences
        )
        assert all(
            "backend wensleydale (weight 1) -> cheddar (weight 1)" in d.why
            for d in comparison.differences
        )
        assert comparison.verdict == "passed"
    [change] = comparison.route_changes
    assert (change.route, change.kinds) == ("wensleydale:cheeses.minikube/wensleydale", ("moved",))


def test_an_unannounced_priority_change_is_unexpected_and_fails() -> None:
    before = document([GATE / "before.yaml"])
    after = document([GATE / "moved-and-priority.yaml"])
    comparison = compare(
        before, after, mode="change", announced=["moved:cheeses.minikube/wensleydale"]
    )
    expected = {d.item for d in comparison.differences if d.classification == "expected"}
    assert expected == WENSLEYDALE
    unexpected = {
        d.item: d
        for d in comparison.differences
        if d.classification == "unexpected" and d.kind != "finding"
    }
    assert set(unexpected) == {
        "cheddar:cheeses.minikube/cheddar",  # the route's own change ...
        "cheeses.minikube/cheddar/aged",  # ... and every probe it now takes from /cheddar/aged
        "cheeses.minikube/cheddar/aged/",
        "cheeses.minikube/cheddar/aged/x",
        "cheeses.minikube/cheddar/agedX",
    }
    assert "re-prioritised" in unexpected["cheddar:cheeses.minikube/cheddar"].why
    assert "priority 1000" in unexpected["cheddar:cheeses.minikube/cheddar"].after
    # The oracle's findings the priority brings (it overrides the spec's longest path) too.
    findings = [d for d in comparison.differences if d.kind == "finding"]
    assert {d.classification for d in findings} == {"unexpected"}
    assert any("explicit-priority-overrides-spec" in d.item for d in findings)
    aged = unexpected["cheeses.minikube/cheddar/aged"]
    assert "unannounced change" in aged.why and "from stilton" in aged.before
    assert comparison.verdict == "failed" and exit_status(comparison) == EXIT_UNEXPECTED
    # Announced, the same change is expected.
    both = compare(
        before,
        after,
        mode="change",
        announced=[
            "moved:cheeses.minikube/wensleydale",
            "re-prioritised:cheddar:cheeses.minikube/cheddar",
        ],
    )
    assert _unexpected(both) == [] and both.verdict == "passed"


def test_a_change_the_proxy_does_not_make_is_unexpected() -> None:
    """The new manifests move the route, but the proxy still answers from the old backend."""
    before = document([GATE / "before.yaml"])

    def stale(probe: Probe) -> Observation | None:
        if probe.id in WENSLEYDALE:
            answer = correct_answer(probe)
            return Observation(
                200, "wensleydale", "wensleydale-0", answer.upstream_path, None, headers=HEADERS
            )
        return None

    after = document([GATE / "moved.yaml"], inject=stale)
    comparison = compare(before, after, mode="change")
    assert {d.item for d in comparison.differences} == WENSLEYDALE
    assert all(
        d.classification == "unexpected" and "did not change" in d.why
        for d in comparison.differences
    )


# -- the report --------------------------------------------------------------------------------


def test_the_report_puts_the_verdict_first_and_escapes_what_the_proxy_sent(
    tmp_path: Path,
) -> None:
    manifests = [GATE / "before.yaml"]
    hostile = (("X-Evil", "<script>alert(1)</script>"),)

    def evil(probe: Probe) -> Observation | None:
        if probe.id == "cheeses.minikube/cheddar":
            return Observation(200, "cheddar", "cheddar-0", "/cheddar", None, headers=hostile)
        return None

    comparison = compare(document(manifests), document(manifests, inject=evil), mode="upgrade")
    runs: dict[str, dict[str, Any]] = {
        which: {
            "run_id": which,
            "traefik_version": "3.7.15",
            "manifests": [],
            "report": str(tmp_path / which / "index.html"),
            "gate": "passed",
        }
        for which in ("before", "after")
    }
    json_path, html_path = write_gate(gate_document(comparison, runs, "g1"), tmp_path)
    html = html_path.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index("FAILED") < html.index("<h2>Differences</h2>") < html.index("The runs")
    assert 'href="before/index.html#check-' in html and 'href="after/index.html"' in html
    saved = copy.deepcopy(__import__("json").loads(json_path.read_text()))
    assert saved["verdict"] == "failed" and saved["counts"]["unexpected"] == 1


def test_a_run_whose_checks_could_not_run_makes_the_gate_incomplete() -> None:
    """Traefik 3.0 on the local target (it reads Endpoints, not EndpointSlices): every check
    errors in its setup. Nothing is compared; the gate says why and exits 3."""
    manifests = [GATE / "before.yaml"]
    broken = document(manifests)
    for check in broken["checks"]:
        check["outcome"], check["evidence"] = Outcome.ERROR, None
        check["summary"] = "error: WaitTimeout"
    comparison = compare(broken, document(manifests), mode="upgrade")
    assert comparison.differences == [] and comparison.verdict == "incomplete"
    assert exit_status(comparison) == 3
    assert "before run's checks could not run" in comparison.reasons()[0]


def test_runs_with_other_parameters_are_no_upgrade_alone() -> None:
    before, after = document([GATE / "before.yaml"]), document([GATE / "before.yaml"])
    after["parameters"]["probe_rounds"] = 3
    comparison = compare(before, after, mode="upgrade")
    assert comparison.verdict == "incomplete"
    assert "parameters differ (probe_rounds)" in comparison.reasons()[0]
