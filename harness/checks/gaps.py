"""Gaps: what a configuration change did to the traffic, measured on the schedule.

Input: the :class:`~harness.traffic.samples.Samples` of an open-loop run (request i due at i/rate)
and the change's markers on the same clock (the apply call's start and end, when the proxy showed
the change, intermediate steps). Output: a :class:`GapReport` with

- every request accounted for: good, or failed by class (``404``, ``502``, ``503``, ``504`` or
  any other status outside the good ones; ``slow``: no answer within the latency budget counted
  from the scheduled time; ``refused``, ``reset``, ``timeout``, ``not sent``, ...);
- the outages: each failing stretch the change caused (failures less than K (3) good responses
  apart belong to one), from the last good answer before it to the first of K consecutive good
  answers after it, on *scheduled* times (a stall of the proxy shows as failures and slow
  answers instead of thinning the samples). A ``slow`` request fails from its scheduled time
  until its latency budget ran out, and an outage lasts at least until then: a proxy that holds
  every request for 1.5 s is an outage of 1.5 s, not of 1.5 s minus the budget (the requests
  due in its last second are answered within the budget, but only once it ends);
- the gap: the longest outage; also how many outages there were and their total length, the
  longest failing streak and the worst error rate in a sliding window;
- convergence: the first response that shows the new configuration (a backend, instance or path
  named by a :class:`Shows`), the old responses still seen after it (mixed), the last old one;
- latency before, during and after the change, and the sender's own lag: a run whose p99 send lag
  is above the threshold (default 5 ms) is invalid, whatever else it shows;
- a downsampled timeline (fixed buckets) with the markers and the gap, as plain JSON for reports.

Repeated runs of the same change are summarised as distributions (:func:`summarize_repeats`) and
judged against a per-strategy budget of failed requests (:func:`judge_repeats`).

Everything here is a pure function of its inputs: no traffic, no proxy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from harness.checks.evidence import (
    CheckVerdict,
    Distribution,
    GapDistribution,
    GapRun,
    GapsEvidence,
    LaggedAttempt,
    Outcome,
    SourceRecord,
    Subject,
    finding_records,
)
from harness.errors import ConfigError
from harness.traffic.samples import ErrorClass, Samples

__all__ = [
    "DEFAULT_BUCKET_S",
    "DEFAULT_K",
    "DEFAULT_LANES",
    "DEFAULT_LATENCY_BUDGET_S",
    "DEFAULT_MAX_LAG_S",
    "DEFAULT_WINDOW_S",
    "MAX_CHANGE_WINDOW_S",
    "REPORT_ONLY",
    "Change",
    "ChangeWindow",
    "GapOptions",
    "GapReport",
    "GapSettings",
    "GapVerdict",
    "Interval",
    "Marker",
    "Shows",
    "analyze",
    "gaps_check",
    "judge_repeats",
    "parse_budgets",
    "parse_change_window",
    "summarize_repeats",
]

#: Consecutive good responses that end a gap.
DEFAULT_K = 3
#: Width of the sliding window for the worst error rate.
DEFAULT_WINDOW_S = 0.1
#: Width of a timeline bucket.
DEFAULT_BUCKET_S = 0.05
#: p99 sender lag above this makes a run invalid.
DEFAULT_MAX_LAG_S = 0.005
#: An answer later than this after its scheduled time is a failure of class ``slow``.
DEFAULT_LATENCY_BUDGET_S = 1.0
#: Local stacks the gap suite measures strategies on side by side (``--gap-lanes``), taking
#: turns with their traffic (``harness.checks.strategies.TrafficFloor``). One by default:
#: measured on a quiet 2-core machine (``bench/bench_verify.py``), three lanes taking turns
#: left 8 of 40 runs lagged past the validity limit (what the other lanes do between their
#: windows, references and backend starts, still delays the senders), one lane none.
DEFAULT_LANES = 1
#: Times a lagged run is made again at its phase (``--gap-lag-retries``) when it failed no
#: more requests than the budget (see :func:`may_make_again`).
DEFAULT_LAG_RETRIES = 2
#: A budget of None: the figures are reported, never judged.
REPORT_ONLY: int | None = None

#: Failure labels in the order reports list them (others follow, sorted).
_LABEL_ORDER = (
    "404",
    "502",
    "503",
    "504",
    "slow",
    "refused",
    "reset",
    "timeout",
    "not sent",
    "aborted",
)


@dataclass(frozen=True)
class GapOptions:
    """How a run is judged: which statuses are good, K, the window, bucket and lag threshold."""

    good_statuses: frozenset[int] = frozenset(range(200, 400))
    k: int = DEFAULT_K
    window_s: float = DEFAULT_WINDOW_S
    bucket_s: float = DEFAULT_BUCKET_S
    max_lag_s: float = DEFAULT_MAX_LAG_S
    #: An answer later than this after its scheduled time is a failure (``slow``).
    latency_budget_s: float = DEFAULT_LATENCY_BUDGET_S

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"`k` must be a whole number >= 1, got {self.k!r}")
        for name in ("window_s", "bucket_s", "max_lag_s", "latency_budget_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"`{name}` must be a positive number, got {value!r}")


#: Longest a ``--change-window`` may be, in seconds (and the most a command may run).
MAX_CHANGE_WINDOW_S = 600.0


@dataclass(frozen=True)
class ChangeWindow:
    """How long traffic runs after a ``--change-command`` starts: ``seconds`` (fixed), or with
    ``after_exit`` until the command exits plus ``seconds`` (it may run up to
    ``MAX_CHANGE_WINDOW_S``)."""

    seconds: float = 6.0
    after_exit: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and 0 < self.seconds <= MAX_CHANGE_WINDOW_S):
            raise ConfigError(
                f"--change-window: {self.seconds!r} s is outside (0, {MAX_CHANGE_WINDOW_S:g}]"
            )

    def describe(self) -> str:
        return f"exit+{self.seconds:g}" if self.after_exit else f"{self.seconds:g}"


def parse_change_window(text: str) -> ChangeWindow:
    """``SECONDS`` (traffic that long after the command starts) or ``exit+SECONDS`` (until the
    command exits, plus that long); ConfigError otherwise."""
    raw = text.strip().lower()
    after_exit = raw.startswith("exit+")
    number = raw[len("exit+") :] if after_exit else raw
    try:
        seconds = float(number)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_CHANGE_WINDOW_S):
        raise ConfigError(
            f"--change-window {text!r}: expected SECONDS (e.g. 6: traffic for 6 s after the "
            "command starts) or exit+SECONDS (e.g. exit+5: until the command exits, plus 5 s), "
            f"with SECONDS in (0, {MAX_CHANGE_WINDOW_S:g}]"
        )
    return ChangeWindow(seconds, after_exit)


@dataclass(frozen=True)
class GapSettings:
    """The gap suite's options (``--gap-rate``, ``--gap-repeats``, ``--gap-max-lag-ms``,
    ``--gap-lag-retries``,
    ``--gap-latency-budget-ms``, ``--gap-budget``, ``--change-command``, ``--change-window``,
    ``--gap-lanes``)."""

    rate: float = 2000.0
    repeats: int = 5
    #: Local stacks the strategies are measured on side by side.
    lanes: int = DEFAULT_LANES
    max_lag_s: float = DEFAULT_MAX_LAG_S
    #: Times a lagged run within its budget is made again (:func:`may_make_again`).
    lag_retries: int = DEFAULT_LAG_RETRIES
    latency_budget_s: float = DEFAULT_LATENCY_BUDGET_S
    #: Strategy name -> failed requests allowed per run (None: report only).
    budgets: Mapping[str, int | None] = field(default_factory=dict)
    change_command: str | None = None
    change_window: ChangeWindow = field(default_factory=ChangeWindow)


def parse_budgets(
    entries: Sequence[str], defaults: Mapping[str, int | None]
) -> dict[str, int | None]:
    """``STRATEGY=N`` (failed requests allowed per run) or ``STRATEGY=report`` entries over
    ``defaults``; ConfigError names an unknown strategy or a bad number."""
    budgets = dict(defaults)
    for entry in entries:
        name, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not name or not value:
            raise ConfigError(
                f"--gap-budget {entry!r}: expected STRATEGY=N (failed requests allowed per run) "
                "or STRATEGY=report, e.g. patch=0"
            )
        if name not in defaults:
            raise ConfigError(
                f"--gap-budget {entry!r}: no strategy {name!r}; strategies: "
                + ", ".join(sorted(defaults))
            )
        if value.lower() in ("report", "report-only", "none"):
            budgets[name] = REPORT_ONLY
        elif value.isdigit():
            budgets[name] = int(value)
        else:
            raise ConfigError(
                f"--gap-budget {entry!r}: {value!r} is neither a whole number >= 0 nor 'report'"
            )
    return budgets


@dataclass(frozen=True)
class Marker:
    """A named instant on the run's time axis (seconds after ``Samples.t0_monotonic``)."""

    name: str
    t: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "t_s": _r(self.t)}


@dataclass(frozen=True)
class Change:
    """When a change was made, on the run's time axis: the call's start and end, when the proxy
    showed it (None: not seen, or no way to tell), and named steps in between."""

    start: float
    end: float
    shown: float | None = None
    steps: tuple[Marker, ...] = ()

    def __post_init__(self) -> None:
        if not self.end >= self.start:
            raise ConfigError(f"a change cannot end ({self.end}) before it starts ({self.start})")

    @classmethod
    def from_monotonic(
        cls,
        samples: Samples,
        start: float,
        end: float,
        shown: float | None = None,
        steps: Iterable[tuple[str, float]] = (),
    ) -> Change:
        """Times taken with ``time.monotonic()``, put on ``samples``' axis."""
        t0 = samples.t0_monotonic
        return cls(
            start=start - t0,
            end=end - t0,
            shown=None if shown is None else shown - t0,
            steps=tuple(Marker(name, t - t0) for name, t in steps),
        )

    def markers(self) -> list[Marker]:
        out = [Marker("change start", self.start), *self.steps, Marker("change end", self.end)]
        if self.shown is not None:
            out.append(Marker("proxy shows change", self.shown))
        return sorted(out, key=lambda m: m.t)


@dataclass(frozen=True)
class Shows:
    """Which responses show a configuration: good responses from one of ``backends`` (whoami
    Name), ``instances`` (Hostname) and with one of ``paths`` (what the backend saw); an empty
    tuple does not restrict."""

    backends: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.backends or self.instances or self.paths):
            raise ConfigError("Shows needs at least one backend, instance or path")

    def mask(self, samples: Samples) -> npt.NDArray[np.bool_]:
        """Requests (in the samples' own order) whose answer matches."""
        mask = samples.ok.copy()
        for names, table, column in (
            (self.backends, samples.backend_names, samples.backend),
            (self.instances, samples.instance_names, samples.instance),
            (self.paths, samples.path_names, samples.path),
        ):
            if names:
                wanted = [i for i, n in enumerate(table) if i and n in names]
                mask &= np.isin(column, np.asarray(wanted, dtype=np.int64))
        return mask

    def describe(self) -> str:
        parts = []
        if self.backends:
            parts.append("backend " + "|".join(self.backends))
        if self.instances:
            parts.append("instance " + "|".join(self.instances))
        if self.paths:
            parts.append("path " + "|".join(self.paths))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backends": list(self.backends),
            "instances": list(self.instances),
            "paths": list(self.paths),
        }


@dataclass(frozen=True)
class Interval:
    """An outage: a stretch of failures, from the last good answer before it to the first of K
    consecutive good answers after it, or to when the latency budget of its last slow request
    ran out if that is later (scheduled times; ``end`` None: the run ended before K good
    answers came)."""

    start: float
    end: float | None
    failed: int

    @property
    def length(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_s": _r(self.start),
            "to_s": _r(self.end),
            "length_ms": _ms(self.length),
            "failed": self.failed,
        }


def may_make_again(report: GapReport, budget: int | None) -> bool:
    """Whether a run may be made again at its phase: its one problem is the sender's lag, and
    it failed no more requests than ``budget`` (none, for a report-only strategy). A lagged run
    that showed a failure is kept as it is (invalid), so making runs again cannot replace a
    failure with a clean run; the attempts made again stay in the evidence."""
    return (
        not report.valid
        and len(report.problems) == 1
        and report.failed <= (budget if budget is not None else 0)
    )


def lagged_attempt(report: GapReport) -> LaggedAttempt:
    """What an attempt made again showed (it stays in the evidence of the run that replaced it)."""
    return {
        "lag_p99_ms": _r(report.lag_p99_ms),
        "failed": report.failed,
        "gap_ms": _ms(report.gap_s),
        "convergence_ms": _ms(report.convergence_s),
        "summary": report.summary(),
    }


@dataclass(frozen=True)
class GapReport:
    """The figures of one run with one change (or none). See the module docstring."""

    requests: int
    scheduled: int
    good: int
    failed: int
    failed_by_class: dict[str, int]
    failed_before_change: int
    accounted: bool
    rate: float
    span_s: float
    #: When the traffic's schedule ended (the last request's due time plus one spacing).
    window_end_s: float
    change: Change | None
    #: The longest outage's length (to the end of the window when it did not recover).
    gap_s: float
    #: The longest outage.
    gap: Interval | None
    recovered: bool
    #: Every outage, in order.
    intervals: tuple[Interval, ...]
    #: The time covered by the outages together.
    outage_total_s: float
    longest_streak: dict[str, Any]
    worst_window: dict[str, Any]
    shows_old: str | None
    shows_new: str | None
    convergence_s: float | None
    first_new_s: float | None
    last_old_s: float | None
    mixed_after_convergence: int
    old_after_shown: int | None
    new_before_change: int
    latency: dict[str, dict[str, Any]]
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    max_lag_ms: float
    valid: bool
    timeline: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    #: The attempts at this run that the sender's lag made invalid and that were made again
    #: (see :func:`may_make_again`): their figures, so nothing measured is dropped.
    lagged_attempts: tuple[LaggedAttempt, ...] = ()

    @property
    def hitless(self) -> bool:
        return self.failed == 0

    @property
    def problems(self) -> list[str]:
        """Why this run cannot be judged (empty when it can)."""
        out = []
        if not self.valid:
            out.append(
                f"the sender lagged: p99 send lag {self.lag_p99_ms:.2f} ms > "
                f"{self.max_lag_ms:g} ms, so the schedule was not kept"
            )
        if self.change is not None and self.change.end > self.window_end_s:
            out.append(
                f"the change ended {self.change.end - self.window_end_s:.2f} s after the traffic "
                "did: the window was too short to see all of it"
            )
        if not self.accounted:
            out.append(
                f"{self.requests - self.good - self.failed} of {self.requests} requests are not "
                "accounted for"
            )
        return out

    def summary(self) -> str:
        """One line: failed requests by class, gap, convergence, sender lag."""
        classes = ", ".join(f"{n} {k}" for k, n in self.failed_by_class.items()) or "none"
        conv = "never" if self.convergence_s is None else f"{self.convergence_s * 1e3:.0f} ms"
        gap = f"{self.gap_s * 1e3:.1f} ms" + ("" if self.recovered else " (not recovered)")
        if len(self.intervals) > 1:
            gap += (
                f" (longest of {len(self.intervals)} outages, "
                f"{self.outage_total_s * 1e3:.1f} ms together)"
            )
        lag = "n/a" if self.lag_p99_ms is None else f"{self.lag_p99_ms:.2f} ms"
        return (
            f"{self.failed} of {self.requests} failed ({classes}); gap {gap}; convergence {conv}; "
            f"mixed after convergence {self.mixed_after_convergence}; p99 send lag {lag}"
            + ("" if self.valid else " INVALID")
        )

    def to_dict(self, *, timeline: bool = True) -> GapRun:
        """Plain JSON: every figure, the markers, the gap interval and (optionally) the
        downsampled timeline."""
        out: dict[str, Any] = {
            "requests": self.requests,
            "scheduled": self.scheduled,
            "good": self.good,
            "failed": self.failed,
            "failed_by_class": dict(self.failed_by_class),
            "failed_before_change": self.failed_before_change,
            "accounted": self.accounted,
            "rate_per_s": _r(self.rate, 1),
            "span_s": _r(self.span_s),
            "window_end_s": _r(self.window_end_s),
            "markers": [m.to_dict() for m in self.change.markers()] if self.change else [],
            "gap_ms": _ms(self.gap_s),
            "gap": None if self.gap is None else self.gap.to_dict(),
            "recovered": self.recovered,
            "intervals": [i.to_dict() for i in self.intervals],
            "outages": len(self.intervals),
            "outage_total_ms": _ms(self.outage_total_s),
            "longest_streak": self.longest_streak,
            "worst_window": self.worst_window,
            "shows_old": self.shows_old,
            "shows_new": self.shows_new,
            "convergence_ms": _ms(self.convergence_s),
            "first_new_s": _r(self.first_new_s),
            "last_old_s": _r(self.last_old_s),
            "last_old_ms": (
                _ms(self.last_old_s - self.change.start)
                if self.change is not None and self.last_old_s is not None
                else None
            ),
            "mixed_after_convergence": self.mixed_after_convergence,
            "old_after_shown": self.old_after_shown,
            "new_before_change": self.new_before_change,
            "shown_ms": (
                _ms(self.change.shown - self.change.start)
                if self.change is not None and self.change.shown is not None
                else None
            ),
            "change_call_ms": (
                _ms(self.change.end - self.change.start) if self.change is not None else None
            ),
            "latency": self.latency,
            "sender": {
                "lag_p50_ms": _r(self.lag_p50_ms),
                "lag_p99_ms": _r(self.lag_p99_ms),
                "lag_max_ms": _r(self.lag_max_ms),
                "max_lag_ms": self.max_lag_ms,
                "valid": self.valid,
            },
            "hitless": self.hitless,
            "problems": self.problems,
            "summary": self.summary(),
            "meta": dict(self.meta),
            "lagged_attempts": [dict(a) for a in self.lagged_attempts],
        }
        if timeline:
            out["timeline"] = self.timeline
        return cast(GapRun, out)


# ---------------------------------------------------------------------------------------------
# Helpers


def _r(value: float | None, digits: int = 4) -> float | None:
    """Rounded for JSON (None and non-finite values become None)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else _r(seconds * 1e3, 2)


def _quantiles_ms(values: npt.NDArray[Any]) -> dict[str, Any]:
    if values.size == 0:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    q = np.quantile(values.astype(np.float64), (0.5, 0.9, 0.99))
    return {
        "count": int(values.size),
        "p50_ms": _ms(float(q[0])),
        "p90_ms": _ms(float(q[1])),
        "p99_ms": _ms(float(q[2])),
        "max_ms": _ms(float(values.max())),
    }


def _label_key(label: str) -> tuple[int, str]:
    try:
        return (_LABEL_ORDER.index(label), label)
    except ValueError:
        return (len(_LABEL_ORDER), label)


def _failure_labels(
    samples: Samples, good: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Per request: -1 when good, else an index into the returned labels (a status outside the
    good ones, e.g. '404', or an error class, e.g. 'refused')."""
    error = samples.error.astype(np.int64)
    key = np.where(error == ErrorClass.NONE, samples.status.astype(np.int64), 100_000 + error)
    keys = np.unique(key[~good])
    key_labels = [str(k) if k < 100_000 else ErrorClass(k - 100_000).label for k in keys.tolist()]
    labels = sorted(key_labels, key=_label_key)
    position = {label: i for i, label in enumerate(labels)}
    codes = np.full(len(samples), -1, np.int64)
    if keys.size:
        remap = np.array([position[label] for label in key_labels], dtype=np.int64)
        codes[~good] = remap[np.searchsorted(keys, key[~good])]
    return codes, labels


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Starts and (exclusive) ends of the runs of True in ``mask``."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]


def _first_k_good(good: npt.NDArray[np.bool_], after: int, k: int) -> int | None:
    """Index of the first request after ``after`` that starts K consecutive good ones."""
    if len(good) - (after + 1) < k:
        return None
    window = np.lib.stride_tricks.sliding_window_view(good[after + 1 :], k).all(axis=1)
    hits = np.nonzero(window)[0]
    return int(after + 1 + hits[0]) if hits.size else None


# ---------------------------------------------------------------------------------------------
# The analysis


def analyze(
    samples: Samples,
    change: Change | None,
    *,
    old: Shows | None = None,
    new: Shows | None = None,
    options: GapOptions | None = None,
    meta: Mapping[str, Any] | None = None,
) -> GapReport:
    """The figures of one open-loop run around ``change`` (None: no change; every failure of
    the run counts). ``old``/``new`` say which answers show the configuration before and after;
    without ``new``, an answer (backend, path) not seen before the change counts as new."""
    opts = options or GapOptions()
    total = len(samples)
    if total == 0:
        raise ConfigError("the run recorded no requests; nothing to analyze")
    due = ~np.isnan(samples.scheduled)
    order = np.argsort(np.where(due, samples.scheduled, np.inf), kind="stable")
    s = samples.subset(order)
    sched = np.where(np.isnan(s.scheduled), np.inf, s.scheduled)
    good_status = np.isin(s.status, np.fromiter(opts.good_statuses, np.int64))
    good = s.ok & good_status
    codes, labels = _failure_labels(s, good)
    failed_mask = ~good
    counts = np.bincount(codes[failed_mask], minlength=len(labels)) if labels else np.zeros(0)
    failed_by_class = {lab: int(n) for lab, n in zip(labels, counts, strict=True) if n}
    n_good, n_failed = int(good.sum()), int(failed_mask.sum())
    accounted = n_good + sum(failed_by_class.values()) == total and (
        samples.meta.get("total") in (None, total)
    )
    finite = sched[np.isfinite(sched)]
    rate = float(samples.meta.get("rate") or 0.0)
    spacing = 1.0 / rate if rate > 0 else 0.0
    span = float(finite[-1] - finite[0]) + spacing if finite.size else 0.0

    c_start = change.start if change is not None else -math.inf
    # A request belongs to the change when it ended after the change started (or, never sent,
    # was due after it): a request in flight when a backend went away failed because of it.
    ended = s.finished
    ended = np.where(np.isnan(ended), sched, ended)
    affected = ended >= c_start
    failures = np.nonzero(failed_mask & affected)[0]
    # A slow request was failing its user until its latency budget ran out.
    failing_until = np.where(s.error == ErrorClass.SLOW, sched + opts.latency_budget_s, sched)
    failed_before = int((failed_mask & ~affected).sum())

    gap: Interval | None = None
    intervals: list[Interval] = []
    recovered = True
    gap_s = outage_total = 0.0
    if failures.size:
        between = np.diff(failures) - 1  # good requests between consecutive failures
        cuts = np.nonzero(between >= opts.k)[0]
        starts = np.concatenate(([0], cuts + 1))
        stops = np.concatenate((cuts, [failures.size - 1]))
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            intervals.append(
                _interval(
                    sched,
                    failing_until,
                    good,
                    failures=failures[a : b + 1],
                    first=int(failures[a]),
                    last=int(failures[b]),
                    failed=b - a + 1,
                    k=opts.k,
                )
            )
        window_end = float(finite[-1]) + spacing
        recovered = intervals[-1].end is not None
        lengths = [_length(i, window_end) for i in intervals]
        longest = int(np.argmax(lengths))
        gap, gap_s = intervals[longest], lengths[longest]
        outage_total = _union_length(intervals, window_end)

    streak = _longest_streak(sched, failed_mask & np.isfinite(sched), spacing)
    worst = _worst_window(sched[np.isfinite(sched)], failed_mask[np.isfinite(sched)], opts.window_s)

    # Convergence: without a description of the new answers, anything not seen before the
    # change is new, and the answers seen before are old.
    after_change = sched >= c_start
    old_mask: npt.NDArray[np.bool_] | None = old.mask(s) & good if old is not None else None
    if new is not None:
        new_mask = new.mask(s) & good
    elif change is None:
        new_mask = np.zeros(total, np.bool_)  # no change: nothing can be new
    else:
        baseline = _baseline_mask(s, good, sched, c_start)
        new_mask = good & ~baseline
        if old_mask is None:
            old_mask = baseline
    new_after = np.nonzero(new_mask & after_change)[0]
    first_new = float(sched[new_after[0]]) if new_after.size else None
    convergence = None if first_new is None or change is None else first_new - change.start
    last_old: float | None = None
    mixed = 0
    old_after_shown: int | None = None
    if old_mask is not None:
        olds = np.nonzero(old_mask & after_change)[0]
        last_old = float(sched[olds[-1]]) if olds.size else None
        mixed = int((olds > new_after[0]).sum()) if new_after.size else 0
        if change is not None and change.shown is not None:
            old_after_shown = int((sched[olds] >= change.shown).sum())
    new_before = int((new_mask & ~after_change).sum())

    # Latency by phase.
    settle_points = [change.end] if change is not None else []
    if change is not None and change.shown is not None:
        settle_points.append(change.shown)
    if gap is not None and gap.end is not None:
        settle_points.append(gap.end)
    if first_new is not None:
        settle_points.append(first_new)
    settle = max(settle_points) if settle_points else -math.inf
    latency_s = s.latency.astype(np.float64)
    response_s = s.response_time
    phases = {
        "before": sched < c_start,
        "during": (sched >= c_start) & (sched < settle),
        "after": sched >= settle,
    }
    latency: dict[str, dict[str, Any]] = {}
    for name, phase in phases.items():
        stats = _quantiles_ms(latency_s[phase & good])
        resp = response_s[phase & good]
        stats["response_p99_ms"] = _ms(float(np.quantile(resp, 0.99))) if resp.size else None
        stats["requests"] = int(phase.sum())
        latency[name] = stats

    lag = s.lag[~np.isnan(s.sent)].astype(np.float64)
    lag_q = np.quantile(lag, (0.5, 0.99)) if lag.size else None
    lag_p99 = float(lag_q[1]) if lag_q is not None else None
    valid = lag_p99 is not None and lag_p99 <= opts.max_lag_s

    timeline = _timeline(
        sched,
        good,
        codes=codes,
        labels=labels,
        latency_s=latency_s,
        new_mask=new_mask,
        old_mask=old_mask,
        change=change,
        gap=gap,
        bucket=opts.bucket_s,
    )
    return GapReport(
        requests=total,
        scheduled=int(due.sum()),
        good=n_good,
        failed=n_failed,
        failed_by_class=failed_by_class,
        failed_before_change=failed_before,
        accounted=bool(accounted),
        rate=rate,
        span_s=span,
        window_end_s=float(finite[-1]) + spacing if finite.size else 0.0,
        change=change,
        gap_s=gap_s,
        gap=gap,
        recovered=recovered,
        intervals=tuple(intervals),
        outage_total_s=outage_total,
        longest_streak=streak,
        worst_window=worst,
        shows_old=(
            old.describe() if old is not None else ("as before the change" if new is None else None)
        ),
        shows_new=(new.describe() if new is not None else "not seen before the change"),
        convergence_s=convergence,
        first_new_s=first_new,
        last_old_s=last_old,
        mixed_after_convergence=mixed,
        old_after_shown=old_after_shown,
        new_before_change=new_before,
        latency=latency,
        lag_p50_ms=None if lag_q is None else float(lag_q[0]) * 1e3,
        lag_p99_ms=None if lag_p99 is None else lag_p99 * 1e3,
        lag_max_ms=float(lag.max()) * 1e3 if lag.size else None,
        max_lag_ms=opts.max_lag_s * 1e3,
        valid=bool(valid),
        timeline=timeline,
        meta=dict(meta or {}),
    )


def _interval(
    sched: npt.NDArray[np.float64],
    failing_until: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    *,
    failures: npt.NDArray[np.int64],
    first: int,
    last: int,
    failed: int,
    k: int,
) -> Interval:
    """The outage around ``failures`` (``first``..``last``, in scheduled order)."""
    goods_before = np.nonzero(good[:first])[0]
    # No good response before: the stretch starts with the run (nothing was ever served).
    start = float(sched[goods_before[-1]]) if goods_before.size else float(sched[0])
    end_index = _first_k_good(good, last, k)
    end = None
    if end_index is not None:
        end = max(float(sched[end_index]), float(failing_until[failures].max()))
    return Interval(start=start, end=end, failed=failed)


def _length(interval: Interval, window_end: float) -> float:
    """An outage's length; one that did not recover lasts until the window ended."""
    end = interval.end if interval.end is not None else max(window_end, interval.start)
    return end - interval.start


def _union_length(intervals: Sequence[Interval], window_end: float) -> float:
    """The time the outages cover together (an outage that lasts until a slow request's budget
    ran out may overlap the next one; that time counts once)."""
    total, reach = 0.0, -math.inf
    for interval in sorted(intervals, key=lambda i: i.start):
        end = interval.start + _length(interval, window_end)
        if end > reach:
            total += end - max(interval.start, reach)
            reach = end
    return total


def _longest_streak(
    sched: npt.NDArray[np.float64], failed: npt.NDArray[np.bool_], spacing: float
) -> dict[str, Any]:
    starts, ends = _runs(failed)
    if starts.size == 0:
        return {"requests": 0, "from_s": None, "to_s": None, "span_ms": 0.0}
    lengths = ends - starts
    i = int(np.argmax(lengths))
    first, last = int(starts[i]), int(ends[i]) - 1
    return {
        "requests": int(lengths[i]),
        "from_s": _r(float(sched[first])),
        "to_s": _r(float(sched[last])),
        "span_ms": _ms(float(sched[last] - sched[first]) + spacing),
    }


def _worst_window(
    sched: npt.NDArray[np.float64], failed: npt.NDArray[np.bool_], width: float
) -> dict[str, Any]:
    """The highest failure rate among windows [t, t + width) starting at a request, counting
    only windows that fit in the run (the whole run when it is shorter than one window)."""
    n = sched.size
    if n == 0:
        return {"window_ms": width * 1e3, "error_rate": 0.0, "from_s": None, "failed": 0}
    cum = np.concatenate(([0], np.cumsum(failed, dtype=np.int64)))
    stop = np.searchsorted(sched, sched + width, side="left")
    fits = sched + width <= sched[-1] + 1e-12
    if not fits.any():
        fits[0] = True
    idx = np.nonzero(fits)[0]
    fails = cum[stop[idx]] - cum[idx]
    sizes = stop[idx] - idx
    rates = fails / np.maximum(sizes, 1)
    j = int(np.argmax(rates))
    return {
        "window_ms": width * 1e3,
        "error_rate": _r(float(rates[j])),
        "from_s": _r(float(sched[idx[j]])),
        "failed": int(fails[j]),
        "requests": int(sizes[j]),
    }


def _baseline_mask(
    s: Samples, good: npt.NDArray[np.bool_], sched: npt.NDArray[np.float64], c_start: float
) -> npt.NDArray[np.bool_]:
    """Good answers whose (backend, path) was already seen in a good answer before the change."""
    combo = s.backend.astype(np.int64) << 32 | s.path.astype(np.int64)
    seen = np.unique(combo[good & (sched < c_start)])
    mask: npt.NDArray[np.bool_] = good & np.isin(combo, seen)
    return mask


def _timeline(
    sched: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    *,
    codes: npt.NDArray[np.int64],
    labels: list[str],
    latency_s: npt.NDArray[np.float64],
    new_mask: npt.NDArray[np.bool_],
    old_mask: npt.NDArray[np.bool_] | None,
    change: Change | None,
    gap: Interval | None,
    bucket: float,
) -> dict[str, Any]:
    """Fixed buckets on scheduled time: requests, good, failures per class, latency p50/p99 of
    the good ones, old/new answers; with the markers and the gap (columns, for compactness)."""
    finite = np.isfinite(sched)
    t = sched[finite]
    # A nanosecond of slack: i/rate on a bucket boundary must not fall into the bucket before.
    idx = np.floor((t + 1e-9) / bucket).astype(np.int64)
    nb = int(idx[-1]) + 1 if t.size else 0
    requests = np.bincount(idx, minlength=nb)
    goods = np.bincount(idx, weights=good[finite], minlength=nb).astype(np.int64)
    failed: dict[str, list[int]] = {}
    fcodes = codes[finite]
    for i, label in enumerate(labels):
        per = np.bincount(idx[fcodes == i], minlength=nb)
        if per.any():
            failed[label] = per.tolist()
    bounds = np.searchsorted(idx, np.arange(nb + 1))
    lat = latency_s[finite]
    gmask = good[finite]
    p50: list[float | None] = []
    p99: list[float | None] = []
    for b in range(nb):
        lo, hi = bounds[b], bounds[b + 1]
        values = lat[lo:hi][gmask[lo:hi]]
        if values.size:
            q = np.quantile(values, (0.5, 0.99))
            p50.append(_ms(float(q[0])))
            p99.append(_ms(float(q[1])))
        else:
            p50.append(None)
            p99.append(None)
    out: dict[str, Any] = {
        "bucket_ms": bucket * 1e3,
        "t_s": [_r(b * bucket) for b in range(nb)],
        "requests": requests.tolist(),
        "good": goods.tolist(),
        "failed": failed,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "new": np.bincount(idx, weights=new_mask[finite], minlength=nb).astype(np.int64).tolist(),
        "markers": [m.to_dict() for m in change.markers()] if change is not None else [],
        "gap": None if gap is None else {"from_s": _r(gap.start), "to_s": _r(gap.end)},
    }
    if old_mask is not None:
        out["old"] = (
            np.bincount(idx, weights=old_mask[finite], minlength=nb).astype(np.int64).tolist()
        )
    return out


# ---------------------------------------------------------------------------------------------
# Repeats and verdicts


def _distribution(values: Sequence[float | None], scale: float = 1.0) -> Distribution:
    present = [v * scale for v in values if v is not None]
    if not present:
        return Distribution(min=None, median=None, max=None, missing=len(values))
    return Distribution(
        min=_r(min(present), 2),
        median=_r(statistics.median(present), 2),
        max=_r(max(present), 2),
        missing=len(values) - len(present),
    )


def summarize_repeats(reports: Sequence[GapReport]) -> GapDistribution:
    """Distributions (min, median, max; ``missing`` = runs without the figure) over repeated
    runs of one change, and the per-run values."""
    if not reports:
        raise ConfigError("summarize_repeats needs at least one run")
    classes: dict[str, int] = {}
    for report in reports:
        for label, n in report.failed_by_class.items():
            classes[label] = classes.get(label, 0) + n
    return {
        "runs": len(reports),
        "hitless_runs": sum(r.hitless for r in reports),
        "invalid_runs": sum(not r.valid or not r.accounted for r in reports),
        "lagged_attempts": sum(len(r.lagged_attempts) for r in reports),
        "unrecovered_runs": sum(not r.recovered for r in reports),
        "outages": _distribution([len(r.intervals) for r in reports]),
        "outages_values": [len(r.intervals) for r in reports],
        "outage_total_ms": _distribution([r.outage_total_s for r in reports], 1e3),
        "failed": _distribution([r.failed for r in reports]),
        "failed_values": [r.failed for r in reports],
        "failed_by_class_total": dict(sorted(classes.items(), key=lambda kv: _label_key(kv[0]))),
        "gap_ms": _distribution([r.gap_s for r in reports], 1e3),
        "gap_ms_values": [_ms(r.gap_s) for r in reports],
        "convergence_ms": _distribution([r.convergence_s for r in reports], 1e3),
        "convergence_ms_values": [_ms(r.convergence_s) for r in reports],
        "shown_ms": _distribution(
            [
                (r.change.shown - r.change.start)
                if r.change is not None and r.change.shown is not None
                else None
                for r in reports
            ],
            1e3,
        ),
        "mixed_after_convergence": _distribution([r.mixed_after_convergence for r in reports]),
        "longest_streak": _distribution([r.longest_streak["requests"] for r in reports]),
        "worst_window_error_rate": _distribution([r.worst_window["error_rate"] for r in reports]),
        "lag_p99_ms": _distribution([r.lag_p99_ms for r in reports]),
    }


@dataclass(frozen=True)
class GapVerdict:
    """A strategy's verdict over its runs."""

    strategy: str
    outcome: Outcome
    budget: int | None
    message: str
    summary: str

    @property
    def passed(self) -> bool:
        return self.outcome in (Outcome.PASSED, Outcome.REPORT_ONLY)


def judge_repeats(
    strategy: str,
    reports: Sequence[GapReport],
    budget: int | None,
    *,
    require_convergence: bool = True,
) -> GapVerdict:
    """Invalid when any run's sender lagged or lost a request (never green); failed when any
    run failed more requests than ``budget`` or (``require_convergence``) never showed the new
    configuration; report-only when ``budget`` is None; else passed."""
    dist = summarize_repeats(reports)
    failed = dist["failed"]
    gap = dist["gap_ms"]
    conv = dist["convergence_ms"]
    line = (
        f"{strategy}: {len(reports)} runs, failed requests median {failed['median']:g} max "
        f"{failed['max']:g}, gap median {gap['median']:g} ms max {gap['max']:g} ms, convergence "
        + (f"median {conv['median']:g} ms" if conv["median"] is not None else "never seen")
        + f", hitless {dist['hitless_runs']}/{len(reports)}"
        + (f", invalid {dist['invalid_runs']}/{len(reports)}" if dist["invalid_runs"] else "")
        + (
            f", {dist['lagged_attempts']} lagged attempt(s) made again"
            if dist["lagged_attempts"]
            else ""
        )
    )
    details = "\n".join(
        f"  run {i + 1}: {r.summary()}"
        + "".join(
            f"\n    made again after a lagged attempt: {a['summary']}" for a in r.lagged_attempts
        )
        for i, r in enumerate(reports)
    )
    problems = [f"run {i + 1}: {p}" for i, r in enumerate(reports) for p in r.problems]
    if problems:
        return GapVerdict(
            strategy,
            Outcome.INVALID,
            budget,
            f"INVALID measurement of {strategy}: {dist['invalid_runs']} of {len(reports)} runs "
            "cannot be trusted (a lagged run is made again only while it failed no more requests "
            "than the budget, and at most --gap-lag-retries times):\n  "
            + "\n  ".join(problems)
            + f"\n{details}",
            "INVALID: " + line,
        )
    if budget is None:
        return GapVerdict(
            strategy, Outcome.REPORT_ONLY, budget, f"{line} (report only)\n{details}", line
        )
    reasons = []
    over = [(i + 1, r.failed) for i, r in enumerate(reports) if r.failed > budget]
    if over:
        reasons.append(
            f"failed requests above the budget of {budget} per run in "
            + ", ".join(f"run {i} ({n})" for i, n in over)
        )
    if require_convergence:
        never = [i + 1 for i, r in enumerate(reports) if r.convergence_s is None]
        if never:
            reasons.append(
                "the new configuration never answered within the window in run(s) "
                + ", ".join(map(str, never))
            )
    if reasons:
        return GapVerdict(
            strategy,
            Outcome.FAILED,
            budget,
            f"{line}\n" + "; ".join(reasons) + f"\n{details}",
            line,
        )
    return GapVerdict(strategy, Outcome.PASSED, budget, f"{line}\n{details}", line)


def gaps_check(
    verdict: GapVerdict,
    reports: Sequence[GapReport],
    *,
    described: Mapping[str, Any],
    subject: Subject,
    settings: Mapping[str, float],
    throttle_s: float,
    route: Any = None,
    moved_to: str | None = None,
    command: str | None = None,
    change_window: str | None = None,
    findings: Iterable[Any] = (),
    undefined: bool = False,
) -> CheckVerdict:
    """A strategy's verdict with its evidence: every run's figures and timeline, the runs made
    the distributions. ``undefined``: a report-only outcome is a tie the manifests leave
    unspecified (the priority tie), reported as undefined. ``described``: the strategy's own
    description (:meth:`harness.checks.strategies.Strategy.describe`)."""
    distribution = summarize_repeats(reports)
    evidence = GapsEvidence(
        type="gaps",
        strategy=str(described.get("strategy", verdict.strategy)),
        title=str(described.get("title", verdict.strategy)),
        requests=[str(r) for r in described.get("requests", [])],
        old=described.get("old"),
        new=described.get("new"),
        scenario=subject["scenario"],
        route=None if route is None else route.id,
        rule=None if route is None else route.rule,
        source=None if route is None else cast(SourceRecord, route.source.to_dict()),
        moved_to=moved_to,
        command=command,
        throttle_s=throttle_s,
        budget=verdict.budget,
        summary=verdict.summary,
        distribution=distribution,
        repeats=[r.to_dict() for r in reports],
        change_window=change_window,
        settings=dict(settings),
    )
    # The figures the baseline compares: the medians over the runs.
    medians = {
        "gap_ms": distribution["gap_ms"]["median"],
        "failed_requests": distribution["failed"]["median"],
        "worst_window_error_rate": distribution["worst_window_error_rate"]["median"],
        "longest_failing_streak": distribution["longest_streak"]["median"],
        "convergence_ms": distribution["convergence_ms"]["median"],
    }
    figures = {name: float(value) for name, value in medians.items() if value is not None}
    outcome = verdict.outcome
    if undefined and outcome is Outcome.REPORT_ONLY:
        outcome = Outcome.UNDEFINED
    return CheckVerdict(
        outcome=outcome,
        subject=subject,
        summary=f"gaps {verdict.summary}",
        message=verdict.message,
        evidence=evidence,
        findings=finding_records(findings),
        figures=figures,
    )
