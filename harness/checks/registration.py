"""Registration: applying an Ingress registers its routes, removing it deregisters them, and
registering a route that already exists (same host and path, another Service) does what Traefik
actually does.

The tutorial (for Traefik 1.x) says registering the same route again moves it to the new
service. On Traefik v3 both routers then have the same rule, so the same default priority, and
Traefik picks one in unspecified order that can change at every reload: the oracle calls that
undefined and the check reports the observed distribution. The v3 way to override a route is an
explicit, higher priority on the new Ingress; that is checked to move the route, every time.

Each check sends a route's own probe in rounds at every step and judges its routing with
:func:`harness.checks.exact.judge`; the steps' verdicts are the evidence, and the check's
outcome is decided here from them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.checks.evidence import (
    CheckVerdict,
    Outcome,
    RegistrationEvidence,
    RegistrationStep,
    Subject,
    finding_records,
    route_subject,
)
from harness.checks.exact import ExactVerdict, judge
from harness.checks.probes import probe_for
from harness.intent.model import Intent, Route, sub_intent
from harness.traffic.rounds import send_in_rounds


def same_rule_pairs(intent: Intent) -> list[tuple[Route, Route]]:
    """Every pair of routes with the same rule and different Services on one provider: the
    tutorial's "register the route again to move it"."""
    pairs = []
    routes = intent.routes
    for i, first in enumerate(routes):
        for second in routes[i + 1 :]:
            different = {b.service for b in first.backends} != {b.service for b in second.backends}
            if first.rule == second.rule and different and first.provider == second.provider:
                pairs.append((first, second))
    return pairs


class _Steps:
    """The steps of one check: each judged, recorded, and failed when it must pass."""

    def __init__(self, target: Any, scenario: str) -> None:
        self.target = target
        self.scenario = scenario
        self.steps: list[tuple[str, ExactVerdict]] = []
        self.failures: list[str] = []

    def judge(
        self, step: str, intent: Intent, route: Route, rounds: int, *, reload: bool = False
    ) -> ExactVerdict:
        """Send the route's own probe ``rounds`` times (with a reload halfway if asked) and
        judge its routing against ``intent``; a step that is not passed fails the check, unless
        it is undefined (a tie: its distribution is the evidence)."""
        # Where the route is served (its entry point, in its scheme).
        probe = probe_for(intent, route, arrival=self.target.arrival_for(route))
        run = send_in_rounds(
            self.target.proxy_url,
            [probe],
            rounds=rounds,
            reload=self.target.reload if reload else None,
            service_of=self.target.service_of,
            url_at=self.target.url_at,
            tls=self.target.tls_verify,
        )
        context = f" in {rounds} rounds" + (
            f", one configuration reload after round {run.reload_after_round}"
            if run.reload_after_round is not None
            else ""
        )
        verdict = judge(
            "routing", run.records[probe.id], intent, scenario=self.scenario, context=context
        )
        self.steps.append((step, verdict))
        if verdict.outcome not in (Outcome.PASSED, Outcome.UNDEFINED):
            self.failures.append(f"{step}:\n{verdict.message}")
        return verdict

    def verdict(self, subject: Subject, findings: Any, *, undefined: str | None) -> CheckVerdict:
        if self.failures:
            outcome, message = Outcome.FAILED, "\n".join(self.failures)
        elif undefined is not None:
            outcome, message = Outcome.UNDEFINED, undefined
        else:
            outcome = Outcome.PASSED
            message = "\n".join(f"{step}: {v.message.splitlines()[0]}" for step, v in self.steps)
        evidence = RegistrationEvidence(
            type="registration",
            scenario=self.scenario,
            steps=[RegistrationStep(step=step, verdict=v.evidence()) for step, v in self.steps],
        )
        passed = sum(v.passed for _, v in self.steps)
        return CheckVerdict(
            outcome=outcome,
            subject=subject,
            summary=(
                f"registration {outcome}: {subject['label']}: {passed} of {len(self.steps)} "
                "steps as expected"
            ),
            message=message,
            evidence=evidence,
            findings=finding_records(findings),
            figures={"unexpected_answers": float(sum(v.unexpected for _, v in self.steps))},
        )


def check_registration(target: Any, scenario: str, intent: Intent, *, rounds: int) -> CheckVerdict:
    """Before: every route's path is 404. Applied: each answers as the oracle says (``rounds``
    times). Removed: 404 again."""
    empty = sub_intent(intent, [])
    steps = _Steps(target, scenario)
    for route in intent.routes:
        steps.judge(f"before applying {route.id}", empty, route, 1)
    target.apply_intent(intent)
    try:
        for route in intent.routes:
            steps.judge(f"applied {route.id}", intent, route, rounds)
    finally:
        target.remove_intent(intent)
    for route in intent.routes:
        steps.judge(f"after removing {route.id}", empty, route, 1)
    subject = Subject(scenario=scenario, route=None, label=f"scenario {scenario}")
    return steps.verdict(subject, intent.findings, undefined=None)


def check_reregistration(
    target: Any, scenario: str, intent: Intent, first: Route, second: Route, *, rounds: int
) -> CheckVerdict:
    """The first registration answers; a second Ingress with the same rule and a higher
    explicit priority takes the route over, deterministically; one with no priority ties
    (undefined on Traefik v3: the observed distribution over ``rounds`` and a reload is the
    evidence)."""
    steps = _Steps(target, scenario)
    short = max(3, rounds // 10)
    alone = sub_intent(intent, [first])
    target.apply_intent(alone)
    try:
        steps.judge("first registration alone", alone, first, short)
        overriding = replace(second, priority=first.effective_priority + 1)
        both = sub_intent(intent, [first, overriding])
        target.apply_intent(both)
        try:
            steps.judge("override with explicit priority", both, first, short)
        finally:
            target.remove_intent(sub_intent(intent, [overriding]))
        tied = sub_intent(intent, [first, second])
        target.apply_intent(tied)
        try:
            tie = steps.judge("registered again, no priority", tied, first, rounds, reload=True)
        finally:
            target.remove_intent(tied)
    finally:
        target.remove_intent(alone)
    subject = route_subject(scenario, first)
    undefined = tie.message if tie.outcome is Outcome.UNDEFINED else None
    return steps.verdict(subject, intent.findings, undefined=undefined)
