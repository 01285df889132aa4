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
invalid    the measurement cannot be trusted (the sender fell behind its          failed
           schedule, requests unaccounted for): never green
report-only measured and reported, with no budget to judge it against             skipped
skipped    does not apply here (e.g. needs the local target), or was not judged   skipped
           because a check it depends on failed
========== ====================================================================== ==========

The gate fails on ``failed``, ``error`` and ``invalid``. The kind of a check is its evidence's
(:func:`kind_of`), never its module's or file's name.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict, cast


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
    EDGE = "edge"
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
    #: Runs' attempts made again after the sender lagged (added compatibly in version 2).
    lagged_attempts: NotRequired[int]


# -- the evidence of each kind -----------------------------------------------------------------

#: A record written by :mod:`harness.checks.stats` (a plan, a test's verdict), kept as it is: the
#: report shows its fields, nothing judges them again.
StatsRecord = dict[str, Any]


class ObservedAnswer(TypedDict):
    """One kind of answer to a probe, how often it came, and whether the verdict expected it."""

    status: int | None
    backend: str | None
    instance: str | None
    upstream_path: str | None
    forwarded_prefix: str | None
    #: A redirect's Location, the Host the backend saw, and the request (as the backend saw
    #: them, [] absent) and response headers (None absent) a middleware of the route changes.
    location: NotRequired[str | None]
    host: NotRequired[str | None]
    request_headers: NotRequired[dict[str, list[str]]]
    response_headers: NotRequired[dict[str, str | None]]
    error: str | None
    #: The other request headers the backend received (``Observation.headers``); absent in
    #: documents written before it was recorded.
    headers: NotRequired[dict[str, str]]
    count: int
    #: True: what the oracle expects; False: not; None: not judged by this aspect (a strip
    #: check's answer from another backend, an undefined expectation).
    expected: bool | None


class ExactEvidence(TypedDict):
    """One probe judged on one aspect (routing, strip, priority or edge)."""

    type: Literal["exact"]
    aspect: Literal["routing", "strip", "priority", "edge"]
    scenario: str
    probe_id: str
    #: The verdict on this probe (also the check's outcome, for an exact check).
    outcome: Outcome
    #: What was expected, for a person.
    expected: str
    observed: list[ObservedAnswer]
    #: Answers the verdict did not expect (the sum of their counts).
    unexpected: int
    #: The one-screen message of this verdict.
    message: str
    #: The probe as :meth:`harness.checks.probes.Probe.to_dict` writes it (request, reasons,
    #: the oracle's expectation with the deciding rule and priority).
    probe: dict[str, Any]
    #: A tutorial-named check's own claim about the answers, when it makes one.
    claim: NotRequired[str]


class RegistrationStep(TypedDict):
    """One step of a registration check: what was applied, and the routing verdict then."""

    step: str
    verdict: ExactEvidence


class RegistrationEvidence(TypedDict):
    """Applying and removing Ingresses, and registering a route again."""

    type: Literal["registration"]
    scenario: str
    steps: list[RegistrationStep]


class ErrorCheck(TypedDict):
    """The error-rate check that comes before a split verdict."""

    successes: int
    errors: int
    error_rate: float
    max_error_rate: float
    verdict: str
    summary: str


class InstanceCount(TypedDict):
    backend: str
    instance: str
    count: int


class WeightsEvidence(TypedDict):
    """A weighted split: the plan, the traffic, the error check and the statistical verdict."""

    type: Literal["weights"]
    scenario: str
    route: str
    source: SourceRecord
    request: dict[str, str]
    #: Declared shares per backend Service.
    declared: dict[str, float]
    settings: dict[str, Any]
    plan: StatsRecord
    sent: int
    wall_time: float
    rate: float | None
    #: Failed requests by class.
    failures: dict[str, int]
    error_check: ErrorCheck
    counts_by_instance: list[InstanceCount]
    #: max |count - n share| per proxy replica; None when the error check ended the check.
    replicas: StatsRecord | None
    #: The chi-square or sequential test's verdict; None when the error check ended the check.
    verdict: StatsRecord | None


class GapMarker(TypedDict):
    name: str
    t_s: float | None


class GapTimeline(TypedDict):
    """A run's timeline in fixed buckets of scheduled time (columns)."""

    bucket_ms: float
    t_s: list[float | None]
    requests: list[int]
    good: list[int]
    failed: dict[str, list[int]]
    latency_p50_ms: list[float | None]
    latency_p99_ms: list[float | None]
    new: list[int]
    old: NotRequired[list[int]]
    markers: list[GapMarker]
    gap: dict[str, float | None] | None


class LaggedAttempt(TypedDict):
    """An attempt at a gap run that the sender's lag made invalid and that was made again."""

    lag_p99_ms: float | None
    failed: int
    gap_ms: float | None
    convergence_ms: float | None
    summary: str


class GapRun(TypedDict):
    """The figures of one run of a change (:meth:`harness.checks.gaps.GapReport.to_dict`)."""

    requests: int
    scheduled: int
    good: int
    failed: int
    failed_by_class: dict[str, int]
    failed_before_change: int
    accounted: bool
    rate_per_s: float | None
    span_s: float | None
    window_end_s: float | None
    markers: list[GapMarker]
    gap_ms: float | None
    gap: dict[str, float | None] | None
    #: Separate outages, and the time they covered together.
    outages: int
    outage_total_ms: float | None
    recovered: bool
    intervals: list[dict[str, float | int | None]]
    longest_streak: dict[str, Any]
    worst_window: dict[str, Any]
    shows_old: str | None
    shows_new: str | None
    convergence_ms: float | None
    first_new_s: float | None
    last_old_s: float | None
    last_old_ms: float | None
    mixed_after_convergence: int
    old_after_shown: int | None
    new_before_change: int
    shown_ms: float | None
    change_call_ms: float | None
    latency: dict[str, dict[str, Any]]
    sender: dict[str, Any]
    hitless: bool
    problems: list[str]
    summary: str
    meta: dict[str, Any]
    #: Attempts made again after the sender lagged (added compatibly in version 2).
    lagged_attempts: NotRequired[list[LaggedAttempt]]
    timeline: NotRequired[GapTimeline]


class GapsEvidence(TypedDict):
    """One apply strategy (or the user's change command), repeated under open-loop traffic."""

    type: Literal["gaps"]
    #: The strategy's name (``patch``, ``delete-create``, ..., ``command``).
    strategy: str
    #: What the strategy does, for a person.
    title: str
    #: The requests sent under the change (``host/path``).
    requests: list[str]
    #: Which answers show the old and the new configuration (backends, instances, paths).
    old: dict[str, list[str]] | None
    new: dict[str, list[str]] | None
    scenario: str | None
    route: str | None
    rule: str | None
    source: SourceRecord | None
    moved_to: str | None
    command: str | None
    throttle_s: float
    #: Failed requests allowed per run; None: report only.
    budget: int | None
    summary: str
    distribution: GapDistribution
    repeats: list[GapRun]
    #: --change-command: when the traffic ends (``SECONDS`` or ``exit+SECONDS``).
    change_window: str | None
    settings: dict[str, float]


#: The evidence of a check; its ``type`` names the shape.
Evidence = ExactEvidence | RegistrationEvidence | WeightsEvidence | GapsEvidence
#: The ``type`` of each shape of evidence.
EvidenceType = Literal["exact", "weights", "gaps", "registration"]


def route_subject(scenario: str, route: Any) -> Subject:
    """The matrix row of a check about one route (``harness.intent.model.Route``)."""
    return Subject(
        scenario=scenario, route=route.id, label=f"{route.host or '*'}{route.path or ''}"
    )


def kind_of(evidence: Evidence) -> Kind:
    """The kind of check this evidence is of (the only place a kind is decided)."""
    if evidence["type"] == "exact":
        return Kind(evidence["aspect"])
    return Kind(evidence["type"])


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
    #: The kind's own evidence; its ``type`` names the shape. None: the check never got to
    #: record any (an error or skip in its setup).
    evidence: Evidence | None
    findings: list[FindingRecord]
    #: The figures the baseline comparison compares (higher is worse), as the check computed
    #: them: ``unexpected_answers`` (exact, registration), ``share_deviation`` and
    #: ``error_rate`` (weights), ``gap_ms``, ``failed_requests``, ``worst_window_error_rate``,
    #: ``longest_failing_streak``, ``convergence_ms`` (gaps, medians over the runs).
    figures: dict[str, float]


@dataclass(frozen=True)
class CheckVerdict:
    """What a check concludes, where it runs: the record without the test's node id and time."""

    outcome: Outcome
    subject: Subject
    summary: str
    message: str
    evidence: Evidence
    findings: tuple[FindingRecord, ...] = ()
    figures: Mapping[str, float] | None = None

    @property
    def kind(self) -> Kind:
        return kind_of(self.evidence)

    def record(self, nodeid: str, duration: float) -> CheckRecord:
        return CheckRecord(
            nodeid=nodeid,
            kind=self.kind,
            outcome=self.outcome,
            subject=self.subject,
            summary=self.summary,
            message=self.message,
            duration=duration,
            evidence=self.evidence,
            findings=list(self.findings),
            figures=dict(self.figures or {}),
        )


def finding_records(findings: Iterable[Any]) -> tuple[FindingRecord, ...]:
    """Findings (``harness.intent.model.Finding``) as records, each once, in order."""
    seen: dict[str, FindingRecord] = {}
    for finding in findings:
        record = cast(FindingRecord, finding.to_dict())
        seen.setdefault(repr(sorted(record.items())), record)
    return tuple(seen.values())
