"""Results: each check's record carried on its test report (survives xdist), and the
controller-side collector that writes results.json, the report and the terminal summary.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from harness.errors import HarnessError, StackError, TargetUnreachable
from harness.plugin.outcomes import record_of_report
from harness.plugin.settings import ACTIVE_STACK, DEFAULT_MANIFESTS, SETTINGS, HarnessSettings
from harness.results.document import (
    redact_text,
    register_secrets,
    secrets_in_environment,
    secrets_in_text,
)

if TYPE_CHECKING:
    from harness.results.baseline import BaselineChoice, Comparison
    from harness.results.document import RunResults

# -- credentials ------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """The credentials this run knows of, redacted by value wherever they turn up: the
    environment's (a change command inherits it), the userinfo of --proxy-url, the secrets
    written into --change-command (``TOKEN=abc ./deploy.sh``, ``--password=x``)."""
    settings = config.stash.get(SETTINGS, None)
    texts = (
        [] if settings is None else [settings.proxy_url or "", settings.gaps.change_command or ""]
    )
    register_secrets(secrets_in_environment(os.environ))
    register_secrets(v for text in texts for v in secrets_in_text(text))


def _redact_report(report: pytest.TestReport) -> None:
    """Credentials out of what pytest shows and writes (the terminal, JUnit XML)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        path, line, message = longrepr
        report.longrepr = (path, line, redact_text(message))
    elif longrepr is not None:
        text = report.longreprtext
        redacted = redact_text(text)
        if redacted != text:
            report.longrepr = redacted
    report.sections = [(title, redact_text(body)) for title, body in report.sections]


# -- reports ----------------------------------------------------------------------------------


#: The first setup error that keeps every check from running (this process's), in one paragraph.
RUN_PROBLEM = pytest.StashKey[str]()

#: Setup errors that are the run's, not a check's: no check can run after one of them.
_RUN_LEVEL = (StackError, TargetUnreachable)


def _one_paragraph(exc: BaseException) -> str:
    """An error the harness wrote for the person running it, on one paragraph (its own message
    says what failed and what to check; the traceback of a fixture adds nothing to it)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:1500]}"


def _shorten_run_problem(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> str | None:
    """A setup that failed on the run's problem (returned): the first says it once, in one
    paragraph; the rest refer to it (not a wall of the same traceback for every check)."""
    if not (report.when == "setup" and report.failed and call.excinfo is not None):
        return None
    if not call.excinfo.errisinstance(_RUN_LEVEL):
        return None
    first = item.config.stash.get(RUN_PROBLEM, None)
    if first is None:
        first = item.config.stash[RUN_PROBLEM] = _one_paragraph(call.excinfo.value)
        report.longrepr = f"the checks cannot run: {first}"
    elif first == _one_paragraph(call.excinfo.value):
        report.longrepr = "not run: the same setup error as the first check (the run's problem)"
    else:
        report.longrepr = f"not run: {_one_paragraph(call.excinfo.value)}"
    return first


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    problem = _shorten_run_problem(item, report, call)
    if problem is not None:
        report.harness_problem = problem
    record = record_of_report(item, report, call)
    if record is not None:
        report.harness_record = record
        # JUnit XML carries the verdict in brief (junitxml reads the teardown report's
        # properties, which are copied from the item's).
        item.user_properties.append(("harness_evidence", redact_text(record["summary"])))
    if report.failed and not hasattr(report, "harness_problem"):
        stack = item.config.stash.get(ACTIVE_STACK, None)
        traefik = getattr(stack, "traefik", None)
        if traefik is not None:
            report.sections.append(
                (f"Traefik log (last lines of {traefik.log_path})", traefik.log_tail(40))
            )
    _redact_report(report)
    return report


COLLECTOR = "ingress-harness-results"

#: The statistical settings results.json records among the run's parameters.
_REPORTED_WEIGHT_SETTINGS = (
    "run_alpha",
    "power",
    "min_deviation",
    "mode",
    "max_error_rate",
    "max_requests",
)


#: Exit statuses of a session that did not run its checks to the end.
_ENDED_EARLY = (
    pytest.ExitCode.INTERRUPTED,
    pytest.ExitCode.INTERNAL_ERROR,
    pytest.ExitCode.USAGE_ERROR,
)


class ResultsCollector:
    """On the controller only: turns test reports (from any xdist worker) into RunResults."""

    def __init__(
        self, config: pytest.Config, settings: HarnessSettings, results: RunResults
    ) -> None:
        self.config = config
        self.settings = settings
        self.results = results
        self.comparison: Comparison | None = None
        self.baseline_problem: str | None = None
        self.baseline_choice: BaselineChoice | None = None
        self.report_paths: list[Path] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "harness_record", None)
        if record is not None:
            self.results.add(record)
        problem = getattr(report, "harness_problem", None)
        if problem and self.results.problem is None:
            self.results.problem = redact_text(problem)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: take the target description a worker reported."""
        described = getattr(node, "workeroutput", {}).get("harness_target")
        if described and not self.results.target:
            self.results.target = described

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        results, settings = self.results, self.settings
        results.finished = time.time()
        # The target kind at least, also when no check got as far as describing the target.
        results.target.setdefault("target", settings.target_kind)
        results.parameters = {
            "probe_rounds": settings.probe_rounds,
            "strict_prefix_matching": settings.strict_prefix_matching,
            # Only when set: a baseline from before the option stays comparable.
            **({"nginx_without_class": True} if settings.nginx_without_class else {}),
            "scenarios": list(settings.scenarios),
            "manifests": settings.manifests or [str(settings.scenario_dir or DEFAULT_MANIFESTS)],
            # How legacy manifests were verified; None when none is in a legacy form.
            "legacy": settings.legacy
            if any(i.has_legacy for i in settings.scenarios.values())
            else None,
            **{
                k: v
                for k, v in settings.weights.to_dict().items()
                if k in _REPORTED_WEIGHT_SETTINGS
            },
        }
        if results.problem is None and exitstatus in _ENDED_EARLY:
            why = session.shouldstop or session.shouldfail or "see its output"
            results.problem = (
                f"pytest ended early ({pytest.ExitCode(exitstatus).name.lower()}, exit status "
                f"{int(exitstatus)}): {why}"
            )
        if settings.report_dir is None:
            return
        self.report_paths = self._write_reports(session, settings.report_dir)

    def _write_reports(self, session: pytest.Session, out: Path) -> list[Path]:
        """results.json, the comparison with the baseline, index.html; the gate's verdict."""
        from harness.results.baseline import (
            BaselineChoice,
            choose_baseline,
            compare,
            load_baseline,
        )
        from harness.results.document import gate_of, redact, write_document
        from harness.results.report import write_report

        settings = self.settings
        document = self.results.to_dict()
        migration = [
            {"scenario": name, **fate.to_dict()}
            for name, intent in settings.scenarios.items()
            for fate in intent.migration
        ]
        if migration:
            document["migration"] = cast(list[dict[str, Any]], redact(migration))
        choice: BaselineChoice | None = None
        if settings.baseline and settings.baseline.lower() != "none":
            choice = BaselineChoice(path=Path(settings.baseline), run_id=None, how="given")
        elif settings.baseline is None:
            choice = choose_baseline(
                out.parent,
                settings.run_id,
                target_kind=str(document["target"]["target"]),
                parameters=document["parameters"],
            )
            if choice.path is None and not choice.skipped:
                choice = None  # no earlier run at all: nothing to say
            elif choice.path is None:
                self.baseline_problem = choice.summary()
        if choice is not None and choice.path is not None:
            try:
                loaded = load_baseline(choice.path)
                choice.run_id = loaded["run_id"]
                self.comparison = compare(
                    document,
                    loaded,
                    thresholds=settings.thresholds,
                    baseline_path=choice.path,
                )
            except HarnessError as exc:
                self.baseline_problem = str(exc)
        self.baseline_choice = choice
        document["baseline"] = None if choice is None else choice.to_dict()
        regressions: list[str] = []
        if self.comparison is not None:
            document["comparison"] = self.comparison.to_dict()
            regressions = self.comparison.reasons(settings.thresholds)
        document["baseline_problem"] = self.baseline_problem
        document["gate"] = gate_of(document["counts"], regressions, self.results.problem)
        document = redact(document)
        paths = [write_document(document, out / "results.json")]
        paths.append(write_report(document, out))
        if regressions:
            # The gate fails on a regression even when every check of this run passed.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return paths

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        results = self.results
        if not results.checks and not results.problem:
            return  # not a verification run (e.g. the harness's own tests)
        from harness.results.document import gate_of

        counts = results.counts()
        terminalreporter.section("ingress-harness verdicts")
        if results.problem:
            terminalreporter.write_line(f"the checks could not run: {results.problem}")
        terminalreporter.write_line(
            ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n) or "no checks"
        )
        regressions = self.comparison.reasons(self.settings.thresholds) if self.comparison else []
        gate = gate_of(counts, regressions, results.problem)
        terminalreporter.write_line(
            f"gate: {gate['verdict'].upper()}"
            + (": " + "; ".join(gate["reasons"]) if gate["reasons"] else "")
        )
        findings = results.findings()
        if findings:
            kinds: dict[str, int] = {}
            for f in findings:
                kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
            terminalreporter.write_line(
                f"{len(findings)} findings: "
                + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
            )
        if self.baseline_choice is not None and self.baseline_choice.path is not None:
            terminalreporter.write_line(self.baseline_choice.summary())
        if self.comparison is not None:
            for line in self.comparison.summary_lines():
                terminalreporter.write_line(line)
        if self.baseline_problem:
            terminalreporter.write_line(f"not compared: {self.baseline_problem}")
        for path in self.report_paths:
            terminalreporter.write_line(f"report: {path}")
