"""The run's outcomes and pytest's, mapped in this one place.

A check records its verdict (a :class:`~harness.checks.evidence.CheckVerdict`, outcome included)
through the ``evidence`` fixture's :class:`CheckRecorder`; when the test function returns, the
plugin concludes it: ``passed`` passes; ``failed``, ``error`` and ``invalid`` call
``pytest.fail`` with the verdict's message; ``undefined``, ``report-only`` and ``skipped`` call
``pytest.skip``. The record of the check (:func:`record_of_report`) keeps the recorded outcome.

What the check did not conclude itself is mapped here too: a test that raised (an assertion of
its own: ``failed``; ``pytest.skip``: ``skipped``; anything else: ``error``), a setup that failed
(the stack did not come up: ``error``) or skipped (``skipped``), a teardown that failed
(``error``, added to the check's record by the collector). Such a record has the kind and
subject the test declares (its ``harness_kind`` mark and its parameters), and no evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from harness.checks.evidence import (
    GATE_FAILING,
    CheckRecord,
    CheckVerdict,
    Kind,
    Outcome,
    Subject,
)

RECORDER = pytest.StashKey["CheckRecorder"]()


class CheckRecorder:
    """What the ``evidence`` fixture hands a check: the one place it records its verdict."""

    def __init__(self) -> None:
        self.verdict: CheckVerdict | None = None
        #: Set when the plugin concluded the verdict (a pytest outcome then follows from it).
        self.concluded = False

    def record(self, verdict: CheckVerdict) -> None:
        """Record the check's verdict; the plugin concludes it when the test returns."""
        if self.verdict is not None:
            raise RuntimeError("a check records one verdict")
        self.verdict = verdict


def conclude(verdict: CheckVerdict) -> None:
    """Map a verdict to pytest: pass, or ``pytest.fail`` / ``pytest.skip`` with its message."""
    outcome = Outcome(verdict.outcome)
    if outcome is Outcome.PASSED:
        return
    if outcome in GATE_FAILING:
        pytest.fail(verdict.message, pytrace=False)
    pytest.skip(f"{outcome.upper()}: {verdict.message}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Conclude the recorded verdict once the test function has returned (a test that raised
    keeps its exception)."""
    yield
    recorder = item.stash.get(RECORDER, None)
    if recorder is None:
        return
    recorder.concluded = True
    if recorder.verdict is None:
        pytest.fail("the check recorded no verdict (evidence.record)", pytrace=False)
    conclude(recorder.verdict)


def _outcome_of_exception(call: pytest.CallInfo[None]) -> Outcome:
    """The outcome of a phase that raised without the plugin concluding a verdict."""
    excinfo = call.excinfo
    if excinfo is None:
        return Outcome.PASSED
    if excinfo.errisinstance(pytest.skip.Exception):
        return Outcome.SKIPPED
    if call.when == "call" and excinfo.errisinstance(AssertionError):
        return Outcome.FAILED
    return Outcome.ERROR


def _message_of(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longreprtext)[-4000:]


def _declared(item: pytest.Item) -> tuple[Kind, Subject] | None:
    """The kind (``harness_kind`` mark) and subject (parameters) a check declares; None for a
    test that is not a harness check."""
    marker = item.get_closest_marker("harness_kind")
    if marker is None or "evidence" not in getattr(item, "fixturenames", ()):
        return None
    callspec = getattr(item, "callspec", None)
    # An empty parameter set (a scenario with no ties) leaves pytest's NOTSET marker in the
    # params: only strings and tuples are parameters a subject is made of.
    params: dict[str, Any] = {
        k: v
        for k, v in (callspec.params.items() if callspec is not None else ())
        if isinstance(v, str | tuple)
    }
    tie = params.get("tie") or (None, None)
    scenario = params.get("scenario_run") or params.get("scenario_name") or tie[0] or "run"
    route = params.get("weighted_case") or tie[1]
    case = params.get("exact_case") or (None, None)
    name = getattr(item, "originalname", item.name)
    label = route or case[1] or params.get("strategy_name") or name
    return Kind(marker.args[0]), Subject(scenario=str(scenario), route=route, label=str(label))


def _plain(record: CheckRecord) -> CheckRecord:
    """The record as plain JSON (it rides on the test report through pytest-xdist)."""
    return cast(CheckRecord, json.loads(json.dumps(record)))


def record_of_report(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> CheckRecord | None:
    """The record of a check's call (or of its setup, when that did not pass, or of its
    teardown, when that failed: the collector makes it an error of the check); None for other
    phases and for tests that are not harness checks."""
    if report.when != "call" and not (report.failed or (report.when == "setup" and report.skipped)):
        return None
    recorder = item.stash.get(RECORDER, None)
    verdict = recorder.verdict if recorder is not None and report.when == "call" else None
    if verdict is not None:
        record = verdict.record(report.nodeid, report.duration)
        if call.excinfo is not None and not (recorder is not None and recorder.concluded):
            # The test raised after recording: its own outcome, the evidence kept.
            record["outcome"] = _outcome_of_exception(call)
            record["message"] = _message_of(report)
        return _plain(record)
    declared = _declared(item)
    if declared is None:
        return None
    kind, subject = declared
    outcome = _outcome_of_exception(call)
    message = _message_of(report)
    if report.when == "teardown":
        message = f"error in teardown: {message}"
    return _plain(
        CheckRecord(
            nodeid=report.nodeid,
            kind=kind,
            outcome=outcome,
            subject=subject,
            summary=f"{kind} {outcome}: {message.strip().splitlines()[-1] if message else ''}"[
                :500
            ],
            message=message,
            duration=report.duration,
            evidence=None,
            findings=[],
            figures={},
        )
    )
