"""Settings: the options as the plugin uses them, and the scenarios, read once at configure time."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness.errors import ConfigError, HarnessError
from harness.plugin.options import (
    as_bool,
    option_value,
    option_values,
    positive_float,
    positive_or_zero,
    whole,
)

DEFAULT_MANIFESTS = Path(__file__).resolve().parents[2] / "suites" / "manifests"
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
    #: harness.checks.gaps.GapSettings (the gap suite's options).
    gaps: Any = None

    @property
    def target_kind(self) -> str:
        return "external" if self.proxy_url else "local"


SETTINGS = pytest.StashKey[HarnessSettings]()
RESULTS = pytest.StashKey[Any]()
ACTIVE_STACK = pytest.StashKey[Any]()


def _read_settings(config: pytest.Config) -> HarnessSettings:
    from harness.intent.dialects import load_intent, load_scenarios
    from harness.targets.base import parse_backend_map

    proxy_url = option_value(config, "harness_proxy_url")
    manifests = option_values(config, "harness_manifests")
    report_dir = option_value(config, "harness_report_dir")
    from harness.checks.weights import WeightSettings

    weights = WeightSettings(
        run_alpha=positive_float(config, "harness_run_alpha"),
        power=positive_float(config, "harness_power"),
        min_deviation=positive_float(config, "harness_min_deviation"),
        max_requests=whole(config, "harness_max_requests"),
        mode=(option_value(config, "harness_weights_mode") or "fixed"),  # type: ignore[arg-type]
        max_error_rate=float(positive_or_zero(config, "harness_max_error_rate")),
    )
    from harness.results.baseline import Thresholds

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
        backend_instances=whole(config, "harness_backend_instances"),
        proxy_url=proxy_url,
        manifests=manifests,
        backend_map=parse_backend_map(option_values(config, "harness_backend_map")),
        probe_rounds=whole(config, "harness_probe_rounds"),
        strict_prefix_matching=as_bool(config, "harness_strict_prefix_matching"),
        report_dir=Path(report_dir) if report_dir else None,
        run_id=os.environ.get("HARNESS_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    )
    from harness.checks.gaps import GapSettings, parse_budgets
    from harness.checks.strategies import DEFAULT_BUDGETS

    settings.gaps = GapSettings(
        rate=positive_float(config, "harness_gap_rate"),
        repeats=whole(config, "harness_gap_repeats"),
        max_lag_s=positive_float(config, "harness_gap_max_lag_ms") / 1000,
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
    from harness.checks.weights import plan_for
    from harness.plugin.cases import weighted_cases

    cases = weighted_cases(settings)
    for name, route_id in cases:
        plan_for(settings.scenarios[name].route(route_id), weights, n_checks=len(cases))
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "harness_kind(kind): what a suite checks (a harness.checks.evidence.Kind value)",
    )
    try:
        settings = _read_settings(config)
    except HarnessError as exc:
        raise pytest.UsageError(f"ingress-harness: {exc}") from None
    config.stash[SETTINGS] = settings
    if not hasattr(config, "workerinput"):
        from harness.results.document import RunResults

        results = RunResults(
            run_id=settings.run_id, harness_version=__version__, started=time.time()
        )
        config.stash[RESULTS] = results
        from harness.plugin.collector import COLLECTOR, ResultsCollector

        config.pluginmanager.register(ResultsCollector(config, settings, results), COLLECTOR)


def settings_of(config: pytest.Config) -> HarnessSettings:
    return config.stash[SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from harness.traefik.process import find_traefik_binary, traefik_version

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
