"""Verdicts on probes of one intent while another is applied: how a test shows the real Traefik
agreeing with the oracle (``applied`` is ``declared``) and a change made behind the oracle's
back failing exactly the probes it should; and the local stack with Traefik's Gateway provider
the Gateway test modules each start once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness.checks.exact import Aspect, applies, judge
from harness.checks.probes import Probe
from harness.intent.model import Intent
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStack, LocalStackOptions
from harness.traffic.rounds import send_in_rounds

#: The echo backends the Gateway test modules route to, one instance each.
GATEWAY_SERVICES = ("cheddar", "stilton", "wensleydale")


def start_gateway_stack(workdir: Path) -> Iterator[LocalStack]:
    """A local stack whose Traefik runs its Gateway provider (for a module-scoped fixture)."""
    options = LocalStackOptions(
        services=dict.fromkeys(GATEWAY_SERVICES, 1), throttle_seconds=0.2, gateway=True
    )
    with LocalStack(options, workdir) as stack:
        yield stack


def applied_verdicts(
    target: LocalTarget,
    probes: Sequence[Probe],
    declared: Intent,
    applied: Intent,
    scenario: str,
    aspects: Sequence[Aspect] = ("routing",),
    while_applied: Callable[[], object] | None = None,
) -> dict[tuple[Aspect, str], bool | None]:
    """(aspect, probe id) → whether the check passed against ``declared`` with ``applied`` on
    the proxy (removed again afterwards); ``while_applied`` runs once it is applied, before the
    probes (a change behind the oracle's back, a status read)."""
    target.apply_intent(applied)
    try:
        if while_applied is not None:
            while_applied()
        run = send_in_rounds(target.proxy_url, probes, rounds=2, service_of=target.service_of)
    finally:
        target.remove_intent(applied)
    return {
        (aspect, p.id): judge(aspect, run.records[p.id], declared, scenario=scenario).passed
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
    while_applied: Callable[[], object] | None = None,
) -> dict[str, bool | None]:
    """Probe id → whether its routing check passed (see :func:`applied_verdicts`)."""
    verdicts = applied_verdicts(
        target, probes, declared, applied, scenario, while_applied=while_applied
    )
    return {pid: passed for (_, pid), passed in verdicts.items()}
