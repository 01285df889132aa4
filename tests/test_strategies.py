"""Apply strategies against the local target: each is timed, does its steps, shows in Traefik's
API, leaves the stack as it found it, on an Ingress and on an HTTPRoute rule (Traefik's Gateway
provider: the route moved and its weights shifted without a failed request, a backend stopped
before its endpoint is removed fails requests); and a backend refusing connections for exactly
500 ms is a 500 ms gap of 502s through the proxy."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client as k8s

from harness.backends.echo import BackendPool, BackendProcess, start_backends
from harness.checks.gaps import ChangeWindow, GapOptions, GapReport
from harness.checks.strategies import (
    CONFIG_STEPS,
    LOCAL_STRATEGIES,
    CallableChange,
    CommandChange,
    RunStages,
    StepClock,
    TrafficFloor,
    build_strategy,
    find_subject,
    lane_plan,
    lane_targets,
    measure_change,
    measure_strategies,
    not_applicable,
    phases,
    run_repeats,
)
from harness.errors import ConfigError
from harness.intent.dialects import load_intent, load_scenarios
from harness.plugin.settings import DEFAULT_MANIFESTS
from harness.targets.base import LocalTarget
from harness.targets.local_stack import LocalStackOptions
from harness.traefik.process import enabled_routers
from harness.traffic.engine import Progress, RequestSpec, SenderPool
from harness.waiting import wait_until

RATE = 2000.0
MANIFESTS = DEFAULT_MANIFESTS
#: The canary HTTPRoute: cheddar at weight 100, wensleydale at 0.
CANARY = (MANIFESTS / "services.yaml", MANIFESTS / "gateway" / "gateway-canary.yaml")
#: The strategies an Ingress route has (a weight shift is an HTTPRoute's).
INGRESS_STRATEGIES = [n for n in LOCAL_STRATEGIES if n != "weight-shift"]


# ---------------------------------------------------------------------------------------------
# Without a stack


def test_the_subject_is_the_tutorials_re_registration() -> None:
    subject = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert subject is not None
    assert subject.scenario == "registration-duplicate"
    assert (subject.route.host, subject.route.path) == ("cheeses.minikube", "/cheddar")
    assert subject.route.backends[0].service == "cheddar"
    assert subject.other.service == "wensleydale"
    assert subject.second.source.name == "cheddar-moved"
    assert subject.spec == RequestSpec(path="/cheddar", host="cheeses.minikube")


def test_without_a_re_registration_the_route_moves_to_another_service() -> None:
    scenarios = load_scenarios(DEFAULT_MANIFESTS)
    subject = find_subject({"cheeses": scenarios["cheeses"]})
    assert subject is not None
    assert subject.route.backends[0].service != subject.other.service
    assert subject.other.service in {s.name for s in scenarios["cheeses"].services}
    assert subject.second.rule == subject.route.rule
    assert subject.second.source.name == f"{subject.route.source.name}-moved"
    assert find_subject({"weights": scenarios["weights"]}) is None  # only a weighted route


def test_an_httproute_rule_is_the_subject_without_an_ingress_one() -> None:
    subject = find_subject({"canary": load_intent(list(CANARY))})
    assert subject is not None and subject.gateway and subject.second is None
    assert (subject.route.host, subject.route.path, subject.rule_index) == (
        "canary.gateway.test",
        "/shop",
        0,
    )
    # Where the rule sends, and where it moves: its zero-weight backendRef.
    assert (subject.service, subject.other.service) == ("cheddar", "wensleydale")
    for name in ("override-priority", "override-tie"):
        reason = not_applicable(name, subject)
        assert reason is not None and "HTTPRoute" in reason
        with pytest.raises(ConfigError, match="no explicit route priority"):
            build_strategy(name, SimpleNamespace(stack=None), subject)
    shift = build_strategy("weight-shift", SimpleNamespace(stack=None), subject)
    assert [[(b.service, b.weight) for b in s.backends] for s in shift.states] == [  # type: ignore[attr-defined]
        [("cheddar", 100), ("wensleydale", 0)],
        [("cheddar", 0), ("wensleydale", 100)],
    ]
    ingress = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert ingress is not None and not ingress.gateway
    assert not_applicable("weight-shift", ingress) is not None
    with pytest.raises(ConfigError, match="an Ingress backend has no weight"):
        build_strategy("weight-shift", SimpleNamespace(stack=None), ingress)
    assert all(not_applicable(n, ingress) is None for n in INGRESS_STRATEGIES)


def test_phases_spread_over_the_throttle_window() -> None:
    assert phases(5, 2.0) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])
    assert phases(1, 2.0) == [0.5]


def test_unknown_strategies_are_refused() -> None:
    subject = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert subject is not None
    with pytest.raises(ConfigError, match="no local strategy 'rename'; strategies: patch"):
        build_strategy("rename", object(), subject)


def test_lanes_share_the_strategies_out_evenly_and_keep_report_order() -> None:
    plan = lane_plan(LOCAL_STRATEGIES, 2)
    assert sorted(n for lane in plan for n in lane) == sorted(LOCAL_STRATEGIES)  # each once
    for lane in plan:
        assert lane == sorted(lane, key=LOCAL_STRATEGIES.index)
    # Two of the four two-step strategies (the longer runs) per lane; the five one-step ones
    # shared out after them.
    assert sorted(sorted(CONFIG_STEPS[n] for n in lane) for lane in plan) == [
        [1, 1, 1, 2, 2],
        [1, 1, 2, 2],
    ]
    assert plan[0][0] == "patch"
    assert lane_plan(LOCAL_STRATEGIES, 1) == [list(LOCAL_STRATEGIES)]
    # More lanes than strategies: one each, no empty lane.
    assert lane_plan(["patch", "delete-create"], 4) == [["delete-create"], ["patch"]]
    assert lane_plan([], 2) == []
    with pytest.raises(ConfigError, match="`lanes` must be a whole number >= 1, got 0"):
        lane_plan(LOCAL_STRATEGIES, 0)


def test_config_steps_are_the_strategies_own() -> None:
    ingress = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    gateway = find_subject({"canary": load_intent(list(CANARY))})
    assert ingress is not None and gateway is not None
    assert set(CONFIG_STEPS) == set(LOCAL_STRATEGIES)
    for subject, name in [(s, n) for s in (ingress, gateway) for n in LOCAL_STRATEGIES]:
        if not_applicable(name, subject) is not None:
            continue
        strategy = build_strategy(name, SimpleNamespace(stack=None), subject)
        try:
            assert strategy.config_steps == CONFIG_STEPS[name], name
        finally:
            strategy.restore()


@pytest.fixture(scope="module")
def brie() -> Iterator[BackendPool]:
    with start_backends({"brie": 1}) as pool:
        yield pool


def test_a_command_is_the_change(brie: BackendPool, tmp_path: Path) -> None:
    url = brie.instances[0].url
    spec = RequestSpec(path="/")
    # The command sees the proxy's URL; nothing changes, so nothing new answers.
    check = f'test "$HARNESS_PROXY_URL" = "{url}"'
    strategy = CommandChange(
        check, [spec], proxy_url=url, window=ChangeWindow(1.0), log_dir=tmp_path
    )
    (report,) = run_repeats(url, strategy, repeats=1, rate=RATE, throttle_s=2.0)
    assert report.failed == 0 and report.gap_s == 0.0 and report.convergence_s is None
    assert report.change is not None and [m.name for m in report.change.steps] == ["command exited"]
    failing = CommandChange("echo broken; exit 3", [spec], proxy_url=url, log_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"exited with status 3; its last output .*\n?broken"):
        measure_change(url, failing, rate=RATE, after_s=1.0)
    with pytest.raises(ConfigError, match="empty"):
        CommandChange("  ", [spec], proxy_url=url)


def test_a_run_reuses_the_previous_runs_configuration_as_reference_when_its_phase_is_ahead(
    brie: BackendPool,
) -> None:
    """Each change comes at its phase after the last configuration applied: a new reference,
    or the previous run's own change when the phase leaves time for the lead (the last run's
    2.17 s does after a 0.3 s tail); ``reuse_reference=False`` applies one before every run."""
    url = brie.instances[0].url
    references: list[float] = []
    starts: list[float] = []
    shown_at: list[float] = []

    def reference() -> float:
        references.append(time.monotonic())
        return references[-1]

    def shown() -> bool:
        shown_at.append(time.monotonic())  # the "proxy" shows each change at once
        return True

    def change(clock: StepClock) -> None:
        starts.append(time.monotonic())

    strategy = CallableChange("instant", [RequestSpec(path="/")], change, after_s=0.3, shown=shown)
    timings: list[RunStages] = []
    with SenderPool(2) as pool:
        reports = run_repeats(
            url,
            strategy,
            repeats=3,
            rate=500.0,
            throttle_s=2.0,
            reference=reference,
            timings=timings,
            pool=pool,
        )
        assert pool.starts == 1  # one set of sender workers for every run
    reused = [t.reused_reference for t in timings]
    assert reused[0] is False and reused[-1] is True
    assert len(references) == reused.count(False) and len(shown_at) == 3
    used = iter(references)
    for k, (report, start) in enumerate(zip(reports, starts, strict=True)):
        base = shown_at[k - 1] if reused[k] else next(used)
        assert start >= base + report.meta["phase_s"] - 1e-3
        assert {"phase wait", "sender start", "traffic", "analyze"} <= set(timings[k].seconds)
    strategy = CallableChange("instant", [RequestSpec(path="/")], change, after_s=0.3, shown=shown)
    references.clear()
    run_repeats(
        url,
        strategy,
        repeats=2,
        rate=500.0,
        throttle_s=2.0,
        reference=reference,
        timings=timings,
        reuse_reference=False,
    )
    assert len(references) == 2 and not any(t.reused_reference for t in timings[3:])


def test_a_lagged_run_is_made_again_at_its_phase_at_most_lag_retries_times(
    brie: BackendPool,
) -> None:
    """With a lag limit no sender can keep, every run lags: each is made again twice (three
    changes a run), its attempts kept in its evidence, and it stays invalid."""
    url = brie.instances[0].url
    changes: list[float] = []

    def change(clock: StepClock) -> None:
        changes.append(time.monotonic())

    strategy = CallableChange("instant", [RequestSpec(path="/")], change, after_s=0.2)
    reports = run_repeats(
        url,
        strategy,
        repeats=2,
        rate=500.0,
        throttle_s=2.0,
        options=GapOptions(max_lag_s=1e-9),
        budget=0,
        lag_retries=2,
    )
    assert len(changes) == 6
    for report in reports:
        assert not report.valid and report.failed == 0
        assert len(report.lagged_attempts) == 2 and report.meta["attempt"] == 3
        assert all(a["failed"] == 0 for a in report.lagged_attempts)
    without = run_repeats(
        url, strategy, repeats=2, rate=500.0, throttle_s=2.0, options=GapOptions(max_lag_s=1e-9)
    )
    assert len(changes) == 8 and not any(r.lagged_attempts for r in without)


def test_lanes_book_their_traffic_so_that_no_two_windows_overlap() -> None:
    """A lane gets its turn only when traffic starting ``lead_s`` after the turn would start
    after every booked window, and not while another lane is planning (between its turn and
    its booking); a window released early lets the next lane in at once."""
    floor = TrafficFloor()
    granted: dict[str, float] = {}
    booked = threading.Event()

    def second_lane() -> None:
        with floor.booking(0.1, timeout_s=30.0) as turn:
            granted["second"] = time.monotonic()
            assert turn.free_at == floor.busy_until
            turn.book(granted["second"] + 0.2)

    with floor.booking(0.1, timeout_s=30.0) as first:
        granted["first"] = time.monotonic()
        lane = threading.Thread(target=second_lane)
        lane.start()
        booked.wait(0.05)  # the second lane is waiting while the first plans
        assert "second" not in granted
        first_end = time.monotonic() + 0.4
        first.book(first_end)
    lane.join(30.0)
    assert not lane.is_alive()
    # Its traffic (0.1 s after its turn at the earliest) starts after the first window ends.
    assert granted["second"] + 0.1 >= first_end
    assert floor.busy_until > first_end

    # Released early: the next turn need not wait for the booked end.
    with floor.booking(0.0, timeout_s=30.0) as turn:
        end = time.monotonic() + 60.0
        turn.book(end)
    floor.release(turn)
    assert floor.busy_until < end
    with floor.booking(0.0, timeout_s=30.0):
        assert time.monotonic() < end


def _gone(pid: int) -> bool:
    """No such process any more (or only its zombie, waiting for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


#: A command that starts a child which would outlive it, and waits for it.
SPAWNS_A_SLEEPER = "sleep 300 & echo $! > {dir}/child.pid; wait"


def _child_pid(tmp_path: Path) -> int:
    text = wait_until(
        lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
        timeout=10,
        what="the command to start its child",
    )
    return int(text)


def test_a_command_that_times_out_is_killed_with_its_children(tmp_path: Path) -> None:
    strategy = CommandChange(
        SPAWNS_A_SLEEPER.format(dir=tmp_path),
        [RequestSpec(path="/")],
        proxy_url="http://127.0.0.1:9",
        timeout_s=1.0,
        log_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match=r"within 1 s \(it was stopped with everything"):
        strategy.change(StepClock())
    child = _child_pid(tmp_path)
    wait_until(lambda: _gone(child), timeout=10, what=f"the command's child {child} to be gone")


def test_ctrl_c_during_a_command_kills_it_with_its_children(
    brie: BackendPool, tmp_path: Path
) -> None:
    url = brie.instances[0].url
    strategy = CommandChange(
        SPAWNS_A_SLEEPER.format(dir=tmp_path),
        [RequestSpec(path="/")],
        proxy_url=url,
        window=ChangeWindow(5.0),
        log_dir=tmp_path,
    )

    def interrupt_once_started(progress: Progress) -> None:
        if (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text():
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    with pytest.raises(KeyboardInterrupt):
        measure_change(url, strategy, rate=RATE, after_s=5.0, progress=interrupt_once_started)
    child = _child_pid(tmp_path)
    wait_until(lambda: _gone(child), timeout=10, what=f"the command's child {child} to be gone")
    assert not _gone(os.getpid())  # (the check itself can tell a live process)


def test_the_window_can_last_until_the_command_exits_plus_n_seconds(
    brie: BackendPool, tmp_path: Path
) -> None:
    url = brie.instances[0].url
    window = ChangeWindow(1.0, after_exit=True)
    strategy = CommandChange(
        "sleep 0.5", [RequestSpec(path="/")], proxy_url=url, window=window, log_dir=tmp_path
    )
    assert strategy.window_after(2.0) == strategy.timeout_s + 1.0  # the longest it may take
    (report,) = run_repeats(url, strategy, repeats=1, rate=RATE, throttle_s=2.0)
    assert report.change is not None and report.accounted and report.failed == 0
    # The traffic ended once the command had exited and a second had passed: not after the
    # 601 s the window could have lasted, and not before that second was over.
    # (The command exits at least 0.5 s after it started.)
    assert report.window_end_s >= report.change.start + 0.5 + 1.0
    assert report.requests < RATE * 30
    assert report.requests == report.scheduled


# ---------------------------------------------------------------------------------------------
# Against the local target


#: The gap suite's throttle (--traefik-throttle's default); the session's stack runs at 0.2 s.
GAP_THROTTLE_S = 2.0


@pytest.fixture(scope="module")
def local_stack(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A stack like the session's, with the throttle the gap suite measures on."""
    options = replace(local_stack.options, throttle_seconds=GAP_THROTTLE_S)
    with lane_targets(options, 1, tmp_path_factory.mktemp("gap-stack")) as (target,):
        yield target.stack


@pytest.fixture(scope="module")
def local_target(local_stack: Any) -> LocalTarget:
    return LocalTarget(local_stack)


@pytest.fixture
def gouda(local_stack: Any) -> Iterator[BackendProcess]:
    """A backend of its own (own address), routed as ``gouda.test/``."""
    process = local_stack.start_extra_backend("gouda", "gouda-0", "127.0.10.250")
    applier = local_stack.running_applier()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gouda", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "gouda", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "host": "gouda.test",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "gouda", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    applier.apply(service)
    local_stack.publish_endpoint(process.instances[0])
    applier.apply(ingress)
    local_stack.running_traefik().wait_for_routers(
        lambda routers: any("gouda.test" in str(r.get("rule")) for r in enabled_routers(routers)),
        timeout=30,
        what="Traefik to route gouda.test",
    )
    yield process
    applier.delete(ingress)
    local_stack.withdraw_endpoint(process.instances[0])
    applier.delete(service)
    process.stop()


@pytest.mark.stack
def test_a_backend_refusing_for_500_ms_is_a_500_ms_gap_of_502s_through_the_proxy(
    local_stack: Any, gouda: BackendProcess
) -> None:
    def refuse(clock: StepClock) -> None:
        gouda.refuse_connections("gouda-0", 0.5)

    for _ in range(3):  # a run whose sender lagged is made again, as the suite does
        strategy = CallableChange(
            "refuse", [RequestSpec(path="/", host="gouda.test")], refuse, after_s=1.5
        )
        report = measure_change(local_stack.proxy_url, strategy, rate=RATE, after_s=1.5)
        if report.valid:
            break
    assert report.valid and report.accounted and report.requests == 4000
    # ±20 ms, as directly against the backend (observed through Traefik: 501-502.5 ms).
    assert report.gap_s == pytest.approx(0.5, abs=0.02)
    assert report.failed_by_class == {"502": report.failed}
    assert report.failed == pytest.approx(0.5 * RATE, abs=0.02 * RATE)


def _check_timing(report: GapReport) -> None:
    change = report.change
    assert change is not None
    assert report.valid and report.accounted
    assert 0.4 < change.start < change.end
    assert all(change.start <= step.t <= change.end for step in change.steps)
    assert change.shown is not None and change.shown >= change.start
    assert report.span_s == pytest.approx(report.requests / RATE)


def _slices(local_stack: Any, service: str) -> set[str]:
    api = k8s.DiscoveryV1Api(local_stack.api_client)
    found = api.list_namespaced_endpoint_slice(
        "default", label_selector=f"kubernetes.io/service-name={service}"
    )
    return {str(s.metadata.name) for s in found.items if s.metadata is not None}


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.parametrize("name", INGRESS_STRATEGIES)
def test_each_strategy_is_timed_and_restores_the_stack(
    name: str, local_stack: Any, local_target: LocalTarget, tmp_path: Path
) -> None:
    subject = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert subject is not None
    slices_before = _slices(local_stack, "cheddar")
    strategy = build_strategy(name, local_target, subject)
    try:
        # A hitless run whose sender lagged (beside the other xdist worker's traffic) is made
        # again, as the gap suite does.
        (report,) = run_repeats(
            local_stack.proxy_url,
            strategy,
            repeats=1,
            rate=RATE,
            throttle_s=local_stack.options.throttle_seconds,
            reference=local_stack.reload_providers,
            lag_retries=2,
        )
    finally:
        strategy.restore()
    _check_timing(report)
    assert report.meta["strategy"] == name and report.meta["phase_s"] == 0.5
    steps = [s.name for s in report.change.steps] if report.change else []
    if name == "delete-create":
        assert steps == ["Ingress deleted"]
    if name.startswith("endpoints-") or name == "backend-stops-first":
        assert steps[:2] == ["new endpoint added", "proxy uses new endpoint"]
        assert steps[-1] == "old endpoint removed"
        # The new instance answered once Traefik used it.
        assert report.convergence_s is not None
    if name == "backend-stops-first":
        assert "old backend stopped" in steps
        # Traefik sends to the stopped instance until it applies the removal: 502s, and answers
        # later than the latency budget while it still waits on the stopping backend.
        assert report.failed > 0 and "502" in report.failed_by_class
        assert set(report.failed_by_class) <= {"502", "slow"}
    if name in ("patch", "replace", "override-priority"):
        assert report.convergence_s is not None
        assert report.change is not None and report.change.shown is not None
        # The first new answer comes within a poll of Traefik showing the change.
        assert report.change.start + report.convergence_s <= report.change.shown + 0.1
    # Restored: the route is gone and the Service has its own endpoints again.
    routers = enabled_routers(local_stack.running_traefik().routers())
    assert not [r for r in routers if r.get("rule") == subject.route.rule]
    assert _slices(local_stack, "cheddar") == slices_before


@pytest.mark.stack
@pytest.mark.slow
def test_strategies_side_by_side_run_on_stacks_of_their_own(
    local_stack: Any, tmp_path: Path
) -> None:
    """Two lanes: each strategy measured on its own stack (its own Traefik and Kubernetes API),
    the stacks gone afterwards."""
    subject = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert subject is not None
    with lane_targets(local_stack.options, 2, tmp_path) as targets:
        assert len({t.proxy_url for t in targets}) == 2
        assert len({t.stack.kubeapi.url for t in targets}) == 2
        pids = [pid for t in targets for pid in t.stack.child_pids()]
        runs = measure_strategies(targets, subject, ["replace", "patch"], repeats=1, rate=RATE)
        assert list(runs) == ["replace", "patch"]  # in the order asked for
        for name, result in runs.items():
            assert result.error is None, result.error
            (report,) = result.reports
            assert report.meta["strategy"] == name and result.described["strategy"] == name
            assert report.change is not None and report.accounted
    for pid in pids:
        wait_until(lambda p=pid: not os.path.exists(f"/proc/{p}"), timeout=10, what=f"{pid} gone")


@pytest.fixture(scope="module")
def gateway_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    """A stack with Traefik's Gateway provider, at the gap suite's throttle."""
    options = LocalStackOptions(
        services={"cheddar": 1, "wensleydale": 1}, throttle_seconds=GAP_THROTTLE_S, gateway=True
    )
    with lane_targets(options, 1, tmp_path_factory.mktemp("gateway-gaps")) as (target,):
        yield target


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.parametrize("name", ["patch", "replace", "backend-stops-first"])
def test_on_an_httproute_rule_each_strategy_is_timed_and_restores_the_stack(
    name: str, gateway_target: LocalTarget
) -> None:
    """The canary rule moved to wensleydale (patched, replaced): no failed request, the first
    new answer once Traefik showed the change; the backend stopped before its endpoint is
    removed: 502s (Traefik still sends to it). (The weight shift is timed by the gap suite's
    run in tests/test_gateway_suites.py.)"""
    subject = find_subject({"canary": load_intent(list(CANARY))})
    assert subject is not None
    stack = gateway_target.stack
    url = gateway_target.url_for(subject.route)
    # The sender's workers started before the runs, as the suite's lanes do.
    with SenderPool(2) as pool:
        for _ in range(2):  # a run whose sender lagged (a loaded machine) is made once more
            strategy = build_strategy(name, gateway_target, subject)
            try:
                (report,) = run_repeats(
                    url,
                    strategy,
                    repeats=1,
                    rate=RATE,
                    throttle_s=stack.options.throttle_seconds,
                    reference=stack.reload_providers,
                    pool=pool,
                )
            finally:
                strategy.restore()
            if report.valid:
                break
    assert report.valid, report.summary()
    _check_timing(report)
    assert report.meta["strategy"] == name
    steps = [s.name for s in report.change.steps] if report.change else []
    if name == "backend-stops-first":
        assert steps[-2:] == ["old backend stopped", "old endpoint removed"]
        assert report.failed > 0 and "502" in report.failed_by_class
    else:
        assert report.failed == 0 and report.gap_s == 0.0
        assert report.convergence_s is not None and report.change is not None
        assert report.change.shown is not None
        assert report.change.start + report.convergence_s <= report.change.shown + 0.1
    # Restored: Traefik's Gateway provider serves the canary's rule no more.
    routers = enabled_routers(stack.running_traefik().routers())
    assert not [r for r in routers if "canary.gateway.test" in str(r.get("rule"))]
