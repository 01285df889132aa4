"""The report's first screen (harness/results/first_screen.py): the gate and why, the matrix of
behaviours verified, the comparison with the baseline, the strategy table of the gaps section,
human labels.

Documents are built here with the evidence contract's own types and helpers
(``harness.checks.evidence``: ``CheckVerdict.record``, the evidence TypedDicts), finished as the
collector finishes a run (``RunResults.to_dict``, the real baseline comparison, ``gate_of``) and
validated against the shipped schema; the builders are also used by ``test_report_browser.py``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Literal

from results_schema import assert_valid

from harness.checks.evidence import (
    KINDS,
    OUTCOMES,
    CheckRecord,
    CheckVerdict,
    Distribution,
    Evidence,
    ExactEvidence,
    GapDistribution,
    GapRun,
    GapsEvidence,
    Kind,
    ObservedAnswer,
    RegistrationEvidence,
    Subject,
    WeightsEvidence,
)
from harness.checks.evidence import Outcome as O  # noqa: N817 (the tables below read better)
from harness.results.baseline import compare
from harness.results.document import ResultsDocument, RunResults, gate_of
from harness.results.first_screen import (
    MARKS,
    build_first_screen,
    check_anchor,
    strategy_rows,
    target_line,
)
from harness.results.labels import LABELS
from harness.results.labels import label as label_of
from harness.results.report import build_view, render_report

# -- builders (also used by test_report_browser.py) ---------------------------------------------

#: Ten scenarios of three routes each, named like the tutorial's (the brief's "~10 scenarios,
#: ~30 routes"), plus the 404 probes of each scenario: 40 matrix rows.
SCENARIOS: dict[str, list[str]] = {
    "cheeses": ["stilton.minikube/", "cheeses.minikube/cheddar", "cheeses.minikube/wensleydale"],
    "priority-explicit": [
        "cheeses.minikube/cheddar",
        "cheeses.minikube/cheddar/wensleydale",
        "cheeses.minikube/stilton",
    ],
    "priority-longest-path": [
        "cheeses.minikube/cheddar",
        "cheeses.minikube/cheddar/wensleydale",
        "cheeses.minikube/cheddar/wensleydale/x",
    ],
    "registration": ["cheeses.minikube/cheddar", "cheeses.minikube/brie", "cheeses.minikube/feta"],
    "registration-duplicate": [
        "cheeses.minikube/cheddar",
        "cheeses.minikube/cheddar (moved)",
        "cheeses.minikube/gouda",
    ],
    "weights": ["cheeses.minikube/", "cheeses.minikube/edam", "cheeses.minikube/gruyere"],
    "weights-remainder": [
        "cheeses.minikube/",
        "cheeses.minikube/comte",
        "cheeses.minikube/roquefort",
    ],
    "weights-three-way": [
        "cheeses.minikube/",
        "cheeses.minikube/manchego",
        "cheeses.minikube/halloumi",
    ],
    "weights-zero": ["cheeses.minikube/", "cheeses.minikube/pecorino", "cheeses.minikube/emmental"],
    "strip": [
        "cheeses.minikube/cheddar",
        "cheeses.minikube/wensleydale",
        "cheeses.minikube/parmesan",
    ],
}
#: A run of a change: (failed requests, gap ms, convergence ms, outages).
GapFigures = tuple[int, float, float | None, int]
#: The apply strategies and their runs.
STRATEGY_RUNS: dict[str, tuple[str, Sequence[GapFigures]]] = {
    "patch": ("kubectl apply (three-way patch of the Ingress)", [(0, 0.0, 189.0, 0)] * 5),
    "replace": ("kubectl replace (PUT of the whole Ingress)", [(0, 0.0, 305.0, 0)] * 5),
    "delete-create": (
        "kubectl replace --force, or a rename",
        [
            (0, 0.0, 262.0, 0),
            (4249, 2125.0, 2157.0, 1),
            (0, 0.0, 1371.0, 0),
            (3800, 1900.0, 1400.0, 2),
            (0, 0.0, 1300.0, 0),
        ],
    ),
    "override-priority": ("same host and path, higher priority", [(0, 0.0, 272.0, 0)] * 5),
    "backend-stops-first": (
        "the old backend stops before its endpoint is removed",
        [(1980, 1980.0, 203.0, 120), (2004, 2004.0, 155.0, 165)]
        + [(1990, 1990.0, 1285.0, 140)] * 3,
    ),
}
GAP_SUBJECT = Subject(
    scenario="cheeses", route="cheeses:cheeses.minikube/cheddar", label="cheeses.minikube/cheddar"
)


#: The aspect of an exact verdict of each kind (a registration step judges routing).
ASPECTS: dict[Kind, Literal["routing", "strip", "priority"]] = {
    Kind.ROUTING: "routing",
    Kind.STRIP: "strip",
    Kind.PRIORITY: "priority",
    Kind.REGISTRATION: "routing",
}


def subject(scenario: str, label: str, *, route: bool = True) -> Subject:
    return Subject(scenario=scenario, route=f"{scenario}:{label}" if route else None, label=label)


def exact_evidence(aspect: Kind, scenario: str, label: str, outcome: O) -> ExactEvidence:
    """One probe of ``label`` judged on ``aspect``: answered by the expected backend, and once
    by another one unless it passed."""
    host, _, path = label.partition("/")
    backend = path.split("/")[0] or "stilton"
    route = f"{scenario}:{label}"
    rule = f'Host("{host}") && PathPrefix("/{path}")'
    observed = [
        ObservedAnswer(
            status=200,
            backend=backend,
            instance=f"{backend}-0",
            upstream_path=f"/{path}",
            forwarded_prefix=None,
            error=None,
            count=6,
            expected=True,
        )
    ]
    if outcome is not O.PASSED:
        observed.append(
            ObservedAnswer(
                status=200,
                backend="brie",
                instance="brie-0",
                upstream_path="/",
                forwarded_prefix=None,
                error=None,
                count=1,
                expected=None if outcome is O.UNDEFINED else False,
            )
        )
    unexpected = sum(o["count"] for o in observed if o["expected"] is False)
    return ExactEvidence(
        type="exact",
        aspect=ASPECTS[aspect],
        scenario=scenario,
        probe_id=label,
        outcome=outcome,
        expected=f"200 from {backend}",
        observed=observed,
        unexpected=unexpected,
        message=f"{aspect} check {outcome}: GET http://{label}",
        probe={
            "id": label,
            "method": "GET",
            "host": host,
            "path": f"/{path}",
            "headers": [],
            "reasons": [f"{route}: the declared path"],
            "routes": [route],
            "kinds": ["route"],
            "expectation": {
                "host": host,
                "path": f"/{path}",
                "outcome": "routed",
                "status": None,
                "decided_by": {
                    "route_id": route,
                    "rule": rule,
                    "priority": len(rule),
                    "priority_source": "rule-length",
                    "provider": "kubernetes",
                    "backends": [{"service": backend, "port": 80, "weight": 1}],
                    "status": None,
                    "upstream_path": f"/{path}",
                    "forwarded_prefix": None,
                },
                "shares": {backend: 1.0},
                "competing": [],
                "tied": [],
                "findings": [],
                "reason": f"{route} matches",
            },
        },
    )


def weights_evidence(scenario: str, route: str, outcome: O) -> WeightsEvidence:
    """A 75/25 split: judged as declared, or ended by the error check (``error``)."""
    judged = outcome is not O.ERROR
    errors = 0 if judged else 3500
    return WeightsEvidence(
        type="weights",
        scenario=scenario,
        route=route,
        source={"file": f"harness/suites/manifests/{scenario}.yaml", "line": 17, "kind": "Ingress"},
        request={"host": "cheeses.minikube", "path": "/"},
        declared={"cheddar": 0.75, "wensleydale": 0.25},
        settings={"mode": "fixed", "max_error_rate": 0.001},
        plan={"n": 17467, "n_fixed": 17467, "n_ncx2": 16920, "concentration": 52.3, "df": 1},
        sent=17467,
        wall_time=2.3,
        rate=7600.0,
        failures={} if judged else {"502": errors},
        error_check={
            "successes": 17467 - errors,
            "errors": errors,
            "error_rate": errors / 17467,
            "max_error_rate": 0.001,
            "verdict": "pass" if judged else "error",
            "summary": "0 of 17,467 requests failed"
            if judged
            else "too many failed requests to judge the split",
        },
        counts_by_instance=[
            {"backend": "cheddar", "instance": "cheddar-0", "count": 13100 if judged else 10475},
            {"backend": "wensleydale", "instance": "wensleydale-0", "count": 4367 - errors // 4},
        ],
        replicas=None,
        verdict={
            "verdict": "pass",
            "test": "chi-square",
            "backends": ["cheddar", "wensleydale"],
            "counts": [13100, 4367],
            "expected": [0.75, 0.25],
            "observed": [0.75, 0.25],
            "summary": "75.0% / 25.0% as declared",
        }
        if judged
        else None,
    )


def _distribution(values: Sequence[float | None]) -> Distribution:
    present = [v for v in values if v is not None]
    if not present:
        return Distribution(min=None, median=None, max=None, missing=len(values))
    return Distribution(
        min=min(present),
        median=statistics.median(present),
        max=max(present),
        missing=len(values) - len(present),
    )


def gap_run(failed: int, gap_ms: float, convergence_ms: float | None, outages: int) -> GapRun:
    """One run of a change at 2,000 requests/s for 5 s (the figures not set here: quiet)."""
    return GapRun(
        requests=10000,
        scheduled=10000,
        good=10000 - failed,
        failed=failed,
        failed_by_class={"404": failed} if failed else {},
        failed_before_change=0,
        accounted=True,
        rate_per_s=2000.0,
        span_s=5.0,
        window_end_s=5.0,
        markers=[{"name": "change start", "t_s": 0.5}, {"name": "change end", "t_s": 0.6}],
        gap_ms=gap_ms,
        gap={"from_s": 0.6, "to_s": 0.6 + gap_ms / 1e3, "length_ms": gap_ms} if failed else None,
        outages=outages,
        outage_total_ms=gap_ms,
        recovered=True,
        intervals=[],
        longest_streak={"requests": min(failed, 5)},
        worst_window={"window_ms": 100.0, "error_rate": 0.5 if failed else 0.0},
        shows_old="instance cheddar-0",
        shows_new="instance wensleydale-0",
        convergence_ms=convergence_ms,
        first_new_s=None if convergence_ms is None else 0.5 + convergence_ms / 1e3,
        last_old_s=0.5,
        last_old_ms=0.0,
        mixed_after_convergence=0,
        old_after_shown=0,
        new_before_change=0,
        shown_ms=None,
        change_call_ms=100.0,
        latency={},
        sender={"lag_p99_ms": 1.0, "valid": True},
        hitless=failed == 0,
        problems=[],
        summary=f"{failed} of 10000 failed; gap {gap_ms} ms",
        meta={},
    )


def gap_distribution(runs: Sequence[GapRun]) -> GapDistribution:
    """A strategy's GapDistribution over its runs, as ``harness.checks.gaps.summarize_repeats``
    writes it."""
    classes: dict[str, int] = {}
    for run in runs:
        for name, n in run["failed_by_class"].items():
            classes[name] = classes.get(name, 0) + n
    return GapDistribution(
        runs=len(runs),
        hitless_runs=sum(r["hitless"] for r in runs),
        invalid_runs=0,
        unrecovered_runs=sum(not r["recovered"] for r in runs),
        outages=_distribution([r["outages"] for r in runs]),
        outages_values=[r["outages"] for r in runs],
        outage_total_ms=_distribution([r["outage_total_ms"] for r in runs]),
        failed=_distribution([r["failed"] for r in runs]),
        failed_values=[r["failed"] for r in runs],
        failed_by_class_total=classes,
        gap_ms=_distribution([r["gap_ms"] for r in runs]),
        gap_ms_values=[r["gap_ms"] for r in runs],
        convergence_ms=_distribution([r["convergence_ms"] for r in runs]),
        convergence_ms_values=[r["convergence_ms"] for r in runs],
        shown_ms=_distribution([r["shown_ms"] for r in runs]),
        mixed_after_convergence=_distribution([r["mixed_after_convergence"] for r in runs]),
        longest_streak=_distribution([r["longest_streak"]["requests"] for r in runs]),
        worst_window_error_rate=_distribution([r["worst_window"]["error_rate"] for r in runs]),
        lag_p99_ms=_distribution([r["sender"]["lag_p99_ms"] for r in runs]),
    )


def gaps_evidence(strategy: str, runs: Sequence[GapFigures]) -> GapsEvidence:
    repeats = [gap_run(*figures) for figures in runs]
    return GapsEvidence(
        type="gaps",
        strategy=strategy,
        title=STRATEGY_RUNS.get(strategy, (strategy, []))[0],
        requests=["GET cheeses.minikube/cheddar"],
        old={"backends": ["cheddar"], "instances": [], "paths": []},
        new={"backends": ["wensleydale"], "instances": [], "paths": []},
        scenario=GAP_SUBJECT["scenario"],
        route=GAP_SUBJECT["route"],
        rule='Host("cheeses.minikube") && PathPrefix("/cheddar")',
        source={"file": "harness/suites/manifests/cheeses.yaml", "line": 22},
        moved_to="wensleydale",
        command=None,
        throttle_s=2.0,
        budget=None if strategy in ("delete-create", "backend-stops-first") else 0,
        summary=f"{strategy}: {len(runs)} runs",
        distribution=gap_distribution(repeats),
        repeats=repeats,
        change_window=None,
        settings={"rate": 2000.0, "repeats": float(len(runs)), "k": 3.0},
    )


def evidence_of(kind: Kind, outcome: O, subj: Subject) -> Evidence:
    """Evidence of ``kind`` for a check of ``subj`` with ``outcome``."""
    if kind is Kind.WEIGHTS:
        return weights_evidence(subj["scenario"], subj["route"] or "", outcome)
    if kind is Kind.GAPS:
        return gaps_evidence(subj["label"], [(0, 0.0, 200.0, 0)])
    if kind is Kind.REGISTRATION:
        return RegistrationEvidence(
            type="registration",
            scenario=subj["scenario"],
            steps=[
                {
                    "step": f"applied {route}",
                    "verdict": exact_evidence(kind, subj["scenario"], route, outcome),
                }
                for route in SCENARIOS.get(subj["scenario"], ["cheeses.minikube/cheddar"])
            ],
        )
    return exact_evidence(kind, subj["scenario"], subj["label"], outcome)


def figures_of(evidence: Evidence) -> dict[str, float]:
    """The figures a check of this evidence stores for the baseline (as the checks do)."""
    if evidence["type"] == "exact":
        return {"unexpected_answers": float(evidence["unexpected"])}
    if evidence["type"] == "registration":
        return {
            "unexpected_answers": float(sum(s["verdict"]["unexpected"] for s in evidence["steps"]))
        }
    if evidence["type"] == "weights":
        return {"error_rate": evidence["error_check"]["error_rate"]}
    d = evidence["distribution"]
    medians = {
        "gap_ms": d["gap_ms"]["median"],
        "failed_requests": d["failed"]["median"],
        "convergence_ms": d["convergence_ms"]["median"],
    }
    return {name: float(v) for name, v in medians.items() if v is not None}


def record(
    test: str,
    kind: Kind,
    outcome: O,
    scenario: str,
    label: str,
    *,
    route: bool = True,
    evidence: Evidence | None = None,
    message: str = "",
) -> CheckRecord:
    """One check as the check itself records it (``CheckVerdict.record``)."""
    subj = subject(scenario, label, route=route)
    evidence = evidence or evidence_of(kind, outcome, subj)
    verdict = CheckVerdict(
        outcome=outcome,
        subject=subj,
        summary=f"{kind} of {label}: {outcome}",
        message=message or f"{kind} check {outcome}",
        evidence=evidence,
        figures=figures_of(evidence),
    )
    assert verdict.kind is kind
    return verdict.record(f"harness/suites/test_{kind}.py::{test}[{scenario}:{label}]", 0.1)


def gap_record(strategy: str, outcome: O, runs: Sequence[GapFigures]) -> CheckRecord:
    evidence = gaps_evidence(strategy, runs)
    return CheckVerdict(
        outcome=outcome,
        subject=GAP_SUBJECT,
        summary=f"gaps {evidence['summary']}",
        message=evidence["summary"],
        evidence=evidence,
        figures=figures_of(evidence),
    ).record(f"harness/suites/test_apply_gaps.py::test_apply_strategy_gaps[{strategy}]", 2.0)


def document(
    checks: Sequence[CheckRecord], scenarios: Sequence[str] = (), run_id: str = "run"
) -> ResultsDocument:
    """A results document of these checks, as the collector writes one without a baseline;
    validated against the shipped schema."""
    run = RunResults(
        run_id=run_id,
        harness_version="0.1.0",
        started=1_764_590_400.0,
        finished=1_764_590_820.0,
        target={
            "target": "local",
            "traefik": {"version": "3.7.15", "proxy_url": "http://127.0.0.1:40001"},
        },
        parameters={
            "probe_rounds": 50,
            "scenarios": list(scenarios),
            "manifests": ["/src/harness/suites/manifests"],
        },
        checks=list(checks),
    )
    doc = run.to_dict()
    assert_valid(doc)
    return doc


def run_document(*, failing: bool) -> ResultsDocument:
    """A run over SCENARIOS: passing, or with failures of every gate-failing outcome (a routing
    failure, a weights error, an invalid gap run, a gap over budget) and an undefined tie."""
    checks: list[CheckRecord] = []
    for scenario, labels in SCENARIOS.items():
        for label in labels:
            for probe in ("p", "p/", "p/x", "pX"):
                outcome = O.PASSED
                if (
                    failing
                    and scenario == "cheeses"
                    and label.endswith("wensleydale")
                    and probe == "p/x"
                ):
                    outcome = O.FAILED
                checks.append(
                    record(f"test_routing[{probe}]", Kind.ROUTING, outcome, scenario, label)
                )
            if scenario in ("cheeses", "strip"):
                checks.append(record("test_strip", Kind.STRIP, O.PASSED, scenario, label))
            if scenario.startswith("priority"):
                checks.append(record("test_priority", Kind.PRIORITY, O.PASSED, scenario, label))
            if scenario.startswith("weights") and label.endswith("/"):
                outcome = O.ERROR if failing and scenario == "weights-three-way" else O.PASSED
                checks.append(
                    record(
                        "test_weights",
                        Kind.WEIGHTS,
                        outcome,
                        scenario,
                        label,
                        message="too many failed requests to judge the split"
                        if outcome == O.ERROR
                        else "",
                    )
                )
        checks.append(
            record(
                "test_anything_else_is_404",
                Kind.ROUTING,
                O.PASSED,
                scenario,
                "other requests",
                route=False,
            )
        )
        reg = O.UNDEFINED if scenario == "registration-duplicate" else O.PASSED
        checks.append(
            record(
                "test_registers",
                Kind.REGISTRATION,
                reg,
                scenario,
                "the scenario as a whole",
                route=False,
            )
        )
    checks.append(
        record("test_local_only", Kind.ROUTING, O.SKIPPED, "strip", "other requests", route=False)
    )
    for strategy, (_, planned) in STRATEGY_RUNS.items():
        runs = planned
        outcome = (
            O.REPORT_ONLY if strategy in ("delete-create", "backend-stops-first") else O.PASSED
        )
        if failing and strategy == "replace":
            outcome = O.INVALID
        if failing and strategy == "patch":
            outcome, runs = O.FAILED, [(0, 0.0, 189.0, 0)] * 4 + [(35, 40.0, 1200.0, 1)]
        checks.append(gap_record(strategy, outcome, runs))
    doc = document(checks, list(SCENARIOS), "20261201T120000Z" if failing else "20261130T120000Z")
    doc["findings"] = [
        {
            "kind": "legacy-annotation",
            "severity": "info",
            "message": f"legacy annotation {i}",
            "source": {"file": "cheeses.yaml", "line": i},
        }
        for i in range(1, 8)
    ]
    assert_valid(doc)
    return doc


def with_baseline(current: ResultsDocument, baseline: ResultsDocument | None) -> ResultsDocument:
    """The document as the collector finishes it: compared with the baseline (the real
    comparison), the comparison and the gate stored; validated against the schema."""
    regressions: list[str] = []
    if baseline is not None:
        comparison = compare(current, baseline, baseline_path="reports/base/results.json")
        current["comparison"] = comparison.to_dict()
        regressions = comparison.reasons()
    current["gate"] = gate_of(current["counts"], regressions)
    assert_valid(current)
    return current


def passing_run() -> ResultsDocument:
    """A passing run compared with an identical baseline."""
    baseline = run_document(failing=False)
    baseline["run_id"] = "20261129T120000Z"
    return with_baseline(run_document(failing=False), baseline)


def failing_run() -> ResultsDocument:
    """A failing run compared with a baseline where the new failures passed and one check that
    passes now failed; backend-stops-first's gap was 500 ms in the baseline (every run)."""
    failed_then = record("test_strip", Kind.STRIP, O.FAILED, "strip", "cheeses.minikube/parmesan")
    smaller_gap_then = gap_record(
        "backend-stops-first", O.REPORT_ONLY, [(500, 500.0, 200.0, 10)] * 5
    )
    then = {c["nodeid"]: c for c in (failed_then, smaller_gap_then)}
    checks = [then.get(c["nodeid"], c) for c in run_document(failing=False)["checks"]]
    baseline = document(checks, list(SCENARIOS), "20261130T120000Z")
    return with_baseline(run_document(failing=True), baseline)


# -- reading the HTML ---------------------------------------------------------------------------


class Cells(HTMLParser):
    """Text of every table heading and cell, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.ids: list[str] = []
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag in ("th", "td", "dt"):
            self._depth += 1
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td", "dt") and self._depth:
            self._depth -= 1
            self.cells.append(" ".join(" ".join(self._text).split()))

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)


def cells_of(html: str) -> Cells:
    parser = Cells()
    parser.feed(html)
    return parser


# -- tests --------------------------------------------------------------------------------------


def test_cell_is_the_worst_outcome_of_its_checks() -> None:
    checks = [
        record("a", Kind.ROUTING, O.PASSED, "s", "r1"),
        record("b", Kind.ROUTING, O.UNDEFINED, "s", "r1"),
        record("c", Kind.ROUTING, O.PASSED, "s", "r1"),
        record("d", Kind.STRIP, O.PASSED, "s", "r1"),
        record("e", Kind.STRIP, O.REPORT_ONLY, "s", "r1"),
        record("f", Kind.PRIORITY, O.UNDEFINED, "s", "r1"),
        record("g", Kind.PRIORITY, O.INVALID, "s", "r1"),
        record("h", Kind.PRIORITY, O.FAILED, "s", "r1"),
        record("i", Kind.WEIGHTS, O.SKIPPED, "s", "r1"),
        record("j", Kind.GAPS, O.ERROR, "s", "r1"),
        record("k", Kind.GAPS, O.INVALID, "s", "r1"),
        record("l", Kind.ROUTING, O.PASSED, "s", "r2"),
        record("m", Kind.ROUTING, O.SKIPPED, "s", "r2"),
    ]
    screen = build_first_screen(document(checks))
    [[group]] = screen.blocks
    row, other = group.rows
    # Passed counts its passed checks; the skipped one is in the tooltip.
    assert (other.cells[0].outcome, other.cells[0].count) == ("passed", "1")
    assert "1 passed, 1 skipped" in other.cells[0].title
    cells = {c.kind: c for c in row.cells}
    assert [str(k) for k in cells] == [str(k) for k in KINDS]
    assert (cells[Kind.ROUTING].outcome, cells[Kind.ROUTING].count) == ("undefined", "1/3")
    assert (cells[Kind.STRIP].outcome, cells[Kind.STRIP].count) == ("report-only", "1/2")
    assert (cells[Kind.PRIORITY].outcome, cells[Kind.PRIORITY].mark) == ("failed", MARKS[O.FAILED])
    assert cells[Kind.WEIGHTS].outcome == "skipped"
    assert (cells[Kind.GAPS].outcome, cells[Kind.GAPS].count) == ("error", "1/2")
    assert cells[Kind.REGISTRATION].outcome == "" and cells[Kind.REGISTRATION].anchor == ""
    # The link goes to the check that made the mark.
    assert cells[Kind.PRIORITY].anchor == check_anchor(checks[7]["nodeid"])
    assert cells[Kind.ROUTING].anchor == check_anchor(checks[1]["nodeid"])
    assert "1 undefined, 2 passed" in cells[Kind.ROUTING].title


def test_rows_grouped_by_scenario_in_run_order_routes_first() -> None:
    doc = run_document(failing=False)
    screen = build_first_screen(doc)
    groups = [g for block in screen.blocks for g in block]
    scenarios = list(dict.fromkeys(g.scenario for g in groups))
    assert scenarios == list(SCENARIOS)
    for scenario, labels in SCENARIOS.items():
        rows = [r.label for g in groups if g.scenario == scenario for r in g.rows]
        # Routes by label, then the rows about no route.
        assert rows[: len(labels)] == sorted(labels)
        assert set(rows[len(labels) :]) == {"other requests", "the scenario as a whole"}
    # 50 rows and 10 scenario headings: split into two tables side by side, of even height,
    # each scenario whole (it fits in one table).
    heights = [sum(len(g.rows) + 1 for g in block) for block in screen.blocks]
    assert heights == [30, 30]
    assert not any(g.continued for g in groups)


def test_one_big_scenario_continues_in_the_next_table() -> None:
    doc = document(
        [record("t", Kind.ROUTING, O.PASSED, "manifests", f"h/{i:02}") for i in range(40)]
    )
    screen = build_first_screen(doc)
    groups = [g for block in screen.blocks for g in block]
    assert [r.label for g in groups for r in g.rows] == [f"h/{i:02}" for i in range(40)]
    assert [g.continued for g in groups] == [False] + [True] * (len(groups) - 1)
    assert len(screen.blocks) == len(groups) > 1


def test_gate_failures_by_kind_and_target_line() -> None:
    doc = failing_run()
    screen = build_first_screen(doc)
    # The stored gate, as it is.
    assert (screen.verdict, screen.reasons) == (doc["gate"]["verdict"], doc["gate"]["reasons"])
    assert screen.verdict == "failed"
    assert [(str(f.outcome), f.by_kind) for f in screen.gate_failures] == [
        ("failed", [("routing", 1), ("gaps", 1)]),
        ("error", [("weights", 1)]),
        ("invalid", [("gaps", 1)]),
    ]
    assert any("new failure" in r for r in screen.reasons)
    # Under the verdict, what the counts by kind do not say already: the regressions.
    assert screen.other_reasons == [r for r in screen.reasons if "check(s)" not in r]
    assert len(screen.other_reasons) == 2 < len(screen.reasons)
    assert (
        screen.target_line
        == "local target \u00b7 Traefik 3.7.15 \u00b7 the tutorial's manifests: 10 scenarios"
    )
    own = {
        "target": {"target": "local"},
        "parameters": {"scenarios": ["manifests"], "manifests": ["k8s/a.yaml"]},
    }
    assert (
        target_line(own)
        == "local target \u00b7 Traefik version not known \u00b7 your manifests: k8s/a.yaml"
    )
    external = {"target": {"target": "external", "proxy_url": "http://127.0.0.1:8000"}}
    assert target_line(external).startswith(
        "external target http://127.0.0.1:8000 (verified as it is"
    )


def test_comparison_names_the_baseline_and_what_changed() -> None:
    doc = failing_run()
    for given in (doc, json.loads(json.dumps(doc))):  # also as results.json reads back
        summary = build_first_screen(given).comparison
        assert summary is not None
        assert summary.baseline_run_id == "20261130T120000Z"
        assert summary.regressed
        assert {(i.scenario, i.text) for i in summary.new_failures} >= {
            ("cheeses", "cheeses.minikube/wensleydale"),
            ("weights-three-way", "cheeses.minikube/"),
        }
        assert [(i.scenario, i.text) for i in summary.fixed] == [
            ("strip", "cheeses.minikube/parmesan")
        ]
        worse = {i.change for i in summary.worse}
        assert "gap (ms) 500 \u2192 1,990 (+1,490, +298%)" in worse, worse
        assert all(i.anchor == check_anchor(i.nodeid) for i in summary.new_failures)
    alone = with_baseline(run_document(failing=False), None)
    assert build_first_screen(alone).comparison is None
    assert "No baseline" in render_report(alone)
    alone["baseline_problem"] = "reports/old/results.json: results schema version 1"
    assert_valid(alone)
    html = render_report(alone)
    gate_box = html[html.index('id="comparison-summary"') : html.index('id="matrix"')]
    assert "No baseline" not in gate_box
    assert "reports/old/results.json: results schema version 1" in gate_box


def test_strategy_table_from_the_runs_distributions() -> None:
    doc = failing_run()
    rows = {r.strategy: r for r in strategy_rows(doc)}
    assert list(rows) == sorted(STRATEGY_RUNS)  # in the checks' order (by node id)
    dc = rows["delete-create"]
    assert (
        dc.failed,
        dc.gap_ms,
        dc.outages,
        dc.outage_total_ms,
        dc.convergence_ms,
        dc.hitless,
    ) == (
        "0 / 4,249",
        "0 / 2,125",
        "0 / 2",
        "0 / 2,125",
        "1,371 (262\u20132,157)",
        "3/5",
    )
    assert rows["backend-stops-first"].outages == "140 / 165"
    assert dc.outcome == "report-only" and rows["patch"].outcome == "failed"
    assert rows["replace"].outcome == "invalid"
    html = render_report(doc)
    section = html[html.index('id="kind-gaps"') :]
    # The table opens the gaps section, before the first strategy's own details.
    assert 0 < section.index('id="gap-strategies"') < section.index('class="check')
    cells = cells_of(section[: section.index("</table>")]).cells
    assert cells[:8] == [
        "strategy",
        "failed requests median / max",
        "gap ms median / max",
        "outages median / max",
        "outages together ms median / max",
        "convergence ms median (min\u2013max)",
        "hitless runs",
        "outcome",
    ]


def test_every_link_of_the_first_screen_has_a_target() -> None:
    doc = failing_run()
    html = render_report(doc)
    parsed = cells_of(html)
    ids = set(parsed.ids)
    assert len(ids) == len(parsed.ids), "anchors are unique"
    links = re.findall(r'href="#([^"]+)"', html)
    assert links and set(links) <= ids
    view = build_view(doc)
    marks = [
        c
        for block in view.first_screen.blocks
        for g in block
        for r in g.rows
        for c in r.cells
        if c.outcome
    ]
    assert marks and {c.anchor for c in marks} <= ids
    # The first screen comes first: the gate and the comparison beside it, the matrix, the rest.
    order = ['id="gate"', 'id="comparison-summary"', 'id="matrix"', 'id="run"']
    assert [html.index(a) for a in order] == sorted(html.index(a) for a in order)


def test_anchors_are_stable_across_runs() -> None:
    doc = run_document(failing=False)
    before = build_view(doc).anchors
    new = record("test_new", Kind.ROUTING, O.PASSED, "aaa", "first")
    grown = document([new, *doc["checks"]], list(SCENARIOS))
    after = build_view(grown).anchors
    assert all(after[nodeid] == anchor for nodeid, anchor in before.items())
    assert len(set(after.values())) == len(after)
    assert check_anchor("a::b[x/y]") == check_anchor("a::b[x/y]") != check_anchor("a::b[x-y]")


def test_figures_shown_with_human_labels() -> None:
    doc = failing_run()
    html = render_report(doc)
    cells = set(cells_of(html).cells)
    raw = {k for k, v in LABELS.items() if k != v} - {str(o) for o in OUTCOMES}
    assert not cells & raw, sorted(cells & raw)
    for shown in (
        LABELS["n_ncx2"],
        LABELS["concentration"],
        LABELS["mixed_after_convergence"],
        LABELS["outages"],
        "gap (ms)",
    ):
        assert shown in cells, shown
    assert label_of("backends.cheddar") == "backend instances: cheddar"
    assert label_of("no_such_field") == "no_such_field"
    # The glossary defines them; the tooltips carry the definitions.
    assert 'id="glossary"' in html and "noncentral chi-square distribution" in html


def test_findings_show_the_first_few_and_collapse_the_rest() -> None:
    doc = failing_run()
    html = render_report(doc)
    section = html[
        html.index('id="findings"') : html.index("</section>", html.index('id="findings"'))
    ]
    shown = section[: section.index('<details class="list"><summary>')]
    assert shown.count("legacy annotation") == 3
    assert "4 more" in section and section.count("legacy annotation") == 7
