"""Evidence and results: what a check records, carried on test reports (survives xdist), and
the controller-side collector that writes results.json, the report and the terminal summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.plugin.settings import ACTIVE_STACK, DEFAULT_MANIFESTS, HarnessSettings

EVIDENCE = pytest.StashKey["Evidence"]()


class Evidence:
    """What a check hands to the results: verdicts, findings, and whether it was undefined."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.undefined = False

    def add(self, item: dict[str, Any]) -> None:
        self.items.append(item)

    def add_findings(self, findings: list[dict[str, Any]]) -> None:
        self.findings.extend(findings)

    def mark_undefined(self, message: str) -> None:
        """Report the check as undefined (neither passed nor failed) and stop it."""
        self.undefined = True
        pytest.skip(message if "UNDEFINED" in message else f"UNDEFINED: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "items": self.items,
            "findings": self.findings,
            "undefined": self.undefined,
        }


def evidence_summary(entry: dict[str, Any]) -> str:
    """One line for JUnit XML and terminals: what was checked and what came of it."""
    kind = entry.get("type")
    if kind == "exact":
        observed = ", ".join(
            f"{o.get('count')}x {o.get('status') or o.get('error')}"
            + (f" {o['backend']}" if o.get("backend") else "")
            for o in entry.get("observed", [])
        )
        return (
            f"{entry.get('aspect')} {entry.get('outcome')}: {entry.get('probe_id')} expected "
            f"{entry.get('expected')}; observed {observed}"
        )
    verdict = entry.get("verdict")
    if isinstance(verdict, dict) and verdict.get("summary"):
        return f"{kind} {entry.get('route', '')}: {verdict['summary']}"
    return str(entry.get("summary") or entry.get("message") or kind)[:500]


# -- reports ----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    recorder = item.stash.get(EVIDENCE, None)
    if recorder is not None and report.when == "call":
        report.harness_evidence = recorder.to_dict()
        # JUnit XML carries the evidence in brief, one property per verdict (junitxml reads the
        # teardown report's properties, which are copied from the item's).
        for entry in recorder.items:
            item.user_properties.append(("harness_evidence", evidence_summary(entry)))
    if report.failed:
        stack = item.config.stash.get(ACTIVE_STACK, None)
        traefik = getattr(stack, "traefik", None)
        if traefik is not None:
            report.sections.append(
                (f"Traefik log (last lines of {traefik.log_path})", traefik.log_tail(40))
            )
    return report


COLLECTOR = "ingress-harness-results"


class ResultsCollector:
    """On the controller only: turns test reports (from any xdist worker) into RunResults."""

    def __init__(self, config: pytest.Config, settings: HarnessSettings, results: Any) -> None:
        self.config = config
        self.settings = settings
        self.results = results
        self.comparison: Any = None
        self.baseline_problem: str | None = None
        self.report_paths: list[Path] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from harness.results.document import CheckResult

        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        data = getattr(report, "harness_evidence", None) or {}
        outcome: str = report.outcome
        if data.get("undefined"):
            outcome = "undefined"
        elif report.when == "setup" and report.failed:
            outcome = "error"
        message = ""
        if report.failed:
            message = str(report.longreprtext)[-4000:]
        elif report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        self.results.add(
            CheckResult(
                nodeid=report.nodeid,
                kind=str(data.get("kind") or report.nodeid.split("::")[0]),
                outcome=outcome,
                duration=report.duration,
                message=message,
                evidence=list(data.get("items", [])),
                findings=list(data.get("findings", [])),
            )
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: take the target description a worker reported."""
        described = getattr(node, "workeroutput", {}).get("harness_target")
        if described and not self.results.target:
            self.results.target = described

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        results, settings = self.results, self.settings
        results.finished = time.time()
        results.parameters = {
            "probe_rounds": settings.probe_rounds,
            "strict_prefix_matching": settings.strict_prefix_matching,
            "scenarios": list(settings.scenarios),
            "manifests": settings.manifests or [str(DEFAULT_MANIFESTS)],
            **{
                k: v
                for k, v in settings.weights.to_dict().items()
                if k in ("run_alpha", "power", "min_deviation", "mode", "max_error_rate")
            },
        }
        if settings.report_dir is None or not any(c.evidence for c in results.checks):
            return
        self.report_paths = self._write_reports(session, settings.report_dir)

    def _write_reports(self, session: pytest.Session, out: Path) -> list[Path]:
        """results.json, the comparison with the baseline, index.html; the gate's verdict."""
        from harness.results.baseline import compare, find_previous, load_baseline
        from harness.results.document import write_document
        from harness.results.report import gate, write_report

        settings = self.settings
        document = self.results.to_dict()
        baseline: Path | None = None
        if settings.baseline and settings.baseline.lower() != "none":
            baseline = Path(settings.baseline)
        elif settings.baseline is None:
            baseline = find_previous(out.parent, settings.run_id)
        if baseline is not None:
            try:
                self.comparison = compare(
                    document,
                    load_baseline(baseline),
                    thresholds=settings.thresholds,
                    baseline_path=baseline,
                )
            except HarnessError as exc:
                self.baseline_problem = str(exc)
        if self.comparison is not None:
            document["comparison"] = self.comparison.to_dict()
        verdict, reasons = gate(document, self.comparison)
        document["gate"] = {"verdict": verdict, "reasons": reasons}
        paths = [write_document(document, out / "results.json")]
        paths.append(write_report(document, out, comparison=self.comparison))
        if self.comparison is not None and self.comparison.regressed(settings.thresholds):
            # The gate fails on a regression even when every check of this run passed.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return paths

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        results = self.results
        if not any(c.evidence for c in results.checks):
            return  # not a verification run (e.g. the harness's own tests)
        counts = results.counts()
        terminalreporter.section("ingress-harness verdicts")
        terminalreporter.write_line(
            ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n) or "no checks"
        )
        findings = results.findings()
        if findings:
            kinds: dict[str, int] = {}
            for f in findings:
                kinds[f.get("kind", "?")] = kinds.get(f.get("kind", "?"), 0) + 1
            terminalreporter.write_line(
                f"{len(findings)} findings: "
                + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
            )
        if self.comparison is not None:
            for line in self.comparison.summary_lines():
                terminalreporter.write_line(line)
        if self.baseline_problem:
            terminalreporter.write_line(f"baseline not compared: {self.baseline_problem}")
        for path in self.report_paths:
            terminalreporter.write_line(f"report: {path}")
