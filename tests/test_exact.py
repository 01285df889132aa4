"""Exact verdicts (harness/checks/exact.py), the one place they are made: every answer marked
expected or not, the outcome, the figure the baseline compares, the tutorial's own claims."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from harness.checks.evidence import Outcome
from harness.checks.exact import applies, judge, with_claim
from harness.checks.probes import generate_probes
from harness.intent.dialects import load_scenarios
from harness.traefik.oracle import expect
from harness.traffic.rounds import Observation, ProbeRecord

MANIFESTS = Path(__file__).resolve().parent.parent / "harness" / "suites" / "manifests"
SCENARIOS = load_scenarios(MANIFESTS)
CHEESES = SCENARIOS["cheeses"]
PROBES = {p.id: p for p in generate_probes(CHEESES)}
CHEDDAR = PROBES["cheeses.minikube/cheddar/x"]

GOOD = Observation(200, "cheddar", "cheddar-0", "/x", "/cheddar")
ELSEWHERE = Observation(200, "wensleydale", "wensleydale-0", "/cheddar/x", None)
UNSTRIPPED = Observation(200, "cheddar", "cheddar-1", "/cheddar/x", None)


def record(*answers: tuple[Observation, int]) -> ProbeRecord:
    return ProbeRecord(CHEDDAR, Counter(dict(answers)))


def test_every_answer_is_marked_and_one_wrong_answer_fails() -> None:
    verdict = judge("routing", record((GOOD, 49), (ELSEWHERE, 1)), CHEESES, scenario="cheeses")
    assert verdict.outcome is Outcome.FAILED
    assert [(o, n, ok) for o, n, ok in verdict.observed] == [
        (GOOD, 49, True),
        (ELSEWHERE, 1, False),
    ]
    check = verdict.check(CHEESES.findings)
    assert check.kind == "routing" and check.figures == {"unexpected_answers": 1.0}
    assert check.subject == {
        "scenario": "cheeses",
        "route": "cheeses:cheeses.minikube/cheddar",
        "label": "cheeses.minikube/cheddar",
    }
    assert [o["expected"] for o in check.evidence["observed"]] == [True, False]
    assert check.summary.startswith("routing failed: cheeses.minikube/cheddar/x expected 200 from")
    passed = judge("routing", record((GOOD, 50)), CHEESES, scenario="cheeses")
    assert passed.outcome is Outcome.PASSED and passed.unexpected == 0


def test_strip_judges_only_the_expected_backends_answers() -> None:
    mixed = judge("strip", record((UNSTRIPPED, 3), (ELSEWHERE, 2)), CHEESES, scenario="cheeses")
    assert mixed.outcome is Outcome.FAILED
    assert [ok for _, _, ok in mixed.observed] == [False, None]  # the routing check judges the rest
    assert mixed.unexpected == 3
    # Nothing from the expected backend: the strip cannot be seen, so it is not judged.
    unseen = judge("strip", record((ELSEWHERE, 5)), CHEESES, scenario="cheeses")
    assert unseen.outcome is Outcome.SKIPPED and unseen.unexpected == 0
    assert "no answer came from the expected backend" in unseen.message


def test_a_tie_is_undefined_with_its_distribution() -> None:
    duplicate = SCENARIOS["registration-duplicate"]
    probe = next(p for p in generate_probes(duplicate) if p.expectation.outcome == "undefined")
    answers = Counter({GOOD: 3, ELSEWHERE: 3})
    verdict = judge("routing", ProbeRecord(probe, answers), duplicate, scenario="dup")
    assert verdict.outcome is Outcome.UNDEFINED
    assert {ok for _, _, ok in verdict.observed} == {None} and verdict.unexpected == 0


def test_a_tutorial_claim_fails_the_check_when_an_answer_breaks_it() -> None:
    verdict = judge("routing", record((GOOD, 5), (UNSTRIPPED, 1)), CHEESES, scenario="cheeses")
    assert verdict.outcome is Outcome.PASSED  # routing is right either way
    claim = with_claim(verdict, "cheddar sees /x", lambda o: o.upstream_path == "/x")
    assert claim.outcome is Outcome.FAILED and claim.unexpected == 1
    assert claim.message.startswith("the tutorial's claim does not hold: cheddar sees /x")
    assert claim.evidence()["claim"] == "cheddar sees /x"
    held = with_claim(verdict, "cheddar answers", lambda o: o.backend == "cheddar")
    assert held.outcome is Outcome.PASSED and held.evidence()["claim"] == "cheddar answers"


def _edge_record(
    probe_id: str, version: str | None, *answers: tuple[Observation, int]
) -> ProbeRecord:
    probe = PROBES[probe_id]
    expectation = dataclasses.replace(probe.expectation, traefik_version=version)
    return ProbeRecord(dataclasses.replace(probe, expectation=expectation), Counter(dict(answers)))


def test_edge_judges_status_backend_and_path_for_the_modeled_version() -> None:
    probe_id = "cheeses.minikube/cheddar%5Cx"
    assert applies("edge", PROBES[probe_id]) and not applies("strip", PROBES[probe_id])
    kept = Observation(200, "cheddar", "cheddar-0", "/%5Cx", "/cheddar")
    decoded = Observation(200, "cheddar", "cheddar-0", "/x", "/cheddar")
    good = judge("edge", _edge_record(probe_id, "3.7.15", (kept, 3)), CHEESES, scenario="c")
    assert good.outcome is Outcome.PASSED and "upstream path /%5Cx" in good.expected
    bad = judge("edge", _edge_record(probe_id, None, (decoded, 3)), CHEESES, scenario="c")
    assert bad.outcome is Outcome.FAILED and bad.unexpected == 3
    # A Traefik version the model was not confirmed on: the answers are recorded, not judged.
    other = judge("edge", _edge_record(probe_id, "3.5.0", (decoded, 3)), CHEESES, scenario="c")
    assert other.outcome is Outcome.REPORT_ONLY and other.unexpected == 0
    assert "confirmed on Traefik 3.6.0, 3.7.0, 3.7.15, this is 3.5.0" in other.expected
    # One it was confirmed on (with its behaviour changes): judged.
    older = judge("edge", _edge_record(probe_id, "3.6.0", (decoded, 3)), CHEESES, scenario="c")
    assert older.outcome is Outcome.FAILED and older.unexpected == 3
    assert [ok for _, _, ok in other.observed] == [None]


def test_an_unpredictable_edge_request_is_recorded_not_judged() -> None:
    probe = PROBES["cheeses.minikube/cheddar/./x"]
    unknown = expect(CHEESES, "cheeses.minikube", "/cheddar\x7f")
    record = ProbeRecord(dataclasses.replace(probe, expectation=unknown), Counter({GOOD: 3}))
    verdict = judge("edge", record, CHEESES, scenario="cheeses")
    assert verdict.outcome is Outcome.REPORT_ONLY
    assert verdict.expected.startswith("unpredictable (recorded, not judged)")
