"""The report's first screen (harness/results/first_screen.py): the gate and why, the matrix of
behaviours verified, the comparison with the baseline, the strategy table of the gaps section,
human labels.

Documents are built here in the evidence contract's shape (``harness.checks.evidence``: every
check with its ``subject``, ``summary`` and one evidence mapping), with the real baseline
comparison and gate; the builders are also used by ``test_report_browser.py``.
"""

from __future__ import annotations

import copy
import re
import statistics
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from harness.checks.evidence import (
    KINDS,
    OUTCOMES,
    CheckRecord,
    Distribution,
    GapDistribution,
    Kind,
)
from harness.checks.evidence import Outcome as O  # noqa: N817 (the tables below read better)
from harness.results.baseline import Comparison, FigureChange, compare
from harness.results.first_screen import (
    MARKS,
    build_first_screen,
    check_anchor,
    strategy_rows,
    target_line,
)
from harness.results.labels import LABELS
from harness.results.labels import label as label_of
from harness.results.report import build_view, gate, render_report

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
#: The apply strategies and their runs: (failed requests, gap ms, convergence ms) per run.
STRATEGY_RUNS: dict[str, tuple[str, Sequence[tuple[int, float, float | None]]]] = {
    "patch": ("kubectl apply (three-way patch of the Ingress)", [(0, 0.0, 189.0)] * 5),
    "replace": ("kubectl replace (PUT of the whole Ingress)", [(0, 0.0, 305.0)] * 5),
    "delete-create": (
        "kubectl replace --force, or a rename",
        [
            (0, 0.0, 262.0),
            (4249, 2125.0, 2157.0),
            (0, 0.0, 1371.0),
            (3800, 1900.0, 1400.0),
            (0, 0.0, 1300.0),
        ],
    ),
    "override-priority": ("same host and path, higher priority", [(0, 0.0, 272.0)] * 5),
    "backend-stops-first": (
        "the old backend stops before its endpoint is removed",
        [(1980, 1980.0, 203.0), (2004, 2004.0, 155.0)] + [(1990, 1990.0, 1285.0)] * 3,
    ),
}
GAP_SUBJECT = ("cheeses", "cheeses.minikube/cheddar")


def record(
    test: str,
    kind: Kind,
    outcome: O,
    scenario: str,
    label: str,
    *,
    route: bool = True,
    evidence: dict[str, object] | None = None,
    message: str = "",
) -> CheckRecord:
    """One check record of the evidence contract."""
    return CheckRecord(
        nodeid=f"suites/test_{kind}.py::{test}[{scenario}:{label}]",
        kind=kind,
        outcome=outcome,
        subject={
            "scenario": scenario,
            "route": f"{scenario}:{label}" if route else None,
            "label": label,
        },
        summary=f"{kind} of {label}: {outcome}",
        message=message,
        duration=0.1,
        evidence=evidence or {"type": "exact"},
        findings=[],
    )


def _distribution(values: list[float | None]) -> Distribution:
    present = [v for v in values if v is not None]
    if not present:
        return {"min": None, "median": None, "max": None, "missing": len(values)}
    return {
        "min": min(present),
        "median": statistics.median(present),
        "max": max(present),
        "missing": len(values) - len(present),
    }


def gap_distribution(runs: Sequence[tuple[int, float, float | None]]) -> GapDistribution:
    """A strategy's GapDistribution over its runs (the figures not shown here as zeros)."""
    failed = [float(f) for f, _, _ in runs]
    zero = _distribution([0.0] * len(runs))
    return {
        "runs": len(runs),
        "hitless_runs": sum(1 for f, _, _ in runs if f == 0),
        "invalid_runs": 0,
        "unrecovered_runs": 0,
        "failed": _distribution(list(failed)),
        "failed_values": [f for f, _, _ in runs],
        "failed_by_class_total": {"404": sum(f for f, _, _ in runs)} if any(failed) else {},
        "gap_ms": _distribution([g for _, g, _ in runs]),
        "gap_ms_values": [g for _, g, _ in runs],
        "convergence_ms": _distribution([c for _, _, c in runs]),
        "convergence_ms_values": [c for _, _, c in runs],
        "shown_ms": zero,
        "mixed_after_convergence": zero,
        "longest_streak": zero,
        "worst_window_error_rate": zero,
        "lag_p99_ms": zero,
    }


def gap_record(
    strategy: str, outcome: O, runs: Sequence[tuple[int, float, float | None]]
) -> CheckRecord:
    title = STRATEGY_RUNS.get(strategy, (strategy, []))[0]
    check = record(
        f"test_apply_strategy_gaps[{strategy}]",
        Kind.GAPS,
        outcome,
        *GAP_SUBJECT,
        evidence={
            "type": "gaps",
            "strategy": strategy,
            "title": title,
            "distribution": gap_distribution(runs),
            "repeats": [
                {"failed": f, "gap_ms": g, "convergence_ms": c, "mixed_after_convergence": 0}
                for f, g, c in runs
            ],
        },
    )
    check["nodeid"] = f"suites/test_apply_gaps.py::test_apply_strategy_gaps[{strategy}]"
    return check


def weights_evidence(route: str) -> dict[str, object]:
    return {
        "type": "weights",
        "route": route,
        "plan": {"n": 17467, "n_fixed": 17467, "n_ncx2": 16920, "concentration": 52.3, "df": 1},
        "verdict": {
            "verdict": "pass",
            "backends": ["cheddar", "wensleydale"],
            "counts": [13100, 4367],
            "expected": [0.75, 0.25],
            "observed": [0.75, 0.25],
            "summary": "75.0% / 25.0% as declared",
        },
    }


def run_document(*, failing: bool) -> dict[str, Any]:
    """A run over SCENARIOS in the contract's shape: passing, or with failures of every gate-
    failing outcome (a routing failure, a weights error, an invalid gap run, a gap over budget)
    and an undefined tie."""
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
                        evidence=weights_evidence(f"{scenario}:{label}"),
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
            outcome, runs = O.FAILED, [(0, 0.0, 189.0)] * 4 + [(35, 40.0, 1200.0)]
        checks.append(gap_record(strategy, outcome, runs))
    counts = {
        o: sum(1 for c in checks if c["outcome"] == o)
        for o in ("passed", "failed", "error", "skipped", "undefined")
    }
    return {
        "schema_version": 1,
        "run_id": "20261201T120000Z" if failing else "20261130T120000Z",
        "harness_version": "0.1.0",
        "started": 1_764_590_400.0,
        "finished": 1_764_590_820.0,
        "target": {
            "target": "local",
            "traefik": {"version": "3.7.15", "proxy_url": "http://127.0.0.1:40001"},
        },
        "parameters": {
            "probe_rounds": 50,
            "scenarios": list(SCENARIOS),
            "manifests": ["/src/suites/manifests"],
        },
        "counts": counts,
        "findings": [
            {
                "kind": "legacy-annotation",
                "severity": "info",
                "message": f"legacy annotation {i}",
                "source": {"file": "cheeses.yaml", "line": i},
            }
            for i in range(1, 8)
        ],
        "checks": sorted(checks, key=lambda c: c["nodeid"]),
    }


def with_gate(
    current: dict[str, Any],
    baseline: dict[str, Any] | None,
    changes: Sequence[FigureChange] = (),
) -> tuple[dict[str, Any], Comparison | None]:
    """The document as the collector finishes it: the comparison and the gate stored."""
    comparison = (
        None
        if baseline is None
        else compare(current, baseline, baseline_path="reports/base/results.json")
    )
    if comparison is not None:
        comparison.changes.extend(changes)
        current["comparison"] = comparison.to_dict()
    verdict, reasons = gate(current, comparison)
    current["gate"] = {"verdict": verdict, "reasons": reasons}
    return current, comparison


def passing_run() -> tuple[dict[str, Any], Comparison | None]:
    """A passing run compared with an identical baseline."""
    baseline = run_document(failing=False)
    baseline["run_id"] = "20261129T120000Z"
    return with_gate(run_document(failing=False), baseline)


def failing_run() -> tuple[dict[str, Any], Comparison | None]:
    """A failing run compared with a baseline where the new failures passed and one check that
    passes now failed; backend-stops-first's gap grew from 500 ms (a figure change as the
    comparison records it)."""
    baseline = run_document(failing=False)
    for check in baseline["checks"]:
        if check["nodeid"].startswith(
            "suites/test_strip.py::test_strip[strip:cheeses.minikube/parmesan"
        ):
            check["outcome"] = "failed"
    worse = FigureChange(
        "suites/test_apply_gaps.py::test_apply_strategy_gaps[backend-stops-first]",
        Kind.GAPS,
        "gap_ms",
        500.0,
        1990.0,
    )
    return with_gate(run_document(failing=True), baseline, [worse])


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
    doc = {
        "checks": [
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
    }
    screen = build_first_screen(doc, "failed", [])
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
    assert cells[Kind.PRIORITY].anchor == check_anchor(doc["checks"][7]["nodeid"])
    assert cells[Kind.ROUTING].anchor == check_anchor(doc["checks"][1]["nodeid"])
    assert "1 undefined, 2 passed" in cells[Kind.ROUTING].title


def test_rows_grouped_by_scenario_in_run_order_routes_first() -> None:
    doc = run_document(failing=False)
    screen = build_first_screen(doc, "passed", [])
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
    doc = {
        "checks": [record("t", Kind.ROUTING, O.PASSED, "manifests", f"h/{i:02}") for i in range(40)]
    }
    screen = build_first_screen(doc, "passed", [])
    groups = [g for block in screen.blocks for g in block]
    assert [r.label for g in groups for r in g.rows] == [f"h/{i:02}" for i in range(40)]
    assert [g.continued for g in groups] == [False] + [True] * (len(groups) - 1)
    assert len(screen.blocks) == len(groups) > 1


def test_gate_failures_by_kind_and_target_line() -> None:
    doc, comparison = failing_run()
    screen = build_first_screen(doc, *gate(doc, comparison), comparison)
    assert screen.verdict == "failed"
    assert [(str(f.outcome), f.by_kind) for f in screen.gate_failures] == [
        ("failed", [("routing", 1), ("gaps", 1)]),
        ("error", [("weights", 1)]),
        ("invalid", [("gaps", 1)]),
    ]
    assert any("new failure" in r for r in screen.reasons)
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
    doc, comparison = failing_run()
    assert comparison is not None
    for given in (comparison, None):  # the Comparison, or the one stored in the document
        summary = build_first_screen(doc, "failed", [], given).comparison
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
    alone = run_document(failing=False)
    assert build_first_screen(alone, "passed", []).comparison is None
    assert "No baseline" in render_report(alone)


def test_strategy_table_from_the_runs_distributions() -> None:
    doc, _ = failing_run()
    rows = {r.strategy: r for r in strategy_rows(doc)}
    assert list(rows) == sorted(STRATEGY_RUNS)  # in the checks' order (by node id)
    dc = rows["delete-create"]
    assert (dc.failed, dc.gap_ms, dc.convergence_ms, dc.hitless) == (
        "0 / 4,249",
        "0 / 2,125",
        "1,371 (262\u20132,157)",
        "3/5",
    )
    assert dc.outcome == "report-only" and rows["patch"].outcome == "failed"
    assert rows["replace"].outcome == "invalid"
    html = render_report(doc)
    section = html[html.index('id="kind-gaps"') :]
    # The table opens the gaps section, before the first strategy's own details.
    assert 0 < section.index('id="gap-strategies"') < section.index('class="check')
    cells = cells_of(section[: section.index("</table>")]).cells
    assert cells[:6] == [
        "strategy",
        "failed requests median / max",
        "gap ms median / max",
        "convergence ms median (min\u2013max)",
        "hitless runs",
        "outcome",
    ]


def test_every_link_of_the_first_screen_has_a_target() -> None:
    doc, comparison = failing_run()
    html = render_report(doc, comparison=comparison)
    parsed = cells_of(html)
    ids = set(parsed.ids)
    assert len(ids) == len(parsed.ids), "anchors are unique"
    links = re.findall(r'href="#([^"]+)"', html)
    assert links and set(links) <= ids
    view = build_view(doc, comparison)
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
    grown = copy.deepcopy(doc)
    grown["checks"].insert(0, record("test_new", Kind.ROUTING, O.PASSED, "aaa", "first"))
    after = build_view(grown).anchors
    assert all(after[nodeid] == anchor for nodeid, anchor in before.items())
    assert len(set(after.values())) == len(after)
    assert check_anchor("a::b[x/y]") == check_anchor("a::b[x/y]") != check_anchor("a::b[x-y]")


def test_figures_shown_with_human_labels() -> None:
    doc, comparison = failing_run()
    html = render_report(doc, comparison=comparison)
    cells = set(cells_of(html).cells)
    raw = {k for k, v in LABELS.items() if k != v} - {str(o) for o in OUTCOMES}
    assert not cells & raw, sorted(cells & raw)
    for shown in (
        LABELS["n_ncx2"],
        LABELS["concentration"],
        LABELS["mixed_after_convergence"],
        "gap (ms)",
    ):
        assert shown in cells, shown
    assert label_of("backends.cheddar") == "backend instances: cheddar"
    assert label_of("no_such_field") == "no_such_field"
    # The glossary defines them; the tooltips carry the definitions.
    assert 'id="glossary"' in html and "noncentral chi-square distribution" in html


def test_findings_show_the_first_few_and_collapse_the_rest() -> None:
    doc, _ = failing_run()
    html = render_report(doc)
    section = html[
        html.index('id="findings"') : html.index("</section>", html.index('id="findings"'))
    ]
    shown = section[: section.index('<details class="list"><summary>')]
    assert shown.count("legacy annotation") == 3
    assert "4 more" in section and section.count("legacy annotation") == 7


def test_subjectless_checks_of_old_documents_still_render(tmp_path: Path) -> None:
    doc = {
        "checks": [{"nodeid": "t::x", "kind": "routing", "outcome": "passed"}, {"kind": "other"}]
    }
    screen = build_first_screen(doc, "passed", [])
    assert [r.label for b in screen.blocks for g in b for r in g.rows] == [
        "checks without a subject"
    ]
    assert screen.unmatrixed == 1
    assert "checks without a subject" in render_report(doc)
