"""Routing verdicts on probes of one intent while another is applied: how a test shows the real
Traefik agreeing with the oracle (``applied`` is ``declared``) and a change made behind the
oracle's back failing exactly the probes it should."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.exact import applies, judge
from harness.checks.probes import Probe
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.traffic.rounds import send_in_rounds


def routing_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
) -> dict[str, bool | None]:
    """Probe id → whether its routing check passed against ``declared`` with ``applied`` on
    the proxy (removed again afterwards)."""
    target.apply_intent(applied)
    try:
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(applied)
    return {
        p.id: judge("routing", run.records[p.id], declared, scenario=scenario).passed
        for p in probes
        if applies("routing", p)
    }
