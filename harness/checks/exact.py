"""Exact verdicts: did the proxy route, strip and prioritise every probe as the oracle expects?

Each probe is judged on one aspect at a time, so that a fault fails the check that names it:

- ``routing``: the status, and which backend Service answered;
- ``strip``: the path the backend received and the ``X-Forwarded-Prefix`` header, judged on the
  answers that came from the expected backend;
- ``priority``: for a request that several routes match, that the route the proxy's precedence
  rules pick is the one that answered;
- ``edge``: an unusual request derived from a route (dot segments, encodings, case, a Host with
  a port or a trailing dot): the status, the backend, the path it saw and
  ``X-Forwarded-Prefix``, as the oracle's model of the entry point predicts for the running
  Traefik. Where the model cannot predict the answer, or the running Traefik is not the
  version it was confirmed on, the answers are recorded (``report-only``), not judged.

A probe whose expected outcome is undefined (two routes tied on priority with different effects)
gets the ``undefined`` outcome with the observed distribution: reported, neither passed nor failed.
A strip check none of whose answers came from the expected backend is ``skipped`` (the routing
check of that request fails and says what answered).

:func:`judge` is the one place an exact verdict is made: every answer is marked expected or not
here, and results.json, the baseline comparison and the report read those marks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from harness.checks.evidence import (
    CheckVerdict,
    ExactEvidence,
    ObservedAnswer,
    Outcome,
    Subject,
    finding_records,
    route_subject,
)
from harness.checks.probes import (
    KIND_BOUNDARY,
    KIND_EDGE,
    KIND_NOT_FOUND,
    KIND_PRECEDENCE,
    KIND_ROUTE,
    Probe,
)
from harness.intent.model import Intent
from harness.traefik.oracle import Expectation
from harness.traefik.requests import CONFIRMED_ON
from harness.traffic.rounds import Observation, ProbeRecord

Aspect = Literal["routing", "strip", "priority", "edge"]
ASPECTS: tuple[Aspect, ...] = ("routing", "strip", "priority", "edge")


def applies(aspect: Aspect, probe: Probe) -> bool:
    """Whether ``probe`` is evidence for ``aspect``."""
    expectation = probe.expectation
    if aspect == "routing":
        return bool({KIND_ROUTE, KIND_BOUNDARY, KIND_NOT_FOUND} & set(probe.kinds))
    if aspect == "edge":
        return KIND_EDGE in probe.kinds
    if aspect == "strip":
        # Every routed request: the path the backend saw and X-Forwarded-Prefix are judged also
        # where nothing is stripped (then unchanged and absent), so an undeclared rewrite fails.
        # An edge probe is judged on all of it by the edge check alone.
        return expectation.decided_by is not None and set(probe.kinds) != {KIND_EDGE}
    return KIND_PRECEDENCE in probe.kinds


def probe_subject(scenario: str, intent: Intent, probe: Probe) -> Subject:
    """The route a probe is about (the one that decides it, or the first of a tie), or "other
    requests" for a request no route may take."""
    e = probe.expectation
    route_id = e.decided_by.route_id if e.decided_by is not None else None
    if route_id is None and e.tied:
        route_id = e.tied[0].route_id
    if route_id is None:
        return Subject(scenario=scenario, route=None, label="other requests")
    return route_subject(scenario, intent.route(route_id))


@dataclass(frozen=True)
class ExactVerdict:
    """The verdict on one probe and aspect, with the evidence a reviewer needs. Each kind of
    answer carries whether it was expected (None: not judged by this aspect)."""

    aspect: Aspect
    scenario: str
    subject: Subject
    outcome: Outcome
    expected: str
    observed: tuple[tuple[Observation, int, bool | None], ...]
    message: str
    probe: Probe
    claim: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def unexpected(self) -> int:
        return sum(n for _, n, ok in self.observed if ok is False)

    def evidence(self) -> ExactEvidence:
        evidence = ExactEvidence(
            type="exact",
            aspect=self.aspect,
            scenario=self.scenario,
            probe_id=self.probe.id,
            outcome=self.outcome,
            expected=self.expected,
            observed=[
                ObservedAnswer(
                    status=obs.status,
                    backend=obs.backend,
                    instance=obs.instance,
                    upstream_path=obs.upstream_path,
                    forwarded_prefix=obs.forwarded_prefix,
                    error=obs.error,
                    count=n,
                    expected=ok,
                )
                for obs, n, ok in self.observed
            ],
            unexpected=self.unexpected,
            message=self.message,
            probe=self.probe.to_dict(),
        )
        if self.claim is not None:
            evidence["claim"] = self.claim
        return evidence

    def summary(self) -> str:
        """One line for the terminal and JUnit."""
        observed = ", ".join(
            f"{n}x {obs.status if obs.error is None else obs.error}"
            + (f" {obs.backend}" if obs.backend else "")
            for obs, n, _ in self.observed
        )
        return (
            f"{self.aspect} {self.outcome}: {self.probe.id} expected {self.expected}; "
            f"observed {observed}"
        )[:500]

    def check(self, findings: Iterable[Any] = ()) -> CheckVerdict:
        """This verdict as the check's own (an exact check judges one probe)."""
        return CheckVerdict(
            outcome=self.outcome,
            subject=self.subject,
            summary=self.summary(),
            message=self.message,
            evidence=self.evidence(),
            findings=finding_records([*findings, *self.probe.expectation.findings]),
            figures={"unexpected_answers": float(self.unexpected)},
        )


def with_claim(
    verdict: ExactVerdict, claim: str, holds: Callable[[Observation], bool]
) -> ExactVerdict:
    """The verdict of a tutorial-named check: the oracle's verdict, failed as well when one of
    the answers breaks the tutorial's own ``claim`` (each answer that does is unexpected)."""
    observed = tuple((obs, n, (ok is not False) and holds(obs)) for obs, n, ok in verdict.observed)
    broken = [obs for obs, _, ok in observed if not ok]
    if not broken or verdict.outcome is Outcome.UNDEFINED:
        return replace(verdict, claim=claim)
    lines = [f"the tutorial's claim does not hold: {claim}"]
    lines += [f"    {obs.describe()}" for obs in broken[:6]]
    return replace(
        verdict,
        outcome=Outcome.FAILED,
        observed=observed,
        message="\n".join(lines) + "\n" + verdict.message,
        claim=claim,
    )


def _expected_text(aspect: Aspect, e: Expectation) -> str:
    if e.outcome == "unpredictable":
        return "unpredictable (recorded, not judged): " + e.reason
    if e.outcome == "not-found":
        return "404 (no route matches)"
    if e.outcome == "bad-request":
        if e.decided_by is None:
            return "400 (rejected before routing)"
        return "400 (the stripped path is not clean)"
    if e.outcome == "undefined":
        return "undefined: " + " vs ".join(
            f"{c.route_id} ({', '.join(b.service for b in c.backends)})" for c in e.tied
        )
    services = sorted(s for s, share in e.shares().items() if share > 0)
    prefix = e.forwarded_prefix if e.forwarded_prefix is not None else "absent"
    if aspect == "strip":
        return f"upstream path {e.upstream_path}, X-Forwarded-Prefix {prefix}"
    if aspect == "edge":
        return (
            f"200 from {' or '.join(services)}, upstream path {e.upstream_path}, "
            f"X-Forwarded-Prefix {prefix}"
        )
    return f"200 from {' or '.join(services)}"


def _matches(aspect: Aspect, e: Expectation, obs: Observation) -> bool | None:
    """Whether one answer is what the oracle expects on ``aspect`` (None: not judged by it)."""
    if e.outcome in ("undefined", "unpredictable"):
        return None
    if e.outcome == "not-found":
        return obs.status == 404 and obs.backend is None
    if e.outcome == "bad-request":
        return obs.status == 400 and obs.backend is None
    allowed = {s for s, share in e.shares().items() if share > 0}
    if aspect == "strip":
        if obs.backend not in allowed:
            return None  # strip is judged on the expected backends' answers; routing the rest
        return obs.upstream_path == e.upstream_path and obs.forwarded_prefix == e.forwarded_prefix
    routed = obs.status == 200 and obs.backend in allowed
    if aspect == "edge":
        return routed and (obs.upstream_path, obs.forwarded_prefix) == (
            e.upstream_path,
            e.forwarded_prefix,
        )
    return routed


def judge(
    aspect: Aspect,
    record: ProbeRecord,
    intent: Intent,
    *,
    scenario: str,
    context: str = "",
) -> ExactVerdict:
    """Judge every answer to one probe on one aspect: the one place an exact verdict is made.
    All answers must match: one wrong answer in fifty is a fault (a flapping route), not noise."""
    probe, e = record.probe, record.probe.expectation
    observed = tuple((o, n, _matches(aspect, e, o)) for o, n in record.observations.most_common())
    judged = [ok for _, _, ok in observed if ok is not None]
    expected = _expected_text(aspect, e)
    if e.outcome == "undefined":
        outcome = Outcome.UNDEFINED
    elif aspect == "edge" and not _edge_judged(e):
        # Observed behaviour, recorded with the answers: the model has no say here.
        outcome = Outcome.REPORT_ONLY
        observed = tuple((o, n, None) for o, n, _ in observed)
        if e.outcome != "unpredictable":
            expected = (
                f"recorded, not judged: the request model was confirmed on Traefik "
                f"{CONFIRMED_ON}, this is {e.traefik_version} (the model says: {expected})"
            )
    elif not judged:
        # Nothing came from the expected backend: the routing check of this request fails and
        # says so; the strip cannot be seen, so it is not judged (not failed twice).
        outcome = Outcome.SKIPPED
    else:
        outcome = Outcome.PASSED if all(judged) else Outcome.FAILED
    message = _message(
        aspect, record=record, intent=intent, expected=expected, outcome=outcome, context=context
    )
    subject = probe_subject(scenario, intent, probe)
    return ExactVerdict(aspect, scenario, subject, outcome, expected, observed, message, probe)


def _edge_judged(e: Expectation) -> bool:
    """Whether the oracle's model of the entry point may judge this answer: it predicts one,
    and the running Traefik is the version the model was confirmed on (or unknown)."""
    return e.outcome != "unpredictable" and e.traefik_version in (None, CONFIRMED_ON)


def _message(
    aspect: Aspect,
    *,
    record: ProbeRecord,
    intent: Intent,
    expected: str,
    outcome: Outcome,
    context: str,
) -> str:
    """One screen: the route and where it was declared, the request, expected and observed."""
    probe, e = record.probe, record.probe.expectation
    lines = [f"{aspect} check {outcome.upper()}: {probe.method} http://{probe.host}{probe.path}"]
    if e.decided_by is not None:
        route = intent.route(e.decided_by.route_id)
        lines.append(f"  route     {route.id}, declared at {route.source}")
        note = intent.legacy_note(route)
        if note:
            lines.append(f"  legacy    {note}")
        how = "explicit" if e.decided_by.priority_source == "explicit" else "length of the rule"
        lines.append(f"  decided   by {e.decided_by.rule} with priority {e.priority} ({how})")
        for other in e.competing:
            lines.append(f"  outranks  {other.rule} with priority {other.priority}")
    elif e.tied:
        for c in e.tied:
            lines.append(f"  tied      {c.rule} with priority {c.priority} ({c.route_id})")
    lines.append(f"  why       {probe.reason}")
    lines.append(f"  expected  {expected}")
    sent = record.sent
    lines.append(f"  observed  ({sent} requests{context}):")
    # One line per kind of answer; which backend instances gave it, in brackets.
    answers: Counter[Observation] = Counter()
    instances: dict[Observation, Counter[str]] = {}
    for obs, count in record.observations.items():
        kind = replace(obs, instance=None)
        answers[kind] += count
        if obs.instance:
            instances.setdefault(kind, Counter())[obs.instance] += count
    for kind, count in answers.most_common(6):
        by_instance = instances.get(kind)
        detail = (
            " [" + ", ".join(f"{i} x{n}" for i, n in sorted(by_instance.items())) + "]"
            if by_instance
            else ""
        )
        lines.append(f"    {count:>5} x {kind.describe()}{detail}")
    if len(answers) > 6:
        lines.append(f"    ... {len(answers) - 6} more kinds of answer")
    if outcome is Outcome.SKIPPED:
        lines.append("  (no answer came from the expected backend, so the strip could not be seen;")
        lines.append("   the routing check of this request reports what answered instead)")
    return "\n".join(lines)
