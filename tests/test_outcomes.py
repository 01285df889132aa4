"""The run's outcomes mapped to pytest's in one place (harness/plugin/outcomes.py), and back:
what each recorded outcome does to the test, what a test that raised, recorded nothing or
failed in its setup is recorded as. Runs a small check module through the plugin, as a user's
own checks would run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from suite_runs import run_pytest

CHECKS = """
import pytest

from harness.checks.evidence import CheckVerdict, Outcome, RegistrationEvidence, Subject

pytestmark = pytest.mark.harness_kind("registration")


def verdict(outcome):
    return CheckVerdict(
        outcome=outcome,
        subject=Subject(scenario="s", route=None, label="s"),
        summary=f"registration {outcome}: s",
        message=f"the check says {outcome}",
        evidence=RegistrationEvidence(type="registration", scenario="s", steps=[]),
        figures={"unexpected_answers": 0.0},
    )


@pytest.mark.parametrize("outcome", list(Outcome))
def test_recorded(outcome, evidence):
    evidence.record(verdict(outcome))


def test_assertion_after_recording(evidence):
    evidence.record(verdict(Outcome.PASSED))
    assert 1 == 2, "the test's own claim"


def test_crash_after_recording(evidence):
    evidence.record(verdict(Outcome.PASSED))
    raise RuntimeError("the target went away")


def test_records_nothing(evidence):
    pass


@pytest.fixture
def broken_setup():
    raise RuntimeError("the stack did not come up")


@pytest.fixture
def not_here():
    pytest.skip("needs the local target")


def test_setup_error(broken_setup, evidence):
    pass


def test_setup_skip(not_here, evidence):
    pass


def test_not_a_harness_check():
    pass
"""

#: nodeid suffix -> (outcome in results.json, pytest's outcome in JUnit).
EXPECTED = {
    "test_recorded[passed]": ("passed", "passed"),
    "test_recorded[failed]": ("failed", "failure"),
    "test_recorded[error]": ("error", "failure"),
    "test_recorded[invalid]": ("invalid", "failure"),
    "test_recorded[undefined]": ("undefined", "skipped"),
    "test_recorded[report-only]": ("report-only", "skipped"),
    "test_recorded[skipped]": ("skipped", "skipped"),
    "test_assertion_after_recording": ("failed", "failure"),
    "test_crash_after_recording": ("error", "failure"),
    "test_records_nothing": ("error", "failure"),
    "test_setup_error": ("error", "error"),
    "test_setup_skip": ("skipped", "skipped"),
}


def test_outcomes_map_one_way_and_back(tmp_path: Path) -> None:
    checks = tmp_path / "test_checks.py"
    checks.write_text(CHECKS, "utf-8")
    out = tmp_path / "report"
    run = run_pytest(
        checks, "-q", "--report-dir", out, "--baseline", "none",
        f"--junitxml={out / 'junit.xml'}",
    )  # fmt: skip
    results = run.results(out)  # validated against the schema
    recorded = {c["nodeid"].split("::")[-1]: c for c in results["checks"]}
    assert {k: c["outcome"] for k, c in recorded.items()} == {
        k: outcome for k, (outcome, _) in EXPECTED.items()
    }, run.output[-3000:]
    assert {c["kind"] for c in recorded.values()} == {"registration"}
    # What the check did not conclude keeps its evidence when it had recorded one ...
    assert recorded["test_assertion_after_recording"]["evidence"] is not None
    assert "the test's own claim" in recorded["test_assertion_after_recording"]["message"]
    assert "the target went away" in recorded["test_crash_after_recording"]["message"]
    assert "recorded no verdict" in recorded["test_records_nothing"]["message"]
    # ... and a setup that failed or skipped has none, with the kind the module declares.
    assert recorded["test_setup_error"]["evidence"] is None
    assert "the stack did not come up" in recorded["test_setup_error"]["message"]
    assert recorded["test_setup_skip"]["message"] == "needs the local target"
    # The recorded verdict's message is what pytest shows.
    assert "the check says failed" in run.output and "the check says invalid" in run.output
    # pytest's outcomes, as JUnit records them.
    junit: dict[str, str] = {}
    for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        junit[case.get("name", "")] = kinds[0] if kinds else "passed"
    assert junit.pop("test_not_a_harness_check") == "passed"
    assert junit == {k: pytest_outcome for k, (_, pytest_outcome) in EXPECTED.items()}
    assert results["gate"]["verdict"] == "failed" and run.returncode == 1
