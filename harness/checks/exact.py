"""Exact verdicts: did the proxy route, strip and prioritise every probe as the oracle expects?

Each probe is judged on one aspect at a time, so that a fault fails the check that names it:

- ``routing``: the status, and which backend Service answered; where a middleware answers by
  itself, its status (a redirect's ``Location`` too, and the response headers set on it);
- ``strip``: what the route's middlewares did to a forwarded request, judged on the answers that
  came from the expected backend: the path the backend received, ``X-Forwarded-Prefix``, the
  request headers a middleware set or removed, the Host it saw, and the response headers a
  middleware set or removed;
- ``priority``: for a request that several routes match, that the route the proxy's precedence
  rules pick is the one that answered;
- ``edge``: an unusual request derived from a route (dot segments, encodings, case, a Host with
  a port or a trailing dot): the status, the backend, the path it saw and
  ``X-Forwarded-Prefix``, as the oracle's model of the entry point predicts for the running
  Traefik. Where the model cannot predict the answer, or the running Traefik is not a
  version it was confirmed on (``CONFIRMED_VERSIONS``), the answers are recorded
  (``report-only``), not judged.

A probe whose expected outcome is undefined (two routes tied on priority with different effects)
gets the ``undefined`` outcome with the observed distribution: reported, neither passed nor failed.
One whose answer the middleware model cannot predict is ``report-only``: what Traefik did is
recorded, not judged. A failure names the middlewares responsible (namespace/name, type) and
both values.
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
from harness.intent.model import PROVIDER_NGINX, Intent, Route
from harness.traefik import middlewares as mw
from harness.traefik.nginx import traefik_side
from harness.traefik.oracle import Candidate, Expectation
from harness.traefik.versions import CONFIRMED_VERSIONS, behaviour_of
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
        # Every request forwarded to a backend: what it saw is judged also where no middleware
        # changes it (then unchanged and absent), so an undeclared rewrite fails. An edge probe
        # is judged on all of it by the edge check alone.
        return expectation.outcome == "routed" and set(probe.kinds) != {KIND_EDGE}
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
                    location=obs.location,
                    host=obs.host,
                    request_headers={k: list(v) for k, v in obs.request_headers},
                    response_headers=dict(obs.response_headers),
                    error=obs.error,
                    headers=dict(obs.headers),
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


def _headers_text(c: Candidate) -> str:
    parts = [f"{k}: {', '.join(v) if v else 'absent'}" for k, v in c.request_headers]
    parts += [f"response {k}: {'absent' if v is None else v}" for k, v in c.response_headers]
    return "".join(f", {p}" for p in parts)


def _expected_text(aspect: Aspect, e: Expectation) -> str:
    c = e.decided_by
    if e.outcome == "not-found":
        return "404 (no route matches)"
    if c is None and e.outcome == "bad-request":
        return "400 (rejected before routing)"
    if c is None and e.outcome == "unpredictable":
        return "unpredictable (recorded, not judged): " + e.reason
    if e.outcome == "undefined":
        return "undefined: " + " vs ".join(
            f"{t.route_id} ({', '.join(b.service for b in t.backends)})" for t in e.tied
        )
    assert c is not None
    if e.outcome == "unpredictable":
        return f"not predicted ({c.unpredictable}): recorded as observed behaviour"
    if e.outcome == "redirect":
        return f"{c.status} redirect to {c.location}{_headers_text(c)}"
    if e.outcome in ("bad-request", "answered"):
        return f"{c.status} from Traefik ({c.answer_reason}){_headers_text(c)}"
    services = sorted(s for s, share in e.shares().items() if share > 0)
    if aspect == "strip":
        prefix = c.forwarded_prefix if c.forwarded_prefix is not None else "absent"
        return (
            f"upstream path {c.upstream_path}, X-Forwarded-Prefix {prefix}, Host {c.host_header}"
            + _headers_text(c)
        )
    if aspect == "edge":
        prefix = c.forwarded_prefix if c.forwarded_prefix is not None else "absent"
        return (
            f"200 from {' or '.join(services)}, upstream path {c.upstream_path}, "
            f"X-Forwarded-Prefix {prefix}"
        )
    return f"200 from {' or '.join(services)}"


#: What can differ between an answer and the expectation, and which middleware types change it.
_CHANGED_BY: dict[str, tuple[type, ...]] = {
    "status": (
        mw.RedirectScheme, mw.RedirectRegex, mw.StripPrefix, mw.StripPrefixRegex, mw.ReplacePath,
        mw.ReplacePathRegex, mw.RequestRedirect, mw.AppRoot, mw.UnresolvedBackends,
    ),
    "Location": (mw.RedirectScheme, mw.RedirectRegex, mw.RequestRedirect, mw.AppRoot),
    "upstream path": (
        mw.StripPrefix, mw.StripPrefixRegex, mw.AddPrefix, mw.ReplacePath, mw.ReplacePathRegex,
        mw.URLRewrite, mw.RewriteTarget,
    ),
    "X-Forwarded-Prefix": (mw.StripPrefix, mw.StripPrefixRegex, mw.RewriteTarget),
}  # fmt: skip


def _differences(aspect: Aspect, c: Candidate, obs: Observation) -> list[tuple[str, Any, Any]]:
    """(what, expected, observed) for every observable of ``aspect`` the answer gets wrong
    (None and no values shown as ``absent``)."""
    pairs: list[tuple[str, Any, Any]] = []
    if aspect != "strip":
        pairs.append(("status", c.status, obs.status))
        if c.location is not None:
            pairs.append(("Location", c.location, obs.location))
    else:
        pairs.append(("upstream path", c.upstream_path, obs.upstream_path))
        pairs.append(("X-Forwarded-Prefix", c.forwarded_prefix, obs.forwarded_prefix))
        pairs.append(("Host", c.host_header, obs.host))
        seen = dict(obs.request_headers)
        pairs += [(f"request header {k}", v, seen.get(k, ())) for k, v in c.request_headers]
    got = dict(obs.response_headers)
    pairs += [(f"response header {k}", v, got.get(k)) for k, v in c.response_headers]
    return [(what, _shown(want), _shown(got)) for what, want, got in pairs if want != got]


def _shown(value: Any) -> Any:
    """A value for a failure line: header values joined, nothing as ``absent``."""
    if isinstance(value, tuple):
        value = ", ".join(value)
    return "absent" if value is None or value == "" else value


def _responsible(route: Route, what: str) -> str:
    """The route's middlewares that change ``what``, for a failure message."""

    def changes(m: mw.Middleware) -> bool:
        if what.startswith(("request header ", "response header ")):
            name = what.split(" ", 2)[2]
            if name == "X-Replaced-Path":
                return isinstance(m, mw.ReplacePath | mw.ReplacePathRegex)
            pairs = (
                (
                    m.custom_request_headers + m.add_request_headers
                    if what.startswith("request")
                    else m.custom_response_headers + m.add_response_headers
                )
                if isinstance(m, mw.Headers)
                else ()
            )
            return any(k.lower() == name.lower() for k, _ in pairs)
        if what == "Host":
            return (isinstance(m, mw.URLRewrite) and m.hostname is not None) or (
                isinstance(m, mw.Headers)
                and any(k.lower() == "host" for k, _ in m.custom_request_headers)
            )
        return isinstance(m, _CHANGED_BY.get(what, ()))

    found = [m.label for m in route.middlewares if changes(m.model)]
    return "set by " + ", ".join(found) if found else "no middleware of the route changes it"


def _matches(aspect: Aspect, e: Expectation, obs: Observation) -> bool | None:
    """Whether one answer is what the oracle expects on ``aspect`` (None: not judged by it)."""
    if e.outcome in ("undefined", "unpredictable"):
        return None
    if e.outcome == "not-found":
        return obs.status == 404 and obs.backend is None
    c = e.decided_by
    if c is None:  # rejected by the entry point before any router
        return obs.status == 400 and obs.backend is None
    if c.status is not None:
        # Traefik's own answer (a redirect, 400, 500): no backend, and what the client sees.
        return obs.backend is None and not _differences(aspect, c, obs)
    allowed = {s for s, share in e.shares().items() if share > 0}
    if aspect == "strip":
        if obs.backend not in allowed:
            return None  # judged on the expected backends' answers; routing judges the rest
        return not _differences(aspect, c, obs)
    routed = obs.status == 200 and obs.backend in allowed
    if aspect == "edge":
        return routed and (obs.upstream_path, obs.forwarded_prefix) == (
            c.upstream_path,
            c.forwarded_prefix,
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
                f"{', '.join(CONFIRMED_VERSIONS)}, this is {e.traefik_version} (the model "
                f"says: {expected})"
            )
    elif e.outcome == "unpredictable":
        outcome = Outcome.REPORT_ONLY
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
    and the running Traefik is a version the model was confirmed on (or unknown)."""
    return e.outcome != "unpredictable" and behaviour_of(e.traefik_version).confirmed


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
    where = "http" if probe.arrival is None else probe.arrival.scheme
    at = "" if probe.arrival is None else f" at entry point {probe.arrival.entry_point}"
    lines = [
        f"{aspect} check {outcome.upper()}: {probe.method} {where}://{probe.host}{probe.path}{at}"
    ]
    if e.decided_by is not None:
        route = intent.route(e.decided_by.route_id)
        lines.append(f"  route     {route.id}, declared at {route.source}")
        note = intent.route_note(route)
        if note:
            lines.append(f"  {note[0]:<9} {note[1]}")
        how = "explicit" if e.decided_by.priority_source == "explicit" else "length of the rule"
        if route.provider == PROVIDER_NGINX:
            how = "ingress-nginx's location order: Exact, then the longest path"
        lines.append(f"  decided   by {e.decided_by.rule} with priority {e.priority} ({how})")
        for other in e.competing:
            lines.append(f"  outranks  {other.rule} with priority {other.priority}")
        if intent.effective is not None and route.provider == PROVIDER_NGINX:
            theirs = traefik_side(intent.effective, probe)
            if theirs:
                lines.append(f"  traefik   {theirs}")
    elif e.tied:
        for c in e.tied:
            lines.append(f"  tied      {c.rule} with priority {c.priority} ({c.route_id})")
    elif intent.effective is not None and any(r.provider == PROVIDER_NGINX for r in intent.routes):
        # Nothing answers on ingress-nginx: what Traefik serves instead, if anything.
        theirs = traefik_side(intent.effective, probe)
        if theirs:
            lines.append(f"  traefik   {theirs}")
    lines.append(f"  why       {probe.reason}")
    if e.decided_by is not None:
        route = intent.route(e.decided_by.route_id)
        if route.middlewares:
            chain = ", ".join(m.label for m in route.middlewares)
            on = e.decided_by.modeled_on
            # Inert middlewares alone: no model of Traefik's to name.
            lines.append(f"  through   {chain}" + (f" (as on Traefik {on})" if on else ""))
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
    wrong = next(
        (o for o, n in record.observations.most_common() if _matches(aspect, e, o) is False), None
    )
    if outcome is Outcome.FAILED and wrong is not None and e.decided_by is not None:
        route = intent.route(e.decided_by.route_id)
        for what, want, got in _differences(aspect, e.decided_by, wrong):
            lines.append(
                f"  differs   {what}: expected {want}, observed {got} ({_responsible(route, what)})"
            )
    if outcome is Outcome.SKIPPED:
        lines.append("  (no answer came from the expected backend, so the strip could not be seen;")
        lines.append("   the routing check of this request reports what answered instead)")
    return "\n".join(lines)
