"""The results document: versioned, counts and findings derived, credentials never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.results.document import (
    SCHEMA_VERSION,
    CheckResult,
    RunResults,
    load,
    redact,
    write_document,
)


def _results() -> RunResults:
    results = RunResults(run_id="r1", harness_version="0.1.0", started=1.0, finished=2.0)
    finding = {"kind": "undefined-tie", "message": "tie", "source": None}
    results.add(CheckResult("a::t[1]", "routing", "passed", 0.1, findings=[finding]))
    results.add(CheckResult("a::t[2]", "routing", "undefined", 0.1, findings=[finding]))
    results.add(CheckResult("a::t[3]", "weights", "failed", 0.2, message="off"))
    return results


def test_document_is_versioned_with_counts_and_deduplicated_findings(tmp_path: Path) -> None:
    path = _results().write(tmp_path / "results.json")
    data = load(path)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0, "undefined": 1}
    assert len(data["findings"]) == 1
    assert [c["nodeid"] for c in data["checks"]] == ["a::t[1]", "a::t[2]", "a::t[3]"]


def test_other_schema_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="schema version"):
        load(path)


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
