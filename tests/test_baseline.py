"""Baseline comparison (harness/baseline.py): new failures, fixed checks, worse figures, the gate.

Built on the results documents of real runs in ``tests/data/`` (see tests/test_report.py), changed
the way a later run would differ, plus gap evidence in the shape of tests/test_report.py's
``gaps_item``.
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
    find_previous,
    load_baseline,
    observation_matches,
)

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


def gaps_check(nodeid: str, gap_ms: float, failed: int, outcome: str = "passed") -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "kind": "gaps",
        "outcome": outcome,
        "duration": 5.0,
        "message": "",
        "evidence": [
            {
                "type": "gaps",
                "figures": {
                    "gap_ms": gap_ms,
                    "failed_by_class": {"502": failed, "refused": 0},
                    "worst_window_error_rate": 0.2,
                },
            }
        ],
        "findings": [],
    }


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
        1 for c in doc["checks"] if c["outcome"] in ("failed", "error")
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
    # What a proxy that sent this probe elsewhere would have recorded.
    broken["evidence"][0]["observed"][0]["backend"] = "stilton"
    added = with_checks(
        current, "tonight", gaps_check("suites/test_gaps.py::g[new]", 10, 0, "error")
    )
    comparison = compare(added, baseline)
    assert {c.nodeid for c in comparison.new_failures} == {
        broken["nodeid"],
        "suites/test_gaps.py::g[new]",
    }
    was = {c.nodeid: c.baseline_outcome for c in comparison.new_failures}
    assert was == {broken["nodeid"]: "passed", "suites/test_gaps.py::g[new]": None}
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
    nodeid = "suites/test_gaps.py::test_gap[cheeses]"
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
    nodeid = "suites/test_gaps.py::test_gap[x]"
    before = with_checks(base, "a", gaps_check(nodeid, 100.0, 5))
    after = with_checks(base, "b", gaps_check(nodeid, 100.0, 40))
    worse = compare(after, before).worse()
    assert [(c.figure, c.before, c.after) for c in worse] == [("failed_requests", 5.0, 40.0)]
    # A weighted split that drifted by 3 points since the baseline.
    skewed = copy.deepcopy(base)
    weights = next(c for c in skewed["checks"] if c["kind"] == "weights")
    verdict = weights["evidence"][0]["verdict"]
    verdict["observed"] = [verdict["expected"][0] + 0.03, verdict["expected"][1] - 0.03]
    drift = compare(skewed, base)
    assert [(c.nodeid, c.figure) for c in drift.worse()] == [(weights["nodeid"], "share_deviation")]
    assert check_figures(weights)["share_deviation"] == pytest.approx(0.03, abs=1e-3)


def test_figures_from_real_evidence() -> None:
    doc = load("results-external-faults.json")
    by_id = {c["nodeid"]: c for c in doc["checks"]}
    failed_routing = next(
        c for c in doc["checks"] if c["kind"] == "routing" and c["outcome"] == "failed"
    )
    sent = sum(o["count"] for o in failed_routing["evidence"][0]["observed"])
    assert check_figures(failed_routing)["unexpected_answers"] == sent
    weights = next(c for c in doc["checks"] if c["kind"] == "weights")
    figures = check_figures(weights)
    assert figures["share_deviation"] == pytest.approx(0.7)  # cheddar 100% vs 30%
    assert figures["error_rate"] == 0.0
    undefined = next(c for c in doc["checks"] if c["outcome"] == "undefined")
    assert "unexpected_answers" not in check_figures(by_id[undefined["nodeid"]])
    # A strip answer from another backend is not judged by the strip check.
    strip = next(c for c in doc["checks"] if c["kind"] == "strip")
    item = strip["evidence"][0]
    assert observation_matches(item, item["observed"][0]) is None


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


def test_find_previous_takes_the_newest_other_run(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "checks": []}
    assert find_previous(tmp_path / "nothing-here", "now") is None
    write_run(tmp_path, "20260101T000000Z", 1_000, doc)
    newest = write_run(tmp_path, "20260103T000000Z", 3_000, doc)
    write_run(tmp_path, "now", 4_000, doc)  # the current run itself
    write_run(tmp_path, "broken", 5_000, {"schema_version": 99})
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.json").write_text("{not json")
    assert find_previous(tmp_path, "now") == newest
    assert find_previous(tmp_path, "20260103T000000Z") == tmp_path / "now" / "results.json"


def test_load_baseline_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(ConfigError, match="not a readable"):
        load_baseline(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"schema_version": 0}')
    with pytest.raises(ConfigError, match="schema version 0"):
        load_baseline(tmp_path / "old.json")
    run = write_run(tmp_path, "r1", 1.0, load("results-local.json"))
    assert load_baseline(run.parent)["run_id"] == "r1"


def test_gap_figures_from_repeated_runs() -> None:
    """Gap evidence given as runs with their own fields: medians over the runs."""
    runs = [
        {
            "gap_ms": g,
            "failed": f,
            "longest_streak": {"requests": f},
            "worst_window": {"error_rate": r},
        }
        for g, f, r in ((100.0, 10, 0.1), (300.0, 30, 0.3), (200.0, 20, 0.2))
    ]
    check = {"nodeid": "g", "evidence": [{"type": "gaps", "runs": runs}]}
    assert check_figures(check) == {
        "gap_ms": 200.0,
        "failed_requests": 20.0,
        "longest_failing_streak": 20.0,
        "worst_window_error_rate": 0.2,
    }
