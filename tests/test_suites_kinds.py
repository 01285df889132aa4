"""Every kind of check, end to end on the local target: one run of each suite (a few cases
each) writes a results.json that validates against the shipped schema, whose kinds are exactly
the contract's (gap checks under ``gaps``, whatever their module is called), with the outcome
each check recorded; the terminal, JUnit and the HTML report say the same."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from suite_runs import run_pytest

from harness.checks.evidence import KINDS, OUTCOMES
from harness.results.first_screen import check_anchor

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: One or two cases of every suite: the tutorial's cheeses (routing, strip, registration), the
#: explicit priority, the 75/25 split, and two apply strategies (a hitless one and the tie).
SELECT = (
    "(test_routing and cheeses:cheeses.minikube/cheddar]) or (test_strip and cheeses:) "
    "or (test_priority and priority-explicit) or (registers and cheeses) "
    "or (test_weights and weights:cheeses) or patch-clean or override-tie"
)


class Sections(HTMLParser):
    """The report's check blocks and compact rows, by the section (kind) they are in."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.section = ""
        self.anchors: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "kind" in (a.get("class") or "").split():
            self.section = str(a.get("data-kind"))
        elif str(a.get("id") or "").startswith("check-") and self.section:
            self.anchors[str(a["id"])] = self.section


def test_every_kind_of_check_is_recorded_once_under_its_kind(tmp_path: Path) -> None:
    out = tmp_path / "report"
    # A gentle open-loop rate and a loose sender-lag bound: this test is about the records, not
    # the proxy's timing, and the machine is shared.
    run = run_pytest(
        "harness/suites", "-q", "-k", SELECT,
        "--probe-rounds", "3", "--gap-repeats", "1", "--gap-rate", "500", "--gap-max-lag-ms", "50",
        "--report-dir", out, "--baseline", "none", f"--junitxml={out / 'junit.xml'}",
        timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-6000:]
    results = run.results(out)  # validated against results.schema.json
    checks = results["checks"]
    assert {c["kind"] for c in checks} == {str(k) for k in KINDS}
    gaps = {c["nodeid"]: c for c in checks if "test_apply_gaps.py" in c["nodeid"]}
    assert len(gaps) == 2 and {c["kind"] for c in gaps.values()} == {"gaps"}
    assert {c["outcome"] for c in gaps.values()} == {"passed", "undefined"}  # the tie
    for check in checks:
        assert check["evidence"] is not None and check["summary"], check["nodeid"]
    # Counts and gate from the stored outcomes; the terminal says the same.
    assert sum(results["counts"].values()) == len(checks)
    assert list(results["counts"]) == [str(o) for o in OUTCOMES]
    shown = ", ".join(f"{n} {o}" for o, n in results["counts"].items() if n)
    assert shown in run.output and "gate: PASSED" in run.output
    # JUnit: one summary per check, the record's.
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    properties = sorted(p.get("value", "") for case in cases for p in case.iter("property"))
    assert properties == sorted(c["summary"] for c in checks)
    # The report files every check under its kind's section.
    html = (out / "index.html").read_text("utf-8")
    sections = Sections(html)
    assert sections.anchors == {check_anchor(c["nodeid"]): c["kind"] for c in checks}
    assert "Other checks" not in html
