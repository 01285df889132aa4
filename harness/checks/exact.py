"""Exact verdicts: did the proxy route, strip and prioritise every probe as the oracle expects?

Each probe is judged on one aspect at a time, so that a fault fails the check that names it:

- ``routing``: the status, and which backend Service answered;
- ``strip``: the path the backend received and the ``X-Forwarded-Prefix`` header, judged on the
  answers that came from the expected backend;
- ``priority``: for a request that several routes match, that the route the proxy's precedence
  rules pick is the one that answered.

A probe whose expected outcome is undefined (two routes tied on priority with different effects)
gets the ``undefined`` outcome with the observed distribution: reported, neither passed nor failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal

from harness.checks.probes import KIND_BOUNDARY, KIND_NOT_FOUND, KIND_PRECEDENCE, KIND_ROUTE, Probe
from harness.intent.model import Intent
from harness.traefik.oracle import Expectation
from harness.traffic.rounds import Observation, ProbeRecord

Aspect = Literal["routing", "strip", "priority"]
ASPECTS: tuple[Aspect, ...] = ("routing", "strip", "priority")
VerdictOutcome = Literal["passed", "failed", "undefined", "not-judged"]


def applies(aspect: Aspect, probe: Probe) -> bool:
    """Whether ``probe`` is evidence for ``aspect``."""
    expectation = probe.expectation
    if aspect == "routing":
        return bool({KIND_ROUTE, KIND_BOUNDARY, KIND_NOT_FOUND} & set(probe.kinds))
    if aspect == "strip":
        decided = expectation.decided_by
        return decided is not None and decided.forwarded_prefix is not None
    return KIND_PRECEDENCE in probe.kinds


@dataclass(frozen=True)
class ExactVerdict:
    """The verdict on one probe and aspect, with the evidence a reviewer needs."""

    aspect: Aspect
    probe_id: str
    outcome: VerdictOutcome
    expected: str
    observed: tuple[tuple[Observation, int], ...]
    message: str
    probe: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "exact",
            "aspect": self.aspect,
            "probe_id": self.probe_id,
            "outcome": self.outcome,
            "expected": self.expected,
            "observed": [{**obs.to_dict(), "count": n} for obs, n in self.observed],
            "message": self.message,
            "probe": self.probe,
        }


def _expected_text(aspect: Aspect, e: Expectation) -> str:
    if e.outcome == "not-found":
        return "404 (no route matches)"
    if e.outcome == "bad-request":
        return "400 (the stripped path is not clean)"
    if e.outcome == "undefined":
        return "undefined: " + " vs ".join(
            f"{c.route_id} ({', '.join(b.service for b in c.backends)})" for c in e.tied
        )
    services = sorted(s for s, share in e.shares().items() if share > 0)
    if aspect == "strip":
        return f"upstream path {e.upstream_path}, X-Forwarded-Prefix {e.forwarded_prefix}"
    return f"200 from {' or '.join(services)}"


def _matches(aspect: Aspect, e: Expectation, obs: Observation) -> bool:
    if e.outcome == "not-found":
        return obs.status == 404 and obs.backend is None
    if e.outcome == "bad-request":
        return obs.status == 400 and obs.backend is None
    allowed = {s for s, share in e.shares().items() if share > 0}
    if aspect == "strip":
        return obs.upstream_path == e.upstream_path and obs.forwarded_prefix == e.forwarded_prefix
    return obs.status == 200 and obs.backend in allowed


def judge(
    aspect: Aspect, record: ProbeRecord, intent: Intent, *, context: str = ""
) -> ExactVerdict:
    """Judge every answer to one probe on one aspect. All answers must match: one wrong answer
    in fifty is a fault (a flapping route), not noise."""
    probe, e = record.probe, record.probe.expectation
    observed = tuple(record.observations.most_common())
    judged: Counter[Observation] = Counter(record.observations)
    if aspect == "strip" and e.outcome == "routed":
        # Strip is judged on answers from the expected backends; routing judges the rest.
        allowed = {s for s, share in e.shares().items() if share > 0}
        judged = Counter({o: n for o, n in judged.items() if o.backend in allowed})
    expected = _expected_text(aspect, e)
    if e.outcome == "undefined":
        outcome: VerdictOutcome = "undefined"
    elif not judged:
        # Nothing came from the expected backend: the routing check of this request fails and
        # says so; the strip cannot be seen, so it is not judged (not failed twice).
        outcome = "not-judged"
    else:
        outcome = "passed" if all(_matches(aspect, e, o) for o in judged) else "failed"
    message = _message(
        aspect, record=record, intent=intent, expected=expected, outcome=outcome, context=context
    )
    return ExactVerdict(aspect, probe.id, outcome, expected, observed, message, probe.to_dict())


def _message(
    aspect: Aspect,
    *,
    record: ProbeRecord,
    intent: Intent,
    expected: str,
    outcome: VerdictOutcome,
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
    if outcome == "not-judged":
        lines.append("  (no answer came from the expected backend, so the strip could not be seen;")
        lines.append("   the routing check of this request reports what answered instead)")
    return "\n".join(lines)
