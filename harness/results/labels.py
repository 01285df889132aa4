"""Human labels (with units) and exact definitions of every figure the report shows a person.

Two plain dicts keyed by the field name as results.json writes it (a nested field by its dotted
path, e.g. ``worst_window.error_rate``), so that every view of the report, and any other reader,
can import them: ``LABELS`` gives the short label shown in a table, ``DEFINITIONS`` the exact
meaning, shown as a tooltip and in the report's glossary. A name missing from ``LABELS`` is shown
as it is.
"""

from __future__ import annotations

#: Field name -> label for a person, with the unit.
LABELS: dict[str, str] = {
    # -- run parameters
    "probe_rounds": "times each probe is sent",
    "strict_prefix_matching": "strict prefix matching",
    "scenarios": "scenarios",
    "manifests": "manifests",
    "run_alpha": "false-alarm rate of the run (alpha)",
    "power": "planned power",
    "min_deviation": "smallest share deviation detected",
    "mode": "weights test",
    "max_error_rate": "failed-request rate above which a split is an error",
    "max_requests": "request limit of a plan",
    # -- target
    "target": "target",
    "namespace": "namespace",
    "traefik.version": "Traefik version",
    "traefik.binary": "Traefik binary",
    "traefik.proxy_url": "proxy URL",
    "traefik.api_url": "Kubernetes API URL",
    "traefik.throttle_seconds": "providers throttle (s)",
    "traefik.strict_prefix_matching": "strict prefix matching",
    "proxy_url": "proxy URL",
    "api_url": "Kubernetes API URL",
    "backends": "backend instances",
    "backend_map": "backend map (whoami Name \u2192 Service)",
    # -- weights: the plan
    "n": "requests planned",
    "n_fixed": "requests planned (fixed-N chi-square)",
    "n_sequential": "request cap (sequential test)",
    "n_zero_weight": "requests planned (weight-0 bound)",
    "n_ncx2": "requests planned (noncentral \u03c7\u00b2)",
    "power_fixed": "power at the planned requests",
    "alternative": "least favourable split guarded against (shares)",
    "critical_value": "critical value (\u03c7\u00b2)",
    "df": "degrees of freedom",
    "concentration": "prior concentration (sequential test)",
    # -- gaps: one run's figures
    "requests": "requests scheduled and sent",
    "scheduled": "requests scheduled",
    "good": "good responses",
    "failed": "failed requests",
    "failed_requests": "failed requests",
    "failed (all classes)": "failed requests (all classes)",
    "failed_before_change": "failed before the change",
    "accounted": "every request accounted for",
    "rate_per_s": "rate (requests/s)",
    "span_s": "traffic span (s)",
    "window_end_s": "end of the traffic window (s)",
    "gap_ms": "gap (ms)",
    "outages": "outages",
    "outage_total_ms": "outages together (ms)",
    "recovered": "recovered after the change",
    "longest_streak": "longest failing streak (requests)",
    "longest_streak.requests": "longest failing streak (requests)",
    "longest_streak.ms": "longest failing streak (ms)",
    "longest_streak.span_ms": "longest failing streak (ms)",
    "longest_streak.from_s": "start of the longest failing streak (s)",
    "longest_streak.to_s": "end of the longest failing streak (s)",
    "longest_failing_streak": "longest failing streak (requests)",
    "worst_window.window_ms": "error-rate window (ms)",
    "worst_window.error_rate": "worst error rate in a window",
    "worst_window_error_rate": "worst error rate in a window",
    "worst_window.from_s": "start of the worst window (s)",
    "worst_window.failed": "failed requests in the worst window",
    "shows_old": "answers from the old configuration",
    "shows_new": "answers from the new configuration",
    "convergence_ms": "convergence (ms)",
    "first_new_s": "first new answer (s)",
    "last_old_s": "last old answer (s)",
    "last_old_ms": "last old answer after the change (ms)",
    "mixed_after_convergence": "old answers after convergence",
    "old_after_shown": "old answers after the routers API showed the change",
    "new_before_change": "new answers before the change",
    "shown_ms": "routers API shows the change (ms)",
    "change_call_ms": "duration of the change call (ms)",
    "sender.lag_p50_ms": "sender lag p50 (ms)",
    "sender.lag_p99_ms": "sender lag p99 (ms)",
    "sender.lag_max_ms": "sender lag max (ms)",
    "sender.max_lag_ms": "sender lag allowed at p99 (ms)",
    "sender.valid": "sender kept its schedule",
    "lag_p99_ms": "sender lag p99 (ms)",
    "hitless": "hitless",
    "budget": "failed requests allowed per run",
    "rate": "rate (requests/s)",
    "repeats": "runs per strategy",
    "max_lag_ms": "sender lag allowed at p99 (ms)",
    "k": "good responses that end a gap",
    "window_ms": "error-rate window (ms)",
    "bucket_ms": "timeline bucket (ms)",
    # -- gaps: a strategy's figures over its runs
    "runs": "runs",
    "hitless_runs": "hitless runs",
    "invalid_runs": "invalid runs",
    "unrecovered_runs": "runs that never recovered",
    # -- baseline comparison
    "unexpected_answers": "unexpected answers",
    "share_deviation": "largest share deviation",
    "error_rate": "failed-request rate",
}

#: Field name -> its exact definition (a tooltip and the glossary).
DEFINITIONS: dict[str, str] = {
    "run_alpha": "The family-wise false-alarm rate of all statistical checks of the run, split "
    "over them (Bonferroni): a correct proxy fails any of them in at most this share of runs.",
    "power": "The probability that a weighted-split check rejects a split off by the smallest "
    "deviation worth detecting.",
    "min_deviation": "The smallest deviation of any backend's share from its declared weight that "
    "the plan is sized to detect (0.02: 2 points).",
    "n_ncx2": "The textbook sample size of Pearson's chi-square test from the noncentral "
    "chi-square distribution at the planned power; the plan uses this or more.",
    "n_fixed": "Successful answers the fixed-N chi-square test needs: the noncentral chi-square "
    "size, raised until the power also holds with the variance of the counts under the "
    "alternative.",
    "n_sequential": "The cap of the anytime-valid sequential test: it may stop earlier, but a "
    "correct proxy always costs this many answers.",
    "n_zero_weight": "Answers needed so that a weight-0 backend getting the smallest deviation "
    "worth detecting would be seen at least once, at the planned power.",
    "power_fixed": "The power the fixed-N test reaches at its planned number of answers.",
    "alternative": "The least favourable split the plan guards against: one backend's share off "
    "by exactly the minimum deviation, the others absorbing it in proportion.",
    "critical_value": "The chi-square statistic at or above which the fixed-N test rejects.",
    "df": "Degrees of freedom of the chi-square test: backends with a positive weight minus one.",
    "concentration": "How tightly the sequential test's Dirichlet prior is spread around the "
    "declared shares; chosen so that the e-value grows fastest at the least favourable "
    "alternatives (about (k-1)/w\u00b2, a spread the size of the deviation worth detecting).",
    "gap_ms": "From the last good response before the change to the first of k consecutive good "
    "responses after it, on scheduled send times; 0 when no request failed.",
    "outages": "Separate failing stretches in a run: failures fewer than k good responses apart "
    "are one outage, from the last good response before it to the first of k consecutive good "
    "responses after it; the gap is the longest one.",
    "outage_total_ms": "The time the outages of a run cover together, on scheduled send times.",
    "failed": "Requests that got no good response: 404, 502, 503, 504, refused, reset, timeout, "
    "not sent.",
    "failed_requests": "Requests that got no good response: 404, 502, 503, 504, refused, reset, "
    "timeout, not sent.",
    "convergence_ms": "From the start of the change to the first response that shows the new "
    "configuration.",
    "mixed_after_convergence": "Responses from the old configuration after the first one from the "
    "new configuration (a proxy that flips back and forth shows here).",
    "worst_window.window_ms": "The width of the sliding window the worst error rate is taken over.",
    "worst_window.error_rate": "The highest share of failed requests in any window of that width.",
    "worst_window_error_rate": "The highest share of failed requests in any window of the "
    "error-rate window's width.",
    "longest_streak.requests": "The most consecutive failed requests, in scheduled order.",
    "longest_streak": "The most consecutive failed requests, in scheduled order.",
    "shown_ms": "From the start of the change until Traefik's routers API serves the new router.",
    "sender.lag_p99_ms": "The 99th percentile of how late requests were sent against their "
    "schedule; above the allowed lag the run is invalid.",
    "lag_p99_ms": "The 99th percentile of how late requests were sent against their schedule; "
    "above the allowed lag the run is invalid.",
    "hitless_runs": "Runs of the change in which no request failed.",
    "hitless": "No request failed while the change was applied.",
    "k": "How many consecutive good responses end a gap.",
    "unexpected_answers": "Answers of exact checks that did not match the oracle's expectation, "
    "summed over the check's probes.",
    "share_deviation": "The largest |observed - declared| share of any backend, as a fraction.",
    "error_rate": "The share of requests that failed.",
}


def label(name: object) -> str:
    """The label of a field for a person: its own, else its parent's and the rest of the dotted
    name (``backends.cheddar``: "backend instances: cheddar"), else the name itself."""
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    head, dot, rest = text.partition(".")
    return f"{LABELS[head]}: {rest}" if dot and head in LABELS else text


def definition(name: object) -> str:
    """The exact definition of a field, or "" when there is none."""
    return DEFINITIONS.get(str(name), "")
