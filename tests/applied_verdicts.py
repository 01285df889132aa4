"""Routing verdicts on probes of one intent while another is applied: how a test shows the real
Traefik agreeing with the oracle (``applied`` is ``declared``) and a change made behind the
oracle's back failing exactly the probes it should."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.exact import Aspect, ExactVerdict, applies, judge
from harness.checks.probes import Probe
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.traffic.rounds import send_in_rounds


def applied_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    aspects: Sequence[Aspect] = ("routing",),
) -> dict[tuple[str, Aspect], ExactVerdict]:
    """(probe id, aspect) → its verdict against ``declared`` with ``applied`` on the proxy
    (removed again afterwards), for each of ``aspects`` the probe is evidence for."""
    target.apply_intent(applied)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(applied)
    return {
        (p.id, aspect): judge(aspect, run.records[p.id], declared, scenario=scenario)
        for p in probes
        for aspect in aspects
        if applies(aspect, p)
    }


def routing_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
) -> dict[str, bool | None]:
    """Probe id → whether its routing check passed against ``declared`` with ``applied`` on
    the proxy (removed again afterwards)."""
    verdicts = applied_verdicts(target, probes, declared, applied, scenario)
    return {probe_id: v.passed for (probe_id, _), v in verdicts.items()}
