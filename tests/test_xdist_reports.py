"""Under pytest-xdist the suites give the same verdicts as in one process, and the controller
writes one merged results.json, index.html and junit.xml (with the evidence in properties)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from suite_runs import run_pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# Two scenarios, so that two workers each take one (their checks carry an xdist_group mark).
SELECT = "cheeses or priority-explicit"


def _run(tmp_path: Path, name: str, *extra: str) -> tuple[dict[str, Any], Path]:
    out = tmp_path / name
    run = run_pytest(
        "harness/suites/test_routing.py", "harness/suites/test_strip.py", "-k", SELECT, "-q",
        "--probe-rounds", "2", "--report-dir", out, "--baseline", "none",
        f"--junitxml={out / 'junit.xml'}", *extra,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-6000:]
    return run.results(out), out


def test_two_workers_give_the_same_verdicts_and_one_merged_report(tmp_path: Path) -> None:
    single, _ = _run(tmp_path, "single")
    merged, out = _run(tmp_path, "xdist", "-n", "2", "--dist", "loadgroup")
    verdicts = {c["nodeid"]: c["outcome"] for c in single["checks"]}
    assert verdicts
    assert {c["nodeid"]: c["outcome"] for c in merged["checks"]} == verdicts
    assert merged["counts"] == single["counts"]
    assert merged["target"]["target"] == "local"  # reported by a worker, kept by the controller
    assert all(c["evidence"] for c in merged["checks"])
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "junit.xml", "results.json"]
    assert merged["gate"]["verdict"] == "passed"
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    properties = [p.get("value", "") for case in cases for p in case.iter("property")]
    assert len(properties) == len(verdicts)  # one verdict per check
    assert any(value.startswith("routing passed:") for value in properties)
