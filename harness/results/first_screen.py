"""The report's first screen: can we ship this?

What a release manager reads before scrolling (``templates/first_screen.html.j2``), built from
the results document alone:

- the gate verdict and why, as the document stores it (``gate``: decided once when the run
  ended, never here), and the checks that fail the gate (``GATE_FAILING``) counted by kind; the
  target, Traefik version and manifests mode below;
- the matrix of behaviours verified: a row per route or scenario (``Subject.label``, grouped by
  ``Subject.scenario``), a column per ``Kind``; each cell one mark for the worst outcome of that
  row's checks of that kind (failed, error, invalid > undefined > report-only > passed; skipped
  or no check: a dash), the count, and a link to the first of those checks with that outcome;
- the comparison with the baseline as the document stores it (``comparison``): new failures,
  figures worse beyond the thresholds, fixed checks, the baseline run named; else why the run
  was not compared (``baseline_problem``), or "no baseline".

Further down, the gaps section opens with one table comparing every apply strategy
(``StrategyRow``, from each gap check's ``GapDistribution``). Every check's details carry a
stable anchor (``check_anchor``: the same node id gives the same anchor in every run), so links
into a report survive a rerun.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from harness.checks.evidence import (
    GATE_FAILING,
    KINDS,
    CheckRecord,
    Distribution,
    Kind,
    Outcome,
    Subject,
)
from harness.results.document import ResultsDocument, outcome_reason
from harness.results.labels import DEFINITIONS, LABELS, definition, label

#: Cell outcomes from worst to best: the first one present among a cell's checks is its mark.
CELL_ORDER: tuple[Outcome, ...] = (
    Outcome.FAILED,
    Outcome.ERROR,
    Outcome.INVALID,
    Outcome.UNDEFINED,
    Outcome.REPORT_ONLY,
    Outcome.PASSED,
    Outcome.SKIPPED,
)
#: The mark of each outcome in the matrix (the legend under it says what each means).
MARKS: dict[Outcome, str] = {
    Outcome.FAILED: "\u2717",
    Outcome.ERROR: "!",
    Outcome.INVALID: "\u26a0",
    Outcome.UNDEFINED: "?",
    Outcome.REPORT_ONLY: "\u25cb",
    Outcome.PASSED: "\u2713",
    Outcome.SKIPPED: "\u2013",
}
LEGEND: tuple[tuple[Outcome, str], ...] = (
    (Outcome.PASSED, "passed"),
    (Outcome.FAILED, "failed"),
    (Outcome.ERROR, "error: could not be judged"),
    (Outcome.INVALID, "invalid: the measurement cannot be trusted"),
    (Outcome.UNDEFINED, "undefined: a tie"),
    (Outcome.REPORT_ONLY, "report-only: no budget"),
    (Outcome.SKIPPED, "not checked"),
)
#: Matrix column headings, and what each column verifies (the heading's tooltip).
KIND_HEADINGS: dict[Kind, tuple[str, str]] = {
    Kind.ROUTING: ("routing", "status and backend Service of every probe"),
    Kind.STRIP: ("strip", "path the backend saw and X-Forwarded-Prefix"),
    Kind.PRIORITY: ("priority", "the route Traefik's precedence picks where routes overlap"),
    Kind.EDGE: ("edge", "unusual paths and hosts: dot segments, encodings, case, ports"),
    Kind.REGISTRATION: ("registration", "applying registers the routes, removing deregisters"),
    Kind.WEIGHTS: ("weights", "the weighted split, by a planned statistical test"),
    Kind.GAPS: ("gaps", "failed requests while a change is applied"),
}

#: Rows per matrix table (scenario headings included) that fit the first screen at 1400x900;
#: more rows are split into tables side by side, at most MAX_BLOCKS (the width of the screen).
ROWS_PER_BLOCK = 34
MAX_BLOCKS = 2
#: Items of each comparison list and findings of each group shown before "N more".
SHOWN = 3
#: The figures of a gap measurement shown over its repeats; the others are behind a disclosure.
GAP_HEADLINE_FIGURES: tuple[str, ...] = (
    "failed",
    "gap_ms",
    "outages",
    "convergence_ms",
    "shown_ms",
    "mixed_after_convergence",
    "longest_streak.requests",
    "worst_window.error_rate",
    "sender.lag_p99_ms",
)


def check_anchor(nodeid: str) -> str:
    """The anchor of a check's details: readable, and the same for the same node id in every
    run (a hash keeps two ids that read alike apart)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", nodeid.split("::", 1)[-1]).strip("-")[:60]
    digest = hashlib.sha1(nodeid.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return f"check-{readable}-{digest}"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.3g}"


# -- the gate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateFailures:
    """The checks of one gate-failing outcome, counted by kind."""

    outcome: Outcome
    by_kind: list[tuple[str, int]]
    #: The first such check, to link to.
    anchor: str

    @property
    def total(self) -> int:
        return sum(n for _, n in self.by_kind)


def _gate_failures(checks: list[CheckRecord]) -> list[GateFailures]:
    out = []
    for outcome in CELL_ORDER:
        if outcome not in GATE_FAILING:
            continue
        these = sorted((c for c in checks if c["outcome"] == outcome), key=lambda c: c["nodeid"])
        if these:
            kinds = Counter(Kind(c["kind"]) for c in these)
            out.append(
                GateFailures(
                    outcome,
                    [(str(k), kinds[k]) for k in KINDS if k in kinds],
                    check_anchor(these[0]["nodeid"]),
                )
            )
    return out


def target_line(results: Mapping[str, Any]) -> str:
    """Which target, which Traefik, which manifests: one line."""
    target = _map(results.get("target"))
    traefik = _map(target.get("traefik"))
    params = _map(results.get("parameters"))
    kind = str(target.get("target", target.get("kind", "")) or "unknown")
    parts = [f"{kind} target"]
    if kind == "external" and target.get("proxy_url"):
        parts[0] += f" {target['proxy_url']} (verified as it is, nothing applied)"
    version = traefik.get("version", target.get("proxy_version"))
    parts.append(f"Traefik {version}" if version else "Traefik version not known")
    scenarios = [str(s) for s in params.get("scenarios") or []]
    manifests = [str(m) for m in params.get("manifests") or []]
    if scenarios == ["manifests"]:
        parts.append("your manifests: " + (", ".join(manifests) or "-"))
    elif scenarios:
        parts.append(f"the tutorial's manifests: {len(scenarios)} scenarios")
    legacy = params.get("legacy")
    if legacy:
        parts.append(f"legacy manifests: {legacy}")
    return " \u00b7 ".join(parts)


# -- the matrix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixCell:
    kind: str
    #: The worst outcome among the cell's checks; "" when the row has no check of this kind.
    outcome: str
    mark: str
    #: "12" (all passed), "2/12" (2 of 12 have the worst outcome), "" (none).
    count: str
    anchor: str
    title: str


@dataclass(frozen=True)
class MatrixRow:
    label: str
    cells: list[MatrixCell]


@dataclass(frozen=True)
class MatrixGroup:
    """The rows of one scenario in one table (``continued``: its first rows are in the table
    before)."""

    scenario: str
    rows: list[MatrixRow]
    continued: bool = False


def _cell(kind: Kind, row_label: str, checks: list[CheckRecord]) -> MatrixCell:
    heading = KIND_HEADINGS[kind][0]
    if not checks:
        return MatrixCell(kind, "", "", "", "", f"{heading} \u00b7 {row_label}: no check")
    by_outcome: dict[Outcome, list[CheckRecord]] = {}
    for check in sorted(checks, key=lambda c: c["nodeid"]):
        by_outcome.setdefault(Outcome(check["outcome"]), []).append(check)
    worst = next(o for o in CELL_ORDER if o in by_outcome)
    total, n_worst = len(checks), len(by_outcome[worst])
    counted = ", ".join(f"{len(by_outcome[o])} {o}" for o in CELL_ORDER if o in by_outcome)
    # "2/12": 2 of the cell's 12 checks have its mark; passed ones are not "of" skipped ones.
    count = str(n_worst) if n_worst == total or worst is Outcome.PASSED else f"{n_worst}/{total}"
    return MatrixCell(
        kind=kind,
        outcome=worst,
        mark=MARKS[worst],
        count=count,
        anchor=check_anchor(by_outcome[worst][0]["nodeid"]),
        title=f"{heading} \u00b7 {row_label}: {counted}; opens the first {worst} check",
    )


def _matrix_groups(results: ResultsDocument) -> list[MatrixGroup]:
    """One group per scenario (in the run's order), a row per subject label (routes by label,
    then the rows about no route), a cell per kind."""
    rows: dict[tuple[str, bool, str], dict[Kind, list[CheckRecord]]] = {}
    for check in results["checks"]:
        subject = check["subject"]
        key = (subject["scenario"], subject["route"] is None, subject["label"])
        rows.setdefault(key, {}).setdefault(Kind(check["kind"]), []).append(check)
    scenarios = results["parameters"].get("scenarios") or []
    order = {str(s): i for i, s in enumerate(scenarios)}
    groups: dict[str, MatrixGroup] = {}
    for key in sorted(rows, key=lambda k: (order.get(k[0], len(order)), k[0], k[1], k[2])):
        scenario, _, row_label = key
        group = groups.setdefault(scenario, MatrixGroup(scenario, []))
        cells = [_cell(kind, row_label, rows[key].get(kind, [])) for kind in KINDS]
        group.rows.append(MatrixRow(row_label, cells))
    return list(groups.values())


def _blocks(groups: list[MatrixGroup]) -> list[list[MatrixGroup]]:
    """The groups split into tables of about equal height, side by side, a scenario kept in one
    table unless it alone is taller than one (then it continues in the next)."""
    total = sum(len(g.rows) + 1 for g in groups)  # a heading row per group
    n_blocks = min(MAX_BLOCKS, max(1, math.ceil(total / ROWS_PER_BLOCK)))
    height = math.ceil(total / n_blocks)
    blocks: list[list[MatrixGroup]] = [[]]
    used = 0
    for group in groups:
        rows, continued = group.rows, False
        while rows:
            room = height - used - 1
            fits = len(rows) <= room
            if not fits and used and len(rows) < height and len(blocks) < n_blocks:
                blocks.append([])  # the whole scenario in the next table
                used = 0
                continue
            take = rows if fits or len(blocks) == n_blocks else rows[: max(room, 1)]
            blocks[-1].append(MatrixGroup(group.scenario, take, continued))
            used += len(take) + 1
            rows, continued = rows[len(take) :], True
            if rows:
                blocks.append([])
                used = 0
    return [b for b in blocks if b]


# -- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonItem:
    #: What the check is about, for a person (its subject's label, else its test name).
    text: str
    scenario: str
    kind: str
    #: What changed: "failed, was passed", "gap (ms) 0 \u2192 2,125".
    change: str
    nodeid: str
    #: The check's details in this report ("" when it did not run this time).
    anchor: str


@dataclass(frozen=True)
class ComparisonSummary:
    baseline_run_id: str
    baseline_path: str
    regressed: bool
    reasons: list[str]
    new_failures: list[ComparisonItem]
    worse: list[ComparisonItem]
    fixed: list[ComparisonItem]
    still_failing: int
    missing: int
    added: int


def _about(nodeid: str, subjects: Mapping[str, Subject]) -> str:
    subject = subjects.get(nodeid)
    return subject["label"] if subject else nodeid.split("::", 1)[-1]


def _comparison(results: ResultsDocument) -> ComparisonSummary | None:
    """The stored comparison (``harness.results.baseline.Comparison.to_dict``) for a person."""
    stored = results["comparison"]
    if stored is None:
        return None
    subjects = {c["nodeid"]: c["subject"] for c in results["checks"]}

    def item(ref: Mapping[str, Any], change: str) -> ComparisonItem:
        nodeid = str(ref["nodeid"])
        subject = subjects.get(nodeid)
        return ComparisonItem(
            text=_about(nodeid, subjects),
            scenario=subject["scenario"] if subject else "",
            kind=str(ref["kind"]),
            change=change,
            nodeid=nodeid,
            anchor=check_anchor(nodeid) if subject else "",
        )

    def figure(ch: Mapping[str, Any]) -> str:
        pct = ch["pct"]
        rel = f", {pct:+.0f}%" if pct is not None else ""
        return (
            f"{label(ch['figure'])} {_num(ch['before'])} \u2192 "
            f"{_num(ch['after'])} (+{_num(ch['delta'])}{rel})"
        )

    return ComparisonSummary(
        baseline_run_id=str(stored["baseline_run_id"]),
        baseline_path=str(stored["baseline_path"] or ""),
        regressed=bool(stored["regressed"]),
        reasons=[str(r) for r in stored["reasons"]],
        new_failures=[
            item(r, f"{r['outcome']} (was {r['baseline_outcome'] or 'not run'})")
            for r in stored["new_failures"]
        ],
        worse=[item(r, figure(r)) for r in stored["worse"]],
        fixed=[item(r, f"{r['outcome']} (was {r['baseline_outcome']})") for r in stored["fixed"]],
        still_failing=len(stored["still_failing"]),
        missing=len(stored["missing"]),
        added=int(stored["added"]),
    )


# -- the strategy comparison of the gaps section ------------------------------------------------


@dataclass(frozen=True)
class StrategyRow:
    strategy: str
    title: str
    anchor: str
    outcome: str
    failed: str
    gap_ms: str
    #: Separate outages per run (a strategy that fails twice per change shows here), and the
    #: time they covered together: a short gap among many outages is no hitless change.
    outages: str
    outage_total_ms: str
    convergence_ms: str
    hitless: str
    #: Runs that were invalid or never recovered, when any.
    note: str


def _median_max(dist: Distribution) -> str:
    return f"{_num(dist['median'])} / {_num(dist['max'])}"


def _median_range(dist: Distribution) -> str:
    if dist["median"] is None:
        return "never"
    text = f"{_num(dist['median'])} ({_num(dist['min'])}\u2013{_num(dist['max'])})"
    missing = dist["missing"]
    return text + (f"; never in {missing} run(s)" if missing else "")


def strategy_rows(results: ResultsDocument) -> list[StrategyRow]:
    """One row per apply strategy measured in this run, from its gap check's distribution."""
    out = []
    for check in results["checks"]:
        evidence = check["evidence"]
        if evidence is None or evidence["type"] != "gaps":
            continue
        dist = evidence["distribution"]
        notes = [
            f"{n} {what}"
            for n, what in (
                (dist["invalid_runs"], "invalid"),
                (dist["unrecovered_runs"], "unrecovered"),
            )
            if n
        ]
        out.append(
            StrategyRow(
                strategy=evidence["strategy"],
                title=evidence["title"],
                anchor=check_anchor(check["nodeid"]),
                outcome=check["outcome"],
                failed=_median_max(dist["failed"]),
                gap_ms=_median_max(dist["gap_ms"]),
                outages=_median_max(dist["outages"]),
                outage_total_ms=_median_max(dist["outage_total_ms"]),
                convergence_ms=_median_range(dist["convergence_ms"]),
                hitless=f"{dist['hitless_runs']}/{dist['runs']}",
                note=", ".join(notes),
            )
        )
    return out


# -- the whole first screen ---------------------------------------------------------------------


@dataclass(frozen=True)
class FirstScreen:
    verdict: str
    #: The stored gate's reasons.
    reasons: list[str]
    gate_failures: list[GateFailures]
    #: The reasons the gate failures do not already say (regressions against the baseline).
    other_reasons: list[str]
    target_line: str
    #: (kind, heading, what it verifies, whether the run has checks of that kind: the heading
    #: links to the kind's section only then, as there is no section without checks).
    headings: list[tuple[str, str, str, bool]]
    blocks: list[list[MatrixGroup]]
    legend: list[tuple[str, str, str]]
    comparison: ComparisonSummary | None
    #: Why the run was not compared with the baseline it had (None: it was, or had none).
    baseline_problem: str | None
    strategies: list[StrategyRow]
    glossary: list[tuple[str, str]]
    shown: int = SHOWN
    gap_headline: tuple[str, ...] = GAP_HEADLINE_FIGURES


def build_first_screen(results: ResultsDocument) -> FirstScreen:
    """The first screen of the report from the (redacted) results document alone."""
    reasons = list(results["gate"]["reasons"])
    failures = _gate_failures(results["checks"])
    said = {outcome_reason(f.outcome, f.total) for f in failures}
    return FirstScreen(
        verdict=results["gate"]["verdict"],
        reasons=reasons,
        gate_failures=failures,
        other_reasons=[r for r in reasons if r not in said],
        target_line=target_line(results),
        headings=[
            (k, *KIND_HEADINGS[k], any(c["kind"] == k for c in results["checks"])) for k in KINDS
        ],
        blocks=_blocks(_matrix_groups(results)),
        legend=[(o, MARKS[o], what) for o, what in LEGEND],
        comparison=_comparison(results),
        baseline_problem=results["baseline_problem"],
        strategies=strategy_rows(results),
        glossary=sorted(
            {(LABELS.get(k, k), text) for k, text in DEFINITIONS.items()}, key=lambda kv: kv[0]
        ),
    )


def register_filters(env: jinja2.Environment) -> None:
    """The filters the templates use to show a field for a person: ``label`` and its
    ``definition`` (a tooltip)."""
    env.filters.update(label=label, definition=definition)
