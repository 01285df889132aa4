"""Verdicts on probes of one intent while another is applied: how a test shows the real Traefik
agreeing with the oracle (``applied`` is ``declared``) and a change made behind the oracle's
back failing exactly the probes it should; and the local stack with Traefik's Gateway provider
the Gateway test modules each start once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness.checks.exact import Aspect, ExactVerdict, applies, judge
from harness.checks.probes import Probe
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack, LocalStackOptions
from harness.traffic.rounds import ProbeRun, send_in_rounds
from harness.traffic.tls import TLSVerify


def _sent_while_applied(
    target: LocalTarget,
    probes: Sequence[Probe],
    applied: Intent,
    *,
    while_applied: Callable[[], object] | None = None,
    tls: TLSVerify | None = None,
) -> ProbeRun:
    """The probes sent (2 rounds) with ``applied`` on the proxy, removed again afterwards;
    ``while_applied`` runs once it is applied. A probe with an arrival goes to that entry
    point, in its scheme (HTTPS verified as ``tls`` says, by default the target's way)."""
    target.apply_intent(applied)
    try:
        if while_applied is not None:
            while_applied()
        return send_in_rounds(
            target.proxy_url,
            probes,
            rounds=2,
            service_of=target.service_of,
            url_at=target.url_at,
            tls=tls or target.tls_verify,
        )
    finally:
        target.remove_intent(applied)


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
    judged = applied_judgements(target, probes, declared, applied, scenario, tls=tls)
    return {probe_id: verdict for (probe_id, _), verdict in judged.items()}


#: The echo backends the Gateway test modules route to, one instance each.
GATEWAY_SERVICES = ("cheddar", "stilton", "wensleydale")


def start_gateway_stack(workdir: Path) -> Iterator[LocalStack]:
    """A local stack whose Traefik runs its Gateway provider (for a module-scoped fixture)."""
    options = LocalStackOptions(
        services=dict.fromkeys(GATEWAY_SERVICES, 1), throttle_seconds=0.2, gateway=True
    )
    with LocalStack(options, workdir) as stack:
        yield stack


def applied_judgements(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    aspects: Sequence[Aspect] = ("routing",),
    while_applied: Callable[[], object] | None = None,
    tls: TLSVerify | None = None,
) -> dict[tuple[str, Aspect], ExactVerdict]:
    """(probe id, aspect) → its verdict against ``declared`` with ``applied`` on the proxy
    (removed again afterwards), for each of ``aspects`` the probe is evidence for;
    ``while_applied`` runs once it is applied, before the probes (a change behind the oracle's
    back, a status read); HTTPS verified as ``tls`` says."""
    run = _sent_while_applied(target, probes, applied, while_applied=while_applied, tls=tls)
    return {
        (p.id, aspect): judge(aspect, run.records[p.id], declared, scenario=scenario)
        for p in probes
        for aspect in aspects
        if applies(aspect, p)
    }


def applied_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    aspects: Sequence[Aspect] = ("routing",),
    while_applied: Callable[[], object] | None = None,
) -> dict[tuple[Aspect, str], bool | None]:
    """(aspect, probe id) → whether the check passed (see :func:`applied_judgements`)."""
    judged = applied_judgements(
        target, probes, declared, applied, scenario, aspects, while_applied=while_applied
    )
    return {(aspect, pid): verdict.passed for (pid, aspect), verdict in judged.items()}


def routing_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    while_applied: Callable[[], object] | None = None,
) -> dict[str, bool | None]:
    """Probe id → whether its routing check passed (see :func:`applied_verdicts`)."""
    verdicts = applied_verdicts(
        target, probes, declared, applied, scenario, while_applied=while_applied
    )
    return {pid: passed for (_, pid), passed in verdicts.items()}
