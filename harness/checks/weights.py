"""The weighted-split check: plan, drive bulk traffic, count, judge.

For one weighted route: the sample size is planned from the smallest deviation worth detecting,
the per-check alpha (the run's family-wise alpha split over all statistical checks) and the
power; the traffic engine sends that many requests at the route; every answer is counted
(errors are counted and classified, never re-sent); then either the fixed-N chi-square test or
the anytime-valid sequential test decides. The evidence carries everything a reviewer needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from harness.checks.evidence import (
    CheckVerdict,
    ErrorCheck,
    InstanceCount,
    Outcome,
    SourceRecord,
    WeightsEvidence,
    finding_records,
    route_subject,
)
from harness.checks.probes import probe_host, route_path
from harness.checks.stats import (
    Plan,
    SequentialSplitTest,
    Verdict,
    chi_square_test,
    error_rate_check,
    family_alpha,
    max_count_deviation,
    plan_sample_size,
)
from harness.errors import ConfigError
from harness.intent.model import Intent, Route
from harness.traefik.oracle import RoutingOptions, expect
from harness.traffic.engine import ProgressCallback, RequestSpec, run_closed_loop
from harness.traffic.samples import Samples
from harness.traffic.tls import TLSVerify

Mode = Literal["fixed", "sequential"]

#: Parameter names as users set them (pytest options).
_FLAGS = {"alpha": "--run-alpha", "power": "--power", "min_deviation": "--min-deviation"}


@dataclass(frozen=True)
class WeightSettings:
    """The statistical parameters of a run (see README, "Weighted splits")."""

    run_alpha: float = 0.001
    power: float = 0.99
    min_deviation: float = 0.02
    max_requests: int = 200_000
    mode: Mode = "fixed"
    max_error_rate: float = 0.001
    concurrency: int = 64
    #: Bound on the traffic phase of one check, in seconds.
    deadline: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "sequential"):
            raise ConfigError(f"--weights-mode must be fixed or sequential, got {self.mode!r}")
        if not 0 <= self.max_error_rate < 1:
            raise ConfigError(f"--max-error-rate must be in [0, 1), got {self.max_error_rate!r}")
        if self.concurrency < 1:
            raise ConfigError(f"--weights-concurrency must be >= 1, got {self.concurrency!r}")
        # The ranges of alpha, power and min_deviation, checked once for the run (a route's own
        # plan is checked against max_requests by plan_for).
        try:
            plan_sample_size(
                [0.5, 0.5],
                min_deviation=self.min_deviation,
                alpha=self.run_alpha,
                power=self.power,
                max_requests=2**62,
            )
        except ConfigError as exc:
            message = str(exc)
            for name, flag in _FLAGS.items():
                message = message.replace(f"`{name}`", flag)
            raise ConfigError(message) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_alpha": self.run_alpha,
            "power": self.power,
            "min_deviation": self.min_deviation,
            "max_requests": self.max_requests,
            "mode": self.mode,
            "max_error_rate": self.max_error_rate,
            "concurrency": self.concurrency,
        }


#: The stats module's verdicts as outcomes of the check.
_OUTCOMES = {
    Verdict.PASS: Outcome.PASSED,
    Verdict.FAIL: Outcome.FAILED,
    Verdict.ERROR: Outcome.ERROR,
}


def request_for(
    intent: Intent, route: Route, options: RoutingOptions | None = None
) -> tuple[str, str]:
    """A (host, path) that the oracle says ``route`` decides: where its split can be measured."""
    host = probe_host(route.host)
    base = route_path(route)
    for path in (
        () if base is None else (base, base.rstrip("/") + "/", base.rstrip("/") + "/weights")
    ):
        e = expect(intent, host, path, options)
        if e.outcome == "routed" and e.route_id == route.id:
            return host, path
    raise ConfigError(
        f"route {route.id} ({route.source}): no request reaches it unambiguously "
        "(another route outranks or ties it), so its split cannot be measured"
    )


def plan_for(route: Route, settings: WeightSettings, *, n_checks: int) -> Plan:
    """The sample-size plan of one route's check. Raises ConfigError for bad parameters, or a
    plan needing more than ``settings.max_requests`` (saying how many it would need)."""
    shares = route.shares()
    try:
        return plan_sample_size(
            list(shares.values()),
            min_deviation=settings.min_deviation,
            alpha=family_alpha(settings.run_alpha, n_checks=n_checks),
            power=settings.power,
            max_requests=settings.max_requests,
            sequential=settings.mode == "sequential",
        )
    except ConfigError as exc:
        raise ConfigError(f"weighted route {route.id} ({route.source}): {exc}") from None


#: The slot of good answers that name no backend (no whoami ``Name:`` line).
UNKNOWN_ANSWERER = "(unknown answerer: no Name line)"


def _counts(
    samples: Samples, names: list[str], service_of: Callable[[str | None], str | None]
) -> tuple[list[int], list[str]]:
    """Counts of good answers per declared backend; answers from undeclared backends, and
    good answers that name no backend at all, get weight-0 slots (they count against the
    split: an answer from an application that is not a declared backend is a failure of the
    split, not a request to drop). Error statuses are failures, counted by the error check."""
    by_service: dict[str, int] = {}
    for name, count in samples.counts_by_backend().items():
        service = service_of(name) or name
        by_service[service] = by_service.get(service, 0) + count
    unattributed = samples.unattributed_count()
    if unattributed:
        by_service[UNKNOWN_ANSWERER] = by_service.get(UNKNOWN_ANSWERER, 0) + unattributed
    extra = sorted(set(by_service) - set(names))
    all_names = names + extra
    return [by_service.get(n, 0) for n in all_names], all_names


def check_split(
    proxy_url: str,
    intent: Intent,
    route: Route,
    settings: WeightSettings,
    *,
    scenario: str,
    n_checks: int,
    service_of: Callable[[str | None], str | None] = lambda name: name,
    options: RoutingOptions | None = None,
    progress: ProgressCallback | None = None,
    tls: TLSVerify | None = None,
) -> CheckVerdict:
    """Verify the split of one weighted route: passed, failed, or error when too many requests
    failed for the split to be judged (above ``settings.max_error_rate``). Raises ConfigError
    for bad parameters (before any traffic, with the number of requests a plan would need).
    ``proxy_url`` is where the route is served (its entry point, in its scheme); over HTTPS
    the certificate is checked as ``tls`` says."""
    shares: Mapping[str, float] = route.shares()
    names = list(shares)
    plan = plan_for(route, settings, n_checks=n_checks)
    alpha = plan.alpha
    host, path = request_for(intent, route, options)
    route_note = intent.route_note(route)
    spec = RequestSpec(path=path, host=host)
    started = time.monotonic()

    def send(total: int) -> Samples:
        return run_closed_loop(
            proxy_url,
            [spec],
            total=total,
            concurrency=min(settings.concurrency, total),
            deadline=settings.deadline - (time.monotonic() - started),
            progress=progress,
            tls=tls,
        )

    if settings.mode == "sequential":
        test = SequentialSplitTest.from_plan(plan, names=names)
        cap = plan.n_sequential
        batch = max(500, cap // 20)
        # The cap counts good answers (a failed request is no evidence about the split). Past
        # this many failures the error rate is above the allowed one even with the whole cap
        # answered, so the error check below decides and sending more is pointless.
        rate = settings.max_error_rate
        failure_bound = rate * cap / (1.0 - rate)
        parts: list[Samples] = []
        failed = 0
        while not test.state.done and failed <= failure_bound:
            if time.monotonic() - started >= settings.deadline:
                break  # the traffic phase's bound; the verdict says the cap was not reached
            part = send(min(batch, cap - test.state.n))
            if not len(part):
                break
            parts.append(part)
            failed += sum(part.failure_counts().values())
            counts, _ = _counts(part, names, service_of)
            test.update(counts[: len(names)])
            if sum(counts[len(names) :]):
                break  # an undeclared backend answered: the fixed verdict below says so
        samples = Samples.concat(parts)
    else:
        samples = send(plan.n_fixed)
    wall = time.monotonic() - started

    errors = samples.failure_counts()
    n_errors = sum(errors.values())
    counts, all_names = _counts(samples, names, service_of)
    successes = sum(counts)
    error_verdict = error_rate_check(successes, n_errors, settings.max_error_rate)
    expected = [shares.get(n, 0.0) for n in all_names]
    evidence = WeightsEvidence(
        type="weights",
        scenario=scenario,
        route=route.id,
        source=cast(SourceRecord, route.source.to_dict()),
        request={"host": host, "path": path},
        declared={n: shares.get(n, 0.0) for n in names},
        settings=settings.to_dict(),
        plan=plan.to_dict(),
        sent=len(samples),
        wall_time=wall,
        rate=samples.rate(),
        failures=errors,
        error_check=cast(ErrorCheck, error_verdict.to_dict()),
        counts_by_instance=[
            InstanceCount(backend=b, instance=i, count=c)
            for (b, i), c in sorted(samples.counts_by_instance().items())
        ],
        replicas=None,
        verdict=None,
    )
    figures = {"error_rate": float(error_verdict.error_rate)}
    if successes:
        figures["share_deviation"] = max(
            abs(c / successes - e) for c, e in zip(counts, expected, strict=True)
        )
    subject = route_subject(scenario, route)
    findings = finding_records(intent.findings)
    if not error_verdict.ok:
        message = f"route {route.id} ({route.source}): {error_verdict.summary}; failures {errors}"
        return CheckVerdict(
            Outcome.ERROR,
            subject,
            f"weights {route.id}: {error_verdict.summary}",
            message,
            evidence,
            findings,
            figures,
        )

    by_replica = {
        replica or "(unknown)": [per.get(n, 0) for n in all_names]
        for replica, per in samples.counts_by_replica().items()
    }
    evidence["replicas"] = max_count_deviation(by_replica, expected).to_dict()
    if settings.mode == "sequential" and not sum(counts[len(names) :]):
        verdict_obj: Any = test.decide()
    else:
        verdict_obj = chi_square_test(counts, expected, alpha, names=all_names, plan=plan)
    evidence["verdict"] = verdict_obj.to_dict()
    message = (
        f"weights of route {route.id}, declared at {route.source}\n"
        f"  request   GET http://{host}{path}, {len(samples):,} requests "
        f"({settings.mode}, {wall:.1f} s)\n"
        f"  declared  " + ", ".join(f"{n} {shares[n]:.2%}" for n in names) + "\n"
        "  measured  "
        + ", ".join(
            f"{n} {c / max(successes, 1):.2%}" for n, c in zip(all_names, counts, strict=True)
        )
        + "\n"
        f"  verdict   {verdict_obj.summary}"
    )
    if route_note:
        message += f"\n  {route_note[0]:<9} {route_note[1]}"
    return CheckVerdict(
        _OUTCOMES[verdict_obj.verdict],
        subject,
        f"weights {route.id}: {verdict_obj.summary}",
        message,
        evidence,
        findings,
        figures,
    )
