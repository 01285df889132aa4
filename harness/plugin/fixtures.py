"""Fixtures: the target, the applied scenarios and their probe answers, clients, evidence.

They read the settings parsed at configure time (:mod:`harness.plugin.settings`), never raw
option values, and are typed where the layers meet (targets, stack, Traefik, Applier).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import httpx
import pytest

from harness.errors import StackError
from harness.plugin.cases import probe_arrivals, routing_options
from harness.plugin.outcomes import RECORDER, CheckRecorder
from harness.plugin.settings import (
    ACTIVE_STACK,
    RESULTS,
    HarnessSettings,
    new_cluster_target,
    settings_of,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from harness.checks.evidence import CheckVerdict
    from harness.checks.exact import Aspect, ExactVerdict
    from harness.checks.probes import Probe
    from harness.intent.model import Intent
    from harness.targets.apply import Applier
    from harness.targets.base import Target
    from harness.targets.cluster import ClusterTarget
    from harness.targets.local_stack import LocalStack
    from harness.traefik.process import TraefikProcess
    from harness.traffic.engine import Progress, ProgressCallback
    from harness.traffic.rounds import Observation, ProbeRun

_T = TypeVar("_T")

#: providersThrottleDuration of the session's Traefik, which the steady-state suites (routing,
#: strip, priority, registration, weights) check: it decides how soon an applied scenario is
#: served, not how it is routed, and each apply, reload and removal waits out up to one window.
#: The gap suite, where the throttle is part of what is measured, runs on stacks of its own
#: with --traefik-throttle.
STEADY_STATE_THROTTLE_S = 0.2


@pytest.fixture(scope="session")
def harness_settings(request: pytest.FixtureRequest) -> HarnessSettings:
    """The harness's options for this run."""
    return settings_of(request.config)


def _has_nginx(intent: Intent) -> bool:
    from harness.intent.model import PROVIDER_NGINX

    return any(r.provider == PROVIDER_NGINX for r in intent.routes)


@pytest.fixture(scope="session")
def local_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The local target, up once per session (per xdist worker), torn down at the end.

    Its echo backends are the tutorial's services plus every Service the intent names; its
    Traefik's throttle is at most ``STEADY_STATE_THROTTLE_S``.
    """
    from harness.targets.local_stack import (
        TUTORIAL_SERVICES,
        LocalStack,
        LocalStackOptions,
        uses_gateway_api,
    )
    from harness.traefik.nginx import nginx_response_headers

    config = request.config
    settings = settings_of(config)
    names = set(TUTORIAL_SERVICES)
    for intent in settings.scenarios.values():
        names.update(ref.name for ref in intent.services)
    options = LocalStackOptions(
        services={name: settings.backend_instances for name in sorted(names)},
        traefik_binary=os.fspath(settings.traefik_binary) if settings.traefik_binary else None,
        throttle_seconds=min(settings.traefik_throttle_s, STEADY_STATE_THROTTLE_S),
        strict_prefix_matching=settings.strict_prefix_matching,
        traefik_log_level=settings.traefik_log_level,
        ready_timeout=settings.stack_timeout_s,
        gateway=any(uses_gateway_api(intent) for intent in settings.scenarios.values()),
        # Ingresses written for ingress-nginx: Traefik's NGINX provider serves them.
        nginx_provider="beside"
        if any(_has_nginx(i) for i in settings.scenarios.values())
        else None,
        nginx_without_class=settings.nginx_without_class,
        nginx_allowed_response_headers=tuple(
            sorted({h for i in settings.scenarios.values() for h in nginx_response_headers(i)})
        ),
    )
    stack = LocalStack(options, tmp_path_factory.mktemp("stack"))
    config.stash[ACTIVE_STACK] = stack
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        config.stash[ACTIVE_STACK] = None


@pytest.fixture(scope="session")
def cluster_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterTarget]:
    """The cluster target (--kubeconfig/--context), up once per session (per xdist worker:
    a namespace each); everything it created is deleted at the end, also on failure and
    Ctrl-C."""
    settings = settings_of(request.config)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    found = new_cluster_target(settings, tmp_path_factory.mktemp("cluster"), worker)
    try:
        found.start(settings.scenarios)
        yield found
    finally:
        try:
            found.stop()
        finally:
            found.api_client.close()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """Where the proxy under test runs: the local stack, the cluster (--kubeconfig/--context),
    or the --proxy-url (external)."""
    from harness.targets.base import ExternalTarget, LocalTarget

    settings = settings_of(request.config)
    found: Target
    if settings.target_kind == "cluster":
        found = request.getfixturevalue("cluster_target")
    elif settings.proxy_url:
        found = ExternalTarget(settings.proxy_url, settings.backend_map, settings.proxy_tls_verify)
    else:
        found = LocalTarget(request.getfixturevalue("local_stack"))
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["harness_target"] = found.describe()
    else:
        request.config.stash[RESULTS].target = found.describe()
    return found


@dataclass
class ScenarioRun:
    """A scenario applied to the target, with the answers to all its probes."""

    name: str
    intent: Intent
    probes: dict[str, Probe]
    run: ProbeRun

    def context(self) -> str:
        reload = (
            f", one configuration reload after round {self.run.reload_after_round}"
            if self.run.reload_after_round is not None
            else ", no reload"
        )
        return f" in {self.run.rounds} rounds{reload}"

    def judge(self, aspect: Aspect, probe_id: str) -> ExactVerdict:
        """The verdict on one of the scenario's probes, on one aspect."""
        from harness.checks.exact import judge

        record = self.run.records[probe_id]
        return judge(aspect, record, self.intent, scenario=self.name, context=self.context())

    def exact_check(self, exact_case: tuple[Aspect, str]) -> CheckVerdict:
        """A derived exact check: one probe on one aspect."""
        aspect, probe_id = exact_case
        return self.judge(aspect, probe_id).check(self.intent.findings)

    def claim_check(
        self,
        host: str,
        path: str,
        aspect: Aspect,
        claim: str,
        holds: Callable[[Observation], bool],
    ) -> CheckVerdict:
        """A tutorial-named check: the oracle's verdict on the probe ``host`` + ``path``, and the
        tutorial's own ``claim`` about every answer (fails if the scenario has no such probe)."""
        from harness.checks.exact import with_claim

        for probe_id, probe in self.probes.items():
            if probe.host == host and probe.path == path:
                verdict = with_claim(self.judge(aspect, probe_id), claim, holds)
                return verdict.check(self.intent.findings)
        pytest.fail(
            f"scenario {self.name!r} has no probe for {host}{path}; its probes: "
            + ", ".join(sorted(self.probes)),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def scenario_run(request: pytest.FixtureRequest, target: Target) -> Iterator[ScenarioRun | None]:
    """Apply one scenario (the parameter), send all its probes in rounds, then remove it."""
    from harness.checks.probes import generate_probes
    from harness.traffic.rounds import send_in_rounds

    settings = settings_of(request.config)
    name = request.param
    if name is None:
        # "Nothing applied": tears down whichever scenario this worker had applied.
        yield None
        return
    intent = settings.scenarios[name]
    # Edge probes only when an edge check is collected: a run of other suites need not send them.
    edge = any(
        (marker := item.get_closest_marker("harness_kind")) is not None and marker.args[0] == "edge"
        for item in request.session.items
    )
    probes = generate_probes(
        intent, routing_options(settings), probe_arrivals(settings, intent), edge=edge
    )
    target.apply_intent(intent)
    try:
        run = send_in_rounds(
            target.proxy_url,
            probes,
            rounds=settings.probe_rounds,
            reload=target.reload,
            service_of=target.service_of,
            url_at=target.url_at,
            tls=target.tls_verify,
        )
        yield ScenarioRun(name, intent, {p.id: p for p in probes}, run)
    finally:
        target.remove_intent(intent)


@pytest.fixture
def traffic_progress(request: pytest.FixtureRequest) -> ProgressCallback | None:
    """A callback that shows a traffic phase's progress live on a terminal (None elsewhere:
    xdist workers, captured or non-interactive output)."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput") or not reporter.isatty():
        return None

    def show(progress: Progress) -> None:
        reporter.rewrite(
            f"  traffic {progress.sent:,}/{progress.total:,} sent, {progress.rate:,.0f}/s, "
            f"{progress.errors:,} errors, {progress.elapsed:.1f} s",
            erase=True,
        )

    return show


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> CheckRecorder:
    """Record the check's verdict (``evidence.record(verdict)``) for the results; the plugin
    concludes it when the test returns (see ``harness.plugin.outcomes``)."""
    recorder = CheckRecorder()
    request.node.stash[RECORDER] = recorder
    return recorder


def _started(part: str, value: _T | None) -> _T:
    if value is None:
        raise StackError(f"the local stack is not started (no {part})")
    return value


@pytest.fixture(scope="session")
def kube_client(request: pytest.FixtureRequest) -> ApiClient:
    """A ``kubernetes.client.ApiClient`` configured for the target's Kubernetes API."""
    if settings_of(request.config).target_kind == "cluster":
        cluster: ClusterTarget = request.getfixturevalue("cluster_target")
        return cluster.api_client
    stack: LocalStack = request.getfixturevalue("local_stack")
    return _started("Kubernetes API client", stack.api_client)


@pytest.fixture(scope="session")
def applier(request: pytest.FixtureRequest) -> Applier:
    """An ``Applier`` (create/apply/replace/delete manifests like kubectl) for the target."""
    if settings_of(request.config).target_kind == "cluster":
        cluster: ClusterTarget = request.getfixturevalue("cluster_target")
        return cluster.applier
    stack: LocalStack = request.getfixturevalue("local_stack")
    return _started("applier", stack.applier)


@pytest.fixture(scope="session")
def proxy_url(target: Target) -> str:
    """Base URL of the proxy under test."""
    return target.proxy_url


@pytest.fixture(scope="session")
def traefik(local_stack: LocalStack) -> TraefikProcess:
    """The ``harness.traefik.process.TraefikProcess`` of the local target (API, routers, log)."""
    return local_stack.running_traefik()


@pytest.fixture
def proxy_client(proxy_url: str) -> Iterator[httpx.Client]:
    """An httpx client for single probes at the proxy (no environment proxies in between)."""
    with httpx.Client(base_url=proxy_url, timeout=5.0, trust_env=False) as client:
        yield client
