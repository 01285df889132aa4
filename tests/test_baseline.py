"""Baseline comparison (harness/results/baseline.py): new failures, fixed checks, worse figures.

Built on the results documents of real runs in ``tests/data/`` (see tests/test_report.py), changed
the way a later run would differ. The comparison reads the stored outcomes and figures only, so a
later run is made by changing those; that the checks store the right figures is tested here on
the real evidence and in the checks' own tests.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.results.baseline import (
    Thresholds,
    check_figures,
    compare,
    load_baseline,
)

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


def gaps_check(nodeid: str, gap_ms: float, failed: int, outcome: str = "passed") -> dict[str, Any]:
    """The real run's first gap check, as another run with these figures would store it."""
    check = copy.deepcopy(
        next(c for c in load("results-local.json")["checks"] if c["kind"] == "gaps")
    )
    check.update(nodeid=nodeid, outcome=outcome)
    check["figures"].update(gap_ms=gap_ms, failed_requests=float(failed))
    return check


def with_checks(doc: dict[str, Any], run_id: str, *checks: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["run_id"] = run_id
    out["checks"] = out["checks"] + [copy.deepcopy(c) for c in checks]
    return out


def test_same_run_has_no_changes() -> None:
    doc = load("results-external-faults.json")
    comparison = compare(doc, doc)
    assert comparison.new_failures == [] and comparison.fixed == [] and comparison.changes == []
    assert len(comparison.still_failing) == sum(
        1 for c in doc["checks"] if c["outcome"] in ("failed", "error", "invalid")
    )
    assert not comparison.regressed()
    assert comparison.summary_lines()[-1].endswith("passed")


def test_new_failure_is_detected_and_fails_the_gate() -> None:
    baseline = load("results-local.json")
    current = copy.deepcopy(baseline)
    current["run_id"] = "tonight"
    broken = next(
        c for c in current["checks"] if c["kind"] == "routing" and c["outcome"] == "passed"
    )
    broken["outcome"] = "failed"
    # What a proxy that sent this probe elsewhere would have stored.
    broken["figures"]["unexpected_answers"] = 6.0
    added = with_checks(
        current, "tonight", gaps_check("harness/suites/test_gaps.py::g[new]", 10, 0, "error")
    )
    comparison = compare(added, baseline)
    assert {c.nodeid for c in comparison.new_failures} == {
        broken["nodeid"],
        "harness/suites/test_gaps.py::g[new]",
    }
    was = {c.nodeid: c.baseline_outcome for c in comparison.new_failures}
    assert was == {broken["nodeid"]: "passed", "harness/suites/test_gaps.py::g[new]": None}
    assert comparison.added == 1
    assert comparison.regressed()
    # The failing probe's unexpected answers grew from 0: a worse figure as well.
    worse = {(c.nodeid, c.figure) for c in comparison.worse()}
    assert (broken["nodeid"], "unexpected_answers") in worse
    lines = "\n".join(comparison.summary_lines())
    assert "new failures: 2" in lines and broken["nodeid"] in lines and "FAILED" in lines
    # Gate without "any new failure": still regressed by the figure, not by the outcome.
    assert comparison.regressed(Thresholds(new_failures=False))
    off = Thresholds(new_failures=False, unexpected_answers=None)
    assert not comparison.regressed(off)


def test_fixed_and_missing_checks() -> None:
    baseline = load("results-external-faults.json")
    current = copy.deepcopy(baseline)
    current["run_id"] = "later"
    fixed = next(c for c in current["checks"] if c["outcome"] == "failed")
    fixed["outcome"] = "passed"
    dropped = current["checks"].pop()
    comparison = compare(current, baseline)
    assert [c.nodeid for c in comparison.fixed] == [fixed["nodeid"]]
    assert [c.nodeid for c in comparison.missing] == [dropped["nodeid"]]
    assert not comparison.new_failures
    data = comparison.to_dict()
    json.dumps(data)  # plain JSON
    assert data["fixed"][0]["nodeid"] == fixed["nodeid"]


def test_worse_gap_crosses_both_thresholds() -> None:
    base = load("results-local.json")
    nodeid = "harness/suites/test_gaps.py::test_gap[cheeses]"
    before = with_checks(base, "yesterday", gaps_check(nodeid, 200.0, 10))
    t = Thresholds(gap_ms=100.0, gap_pct=50.0)
    # +350 ms and +175%: worse.
    worse = compare(with_checks(base, "today", gaps_check(nodeid, 550.0, 10)), before, thresholds=t)
    change = next(c for c in worse.changes if c.figure == "gap_ms")
    assert (change.before, change.after, change.delta) == (200.0, 550.0, 350.0)
    assert change.pct == pytest.approx(175.0)
    assert [c.figure for c in worse.worse()] == ["gap_ms"]
    assert worse.regressed() and not worse.new_failures
    assert "gap_ms 200 -> 550" in "\n".join(worse.summary_lines())
    # +80 ms (+40%): a change, under both thresholds.
    small = compare(with_checks(base, "today", gaps_check(nodeid, 280.0, 10)), before, thresholds=t)
    assert [c.figure for c in small.changes] == ["gap_ms"] and small.worse() == []
    assert not small.regressed()
    # +120 ms but only +20% of a 600 ms gap: the relative threshold holds it back ...
    big = with_checks(base, "y", gaps_check(nodeid, 600.0, 10))
    noisy = compare(with_checks(base, "t", gaps_check(nodeid, 720.0, 10)), big, thresholds=t)
    assert not noisy.regressed()
    # ... unless it is disabled.
    assert noisy.regressed(Thresholds(gap_ms=100.0, gap_pct=None))
    # Shorter gaps are never worse.
    better = compare(with_checks(base, "t", gaps_check(nodeid, 50.0, 0)), before, thresholds=t)
    assert better.changes == [] and not better.regressed()


def test_more_failed_requests_and_weights_deviation() -> None:
    base = load("results-local.json")
    nodeid = "harness/suites/test_gaps.py::test_gap[x]"
    before = with_checks(base, "a", gaps_check(nodeid, 100.0, 5))
    after = with_checks(base, "b", gaps_check(nodeid, 100.0, 40))
    worse = compare(after, before).worse()
    assert [(c.figure, c.before, c.after) for c in worse] == [("failed_requests", 5.0, 40.0)]
    # A weighted split that drifted by 3 points since the baseline.
    skewed = copy.deepcopy(base)
    weights = next(c for c in skewed["checks"] if c["kind"] == "weights")
    weights["figures"]["share_deviation"] += 0.03
    drift = compare(skewed, base)
    assert [(c.nodeid, c.figure) for c in drift.worse()] == [(weights["nodeid"], "share_deviation")]


def test_figures_are_the_ones_the_checks_stored() -> None:
    doc = load("results-external-faults.json")
    failed_routing = next(
        c for c in doc["checks"] if c["kind"] == "routing" and c["outcome"] == "failed"
    )
    observed = failed_routing["evidence"]["observed"]
    unexpected = sum(o["count"] for o in observed if o["expected"] is False)
    assert unexpected > 0
    assert check_figures(failed_routing) == {"unexpected_answers": unexpected}
    weights = next(c for c in doc["checks"] if c["kind"] == "weights")
    figures = check_figures(weights)
    declared = weights["evidence"]["declared"]
    counts = {name: 0 for name in declared}
    for row in weights["evidence"]["counts_by_instance"]:
        counts[row["backend"]] = counts.get(row["backend"], 0) + row["count"]
    total = sum(counts.values())
    deviation = max(abs(n / total - declared.get(name, 0.0)) for name, n in counts.items())
    assert figures["share_deviation"] == pytest.approx(deviation) and deviation >= 0.25
    assert figures["error_rate"] == 0.0
    gaps = next(c for c in load("results-local.json")["checks"] if c["kind"] == "gaps")
    distribution = gaps["evidence"]["distribution"]
    assert check_figures(gaps)["gap_ms"] == distribution["gap_ms"]["median"]
    assert check_figures(gaps)["failed_requests"] == distribution["failed"]["median"]
    # Only the stored figures count: evidence changed behind the figures' back changes nothing.
    tampered = copy.deepcopy(failed_routing)
    for o in tampered["evidence"]["observed"]:
        o["expected"] = True
    assert check_figures(tampered) == check_figures(failed_routing)


def test_thresholds_parse() -> None:
    t = Thresholds.parse("gap_ms=200, gap-pct=25%, new_failures=false, error_rate=none")
    assert (t.gap_ms, t.gap_pct, t.new_failures, t.error_rate) == (200.0, 25.0, False, None)
    assert Thresholds.parse("") == Thresholds()
    for bad in ("gap_ms", "gap_ms=abc", "nope=1", "new_failures=maybe", "gap_ms=-1"):
        with pytest.raises(ConfigError):
            Thresholds.parse(bad)


def write_run(root: Path, run_id: str, mtime: float, doc: dict[str, Any]) -> Path:
    path = root / run_id / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**doc, "run_id": run_id}))
    os.utime(path, (mtime, mtime))
    return path


def test_load_baseline_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(ConfigError, match="not a readable"):
        load_baseline(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"schema_version": 1, "checks": []}')
    with pytest.raises(ConfigError) as refused:
        load_baseline(tmp_path / "old.json")
    message = str(refused.value)
    assert str(tmp_path / "old.json") in message and "schema version 1" in message
    assert "reads version 2" in message and "--baseline none" in message
    run = write_run(tmp_path, "r1", 1.0, load("results-local.json"))
    assert load_baseline(run.parent)["run_id"] == "r1"
