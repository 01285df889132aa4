"""The results document: versioned (schema 2, others refused clearly), validated by the shipped
JSON Schema, counts over the one outcome vocabulary, the gate decided in one place, credentials
never written."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from results_schema import assert_valid, schema_errors, validator

from harness.checks import evidence as ev
from harness.errors import ConfigError
from harness.results.document import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    RunResults,
    gate_of,
    load,
    redact,
    write_document,
)

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = ("results-local.json", "results-external-faults.json")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


def _results() -> RunResults:
    template = next(c for c in fixture("results-local.json")["checks"] if c["kind"] == "routing")
    results = RunResults(run_id="r1", harness_version="0.1.0", started=1.0, finished=2.0)
    for i, outcome in enumerate(("passed", "undefined", "failed")):
        check = copy.deepcopy(template)
        check["nodeid"] = f"a::t[{i}]"
        check["outcome"] = outcome
        check["findings"] = [{"kind": "undefined-tie", "severity": "info", "message": "tie"}]
        results.add(check)
    return results


def test_document_is_versioned_with_counts_and_deduplicated_findings(tmp_path: Path) -> None:
    path = _results().write(tmp_path / "results.json")
    data = load(path)
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["counts"] == {
        "passed": 1,
        "failed": 1,
        "error": 0,
        "undefined": 1,
        "invalid": 0,
        "report-only": 0,
        "skipped": 0,
    }
    assert list(data["counts"]) == [str(o) for o in ev.OUTCOMES]
    assert len(data["findings"]) == 1
    assert [c["nodeid"] for c in data["checks"]] == ["a::t[0]", "a::t[1]", "a::t[2]"]
    assert data["gate"] == {"verdict": "failed", "reasons": ["1 check(s) failed"]}
    assert_valid(data)


@pytest.mark.parametrize("version", [1, 3, None, "2"])
def test_other_schema_versions_are_refused_naming_the_file(tmp_path: Path, version: Any) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": version, "checks": []}))
    with pytest.raises(ConfigError) as refused:
        load(path)
    message = str(refused.value)
    assert str(path) in message and f"version {version!r}" in message
    assert "reads version 2" in message and "run the suites again" in message


def test_unreadable_document_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{path}: not a readable results document"):
        load(path)


@pytest.mark.parametrize("name", FIXTURES)
def test_real_runs_validate_against_the_shipped_schema(name: str) -> None:
    """The fixtures are results.json files of real runs (see tests/test_report.py)."""
    document = fixture(name)
    assert_valid(document)
    assert {c["kind"] for c in document["checks"]} <= {str(k) for k in ev.KINDS}


def test_schema_rejects_what_the_contract_does_not_allow() -> None:
    document = fixture("results-local.json")
    broken = copy.deepcopy(document)
    broken["checks"][0]["kind"] = "apply_gaps"
    broken["checks"][1]["outcome"] = "not-judged"
    broken["checks"][2]["evidence"]["type"] = "future"
    del broken["counts"]["report-only"]
    errors = "\n".join(schema_errors(broken))
    assert "$.checks[0].kind" in errors and "$.checks[1].outcome" in errors
    assert "$.checks[2].evidence" in errors and "$.counts" in errors
    assert schema_errors({**document, "schema_version": 1})


def _keys(td: Any) -> set[str]:
    return set(typing.get_type_hints(td))


def _required(td: Any) -> set[str]:
    hints = typing.get_type_hints(td, include_extras=True)
    return {k for k, h in hints.items() if typing.get_origin(h) is not typing.NotRequired}


def test_schema_names_exactly_the_typed_fields() -> None:
    """The schema and the TypedDicts of harness.checks.evidence describe the same shapes."""
    defs = json.loads(SCHEMA_PATH.read_text("utf-8"))["$defs"]
    for name, td in {
        "check": ev.CheckRecord,
        "subject": ev.Subject,
        "finding": ev.FindingRecord,
        "exact": ev.ExactEvidence,
        "observed": ev.ObservedAnswer,
        "registration": ev.RegistrationEvidence,
        "weights": ev.WeightsEvidence,
        "gaps": ev.GapsEvidence,
        "gap_run": ev.GapRun,
        "lagged_attempt": ev.LaggedAttempt,
        "timeline": ev.GapTimeline,
        "gap_distribution": ev.GapDistribution,
        "distribution": ev.Distribution,
    }.items():
        assert set(defs[name]["properties"]) == _keys(td), name
        assert set(defs[name]["required"]) == _required(td), name
    assert defs["outcome"]["enum"] == [str(o) for o in ev.OUTCOMES]
    assert defs["kind"]["enum"] == [str(k) for k in ev.KINDS]
    validator()  # the schema itself is a valid JSON Schema


@pytest.mark.parametrize(
    ("counts", "regressions", "verdict"),
    [
        ({"passed": 3}, [], "passed"),
        ({"passed": 3, "undefined": 1, "report-only": 1, "skipped": 2}, [], "passed"),
        ({"passed": 3, "failed": 1}, [], "failed"),
        ({"passed": 3, "invalid": 1}, [], "failed"),
        ({"passed": 3, "error": 1}, [], "error"),
        ({"error": 1, "failed": 1}, [], "failed"),
        ({"passed": 3}, ["1 new failure(s) since run x"], "failed"),
        ({}, [], "error"),
    ],
)
def test_the_gate(counts: dict[str, int], regressions: list[str], verdict: str) -> None:
    gate = gate_of(counts, regressions)
    assert gate["verdict"] == verdict
    assert bool(gate["reasons"]) == (verdict != "passed")
    for outcome in ("failed", "error", "invalid"):
        if counts.get(outcome):
            assert f"{counts[outcome]} check(s) {outcome}" in gate["reasons"]


def test_credentials_never_reach_the_file(tmp_path: Path) -> None:
    secret = "s3cr3t-token-value"
    document = {
        "target": {"token": secret, "kubeconfig": f"users: [{{token: {secret}}}]"},
        "checks": [{"evidence": [{"headers": {"Authorization": f"Bearer {secret}"}}]}],
        "nested": [{"password": secret, "client-key-data": secret}],
    }
    path = write_document(document, tmp_path / "results.json")
    text = path.read_text()
    assert secret not in text
    assert text.count("<redacted>") == 5
    assert redact({"ok": [1, {"Token": "x"}]}) == {"ok": [1, {"Token": "<redacted>"}]}
