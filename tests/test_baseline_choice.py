"""The default baseline (no --baseline) is the newest earlier run in reports/ with a passing
gate, the same target kind and the same parameters; the choice says which run and why the newer
ones were passed over, in results.json (``baseline``) and the terminal."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from suite_runs import run_pytest

from harness.results.baseline import choose_baseline

DATA = Path(__file__).resolve().parent / "data"
LOCAL = json.loads((DATA / "results-local.json").read_text("utf-8"))
PARAMETERS: dict[str, Any] = LOCAL["parameters"]


def write_run(root: Path, run_id: str, mtime: float, **changes: Any) -> Path:
    """A real run's results.json as run ``run_id``, with ``changes`` to its top-level fields,
    written ``mtime`` seconds after the epoch."""
    doc = {**copy.deepcopy(LOCAL), "run_id": run_id, **changes}
    path = root / run_id / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    os.utime(path, (mtime, mtime))
    return path


def choose(root: Path, current: str = "now", **parameters: Any) -> Any:
    return choose_baseline(
        root, current, target_kind="local", parameters={**PARAMETERS, **parameters}
    )


def test_the_newest_earlier_passing_run_of_the_same_parameters(tmp_path: Path) -> None:
    assert choose(tmp_path / "nothing-here").path is None
    write_run(tmp_path, "r1-old-pass", 1_000)
    good = write_run(tmp_path, "r2-pass", 2_000)
    write_run(tmp_path, "r3-failed", 3_000, gate={"verdict": "failed", "reasons": ["1 failed"]})
    write_run(tmp_path, "r4-error", 4_000, gate={"verdict": "error", "reasons": ["no checks"]})
    write_run(tmp_path, "r5-external", 5_000, target={"target": "external", "proxy_url": "x"})
    write_run(tmp_path, "r6-other-alpha", 6_000, parameters={**PARAMETERS, "run_alpha": 0.01})
    write_run(tmp_path, "r7-v1", 7_000, schema_version=1)
    (tmp_path / "r8-junk").mkdir()
    (tmp_path / "r8-junk" / "results.json").write_text("{not json")
    write_run(tmp_path, "now", 9_000)  # the current run itself
    choice = choose(tmp_path)
    assert choice.path == good and choice.run_id == "r2-pass"
    reasons = {s.run_id or Path(s.path).parent.name: s.reason for s in choice.skipped}
    assert list(reasons) == ["r8-junk", "r7-v1", "r6-other-alpha", "r5-external", "r4-error",
                             "r3-failed"]  # fmt: skip
    assert "not a readable results document" in reasons["r8-junk"]
    assert "schema version 1" in reasons["r7-v1"]
    assert reasons["r6-other-alpha"] == "other parameters: run_alpha 0.01 (now 0.001)"
    assert reasons["r5-external"] == "target external, not local"
    assert reasons["r4-error"] == "its gate error, not passed"
    assert reasons["r3-failed"] == "its gate failed, not passed"
    summary = choice.summary()
    assert summary.startswith("baseline r2-pass: the newest earlier run with a passing gate")
    assert "r3-failed: its gate failed, not passed" in summary
    recorded = choice.to_dict()
    assert recorded["run_id"] == "r2-pass" and recorded["path"] == str(good)
    assert len(recorded["skipped"]) == 6


def test_other_scenarios_or_manifests_are_other_parameters(tmp_path: Path) -> None:
    write_run(tmp_path, "r1", 1_000)
    assert choose(tmp_path).run_id == "r1"
    narrowed = choose(tmp_path, scenarios=["cheeses"])
    assert narrowed.path is None and "scenarios" in narrowed.skipped[0].reason
    other = choose(tmp_path, manifests=["mine.yaml"])
    assert other.path is None and "manifests ['suites/manifests']" in other.skipped[0].reason
    assert choose(tmp_path, current="r1").path is None  # the current run is never its baseline
    assert "no earlier run qualifies" in narrowed.summary()


CHECKS = """
import os

import pytest

from harness.checks.evidence import CheckVerdict, Outcome, RegistrationEvidence, Subject

pytestmark = pytest.mark.harness_kind("registration")


def test_check(evidence):
    outcome = Outcome(os.environ["CHECK_OUTCOME"])
    evidence.record(CheckVerdict(
        outcome=outcome,
        subject=Subject(scenario="s", route=None, label="s"),
        summary=f"registration {outcome}: s",
        message=f"the check says {outcome}",
        evidence=RegistrationEvidence(type="registration", scenario="s", steps=[]),
        figures={"unexpected_answers": 0.0},
    ))
"""


def test_a_run_compares_with_the_last_passing_run_and_says_so(tmp_path: Path) -> None:
    checks = tmp_path / "test_checks.py"
    checks.write_text(CHECKS, "utf-8")
    reports = tmp_path / "reports"

    def run(run_id: str, outcome: str) -> tuple[Any, dict[str, Any]]:
        done = run_pytest(
            checks, "-q", "--report-dir", reports / run_id,
            env={"HARNESS_RUN_ID": run_id, "CHECK_OUTCOME": outcome},
        )  # fmt: skip
        return done, done.results(reports / run_id)

    _, first = run("r1", "passed")
    assert first["baseline"] is None and first["comparison"] is None
    _, second = run("r2", "failed")
    assert second["baseline"]["run_id"] == "r1"
    # The failing run r2 is not the next run's baseline: r1 is, and the choice says why.
    output, third = run("r3", "passed")
    assert third["baseline"]["run_id"] == "r1"
    assert third["comparison"]["baseline_run_id"] == "r1"
    (skipped,) = third["baseline"]["skipped"]
    assert skipped["run_id"] == "r2" and skipped["reason"] == "its gate failed, not passed"
    assert "baseline r1: the newest earlier run with a passing gate" in output.output
