"""The evidence contract: what every check records, in one outcome vocabulary, typed once.

A check computes its verdict once, where it runs, and records a :class:`CheckRecord`: its kind,
its outcome, what it was about (:class:`Subject`), a one-line summary, a one-screen message and
the kind's own evidence. Everything downstream (results.json, the baseline comparison, the
terminal summary, JUnit properties, the HTML report) reads these records and nothing else: no
reader re-derives a verdict or guesses a shape. The JSON Schema shipped beside the results
module (``harness/results/results.schema.json``) describes the same shapes for other readers.

Outcomes, the one vocabulary of a run (mapped to pytest outcomes in ``harness.plugin.outcomes``,
and nowhere else):

========== ====================================================================== ==========
outcome    meaning                                                                pytest
========== ====================================================================== ==========
passed     the proxy did what the manifests declare                               passed
failed     it did not; the evidence says how                                      failed
error      no verdict could be reached: setup or the target failed, or too many   failed
           requests failed for a split to be judged
undefined  the manifests leave the behaviour unspecified (a priority tie); the    skipped
           observed distribution is the evidence
invalid    the measurement cannot be trusted (the sender fell behind its          skipped
           schedule, requests unaccounted for): never green
report-only measured and reported, with no budget to judge it against             skipped
skipped    does not apply here (e.g. needs the local target), or was not judged   skipped
           because a check it depends on failed
========== ====================================================================== ==========

The gate fails on ``failed``, ``error`` and ``invalid``.
"""

from __future__ import annotations

import enum
from typing import Literal, NotRequired, TypedDict


class Outcome(enum.StrEnum):
    """The outcome of a check (see the module docstring for each one's meaning)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    UNDEFINED = "undefined"
    INVALID = "invalid"
    REPORT_ONLY = "report-only"
    SKIPPED = "skipped"


#: Every outcome, in the order reports list them.
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)

#: Outcomes that fail the gate.
GATE_FAILING: frozenset[Outcome] = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.INVALID})


class Kind(enum.StrEnum):
    """What a check verifies; the report's matrix has one column per kind."""

    ROUTING = "routing"
    STRIP = "strip"
    PRIORITY = "priority"
    REGISTRATION = "registration"
    WEIGHTS = "weights"
    GAPS = "gaps"


#: Every kind, in the order of the report's matrix columns.
KINDS: tuple[Kind, ...] = tuple(Kind)


class Subject(TypedDict):
    """What a check is about: a row of the report's matrix."""

    #: The scenario (a file of the tutorial's manifests, or ``manifests`` for ``--manifests``).
    scenario: str
    #: The route (``Route.id``) the check is about; None when it is about requests no route may
    #: take (404 probes) or about the scenario as a whole.
    route: str | None
    #: The row's label for a person, e.g. ``cheeses.minikube/cheddar`` or ``other requests``.
    label: str


class SourceRecord(TypedDict, total=False):
    """Where something was declared: file, line, and the field within the document."""

    file: str
    line: int
    document: int
    field: str
    kind: str
    name: str


class FindingRecord(TypedDict):
    """Something worth a reviewer's attention that is not a verdict (a spec deviation, a legacy
    form, a tie), with where it was declared."""

    kind: str
    severity: str
    message: str
    source: NotRequired[SourceRecord | None]
    routes: NotRequired[list[str]]


class Distribution(TypedDict):
    """A figure over repeated runs; ``missing`` counts runs without the figure."""

    min: float | None
    median: float | None
    max: float | None
    missing: int


class GapDistribution(TypedDict):
    """A strategy's figures over its runs (the report's strategy comparison reads these)."""

    runs: int
    hitless_runs: int
    invalid_runs: int
    unrecovered_runs: int
    #: Separate outages per run, and the time they covered together.
    outages: Distribution
    outages_values: list[int]
    outage_total_ms: Distribution
    failed: Distribution
    failed_values: list[int]
    failed_by_class_total: dict[str, int]
    gap_ms: Distribution
    gap_ms_values: list[float | None]
    convergence_ms: Distribution
    convergence_ms_values: list[float | None]
    shown_ms: Distribution
    mixed_after_convergence: Distribution
    longest_streak: Distribution
    worst_window_error_rate: Distribution
    lag_p99_ms: Distribution


class CheckRecord(TypedDict):
    """One check as results.json records it and every reader reads it."""

    nodeid: str
    kind: Kind
    outcome: Outcome
    subject: Subject
    #: One line: what was checked and what came of it (terminal, JUnit, report headline).
    summary: str
    #: One screen: the failure message, or what was seen for a pass.
    message: str
    duration: float
    #: The kind's own evidence; its ``type`` names the shape.
    evidence: dict[str, object]
    findings: list[FindingRecord]


EvidenceType = Literal["exact", "weights", "gaps", "registration"]
