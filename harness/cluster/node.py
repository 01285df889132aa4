"""The embedded cluster's node agent: a Node object, and the kubelet's part for its pods.

It registers one Node (Ready, InternalIP 127.0.0.1), binds every unscheduled pod to it (the
``pods/binding`` subresource, as the scheduler does), gives each pod its own loopback address
(the pod IP, from the node's ``podCIDR`` in 127.0.0.0/8; an address is taken only when every
port the pod binds is free on it) and runs its containers as local processes
(``harness.cluster.images``). It reports the pod status a kubelet reports: phase, the
PodScheduled/Initialized/ContainersReady/Ready conditions, podIP, and per container its state
(waiting with the reason, running, terminated with the exit code), ``ready``, ``started`` and
``restartCount``. A container that exits is restarted with the kubelet's back-off (10 s,
doubling, at most 5 min; ``CrashLoopBackOff`` meanwhile). Readiness is the container's
``readinessProbe`` (httpGet or tcpSocket, with its delays, period, timeout and thresholds) or,
without one, its process being up. A pod marked for deletion gets SIGTERM, SIGKILL after its
grace period, and is then removed from the API (``gracePeriodSeconds=0``, as the kubelet does).

Level-triggered like the workload controllers: each pass reconciles every pod against the
processes it runs, in-process against the store; a pass runs after every change and at least
every ``resync`` seconds (probes, restarts, grace periods). Every process is started by the
agent's own thread (``procs.spawn`` ties a child's life to the thread that forked it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import platform
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from harness.cluster.images import (
    ContainerPlan,
    ContainerRefused,
    PodContext,
    Running,
    plan_container,
)
from harness.kubeapi.server import KUBERNETES_VERSION
from harness.kubeapi.store import Kind, ListOptions, ObjectStore, StatusError, clone

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

NODE_NAME: Final = "ingress-harness-node"
NODE_ADDRESS: Final = "127.0.0.1"
BACKOFF_FIRST: Final = 10.0
BACKOFF_MAX: Final = 300.0
BACKOFF_RESET: Final = 600.0
_ARCHITECTURE: Final = {"x86_64": "amd64", "aarch64": "arm64"}.get(
    platform.machine(), platform.machine()
)
_KILL_WAIT: Final = 5.0  # after SIGKILL, how long a process may take to be reaped


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_pod_cidr() -> str:
    """A /24 in 127.0.0.0/8 away from the addresses the rest of the harness uses (127.0.x.y),
    picked at random so that two embedded clusters on one machine rarely share one."""
    rng = random.SystemRandom()
    return f"127.{rng.randint(100, 199)}.{rng.randint(0, 255)}.0/24"


def port_free(ip: str, port: int) -> bool:
    """True when a TCP listener could bind ``ip:port`` now (False: in use). PermissionError
    when this user may not bind it at all (a port below 1024 without the privilege)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except PermissionError:
            raise
        except OSError:
            return False
    return True


def exit_code(returncode: int) -> int:
    """A process's status as a container runtime reports it: 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Probe:
    """A container's readinessProbe as the kubelet runs it."""

    spec: Obj
    next_at: float
    successes: int = 0
    failures: int = 0
    ready: bool = False


@dataclass
class ContainerState:
    """One container of a pod on this node: its plan, process and what the status shows."""

    spec: Obj
    plan: ContainerPlan | None
    refused: ContainerRefused | None = None
    refused_since: float = field(default_factory=time.monotonic)
    running: Running | None = None
    started_at: str = ""
    started_mono: float = 0.0
    restart_count: int = 0
    last_terminated: Obj | None = None
    next_start: float = 0.0
    backoff: float = 0.0  # the next restart's delay
    delay: float = 0.0  # the current one
    probe: Probe | None = None

    @property
    def name(self) -> str:
        return str(self.spec.get("name"))

    def up(self) -> bool:
        return self.running is not None and self.running.exit_code() is None

    def ready(self) -> bool:
        if not self.up():
            return False
        return self.probe.ready if self.probe is not None else True


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    ip: str
    workdir: Path
    containers: list[ContainerState]
    start_time: str = field(default_factory=_now)
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    terminating_since: float | None = None
    kill_at: float | None = None

    def processes(self) -> list[Running]:
        return [c.running for c in self.containers if c.running is not None]


class NodeAgent:
    """The node of the embedded cluster; ``start()`` runs it in a thread until ``stop()``."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        api_url: str,
        workdir: Path,
        traefik_binary: Path,
        traefik_version: str,
        pod_cidr: str | None = None,
        resync: float = 0.2,
    ) -> None:
        kinds = {(k.group, k.plural): k for k in store.kinds}
        self.store = store
        self.api_url = api_url
        self.workdir = workdir
        self.traefik_binary = traefik_binary
        self.traefik_version = traefik_version
        self.pod_cidr = ipaddress.ip_network(pod_cidr or random_pod_cidr())
        self.resync = resync
        self.pods: Kind = kinds[("", "pods")]
        self.nodes: Kind = kinds[("", "nodes")]
        self.events: Kind = kinds[("", "events")]
        self._pods: dict[str, PodState] = {}
        self._no_address: set[str] = set()  # pods told once that no address was free
        self._http = httpx.Client(trust_env=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._thread = threading.Thread(target=self._run, name="node-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loop, then every container (SIGTERM, SIGKILL after ``timeout`` at most)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self.store.wake_watches()
            thread.join(timeout)
        self._stop_all(timeout)
        self._http.close()

    def _run(self) -> None:
        seen = -1
        try:
            while not self._stop.is_set():
                try:
                    self.sync()
                except Exception:  # a bug here must not end the node silently
                    logger.exception("embedded cluster: node agent failed a pass")
                seen = self.store.wait_for_change(seen, self.resync, self._stop)
        finally:
            # The containers were started by this thread and die with it (PDEATHSIG): stop
            # them here, gracefully, before that happens.
            self._stop_all(5.0)

    # -- the Node -------------------------------------------------------------------------

    def _register_node(self) -> None:
        now = _now()
        node = {
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
            "spec": {"podCIDR": str(self.pod_cidr), "podCIDRs": [str(self.pod_cidr)]},
        }
        with contextlib.suppress(StatusError):
            self.store.create(self.nodes, "", node)
        current = self.store.get(self.nodes, "", NODE_NAME)
        current["status"] = {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                 "lastTransitionTime": now},
            ],
            "addresses": [{"type": "InternalIP", "address": NODE_ADDRESS},
                          {"type": "Hostname", "address": NODE_NAME}],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": KUBERNETES_VERSION[2],
                         "containerRuntimeVersion": "ingress-harness://local-processes",
                         "operatingSystem": "linux", "architecture": _ARCHITECTURE,
                         "osImage": "ingress-harness embedded cluster", "kernelVersion": "",
                         "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }  # fmt: skip
        self.store.replace(self.nodes, "", NODE_NAME, current, subresource="status")

    # -- one pass -------------------------------------------------------------------------

    def sync(self) -> None:
        pods = self.store.list_objects(self.pods, "", ListOptions())["items"]
        present = set()
        for pod in pods:
            meta = pod["metadata"]
            present.add(meta["uid"])
            try:
                self._sync_pod(pod)
            except StatusError as exc:
                # A pod deleted or changed meanwhile is seen again on the next pass.
                if exc.code not in (404, 409):
                    raise
        for uid in [uid for uid in self._pods if uid not in present]:
            # Deleted without waiting for this node (grace 0): stop what it ran.
            self._kill_pod(self._pods.pop(uid))

    def _sync_pod(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            # The default scheduler's part: pods that name another scheduler are not ours.
            if not meta.get("deletionTimestamp") and spec.get("schedulerName") in (
                None,
                "default-scheduler",
            ):
                self._bind(pod)
            return
        if node != NODE_NAME:
            return
        state = self._pods.get(meta["uid"])
        if meta.get("deletionTimestamp"):
            self._terminate(pod, state)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if state is None:
            state = self._admit(pod)
            if state is None:
                return
        now = time.monotonic()
        for container in state.containers:
            self._sync_container(pod, state, container, now)
        self._write_status(pod, state)

    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        self.store.bind_pod(meta["namespace"], meta["name"],
                            {"target": {"kind": "Node", "name": NODE_NAME}})  # fmt: skip
        self._event(pod, "Normal", "Scheduled",
                    f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE_NAME}",
                    "default-scheduler")  # fmt: skip

    def _admit(self, pod: Obj) -> PodState | None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        context = PodContext(
            name=meta["name"],
            api_url=self.api_url,
            # The ServiceAccount's token, as a projected volume would give it (this API runs
            # without an access table: every token may do everything).
            token=secrets.token_urlsafe(32),
            traefik_binary=self.traefik_binary,
            traefik_version=self.traefik_version,
        )
        containers: list[ContainerState] = []
        for container in spec.get("containers") or []:
            try:
                plan = plan_container(pod, container, context)
                containers.append(ContainerState(spec=container, plan=plan))
            except ContainerRefused as refused:
                containers.append(ContainerState(spec=container, plan=None, refused=refused))
                if refused.reason == "ErrImagePull":
                    self._event(pod, "Warning", "Failed",
                                f"Failed to pull image {container.get('image')!r}: "
                                f"{refused.message}", "kubelet")  # fmt: skip
                else:
                    self._event(pod, "Warning", "Failed", f"Error: {refused.message}", "kubelet")
        if spec.get("initContainers"):
            for container in containers:
                container.plan = None
                container.refused = ContainerRefused(
                    "CreateContainerConfigError",
                    "init containers are not run by the embedded cluster",
                )
        ports = {port for c in containers if c.plan is not None for port in c.plan.ports}
        try:
            ip = self._allocate_ip(ports)
        except PermissionError as exc:
            for container in containers:
                if container.plan is not None:
                    container.plan = None
                    container.refused = ContainerRefused(
                        "RunContainerError",
                        f"this user may not bind the pod's ports {sorted(ports)} ({exc}): ports "
                        "below 1024 need root or a lower net.ipv4.ip_unprivileged_port_start",
                    )
            ip = self._allocate_ip(set())
        if ip is None:
            if meta["uid"] in self._no_address:
                return None
            self._no_address.add(meta["uid"])
            self._event(pod, "Warning", "FailedCreatePodSandBox",
                        f"no address of {self.pod_cidr} has the ports {sorted(ports)} free",
                        "kubelet")  # fmt: skip
            return None
        safe = f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        state = PodState(meta["uid"], meta["namespace"], meta["name"], ip,
                         self.workdir / "pods" / safe, containers)  # fmt: skip
        self._pods[meta["uid"]] = state
        return state

    def _allocate_ip(self, ports: set[int]) -> str | None:
        taken = {pod.ip for pod in self._pods.values()}
        hosts = list(self.pod_cidr.hosts())[1:]  # .1 is the node's (the gateway) on a cluster
        for address in hosts:
            ip = str(address)
            if ip not in taken and all(port_free(ip, port) for port in ports):
                return ip
        return None

    def _sync_container(
        self, pod: Obj, state: PodState, container: ContainerState, now: float
    ) -> None:
        plan = container.plan
        if plan is None:
            return
        running = container.running
        if running is not None:
            code = running.exit_code()
            if code is None:
                self._probe(state, container, now)
                return
            running.kill()  # releases its pipes and reader
            container.running = None
            container.last_terminated = {
                "exitCode": exit_code(code),
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": container.started_at,
                "finishedAt": _now(),
            }
            if code != 0 and (output := running.output().strip()):
                # terminationMessagePolicy FallbackToLogsOnError: the end of its output.
                container.last_terminated["message"] = output[-2048:]
            # The kubelet restarts at once the first time, then backs off (10 s, doubling up
            # to 5 min), forgetting the back-off after 10 minutes of running well.
            if now - container.started_mono > BACKOFF_RESET:
                container.backoff = 0.0
            container.delay = container.backoff
            container.next_start = now + container.delay
            if container.delay:
                self._event(pod, "Warning", "BackOff",
                            f"Back-off restarting failed container {container.name} in pod "
                            f"{state.name}", "kubelet")  # fmt: skip
            container.backoff = min(BACKOFF_MAX, container.backoff * 2 or BACKOFF_FIRST)
            container.probe = None
            return
        if now < container.next_start:
            return
        try:
            container.running = plan.start(state.ip, state.workdir)
        except (OSError, ContainerRefused) as exc:
            refused = exc if isinstance(exc, ContainerRefused) else None
            container.refused = refused or ContainerRefused(
                "RunContainerError", f"cannot start {container.name}: {exc}"
            )
            container.plan = None
            self._event(pod, "Warning", "Failed", f"Error: {container.refused.message}",
                        "kubelet")  # fmt: skip
            return
        if container.last_terminated is not None:
            container.restart_count += 1  # counted when restarted, as the kubelet does
        container.started_at = _now()
        container.started_mono = now
        probe = container.spec.get("readinessProbe")
        if probe:
            delay = float(probe.get("initialDelaySeconds", 0) or 0)
            container.probe = Probe(spec=probe, next_at=now + delay)
        self._event(pod, "Normal", "Started", f"Started container {container.name}", "kubelet")

    def _probe(self, state: PodState, container: ContainerState, now: float) -> None:
        probe = container.probe
        if probe is None or now < probe.next_at:
            return
        spec = probe.spec
        probe.next_at = now + float(spec.get("periodSeconds", 10) or 10)
        ok = self._run_probe(state, container, spec)
        if ok:
            probe.successes += 1
            probe.failures = 0
            if probe.successes >= int(spec.get("successThreshold", 1) or 1):
                probe.ready = True
        else:
            probe.failures += 1
            probe.successes = 0
            if probe.failures >= int(spec.get("failureThreshold", 3) or 3):
                probe.ready = False

    def _run_probe(self, state: PodState, container: ContainerState, spec: Obj) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1) or 1)
        action = spec.get("httpGet") or spec.get("tcpSocket") or {}
        port = self._probe_port(container.spec, action.get("port"))
        if port is None:
            return False
        if "tcpSocket" in spec:
            try:
                with socket.create_connection((state.ip, port), timeout=timeout):
                    return True
            except OSError:
                return False
        path = str(action.get("path") or "/")
        headers = {h.get("name", ""): h.get("value", "") for h in action.get("httpHeaders") or []}
        try:
            response = self._http.get(
                f"http://{state.ip}:{port}{path}", headers=headers, timeout=timeout
            )
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400

    @staticmethod
    def _probe_port(container: Obj, port: Any) -> int | None:
        if isinstance(port, int):
            return port
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        return int(port) if isinstance(port, str) and port.isdigit() else None

    # -- status ---------------------------------------------------------------------------

    def _container_status(self, container: ContainerState) -> Obj:
        status: Obj = {
            "name": container.name,
            "image": container.spec.get("image", ""),
            "imageID": container.plan.image_id if container.plan is not None else "",
            "ready": container.ready(),
            "started": container.up(),
            "restartCount": container.restart_count,
        }
        if container.refused is not None:
            reason, message = container.refused.reason, container.refused.message
            if (
                reason == "ErrImagePull"
                and time.monotonic() - container.refused_since >= BACKOFF_FIRST
            ):
                reason, message = (
                    "ImagePullBackOff",
                    (
                        f'Back-off pulling image "{container.spec.get("image", "")}": '
                        f"ErrImagePull: {message}"
                    ),
                )
            status["state"] = {"waiting": {"reason": reason, "message": message}}
        elif container.running is not None:
            status["containerID"] = f"process://{container.running.popen.pid}"
            status["state"] = {"running": {"startedAt": container.started_at}}
        elif container.last_terminated is not None and not container.delay:
            status["state"] = {"terminated": container.last_terminated}  # restarted next pass
        elif container.last_terminated is not None:
            status["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {container.delay:.0f}s restarting failed container="
                    f"{container.name} pod={self._pod_label(container)}",
                }
            }
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        status["lastState"] = (
            {"terminated": container.last_terminated} if container.last_terminated else {}
        )
        return status

    def _pod_label(self, container: ContainerState) -> str:
        for pod in self._pods.values():
            if container in pod.containers:
                return f"{pod.name}_{pod.namespace}({pod.uid})"
        return ""

    def _condition(self, state: PodState, kind: str, ok: bool, unready: list[str]) -> Obj:
        value = "True" if ok else "False"
        previous = state.transitions.get(kind)
        if previous is None or previous[0] != value:
            state.transitions[kind] = (value, _now())
        condition: Obj = {"type": kind, "status": value, "lastProbeTime": None,
                          "lastTransitionTime": state.transitions[kind][1]}  # fmt: skip
        if not ok:
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
        return condition

    def _write_status(self, pod: Obj, state: PodState) -> None:
        old = pod.get("status") or {}
        statuses = [self._container_status(c) for c in state.containers]
        unready = [c.name for c in state.containers if not c.ready()]
        ever_started = any(
            c.running is not None or c.last_terminated is not None for c in state.containers
        )
        scheduled = [c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"]
        conditions = [
            self._condition(state, "PodReadyToStartContainers", True, []),
            self._condition(state, "Initialized", True, []),
            self._condition(state, "Ready", not unready, unready),
            self._condition(state, "ContainersReady", not unready, unready),
            *scheduled,
        ]
        status: Obj = {
            "phase": "Running" if ever_started else "Pending",
            "conditions": conditions,
            "hostIP": NODE_ADDRESS,
            "hostIPs": [{"ip": NODE_ADDRESS}],
            "podIP": state.ip,
            "podIPs": [{"ip": state.ip}],
            "startTime": state.start_time,
            "containerStatuses": statuses,
        }
        if "qosClass" in old:
            status["qosClass"] = old["qosClass"]
        if status == old:
            return
        updated = clone(pod)
        updated["status"] = status
        meta = pod["metadata"]
        self.store.replace(self.pods, meta["namespace"], meta["name"], updated,
                           subresource="status")  # fmt: skip

    # -- deletion -------------------------------------------------------------------------

    def _terminate(self, pod: Obj, state: PodState | None) -> None:
        meta = pod["metadata"]
        now = time.monotonic()
        if state is not None and state.terminating_since is None:
            state.terminating_since = now
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            state.kill_at = now + grace
            for container in state.containers:
                if container.running is not None:
                    self._event(pod, "Normal", "Killing",
                                f"Stopping container {container.name}", "kubelet")  # fmt: skip
                    container.running.terminate()
        if state is not None:
            alive = [r for r in state.processes() if r.exit_code() is None]
            if alive and state.kill_at is not None and now < state.kill_at:
                return
            self._kill_pod(state)
            self._pods.pop(state.uid, None)
        self.store.delete(self.pods, meta["namespace"], meta["name"],
                          options={"gracePeriodSeconds": 0,
                                   "preconditions": {"uid": meta["uid"]}})  # fmt: skip

    @staticmethod
    def _kill_pod(state: PodState) -> None:
        for running in state.processes():
            running.kill()
        for container in state.containers:
            container.running = None

    def _stop_all(self, timeout: float) -> None:
        states = list(self._pods.values())
        self._pods.clear()
        processes = [r for s in states for r in s.processes()]
        for running in processes:
            running.terminate()
        deadline = time.monotonic() + timeout
        for running in processes:
            with contextlib.suppress(Exception):
                running.popen.wait(max(0.0, deadline - time.monotonic()))
        for state in states:
            self._kill_pod(state)
        for running in processes:
            with contextlib.suppress(Exception):
                running.popen.wait(_KILL_WAIT)

    # -- events ---------------------------------------------------------------------------

    def _event(self, pod: Obj, kind: str, reason: str, message: str, component: str) -> None:
        meta = pod["metadata"]
        now = _now()
        with contextlib.suppress(StatusError):
            self.store.create(
                self.events,
                meta["namespace"],
                {
                    "metadata": {"generateName": f"{meta['name']}."},
                    "involvedObject": {"kind": "Pod", "namespace": meta["namespace"],
                                       "name": meta["name"], "uid": meta["uid"],
                                       "apiVersion": "v1"},
                    "reason": reason, "message": message, "type": kind, "count": 1,
                    "source": {"component": component, "host": NODE_NAME},
                    "reportingComponent": component, "firstTimestamp": now,
                    "lastTimestamp": now,
                },
            )  # fmt: skip
