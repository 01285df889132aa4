"""Routing verdicts on probes of one intent while another is applied: how a test shows the real
Traefik agreeing with the oracle (``applied`` is ``declared``) and a change made behind the
oracle's back failing exactly the probes it should."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.exact import ExactVerdict, applies, judge
from harness.checks.probes import Probe
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.traffic.rounds import send_in_rounds
from harness.traffic.tls import TLSVerify


def routing_judgements(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    tls: TLSVerify | None = None,
) -> dict[str, ExactVerdict]:
    """Probe id → its routing verdict against ``declared`` with ``applied`` on the proxy
    (removed again afterwards); a probe with an arrival goes to that entry point, in its scheme
    (HTTPS verified as ``tls`` says, by default against the target's certificates)."""
    target.apply_intent(applied)
    try:
        run = send_in_rounds(
            target.proxy_url,
            probes,
            rounds=2,
            service_of=target.service_of,
            url_at=target.url_at,
            tls=tls or target.tls_verify,
        )
    finally:
        target.remove_intent(applied)
    return {
        p.id: judge("routing", run.records[p.id], declared, scenario=scenario)
        for p in probes
        if applies("routing", p)
    }


def routing_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
) -> dict[str, bool | None]:
    """Probe id → whether its routing check passed (see :func:`routing_judgements`)."""
    judged = routing_judgements(target, probes, declared, applied, scenario)
    return {probe_id: verdict.passed for probe_id, verdict in judged.items()}
