"""Apply strategies: the ways a change reaches the proxy, each made under open-loop traffic and
timed on the traffic's clock.

A :class:`Strategy` brings the target into its "before" state (:meth:`~Strategy.prepare`), makes
the change (:meth:`~Strategy.change`, marking its steps), and can say whether the proxy shows
the change yet (:meth:`~Strategy.shown`: Traefik's API on the local target). :func:`measure_change`
checks the route answers (a proxy that is down or a wrong URL stops it here, before any
traffic), starts the traffic, makes the change from another thread after a lead time, polls
``shown`` meanwhile, and hands the samples and the markers to :func:`harness.checks.gaps.analyze`.
:func:`run_repeats` repeats that, with the change placed at a different phase of Traefik's
configuration throttle each time (the time since the provider last applied a configuration:
``providersThrottleDuration``, 2 s by default, decides when a change takes effect), counted from
the previous run's own last configuration when the phase is still ahead of it, else from a
reference configuration applied for the run. :func:`measure_strategies` measures several
strategies side by side, each on a local stack of its own (:func:`lane_targets`), shared out by
:func:`lane_plan` (on one Traefik the changes would move each other's throttle phase), each lane
with one :class:`~harness.traffic.engine.SenderPool` for all its runs.

The strategies, on one route of the intent (the tutorial: ``cheeses.minikube/cheddar`` moved from
cheddar to wensleydale):

==========================  ===============================================================
``patch``                   ``kubectl apply``: a three-way (strategic merge) patch of the Ingress
``replace``                 ``kubectl replace``: PUT of the whole Ingress
``weight-shift``            ``kubectl apply`` of an HTTPRoute rule's backendRef weights, 100/0
                            to 0/100 (Gateway API only: an Ingress backend has no weight)
``delete-create``           ``kubectl replace --force`` or a rename: delete, then create (the
                            objects that change; the unchanged Middleware stays)
``override-priority``       the same host and path on a second Ingress with a higher explicit
                            priority (the v3 way to take a route over)
``override-tie``            the same on a second Ingress without a priority (the tutorial's
                            "register it again"): a tie, undefined on v3; report only
``endpoints-terminating``   a new backend instance's endpoint added, the old one marked
                            terminating, removed once the proxy stopped using it; the old
                            backend stops after the run
``endpoints-removed``       the same, the old endpoint removed at once
``backend-stops-first``     the old backend stops, then its endpoint is removed
``command``                 a user-given command is the change (external mode)
==========================  ===============================================================

On a Gateway API route (an HTTPRoute rule, when the intent has no Ingress subject) the route
moves by changing the rule's ``backendRefs`` (patched, replaced, or the HTTPRoute deleted and
created again), ``weight-shift`` changes their weights, and the endpoint strategies work as on
an Ingress; a second Ingress does not apply (:func:`not_applicable` says why).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx

from harness import procs
from harness.backends.echo import BackendInstance, BackendProcess
from harness.checks.gaps import (
    MAX_CHANGE_WINDOW_S,
    REPORT_ONLY,
    Change,
    ChangeWindow,
    GapOptions,
    GapReport,
    Shows,
    analyze,
    lagged_attempt,
    may_make_again,
)
from harness.checks.probes import probe_host
from harness.errors import ConfigError, HarnessError, TargetUnreachable
from harness.intent.model import (
    PROVIDER_GATEWAY,
    PROVIDER_INGRESS,
    Intent,
    Route,
    WeightedBackend,
    sub_intent,
)
from harness.traefik.gateway import rule_index
from harness.traefik.process import canonical_rule
from harness.traefik.render import manifests_to_apply, render_manifests
from harness.traffic.engine import (
    Progress,
    ProgressCallback,
    RequestSpec,
    SenderPool,
    check_target,
    run_open_loop,
)
from harness.traffic.samples import Samples
from harness.traffic.tls import TLSVerify
from harness.waiting import wait_until

__all__ = [
    "CONFIG_STEPS",
    "DEFAULT_BUDGETS",
    "LOCAL_STRATEGIES",
    "CallableChange",
    "CommandChange",
    "EndpointSwap",
    "RouteMove",
    "RunStages",
    "SecondIngress",
    "StepClock",
    "Strategy",
    "StrategyRuns",
    "Subject",
    "build_strategy",
    "find_subject",
    "lane_plan",
    "lane_targets",
    "measure_change",
    "measure_strategies",
    "not_applicable",
    "phases",
    "preflight",
    "run_repeats",
]

#: Failed requests allowed per run, by strategy (None: reported, not judged).
DEFAULT_BUDGETS: Mapping[str, int | None] = {
    "patch": 0,
    "replace": 0,
    "weight-shift": 0,
    "delete-create": REPORT_ONLY,
    "override-priority": 0,
    "override-tie": REPORT_ONLY,
    "endpoints-terminating": 0,
    "endpoints-removed": 0,
    "backend-stops-first": REPORT_ONLY,
    "command": 0,
}

#: The strategies that go through the Kubernetes API of the local target, in report order.
LOCAL_STRATEGIES: tuple[str, ...] = (
    "patch",
    "replace",
    "weight-shift",
    "delete-create",
    "override-priority",
    "override-tie",
    "endpoints-terminating",
    "endpoints-removed",
    "backend-stops-first",
)

#: How many times each local strategy's change passes Traefik's configuration throttle: a
#: delete and a create (when Traefik was idle, the delete is applied alone); an endpoint added,
#: then the old one withdrawn once Traefik uses the new one.
CONFIG_STEPS: Mapping[str, int] = {
    "patch": 1,
    "replace": 1,
    "weight-shift": 1,
    "delete-create": 2,
    "override-priority": 1,
    "override-tie": 1,
    "endpoints-terminating": 2,
    "endpoints-removed": 2,
    "backend-stops-first": 2,
}

#: Traffic before the change: the baseline (latency before, the last good answer).
LEAD_S = 0.5
#: Traffic after the last configuration step can have taken effect: K good answers, latency after.
TAIL_S = 0.75
#: Worker processes of the sender. Not 1: then it runs in this process, where the change's
#: Kubernetes client (and the local Kubernetes API, which serves Traefik's watches from threads
#: of this process) hold the GIL for tens of milliseconds at a time, which stalls the sender
#: (measured here: p99 send lag 33-89 ms around a delete and create in one process, 1.5-1.7 ms
#: with two workers).
SENDER_PROCESSES = 2
#: How long the proxy may take to apply a configuration once the throttle lets it through.
APPLY_SLACK_S = 0.25
#: How often the proxy's API is asked whether it shows the change.
WATCH_INTERVAL_S = 0.02
#: How long one step of a change may wait for the proxy (a few throttle windows).
STEP_TIMEOUT_S = 15.0
#: The previous run's last configuration is the next run's reference only if the traffic can
#: still start ``LEAD_S`` before that run's phase: at least this long from now (what is left
#: before the traffic: the strategy's prepare, already satisfied, and the preflight request).
REUSE_MARGIN_S = 0.05
#: How long a lane waits for the others' traffic to leave room for its own (then it goes on: an
#: overlap shows as sender lag, never as a figure of the proxy).
FLOOR_WAIT_S = 60.0
#: A booked traffic window ends this long after its last scheduled request (the last answers,
#: the sender's stop).
FLOOR_TAIL_S = 0.3
#: Where extra backend instances listen: Traefik keeps one server per endpoint address, so each
#: instance gets its own loopback address.
EXTRA_BACKEND_NET = "127.0.10."


class StepClock:
    """Named instants of a change on the monotonic clock (the traffic's clock)."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        self.steps.append((name, time.monotonic()))


class Strategy:
    """One way of making a change. Subclasses set the attributes and override the methods."""

    #: Stable name (budgets, ids, reports).
    name: str = ""
    #: One line for people.
    title: str = ""
    #: The requests sent while the change is made.
    specs: Sequence[RequestSpec] = ()
    #: How many times the change has to pass the proxy's configuration throttle (sizes the
    #: traffic window).
    config_steps: int = 1
    #: The new configuration must answer within the window (False where that is undefined).
    must_converge: bool = True
    #: When the proxy was last seen applying a configuration this strategy made (monotonic; set
    #: after a run, None when not known): the next run's reference (see :func:`run_repeats`).
    applied_at: float | None = None

    @property
    def old(self) -> Shows | None:
        """Answers that show the configuration before the change (None: as before the change)."""
        return None

    @property
    def new(self) -> Shows | None:
        """Answers that show the new configuration (None: anything not seen before)."""
        return None

    def window_after(self, throttle_s: float, phase_s: float | None = None) -> float:
        """Seconds of traffic after the change starts: enough for every configuration step to
        pass the throttle, then ``TAIL_S``. ``phase_s``: seconds since the proxy last applied a
        configuration (then the first step waits at most the rest of the throttle window)."""
        first = throttle_s if phase_s is None else max(0.0, throttle_s - phase_s)
        return first + (self.config_steps - 1) * throttle_s + APPLY_SLACK_S + TAIL_S

    def prepare(self) -> None:
        """Bring the target into the state before the change; return when the proxy shows it."""

    def change(self, clock: StepClock) -> None:
        """Make the change (called from another thread while traffic runs)."""
        raise NotImplementedError

    def shown(self) -> bool | None:
        """Whether the proxy shows the change yet (None: there is no way to tell)."""
        return None

    def settled(self) -> bool | None:
        """Whether the proxy has applied the change's last configuration step, polled once
        :meth:`shown` is true (None: the same as :meth:`shown`)."""
        return None

    def traffic_until(self) -> float | None:
        """When the traffic may end before its window does (monotonic; None: run the whole
        window). Polled while the traffic runs."""
        return None

    def abort(self) -> None:
        """Stop a change under way (Ctrl-C or a failure of the traffic); called from another
        thread than :meth:`change`."""

    def finish(self) -> None:
        """After a measured run: the new state becomes the state before the next change."""

    def restore(self) -> None:
        """After all runs: undo what the strategy set up."""

    def describe(self) -> dict[str, Any]:
        """Name, title, requests, and (while the strategy is set up) old and new answers."""
        out: dict[str, Any] = {
            "strategy": self.name,
            "title": self.title,
            "requests": [s.label() for s in self.specs],
        }
        try:
            out["old"] = None if self.old is None else self.old.to_dict()
            out["new"] = None if self.new is None else self.new.to_dict()
        except HarnessError:  # restored already: the backends are gone
            pass
        return out


# ---------------------------------------------------------------------------------------------
# Measuring one change


class RunStages:
    """Where one run's time went (seconds by stage, in order; for benchmarks): each
    :meth:`mark` closes the stage that ran since the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.reused_reference = False
        self._last = time.monotonic()

    def mark(self, stage: str, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        self.seconds[stage] = self.seconds.get(stage, 0.0) + max(0.0, now - self._last)
        self._last = now

    def split_traffic(self, t0: float, meta: Mapping[str, Any]) -> None:
        """Close the sender's stages once it returned: starting (until t0), the traffic's
        schedule, and stopping (the rest)."""
        span = float(meta.get("cut_at_s") or meta.get("total", 0) / float(meta.get("rate") or 1))
        self.mark("sender start", at=t0)
        self.mark("traffic", at=t0 + span)
        self.mark("sender stop")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "reused_reference": self.reused_reference,
        }


def preflight(
    url: str,
    specs: Sequence[RequestSpec],
    good_statuses: frozenset[int],
    timeout: float = 2.0,
    tls: TLSVerify | None = None,
) -> None:
    """Every request must get a good answer before the change: a proxy that is down, a wrong URL
    or a route that is not served stops the measurement here (TargetUnreachable), instead of
    yielding a timeline full of failures."""
    for spec in specs:
        status = check_target(url, spec, timeout=timeout, tls=tls)
        if status not in good_statuses:
            raise TargetUnreachable(
                f"{url}: `{spec.label()}` answered {status} before the change, so there is no "
                "working route whose gap could be measured. Is this the proxy's URL, and does "
                "it serve this host and path?"
            )


class _ChangeThread(threading.Thread):
    """Waits until ``lead_s`` after the traffic's t0 (learnt from its first progress report),
    then makes the change and watches for the proxy to show it (until told to stop)."""

    def __init__(self, strategy: Strategy, lead_s: float, cancel: threading.Event) -> None:
        super().__init__(name=f"change-{strategy.name}", daemon=True)
        self.strategy = strategy
        self.lead_s = lead_s
        self.cancel = cancel
        self.t0: float | None = None
        self.t0_known = threading.Event()
        self.stop_watching = threading.Event()
        self.start_t: float | None = None
        self.end_t: float | None = None
        self.shown_t: float | None = None
        self.settled_t: float | None = None
        self.clock = StepClock()
        self.error: BaseException | None = None
        self.watch_error: BaseException | None = None
        self._watcher = threading.Thread(
            target=self._watch, name=f"watch-{strategy.name}", daemon=True
        )

    def progress(self, progress: Progress) -> None:
        """The traffic's progress callback: the first report tells when t0 was."""
        if self.t0 is None:
            self.t0 = time.monotonic() - progress.elapsed
            self.t0_known.set()

    def run(self) -> None:
        # t0 is the traffic's first send, after its workers are ready (a few hundred ms when
        # they are started for the run, a few ms from a pool); it first reports 0.25 s later.
        while not self.t0_known.wait(0.05):
            if self.cancel.is_set():
                return
        assert self.t0 is not None
        if self.cancel.wait(max(0.0, self.t0 + self.lead_s - time.monotonic())):
            return
        self.start_t = time.monotonic()
        self._watcher.start()
        try:
            self.strategy.change(self.clock)
        except BaseException as exc:  # handed to the caller after the traffic
            self.error = exc
        self.end_t = time.monotonic()

    def _watch(self) -> None:
        try:
            while not self.stop_watching.is_set():
                seen = self.strategy.shown()
                if seen is None:
                    return
                if seen:
                    self.shown_t = time.monotonic()
                    break
                self.stop_watching.wait(WATCH_INTERVAL_S)
            # Then the last configuration step (after the change call: its own waits end first).
            while self.shown_t is not None and not self.stop_watching.is_set():
                if self.end_t is not None:
                    settled = self.strategy.settled()
                    if settled is None or settled:
                        self.settled_t = self.shown_t if settled is None else time.monotonic()
                        return
                self.stop_watching.wait(WATCH_INTERVAL_S)
        except BaseException as exc:
            self.watch_error = exc

    def finish(self, timeout: float) -> None:
        self.cancel.set()  # a change that has not started by now never will
        self.join(timeout)
        self.stop_watching.set()
        if self._watcher.is_alive():
            self._watcher.join(5.0)


def measure_change(
    url: str,
    strategy: Strategy,
    *,
    rate: float,
    lead_s: float = LEAD_S,
    after_s: float,
    timeout_s: float = 2.0,
    processes: int = SENDER_PROCESSES,
    not_before: float | None = None,
    options: GapOptions | None = None,
    progress: ProgressCallback | None = None,
    meta: Mapping[str, Any] | None = None,
    keep_samples: list[Samples] | None = None,
    tls: TLSVerify | None = None,
    stages: RunStages | None = None,
    pool: SenderPool | None = None,
) -> GapReport:
    """Prepare, check the route answers, run ``lead_s + after_s`` seconds of open-loop traffic
    at ``rate`` with the change made ``lead_s`` in, and analyze the run.

    ``not_before`` (monotonic) delays the change until then (the traffic starts ``lead_s``
    earlier). The change must finish within the traffic plus ``STEP_TIMEOUT_S``; an exception
    from it is raised after the traffic. ``keep_samples`` receives the raw samples; ``stages``
    where the run's time went. Afterwards ``strategy.applied_at`` says when the proxy was seen
    applying the change's last configuration step (None: not within the traffic). ``pool``:
    sender workers kept across runs (else ``processes`` are started for this run).
    """
    opts = options or GapOptions()
    stages = stages if stages is not None else RunStages()
    # A request may wait for its answer at least as long as its latency budget.
    timeout_s = max(timeout_s, opts.latency_budget_s)
    strategy.applied_at = None
    strategy.prepare()
    preflight(url, strategy.specs, opts.good_statuses, timeout=min(timeout_s, 5.0), tls=tls)
    stages.mark("preflight")
    if not_before is not None:
        # A timed wait for a chosen instant (the phase of the throttle), not a race.
        threading.Event().wait(max(0.0, not_before - lead_s - time.monotonic()))
        stages.mark("phase wait")
    cancel = threading.Event()
    thread = _ChangeThread(strategy, lead_s, cancel)

    def on_progress(p: Progress) -> None:
        thread.progress(p)
        if progress is not None:
            progress(p)

    thread.start()
    try:
        samples = run_open_loop(
            url,
            list(strategy.specs),
            rate=rate,
            duration=lead_s + after_s,
            timeout=timeout_s,
            latency_budget=opts.latency_budget_s,
            processes=processes,
            progress=on_progress,
            until=strategy.traffic_until,
            tls=tls,
            pool=pool,
        )
        stages.split_traffic(samples.t0_monotonic, samples.meta)
        thread.finish(STEP_TIMEOUT_S + after_s)
        if thread.is_alive():
            raise HarnessError(
                f"strategy {strategy.name!r}: the change did not finish within "
                f"{STEP_TIMEOUT_S + after_s:g} s after the traffic"
            )
    except BaseException:
        strategy.abort()  # Ctrl-C or a failure: a change under way is stopped, not waited for
        thread.finish(STEP_TIMEOUT_S)
        raise
    if thread.error is not None:
        raise thread.error
    if thread.watch_error is not None:
        raise thread.watch_error
    if thread.start_t is None or thread.end_t is None:
        raise HarnessError(f"strategy {strategy.name!r}: the change was never made")
    if keep_samples is not None:
        keep_samples.append(samples)
    change = Change.from_monotonic(
        samples, thread.start_t, thread.end_t, thread.shown_t, thread.clock.steps
    )
    report = analyze(
        samples,
        change,
        old=strategy.old,
        new=strategy.new,
        options=opts,
        meta={**strategy.describe(), **(meta or {}), "lead_s": lead_s, "after_s": after_s},
    )
    stages.mark("analyze")
    strategy.applied_at = thread.settled_t
    strategy.finish()
    stages.mark("finish")
    return report


def phases(repeats: int, throttle_s: float, lead_s: float = LEAD_S) -> list[float]:
    """When each repeat's change comes, in seconds after the proxy applied a reference
    configuration: spread evenly from ``lead_s`` to ``lead_s + throttle_s`` (so the repeats see
    the change wait for the throttle anywhere from almost all of it to not at all)."""
    step = (throttle_s + 0.5) / repeats
    return [lead_s + i * step for i in range(repeats)]


@dataclass
class _Booking:
    """A lane's turn to plan its traffic (see :class:`TrafficFloor`)."""

    floor: TrafficFloor
    #: Traffic may start from then on (every other lane's booked traffic has ended).
    free_at: float
    end: float | None = None

    def book(self, end: float) -> None:
        """This lane's traffic runs until ``end`` (monotonic)."""
        self.end = end
        self.floor._book(end)


class TrafficFloor:
    """Keeps the gap lanes' traffic windows apart, so every lane's figures are taken as on a
    machine of its own.

    One lane's traffic (2,000 requests/s through its Traefik and echo backends, two sender
    processes) takes more than one of the 2 cores it was measured on; two at once made the
    senders lag past the validity limit. What comes before the traffic (the strategy's
    prepare, the reference configuration, the wait for the run's phase) and after it takes
    little CPU, and that is what the lanes do side by side. A lane books its window before it
    fixes when its traffic starts, that is before it applies its reference (the reference's
    time plus the run's phase decide it): it waits until no other lane is planning and traffic
    starting ``lead_s`` from now would start after every booked window has ended. Each run's
    phase is still kept from its own reference; only when the lane applies it moves.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy_until = 0.0
        self._planning = False

    @contextlib.contextmanager
    def booking(self, lead_s: float, timeout_s: float = FLOOR_WAIT_S) -> Iterator[_Booking]:
        """Wait (at most ``timeout_s``) for the turn to plan traffic that starts ``lead_s``
        from now at the earliest; the body applies its reference and calls
        :meth:`_Booking.book`. :meth:`release` frees the window when the traffic is over."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                wait = self._busy_until - (now + lead_s)
                if (not self._planning and wait <= 0) or now >= deadline:
                    break
                self._cond.wait(deadline - now if self._planning else min(wait, deadline - now))
            self._planning = True
            turn = _Booking(self, self._busy_until)
        try:
            yield turn
        finally:
            with self._cond:
                self._planning = False
                self._cond.notify_all()

    @property
    def busy_until(self) -> float:
        """When the last booked traffic ends (monotonic)."""
        with self._cond:
            return self._busy_until

    def _book(self, end: float) -> None:
        with self._cond:
            self._busy_until = max(self._busy_until, end)
            self._planning = False
            self._cond.notify_all()

    def release(self, turn: _Booking) -> None:
        """The traffic of ``turn`` is over: its window ends now if it was the last booked."""
        with self._cond:
            if turn.end is not None and self._busy_until == turn.end:
                self._busy_until = min(self._busy_until, time.monotonic())
                self._cond.notify_all()


def run_repeats(
    url: str,
    strategy: Strategy,
    *,
    repeats: int,
    rate: float,
    throttle_s: float,
    reference: Callable[[], float] | None = None,
    options: GapOptions | None = None,
    progress: ProgressCallback | None = None,
    tls: TLSVerify | None = None,
    timings: list[RunStages] | None = None,
    reuse_reference: bool = True,
    pool: SenderPool | None = None,
    budget: int | None = None,
    lag_retries: int = 0,
    floor: TrafficFloor | None = None,
) -> list[GapReport]:
    """Measure the change ``repeats`` times. With ``reference`` (makes the proxy apply some
    unrelated configuration and returns when it did, monotonic), each change comes at its
    :func:`phases` after the last configuration the proxy applied: the previous run's last
    step (``strategy.applied_at``: its change, or what its :meth:`~Strategy.finish` applied)
    when that phase is still ahead, else a new reference. Without, ``LEAD_S`` into the traffic.

    A run whose only problem is the sender's lag, and that failed no more requests than
    ``budget`` (None: report only, so none), is made again at its phase, at most
    ``lag_retries`` times (:func:`~harness.checks.gaps.may_make_again`); the attempts made
    again stay in the run's evidence. Any other invalid run is returned as it came out: making
    a run that showed failures again until it is valid would select the easy runs.
    ``timings`` receives where each run's time went; ``reuse_reference=False`` applies a new
    reference before every run (benchmarks compare the two); ``pool``: the sender workers
    for every run (see :func:`measure_change`); ``floor``: shared with the other lanes, so no
    two lanes' traffic runs at once (with ``reference`` only).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"`repeats` must be a whole number >= 1, got {repeats!r}")
    if not isinstance(lag_retries, int) or lag_retries < 0:
        raise ConfigError(f"`lag_retries` must be a whole number >= 0, got {lag_retries!r}")
    reports = []
    for i, phase in enumerate(phases(repeats, throttle_s)):
        lagged: list[GapReport] = []
        while True:
            report = _run_at(
                url,
                strategy,
                i,
                phase,
                rate=rate,
                throttle_s=throttle_s,
                reference=reference,
                options=options,
                progress=progress,
                tls=tls,
                timings=timings,
                reuse_reference=reuse_reference,
                pool=pool,
                floor=floor,
            )
            if len(lagged) >= lag_retries or not may_make_again(report, budget):
                break
            lagged.append(report)
        if lagged:
            report = replace(
                report,
                lagged_attempts=tuple(lagged_attempt(r) for r in lagged),
                meta={**report.meta, "attempt": len(lagged) + 1},
            )
        reports.append(report)
    return reports


def _run_at(
    url: str,
    strategy: Strategy,
    i: int,
    phase: float,
    *,
    rate: float,
    throttle_s: float,
    reference: Callable[[], float] | None,
    options: GapOptions | None,
    progress: ProgressCallback | None,
    tls: TLSVerify | None,
    timings: list[RunStages] | None,
    reuse_reference: bool,
    pool: SenderPool | None,
    floor: TrafficFloor | None,
) -> GapReport:
    """Run ``i`` of :func:`run_repeats`: the change at ``phase`` after the last configuration
    the proxy applied (a new reference when that phase is already behind), its traffic booked
    on ``floor`` when given."""
    stages = RunStages()
    not_before = None
    after_s = strategy.window_after(throttle_s, phase if reference is not None else None)
    turn: _Booking | None = None
    if reference is not None:
        strategy.prepare()
        stages.mark("prepare")
        with (
            floor.booking(phase - LEAD_S) if floor is not None else contextlib.nullcontext()
        ) as turn:
            if turn is not None:
                stages.mark("lane wait")
            free_at = turn.free_at if turn is not None else 0.0
            last = strategy.applied_at if reuse_reference else None
            if (
                last is not None
                and last + phase - LEAD_S - time.monotonic() >= REUSE_MARGIN_S
                and last + phase - LEAD_S >= free_at
            ):
                stages.reused_reference = True
                not_before = last + phase
            else:
                not_before = reference() + phase
                stages.mark("reference")
            if turn is not None:
                turn.book(not_before + after_s + FLOOR_TAIL_S)
    if timings is not None:
        timings.append(stages)
    try:
        return measure_change(
            url,
            strategy,
            rate=rate,
            after_s=after_s,
            not_before=not_before,
            options=options,
            progress=progress,
            tls=tls,
            stages=stages,
            pool=pool,
            meta={
                "repeat": i + 1,
                "phase_s": round(phase, 3) if reference is not None else None,
                "throttle_s": throttle_s,
            },
        )
    finally:
        if turn is not None and floor is not None:
            floor.release(turn)


# ---------------------------------------------------------------------------------------------
# The subject: which route changes, and to what


@dataclass(frozen=True)
class Subject:
    """The route a change is made to: ``route`` moves to ``other``; ``second`` is the same host
    and path on another Ingress, sending to ``other`` (the tutorial's re-registration; None
    for a Gateway API route, whose HTTPRoute rule ``rule_index`` the changes rewrite)."""

    scenario: str
    intent: Intent
    route: Route
    other: WeightedBackend
    second: Route | None
    rule_index: int | None = None

    @property
    def spec(self) -> RequestSpec:
        return RequestSpec(path=self.route.path or "/", host=probe_host(self.route.host))

    @property
    def gateway(self) -> bool:
        """The route is an HTTPRoute rule's (Traefik's Gateway provider serves it)."""
        return self.route.provider == PROVIDER_GATEWAY

    @property
    def service(self) -> str:
        """The Service the route sends to before the change (its one backend with weight)."""
        return next(b.service for b in self.route.backends if b.weight > 0)


def _plain(route: Route) -> bool:
    return (
        bool(route.host)
        and "*" not in (route.host or "")
        and route.path is not None
        # The subject's traffic goes to its path as written: a regex is no request path.
        and route.match != "regex"
        # ... and carries no method, header or query parameter a condition would ask for.
        and not route.conditions
    )


def _candidate(route: Route) -> bool:
    return (
        route.provider == PROVIDER_INGRESS
        and not route.weighted
        and _plain(route)
        and route.match_rule is None
    )


def _gateway_candidate(route: Route) -> bool:
    """An HTTPRoute rule's route that sends to one Service (others at weight 0 may be listed:
    a canary before its shift)."""
    return (
        route.provider == PROVIDER_GATEWAY
        and _plain(route)
        and sum(1 for b in route.backends if b.weight > 0) == 1
    )


def _other_backend(intent: Intent, route: Route) -> WeightedBackend | None:
    """Another Service of the intent to move ``route`` to: one the route lists at weight 0
    (a canary's), else the first other one."""
    current = {b.service for b in route.backends if b.weight > 0}
    listed = next((b for b in route.backends if b.service not in current), None)
    if listed is not None:
        return replace(listed, weight=1)
    for service in intent.services:
        if service.name in current:
            continue
        port = next((p.number for p in service.ports if p.number), None)
        return WeightedBackend(service.name, port or route.backends[0].port, 1)
    return None


def find_subject(scenarios: Mapping[str, Intent]) -> Subject | None:
    """The tutorial's re-registration if the intent has one (a route and a second Ingress with
    the same rule to another Service: ``registration-duplicate``), else the first plain Ingress
    route with a host and a path, moved to another Service of the same intent; else the first
    such HTTPRoute rule sending to one Service (a canary's zero-weight backendRef, or another
    Service of the intent, is where it moves)."""
    for name, intent in scenarios.items():
        routes = [r for r in intent.routes if _candidate(r)]
        for i, first in enumerate(routes):
            for second in routes[i + 1 :]:
                if (
                    first.rule == second.rule
                    and first.backends[0].service != second.backends[0].service
                    and first.source.name != second.source.name
                ):
                    return Subject(name, intent, first, second.backends[0], second)
    for name, intent in scenarios.items():
        for route in intent.routes:
            other = _other_backend(intent, route) if _candidate(route) else None
            if other is None:
                continue
            second = replace(
                route,
                id=f"{route.id}-moved",
                source=replace(route.source, name=f"{route.source.name}-moved"),
                backends=(other,),
            )
            return Subject(name, intent, route, other, second)
    for name, intent in scenarios.items():
        for route in intent.routes:
            other = _other_backend(intent, route) if _gateway_candidate(route) else None
            if other is not None:
                return Subject(name, intent, route, other, None, rule_index(route))
    return None


def not_applicable(name: str, subject: Subject) -> str | None:
    """Why the strategy ``name`` does not apply to ``subject`` (None: it does)."""
    if subject.gateway and name in ("override-priority", "override-tie"):
        return (
            f"{name}: a second Ingress overriding the route does not apply to an HTTPRoute "
            "rule (the Gateway API has no explicit route priority; a second HTTPRoute with the "
            "same match ties in Traefik's additive priority, which does not implement the "
            "spec's oldest-route tie-break)"
        )
    if not subject.gateway and name == "weight-shift":
        return (
            "weight-shift: an Ingress backend has no weight; backendRef weights are measured on "
            "a Gateway API HTTPRoute rule"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Local strategies (through the Kubernetes API of the local target)


def _enabled(routers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in routers if r.get("status") == "enabled"]


def _service_prefix(namespace: str, service: str) -> str:
    """How Traefik's Ingress provider names a Service's load balancer: ``ns-name-port``."""
    return f"{namespace}-{service}-"


def _gateway_backend(name: str, namespace: str) -> str | None:
    """The Service of a load balancer Traefik's Gateway provider built for a backendRef
    (``<router>-svc-<ns>-<name>-<index>``, as ``/api/http/services`` lists them), or None."""
    found = re.fullmatch(rf".*-svc-{re.escape(namespace)}-(.+)-\d+", name.partition("@")[0])
    return found.group(1) if found else None


class _Local(Strategy):
    """Common parts: the local target, its API, Traefik's routers and services."""

    def __init__(self, target: Any, subject: Subject) -> None:
        self.target = target
        self.stack = target.stack
        self.subject = subject
        self.namespace = subject.intent.namespace
        self.specs = (subject.spec,)
        self._http = httpx.Client(timeout=2.0, trust_env=False)

    @property
    def applier(self) -> Any:
        return self.stack.running_applier()

    def _routers(self) -> list[dict[str, Any]] | None:
        try:
            routers: list[dict[str, Any]] = self.stack.running_traefik().routers()
        except httpx.HTTPError:
            return None
        return routers

    def _services(self) -> list[dict[str, Any]] | None:
        api = self.stack.running_traefik().api_url
        try:
            response = self._http.get(f"{api}/api/http/services", params={"per_page": 1000})
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        data = response.json()
        return data if isinstance(data, list) else None

    def _intent_of(self, route: Route) -> Intent:
        """What makes Traefik serve ``route`` (the subject's route, in some state): the route
        rendered as an Ingress; for an HTTPRoute rule, the manifests' Gateways (GatewayClasses,
        Services) and the HTTPRoute with the rule's backendRefs as ``route`` has them."""
        intent = self.subject.intent
        if not self.subject.gateway:
            return sub_intent(intent, [route])
        used = {b.service for b in route.backends}
        source = route.source
        found = [
            o
            for o in intent.objects
            if o.role == "applied"
            and (
                o.kind in ("GatewayClass", "Gateway")
                or (o.kind == "Service" and o.name in used)
                or ((o.kind, o.namespace, o.name) == ("HTTPRoute", route.namespace, source.name))
            )
        ]
        objects = []
        for obj in found:
            if obj.kind == "HTTPRoute":
                body = copy.deepcopy(obj.body)
                rule = body["spec"]["rules"][self.subject.rule_index]
                rule["backendRefs"] = [
                    {"name": b.service, "port": b.port, "weight": b.weight} for b in route.backends
                ]
                objects.append(replace(obj, body=body))
            else:
                objects.append(obj)
        return replace(
            intent,
            routes=(route,),
            services=tuple(s for s in intent.services if s.name in used),
            objects=tuple(objects),
            effective=None,
        )

    def _objects(self, route: Route) -> list[dict[str, Any]]:
        """The route objects of :meth:`_intent_of` as the target applies them (a Gateway's
        listener port, and an HTTPRoute's parentRefs port, the local entry point's)."""
        if not self.subject.gateway:
            return render_manifests(self._intent_of(route), self.namespace)
        applied = self.stack.local_listeners(manifests_to_apply(self._intent_of(route)))
        return [o for o in applied if o.get("kind") == "HTTPRoute"]

    def _gateway_weights(self) -> dict[str, int] | None:
        """The Services Traefik's router for the subject's HTTPRoute rule sends to, with their
        weights (None: its API did not answer, or it has no such router)."""
        routers, services = self._routers(), self._services()
        if routers is None or services is None:
            return None
        rule = canonical_rule(self.subject.route.rule)
        names = {
            f"{r.get('service')}@{PROVIDER_GATEWAY}"
            for r in _enabled(routers)
            if r.get("provider") == PROVIDER_GATEWAY and canonical_rule(str(r.get("rule"))) == rule
        }
        if not names:
            return None
        weights: dict[str, int] = {}
        for svc in services:
            if svc.get("name") not in names:
                continue
            for child in (svc.get("weighted") or {}).get("services") or []:
                backend = _gateway_backend(str(child.get("name", "")), self.namespace)
                if backend is not None:
                    weights[backend] = weights.get(backend, 0) + int(child.get("weight") or 0)
        return weights

    def _sends_only_to(self, service: str) -> bool:
        """Traefik's router for the subject's HTTPRoute rule gives weight to ``service`` only."""
        weights = self._gateway_weights()
        return weights is not None and {s for s, w in weights.items() if w > 0} == {service}

    def _routes_to(self, routers: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
        rule = canonical_rule(self.subject.route.rule)
        prefix = _service_prefix(self.namespace, service)
        return [
            r
            for r in _enabled(routers)
            if canonical_rule(str(r.get("rule"))) == rule
            and str(r.get("service", "")).startswith(prefix)
        ]

    def _wait(self, condition: Callable[[], bool], what: str) -> float | None:
        """Poll ``condition`` until it holds; return when it came true (monotonic), or None
        when it held already at the first look."""
        if condition():
            return None
        # A fixed, short poll: the steps of a change are marked when the proxy took them.
        wait_until(
            condition,
            timeout=STEP_TIMEOUT_S,
            what=what,
            interval=WATCH_INTERVAL_S,
            max_interval=WATCH_INTERVAL_S,
        )
        return time.monotonic()

    def restore(self) -> None:
        self._http.close()


class RouteMove(_Local):
    """The route's Ingress is changed to send to the other Service: patched, replaced, or
    deleted and created again. Each run moves it back and forth (both directions are the same
    kind of change), so no run needs a restore in between."""

    def __init__(
        self,
        target: Any,
        subject: Subject,
        how: Literal["patch", "replace", "delete-create", "weight-shift"],
    ) -> None:
        super().__init__(target, subject)
        self.how = how
        self.name = how
        self.config_steps = CONFIG_STEPS[how]
        kind = "HTTPRoute" if subject.gateway else "Ingress"
        self.title = {
            "patch": f"kubectl apply: three-way patch of the {kind}",
            "replace": f"kubectl replace: PUT of the whole {kind}",
            "delete-create": "kubectl replace --force (or a rename): delete, then create",
            "weight-shift": "kubectl apply: the HTTPRoute rule's backendRef weights 100/0 to 0/100",
        }[how]
        if how == "weight-shift":
            old, new = replace(subject.other, service=subject.service), subject.other
            self.states = tuple(
                replace(
                    subject.route, backends=(replace(old, weight=w), replace(new, weight=100 - w))
                )
                for w in (100, 0)
            )
        else:
            self.states = (subject.route, replace(subject.route, backends=(subject.other,)))
        self.current = 0
        self.applied = False

    def _service(self, state: int) -> str:
        return next(b.service for b in self.states[state].backends if b.weight > 0)

    @property
    def old(self) -> Shows:
        return Shows(backends=(self._service(self.current),))

    @property
    def new(self) -> Shows:
        return Shows(backends=(self._service(1 - self.current),))

    def prepare(self) -> None:
        if not self.applied:
            self.target.apply_intent(self._intent_of(self.states[self.current]))
            self.applied = True
        service = self._service(self.current)
        self._wait(
            lambda: (
                self._sends_only_to(service)
                if self.subject.gateway
                else bool(self._routes_to(self._routers() or [], service))
            ),
            f"Traefik to route {self.subject.route.rule} to {service}",
        )

    def change(self, clock: StepClock) -> None:
        before = self._objects(self.states[self.current])
        after = self._objects(self.states[1 - self.current])
        if [o["metadata"]["name"] for o in before] != [o["metadata"]["name"] for o in after]:
            raise HarnessError("moving the route renamed its objects; cannot patch in place")
        changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        for old_obj, new_obj in changed:
            if self.how in ("patch", "weight-shift"):
                self.applier.apply(new_obj)
            elif self.how == "replace":
                self.applier.replace(new_obj)
            else:
                self.applier.delete(old_obj)
                clock.mark(f"{old_obj['kind']} deleted")
                self.applier.create(new_obj)

    def shown(self) -> bool:
        if self.subject.gateway:
            return self._sends_only_to(self._service(1 - self.current))
        routers = self._routers()
        if routers is None:
            return False
        new, old = self._service(1 - self.current), self._service(self.current)
        return bool(self._routes_to(routers, new)) and not self._routes_to(routers, old)

    def finish(self) -> None:
        self.current = 1 - self.current

    def restore(self) -> None:
        try:
            if self.applied:
                self.target.remove_intent(self._intent_of(self.states[self.current]))
        finally:
            super().restore()


class SecondIngress(_Local):
    """A second Ingress with the same host and path, sending to the other Service: with a higher
    explicit priority (takes the route over, by definition), or without (a tie: which router
    answers is undefined on Traefik v3). After each run the second Ingress is deleted again."""

    def __init__(self, target: Any, subject: Subject, *, tie: bool) -> None:
        super().__init__(target, subject)
        self.tie = tie
        self.name = "override-tie" if tie else "override-priority"
        self.must_converge = not tie
        priority = None if tie else subject.route.effective_priority + 1
        self.title = (
            "the same host and path on a second Ingress (a tie: undefined on v3)"
            if tie
            else f"the same host and path on a second Ingress with priority {priority}"
        )
        if subject.second is None:
            raise ConfigError(not_applicable(self.name, subject) or "no second Ingress")
        self.second = replace(subject.second, priority=priority)
        self.applied = False

    @property
    def old(self) -> Shows:
        return Shows(backends=(self.subject.route.backends[0].service,))

    @property
    def new(self) -> Shows:
        return Shows(backends=(self.second.backends[0].service,))

    def prepare(self) -> None:
        if not self.applied:
            self.target.apply_intent(self._intent_of(self.subject.route))
            self.applied = True
        service = self.subject.route.backends[0].service
        self._wait(
            lambda: (
                bool(self._routes_to(self._routers() or [], service))
                and not self._routes_to(self._routers() or [], self.second.backends[0].service)
            ),
            f"Traefik to route {self.subject.route.rule} to {service} only",
        )

    def change(self, clock: StepClock) -> None:
        for obj in self._objects(self.second):
            self.applier.apply(obj)

    def shown(self) -> bool:
        routers = self._routers()
        if routers is None:
            return False
        new = self._routes_to(routers, self.second.backends[0].service)
        if self.tie:
            return bool(new)
        priority = self.second.effective_priority
        return any(int(r.get("priority", 0)) == priority for r in new)

    def finish(self) -> None:
        # Waited for by the second Ingress's own router, not by counting routers with its rule
        # and priority: a tie has the first route's, and the second one may never have shown.
        for obj in self._objects(self.second):
            self.applier.delete(obj)
        service = self.second.backends[0].service

        def gone() -> bool:
            routers = self._routers()
            return routers is not None and not self._routes_to(routers, service)

        # The removal is the last configuration the proxy applied: the next run's reference.
        self.applied_at = self._wait(
            gone, f"Traefik to stop routing {self.subject.route.rule} to {service}"
        )

    def restore(self) -> None:
        try:
            if self.applied:
                self.target.remove_intent(self._intent_of(self.subject.route))
        finally:
            super().restore()


class EndpointSwap(_Local):
    """The route's Service gets a new backend instance (a new version of the pod): its endpoint
    is added, the proxy is given time to use it, then the old instance goes:

    - ``terminating``: its endpoint is marked terminating (still serving), removed once the
      proxy stopped using it, and the old backend stops after the run;
    - ``removed``: its endpoint is removed at once; the old backend stops after the run;
    - ``stops-first``: the old backend stops, then its endpoint is removed.

    Each instance listens on a loopback address of its own (Traefik keeps one server per
    address). The stack's own instances of the Service are withdrawn for the runs and put
    back by :meth:`restore`.
    """

    def __init__(
        self,
        target: Any,
        subject: Subject,
        mode: Literal["terminating", "removed", "stops-first"],
    ) -> None:
        super().__init__(target, subject)
        self.mode = mode
        self.name = {
            "terminating": "endpoints-terminating",
            "removed": "endpoints-removed",
            "stops-first": "backend-stops-first",
        }[mode]
        self.title = {
            "terminating": "new endpoint added; old one marked terminating, then removed",
            "removed": "new endpoint added; old one removed at once",
            "stops-first": "new endpoint added; old backend stops before its endpoint is removed",
        }[mode]
        self.config_steps = CONFIG_STEPS[self.name]
        self.service = subject.service
        ref = next((s for s in subject.intent.services if s.name == self.service), None)
        self.port_names = tuple(p.name for p in (ref.ports if ref else ()) if p.name) or ("http",)
        self.current: BackendProcess | None = None
        self.next: BackendProcess | None = None
        self.withdrawn: list[BackendInstance] = []
        self.applied = False
        self._serial = 0

    def _start_instance(self) -> BackendProcess:
        self._serial += 1
        color = "blue" if self._serial % 2 else "green"
        host = f"{EXTRA_BACKEND_NET}{(self._serial - 1) % 250 + 1}"
        return self.stack.start_extra_backend(self.service, f"{self.service}-{color}", host)  # type: ignore[no-any-return]

    @staticmethod
    def _instance(process: BackendProcess | None) -> BackendInstance:
        if process is None or not process.instances:
            raise HarnessError("the backend instance is not running")
        return process.instances[0]

    @property
    def old(self) -> Shows:
        return Shows(instances=(self._instance(self.current).instance,))

    @property
    def new(self) -> Shows:
        return Shows(instances=(self._instance(self.next).instance,))

    def _servers(self) -> tuple[set[str], set[str]] | None:
        """(all, not fenced) server URLs of the Service's load balancer in Traefik."""
        services = self._services()
        if services is None:
            return None
        prefix = _service_prefix(self.namespace, self.service)
        every: set[str] = set()
        serving: set[str] = set()
        for svc in services:
            name = str(svc.get("name", ""))
            if self.subject.gateway:
                ours = svc.get("provider") == PROVIDER_GATEWAY and (
                    _gateway_backend(name, self.namespace) == self.service
                )
            else:
                ours = svc.get("provider") == PROVIDER_INGRESS and name.startswith(prefix)
            if not ours:
                continue
            for server in (svc.get("loadBalancer") or {}).get("servers") or []:
                url = str(server.get("url", "")).rstrip("/")
                every.add(url)
                if not server.get("fenced"):
                    serving.add(url)
        return every, serving

    def _serving_is(self, urls: set[str], *, exact: bool = False) -> bool:
        found = self._servers()
        if found is None:
            return False
        every, serving = found
        return serving == urls and (not exact or every == urls)

    def prepare(self) -> None:
        if not self.applied:
            self.target.apply_intent(self._intent_of(self.subject.route))
            self.applied = True
            self.current = self._start_instance()
            self.stack.publish_endpoint(self._instance(self.current), port_names=self.port_names)
            pool = (
                self.stack.backends.by_service().get(self.service, [])
                if self.stack.backends
                else []
            )
            for instance in pool:
                self.stack.withdraw_endpoint(instance)
            self.withdrawn = list(pool)
        if self.next is None:
            self.next = self._start_instance()
        url = self._instance(self.current).url
        removed = self._wait(
            lambda: self._serving_is({url}, exact=True),
            f"Traefik to send {self.service} to {url} only",
        )
        if removed is not None:
            # The previous run's last step (a terminating endpoint removed) applied after its
            # traffic: that is the last configuration the proxy applied.
            self.applied_at = removed

    def change(self, clock: StepClock) -> None:
        old, new = self._instance(self.current), self._instance(self.next)
        self.stack.publish_endpoint(new, port_names=self.port_names)
        clock.mark("new endpoint added")
        self._wait(
            lambda: self._serving_is({old.url, new.url}),
            f"Traefik to send {self.service} to {old.url} and {new.url}",
        )
        clock.mark("proxy uses new endpoint")
        if self.mode == "terminating":
            self.stack.publish_endpoint(
                old, ready=True, terminating=True, port_names=self.port_names
            )
            clock.mark("old endpoint terminating")
            self._wait(
                lambda: self._serving_is({new.url}),
                f"Traefik to stop sending {self.service} to the terminating {old.url}",
            )
            clock.mark("proxy stopped using old endpoint")
            self.stack.withdraw_endpoint(old)
            clock.mark("old endpoint removed")
        elif self.mode == "removed":
            self.stack.withdraw_endpoint(old)
            clock.mark("old endpoint removed")
        else:
            assert self.current is not None
            self.current.stop()
            clock.mark("old backend stopped")
            self.stack.withdraw_endpoint(old)
            clock.mark("old endpoint removed")

    def shown(self) -> bool:
        return self._serving_is({self._instance(self.next).url})

    def settled(self) -> bool:
        # The old endpoint gone altogether (a terminating one is removed after it was shown).
        return self._serving_is({self._instance(self.next).url}, exact=True)

    def finish(self) -> None:
        if self.current is not None:
            self.current.stop()
        self.current, self.next = self.next, None

    def restore(self) -> None:
        try:
            for process in (self.current, self.next):
                if process is not None and process.instances:
                    self.stack.withdraw_endpoint(process.instances[0])
                    process.stop()
            if self.applied:
                intent = self.subject.intent
                self.target.register_services(
                    replace(
                        intent, services=tuple(s for s in intent.services if s.name == self.service)
                    )
                )
                self.target.remove_intent(self._intent_of(self.subject.route))
        finally:
            super().restore()


def build_strategy(name: str, target: Any, subject: Subject) -> Strategy:
    """The local strategy called ``name`` (see LOCAL_STRATEGIES) on ``subject`` (a ConfigError
    saying why when it does not apply to it: :func:`not_applicable`)."""
    reason = not_applicable(name, subject)
    if reason is not None:
        raise ConfigError(reason)
    if name in ("patch", "replace", "delete-create", "weight-shift"):
        return RouteMove(target, subject, name)  # type: ignore[arg-type]
    if name in ("override-priority", "override-tie"):
        return SecondIngress(target, subject, tie=name == "override-tie")
    modes = {
        "endpoints-terminating": "terminating",
        "endpoints-removed": "removed",
        "backend-stops-first": "stops-first",
    }
    if name in modes:
        return EndpointSwap(target, subject, modes[name])  # type: ignore[arg-type]
    raise ConfigError(f"no local strategy {name!r}; strategies: {', '.join(LOCAL_STRATEGIES)}")


# ---------------------------------------------------------------------------------------------
# Strategies side by side: one per local stack at a time


def lane_plan(names: Sequence[str], lanes: int) -> list[list[str]]:
    """Which strategies each of ``lanes`` stacks measures, one after the other: the longest
    first (a run lasts about one throttle window plus one more per extra configuration step),
    each onto the lane with the least work so far (the lower lane on a tie); within a lane in
    the order of ``names``. Unknown names count as one step."""
    if not isinstance(lanes, int) or lanes < 1:
        raise ConfigError(f"`lanes` must be a whole number >= 1, got {lanes!r}")
    work = [0] * lanes
    chosen: list[list[int]] = [[] for _ in range(lanes)]
    by_length = sorted(range(len(names)), key=lambda i: -CONFIG_STEPS.get(names[i], 1))
    for i in by_length:
        lane = min(range(lanes), key=lambda k: (work[k], k))
        work[lane] += 1 + 2 * CONFIG_STEPS.get(names[i], 1)
        chosen[lane].append(i)
    return [[names[i] for i in sorted(lane)] for lane in chosen if lane]


@contextlib.contextmanager
def lane_targets(options: Any, lanes: int, workdir: Path) -> Iterator[list[Any]]:
    """``lanes`` local stacks with these ``LocalStackOptions`` (Traefik binary, throttle,
    backends), started side by side under ``workdir``, as local targets; stopped on exit, also
    on failure and Ctrl-C.

    Each stack lives in a thread of its own from start to stop: the harness's processes die
    with the thread that started them (``PR_SET_PDEATHSIG``), so that thread must outlive the
    stack."""
    from harness.targets.base import LocalTarget
    from harness.targets.local_stack import LocalStack

    extra = [LocalStack(options, workdir / f"lane-{k}") for k in range(max(1, lanes))]
    errors: list[BaseException] = []
    done = threading.Event()
    started = threading.Semaphore(0)

    def keep(stack: LocalStack) -> None:
        try:
            stack.start()
        except BaseException as exc:  # re-raised by the caller's thread, below
            errors.append(exc)
            return
        finally:
            started.release()
        try:
            done.wait()
        finally:
            stack.stop()

    threads = [
        threading.Thread(target=keep, args=(s,), name=f"lane-stack-{k}", daemon=True)
        for k, s in enumerate(extra)
    ]
    try:
        for thread in threads:
            thread.start()
        for _ in threads:
            started.acquire()
        if errors:
            raise errors[0]
        yield [LocalTarget(s) for s in extra]
    finally:
        done.set()
        for thread in threads:
            thread.join()


@dataclass
class StrategyRuns:
    """What :func:`measure_strategies` got for one strategy: its runs, or the error that
    stopped it, and what the check reports about it."""

    name: str
    reports: list[GapReport]
    described: dict[str, Any]
    must_converge: bool
    error: BaseException | None = None
    #: Where each run's time went (benchmarks).
    timings: list[RunStages] = field(default_factory=list)


def measure_strategies(
    targets: Sequence[Any],
    subject: Subject,
    names: Sequence[str],
    *,
    repeats: int,
    rate: float,
    options: GapOptions | None = None,
    progress: ProgressCallback | None = None,
    reuse_reference: bool = True,
    budgets: Mapping[str, int | None] | None = None,
    lag_retries: int = 0,
) -> dict[str, StrategyRuns]:
    """Every strategy in ``names`` measured ``repeats`` times (:func:`run_repeats`, each change
    at its phase after its own stack's reference configuration), the lanes of
    :func:`lane_plan` side by side, one per target (``budgets`` and ``lag_retries``: which
    lagged runs are made again, see :func:`run_repeats`). A strategy's error is kept in its
    :class:`StrategyRuns` (the others go on); on Ctrl-C no lane starts another strategy (the
    caller's :func:`lane_targets` stops the stacks under the ones still running)."""
    plan = lane_plan(names, len(targets))
    results: dict[str, StrategyRuns] = {}
    # Several lanes take turns with their traffic (see TrafficFloor).
    floor = TrafficFloor() if len(targets) > 1 else None
    stop = threading.Event()

    def lane(target: Any, lane_names: list[str], report: ProgressCallback | None) -> None:
        # One set of sender workers for the lane's runs, started (by its first run: a failure
        # to start is that strategy's error) and stopped in its thread (they die with the
        # thread that started them).
        pool = SenderPool(SENDER_PROCESSES)
        try:
            measure_lane(target, lane_names, report, pool)
        finally:
            pool.close()

    def measure_lane(
        target: Any, lane_names: list[str], report: ProgressCallback | None, pool: SenderPool
    ) -> None:
        for name in lane_names:
            if stop.is_set():
                return
            try:
                strategy = build_strategy(name, target, subject)
            except ConfigError as exc:  # it does not apply to the subject: its error says why
                results[name] = StrategyRuns(name, [], {"strategy": name}, True, exc)
                continue
            runs = StrategyRuns(name, [], {}, strategy.must_converge)
            try:
                runs.reports = run_repeats(
                    target.url_for(subject.route),
                    strategy,
                    repeats=repeats,
                    rate=rate,
                    throttle_s=target.stack.options.throttle_seconds,
                    reference=target.stack.reload_providers,
                    options=options,
                    progress=report,
                    tls=target.tls_verify,
                    timings=runs.timings,
                    reuse_reference=reuse_reference,
                    pool=pool,
                    budget=(budgets or {}).get(name),
                    lag_retries=lag_retries,
                    floor=floor,
                )
            except Exception as exc:  # the strategy's own check reports it
                runs.error = exc
            finally:
                try:
                    strategy.restore()
                except Exception as exc:
                    runs.error = runs.error or exc
                runs.described = strategy.describe()
            results[name] = runs

    # The terminal's progress line shows the first lane only (one line, not four).
    threads = [
        threading.Thread(
            target=lane, args=(t, n, progress if k == 0 else None), name=f"lane-{k}", daemon=True
        )
        for k, (t, n) in enumerate(zip(targets, plan, strict=False))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join(STEP_TIMEOUT_S + 10.0)
        raise
    return {name: results[name] for name in names if name in results}


# ---------------------------------------------------------------------------------------------
# Changes given as a command or a function


class CommandChange(Strategy):
    """A user-given shell command is the change (external mode). Its output goes to a log file;
    a non-zero exit or a timeout is an error. It gets ``HARNESS_PROXY_URL`` in its environment.
    The new configuration is recognised as answers (backend, path) not seen before it.

    The command runs in a process group of its own, which is killed whole (the shell and what
    it started) when it times out, when the measurement is aborted (Ctrl-C, a failure) and,
    for what it left running, when it exits. The traffic runs for ``window`` (a fixed time
    after the command starts, or until it exits plus some seconds)."""

    name = "command"
    #: What a command changes is not known; the figures say whether anything new answered.
    must_converge = False

    def __init__(
        self,
        command: str,
        specs: Sequence[RequestSpec],
        *,
        proxy_url: str,
        window: ChangeWindow | None = None,
        timeout_s: float = MAX_CHANGE_WINDOW_S,
        log_dir: Path | None = None,
    ) -> None:
        if not command.strip():
            raise ConfigError("--change-command is empty; give the command that makes the change")
        self.command = command
        self.title = f"user command: {command}"
        self.specs = tuple(specs)
        self.proxy_url = proxy_url
        self.window = window or ChangeWindow()
        self.timeout_s = timeout_s
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="harness-change-"))
        self.runs = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._exited: float | None = None

    def window_after(self, throttle_s: float, phase_s: float | None = None) -> float:
        if self.window.after_exit:
            return self.timeout_s + self.window.seconds
        return self.window.seconds

    def traffic_until(self) -> float | None:
        if not self.window.after_exit or self._exited is None:
            return None
        return self._exited + self.window.seconds

    def abort(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is not None:
            procs.stop_group(proc, grace=2.0)

    def change(self, clock: StepClock) -> None:
        self.runs += 1
        self._exited = None
        log = self.log_dir / f"change-command-{self.runs}.log"
        env = {**os.environ, "HARNESS_PROXY_URL": self.proxy_url}
        with self._lock:
            proc = self._proc = procs.spawn(["/bin/sh", "-c", self.command], log_path=log, env=env)
        try:
            code = proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"--change-command {self.command!r} did not finish within {self.timeout_s:g} s "
                f"(it was stopped with everything it started); its output is in {log}"
            ) from None
        finally:
            self._exited = time.monotonic()
            procs.stop_group(proc, grace=2.0)
            with self._lock:
                self._proc = None
        clock.mark("command exited")
        if code != 0:
            raise ConfigError(
                f"--change-command {self.command!r} exited with status {code}; its last "
                f"output ({log}):\n{procs.tail(log, 15) or '(none)'}"
            )


class CallableChange(Strategy):
    """A change given as a function (tests, benchmarks): ``change(clock)``, optionally
    ``shown()``, and what old and new answers look like."""

    def __init__(
        self,
        name: str,
        specs: Sequence[RequestSpec],
        change: Callable[[StepClock], None],
        *,
        after_s: float,
        shown: Callable[[], bool] | None = None,
        old: Shows | None = None,
        new: Shows | None = None,
    ) -> None:
        self.name = name
        self.title = name
        self.specs = tuple(specs)
        self._change = change
        self._shown = shown
        self._old = old
        self._new = new
        self.after_s = after_s

    @property
    def old(self) -> Shows | None:
        return self._old

    @property
    def new(self) -> Shows | None:
        return self._new

    def window_after(self, throttle_s: float, phase_s: float | None = None) -> float:
        return self.after_s

    def change(self, clock: StepClock) -> None:
        self._change(clock)

    def shown(self) -> bool | None:
        return None if self._shown is None else self._shown()
