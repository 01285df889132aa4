"""The real ``kubectl`` against the local Kubernetes API: the tutorial's workflow end to end.

kubectl (Debian's ``kubernetes-client``, 1.32) applies the tutorial-shaped cheese Deployment,
Service and Ingress with validation on (OpenAPI v3 and ``fieldValidation=Strict``), waits with
``kubectl rollout status``, prints tables, watches pods, scales, describes and deletes, and
creates objects with the imperative ``kubectl create <kind>`` (sent as protobuf). Nothing
runs pods here: a stand-in node agent marks them Running and Ready through the API (a binding,
then a status update) and finishes the ones being deleted, as the embedded cluster's node
agent does (``harness/cluster/node.py``, with real processes: ``tests/test_cluster.py``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness.kubeapi.access import AccessTable
from harness.kubeapi.server import KubeAPIServer

KUBECTL = shutil.which("kubectl")
TIMEOUT = 60.0
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def cheese(name: str, version: str = "v0.0.1", *, extra: dict[str, Any] | None = None) -> str:
    """The tutorial's cheese Deployment and Service (its ``cheese-deployments.yaml`` and
    ``cheese-services.yaml``, in apps/v1)."""
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "cheese", "cheese": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "cheese", "task": name}},
            "template": {
                "metadata": {"labels": {"app": "cheese", "task": name, "version": version}},
                "spec": {
                    "containers": [
                        {
                            "name": "cheese",
                            "image": "traefik/whoami",
                            "env": [{"name": "WHOAMI_NAME", "value": name}],
                            "resources": {"requests": {"cpu": "100m", "memory": "50Mi"},
                                          "limits": {"cpu": "100m", "memory": "50Mi"}},
                            "ports": [{"containerPort": 80}],
                        }
                    ]
                },
            },
        },
    }  # fmt: skip
    deployment["spec"].update(extra or {})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "ports": [{"name": "http", "targetPort": 80, "port": 80}],
            "selector": {"app": "cheese", "task": name},
        },
    }
    return yaml.safe_dump_all([deployment, service])


INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: cheese
spec:
  rules:
  - host: cheddar.minikube
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: cheddar, port: {name: http}}
"""


class Kubectl:
    """kubectl with its own kubeconfig and cache folder, pointed at one local API."""

    def __init__(self, server: KubeAPIServer, home: Path, token: str = "harness") -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server.url}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [
                {"name": "local", "context": {"cluster": "local", "user": "user",
                                              "namespace": "default"}}
            ],
            "current-context": "local",
        }  # fmt: skip
        self.kubeconfig = home / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
                    "KUBECONFIG": str(self.kubeconfig)}  # fmt: skip

    def command(self, *args: str) -> list[str]:
        assert KUBECTL is not None
        return [KUBECTL, f"--cache-dir={self.home / 'cache'}", *args]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=TIMEOUT,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout


class NodeAgent:
    """Stands in for the node agent: binds and readies pending pods, removes terminating ones
    (with grace 0), through the API with the official client, until stopped."""

    def __init__(self, server: KubeAPIServer) -> None:
        self.api = client.ApiClient(client.Configuration(host=server.url))
        self.core = client.CoreV1Api(self.api)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-node-agent", daemon=True)
        self.started = 0

    def __enter__(self) -> NodeAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        self.api.close()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.step()

    def step(self) -> None:
        for pod in self.core.list_namespaced_pod("default").items:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp:
                self.core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
            elif pod.status.phase == "Pending":
                self.start(name)

    def start(self, name: str) -> None:
        self.started += 1
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                   "target": {"kind": "Node", "name": "local"}}  # fmt: skip
        self.core.create_namespaced_pod_binding(name, "default", binding, _preload_content=False)
        pod = self.core.read_namespaced_pod(name, "default", _preload_content=False)
        body = json.loads(pod.data)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["status"].update(
            phase="Running",
            podIP=f"127.0.1.{self.started % 250 + 1}",
            conditions=[{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            containerStatuses=[{"name": "cheese", "image": "traefik/whoami", "imageID": "",
                                "ready": True, "restartCount": 0,
                                "state": {"running": {"startedAt": now}}}],
        )  # fmt: skip
        self.core.replace_namespaced_pod_status(name, "default", body, _preload_content=False)


@pytest.fixture(autouse=True)
def _no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as srv:
        yield srv


@pytest.fixture
def kubectl(server: KubeAPIServer, tmp_path: Path) -> Kubectl:
    return Kubectl(server, tmp_path / "kube")


def rollout(kubectl: Kubectl, name: str) -> str:
    return kubectl.ok("rollout", "status", f"deployment/{name}", f"--timeout={int(TIMEOUT)}s")


def test_tutorial_objects_apply_and_roll_out(kubectl: Kubectl, server: KubeAPIServer) -> None:
    applied = kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar") + "---\n" + INGRESS)
    assert applied.splitlines() == [
        "deployment.apps/cheddar created",
        "service/cheddar created",
        "ingress.networking.k8s.io/cheese created",
    ]
    with NodeAgent(server):
        assert 'deployment "cheddar" successfully rolled out' in rollout(kubectl, "cheddar")
    printed = kubectl.ok("get", "deploy,rs,pods,svc,ing").splitlines()
    assert re.fullmatch(r"NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE", printed[0])
    assert re.fullmatch(r"deployment.apps/cheddar\s+2/2\s+2\s+2\s+\d+s", printed[1])
    assert re.fullmatch(r"NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE", printed[3])
    assert re.fullmatch(r"replicaset.apps/cheddar-\w+\s+2\s+2\s+2\s+\d+s", printed[4])
    pods = [line for line in printed if line.startswith("pod/")]
    assert len(pods) == 2
    assert all(re.fullmatch(r"pod/cheddar-\w+-\w{5}\s+1/1\s+Running\s+0\s+\d+s", p) for p in pods)
    service = r"service/cheddar\s+ClusterIP\s+10\.96\.\d+\.\d+\s+<none>\s+80/TCP\s+\d+s"
    assert any(re.fullmatch(service, line) for line in printed)
    ingress = r"ingress.networking.k8s.io/cheese\s+<none>\s+cheddar.minikube\s+80\s+\d+s"
    assert any(re.fullmatch(ingress, line) for line in printed)
    # Re-applying the same files changes nothing, as on a cluster.
    again = kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar"))
    assert again.splitlines() == ["deployment.apps/cheddar unchanged", "service/cheddar unchanged"]


def test_changed_template_rolls_out_a_new_replicaset(
    kubectl: Kubectl, server: KubeAPIServer
) -> None:
    with NodeAgent(server):
        kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar"))
        rollout(kubectl, "cheddar")
        first = json.loads(kubectl.ok("get", "rs", "-o", "json"))["items"]
        assert len(first) == 1
        configured = kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar", "v0.0.2"))
        assert "deployment.apps/cheddar configured" in configured
        assert "successfully rolled out" in rollout(kubectl, "cheddar")
    replicasets = {
        rs["metadata"]["name"]: rs
        for rs in json.loads(kubectl.ok("get", "rs", "-o", "json"))["items"]
    }
    old_name = first[0]["metadata"]["name"]
    assert len(replicasets) == 2 and replicasets[old_name]["spec"]["replicas"] == 0
    [new] = [rs for name, rs in replicasets.items() if name != old_name]
    assert new["spec"]["replicas"] == 2 and new["status"]["readyReplicas"] == 2
    assert new["spec"]["template"]["metadata"]["labels"]["version"] == "v0.0.2"
    history = kubectl.ok("rollout", "history", "deployment/cheddar")
    assert re.search(r"^1\s+<none>$", history, re.M) and re.search(r"^2\s+<none>$", history, re.M)
    pods = json.loads(kubectl.ok("get", "pods", "-o", "json"))["items"]
    # As on a cluster, old pods may still be terminating when the rollout counts as done.
    hashes = {
        p["metadata"]["labels"]["pod-template-hash"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }
    assert hashes == {new["metadata"]["labels"]["pod-template-hash"]}
    # Undo brings the first ReplicaSet back as revision 3 (kubectl sends its template as a Go
    # struct encodes it, `creationTimestamp: null` and all: it must still match).
    with NodeAgent(server):
        assert "deployment.apps/cheddar rolled back" in kubectl.ok(
            "rollout", "undo", "deployment/cheddar"
        )
        rollout(kubectl, "cheddar")
    after_undo = json.loads(kubectl.ok("get", "rs", old_name, "-o", "json"))
    assert after_undo["spec"]["replicas"] == 2
    assert after_undo["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len(json.loads(kubectl.ok("get", "rs", "-o", "json"))["items"]) == 2


def test_apply_validates_fields_like_a_real_server(kubectl: Kubectl) -> None:
    bad = cheese("cheddar", extra={"foo": "bar"})
    refused = kubectl.run("apply", "-f", "-", stdin=bad)
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.foo"' in refused.stderr
    assert "No resources found" in kubectl.run("get", "deploy").stderr
    warned = kubectl.run("apply", "--validate=warn", "-f", "-", stdin=bad)
    assert warned.returncode == 0 and "deployment.apps/cheddar created" in warned.stdout
    assert 'Warning: unknown field "spec.foo"' in warned.stderr
    invalid = kubectl.run("apply", "-f", "-", stdin=cheese("gouda", extra={"replicas": -1}))
    assert invalid.returncode == 1
    assert 'The Deployment "gouda" is invalid: spec.replicas: Invalid value: -1' in invalid.stderr


def test_switching_to_recreate_drops_rolling_update(kubectl: Kubectl) -> None:
    # The OpenAPI marks spec.strategy `retainKeys`, so kubectl's patch says which keys to keep.
    kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar"))
    recreate = cheese("cheddar", extra={"strategy": {"type": "Recreate"}})
    assert "deployment.apps/cheddar configured" in kubectl.ok("apply", "-f", "-", stdin=recreate)
    strategy = kubectl.ok("get", "deploy", "cheddar", "-o", "jsonpath={.spec.strategy}")
    assert json.loads(strategy) == {"type": "Recreate"}


def test_get_pods_watch_follows_the_pods(kubectl: Kubectl, server: KubeAPIServer) -> None:
    lines: queue.Queue[str] = queue.Queue()
    watcher = subprocess.Popen(
        kubectl.command("get", "pods", "-w"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=kubectl.env,
    )
    assert watcher.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or []],
                              daemon=True)  # fmt: skip
    reader.start()

    def read_until(pattern: str) -> list[str]:
        seen: list[str] = []
        while not any(re.search(pattern, line) for line in seen):
            seen.append(lines.get(timeout=TIMEOUT))
        return seen

    try:
        kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar"))
        pending = read_until(r"Pending") + read_until(r"Pending")
        assert [re.split(r"\s+", line)[1:3] for line in pending if "Pending" in line] == [
            ["0/1", "Pending"],
            ["0/1", "Pending"],
        ]
        agent = NodeAgent(server)
        try:
            agent.step()
        finally:
            agent.api.close()
        running = read_until(r"1/1\s+Running")
        assert re.match(r"cheddar-\w+-\w{5}\s+1/1\s+Running", running[-1])
    finally:
        watcher.terminate()
        watcher.wait(TIMEOUT)
    reader.join(TIMEOUT)


def test_scale_describe_and_delete(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=cheese("cheddar"))
    assert kubectl.ok("scale", "deployment/cheddar", "--replicas=3").strip() == (
        "deployment.apps/cheddar scaled"
    )
    described = kubectl.ok("describe", "deployment", "cheddar")
    assert re.search(r"Replicas:\s+3 desired \| 3 updated \| 3 total \| 0 available", described)
    assert re.search(r"RollingUpdateStrategy:\s+25% max unavailable, 25% max surge", described)
    assert re.search(
        r"ScalingReplicaSet\s+.*Scaled up replica set cheddar-\w+ from 2 to 3", described
    )
    assert "NewReplicaSet:   cheddar-" in described
    pod_described = kubectl.ok("describe", "pods")
    assert (
        "Status:           Pending" in pod_described
        and "Controlled By:    ReplicaSet/cheddar-" in pod_described
    )
    deleted = kubectl.ok("delete", "deployment", "cheddar")
    assert deleted.strip() == 'deployment.apps "cheddar" deleted'
    leftover = kubectl.run("get", "deploy,rs,pods")
    assert (
        leftover.returncode == 0 and "No resources found in default namespace." in leftover.stderr
    )


def test_auth_can_i_asks_the_server(kubectl: Kubectl) -> None:
    # kubectl sends its SelfSubjectAccessReview as protobuf; without a table all is allowed.
    answer = kubectl.run("auth", "can-i", "create", "deployments", "-n", "cheese")
    assert (answer.returncode, answer.stdout.strip()) == (0, "yes")


@pytest.fixture
def restricted(tmp_path: Path) -> Iterator[Kubectl]:
    table = AccessTable.from_mapping(
        {"viewer-token": {"user": "viewer", "rules": [{"verbs": ["list"], "apiGroups": [""],
                                                      "resources": ["pods"]}]}}
    )  # fmt: skip
    with KubeAPIServer(access=table) as srv:
        yield Kubectl(srv, tmp_path / "viewer", token="viewer-token")


def test_kubectl_shows_the_servers_forbidden(restricted: Kubectl) -> None:
    # kubectl sends a kubeconfig's credentials to https servers only (clientcmd drops them for
    # http), so over the local API's http it is system:anonymous, who has no rules.
    refused = restricted.run("get", "pods")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "system:anonymous" cannot list '
        'resource "pods" in API group "" in the namespace "default"'
    )


# kubectl's typed `create` generators send protobuf (`-f`, `replace`, `apply`, `expose`, `run`
# send JSON): (the command's arguments, the object they make).
IMPERATIVE_CREATES = [
    (("namespace", "shop"), "namespace/shop"),
    (("configmap", "cm", "--from-literal=a=b", "--from-literal=empty="), "configmap/cm"),
    (("secret", "generic", "s", "--from-literal=a=b", "--type=Opaque"), "secret/s"),
    (("serviceaccount", "sa"), "serviceaccount/sa"),
    (("deployment", "web", "--image=traefik/whoami"), "deployment/web"),
    (("deployment", "w2", "--image=traefik/whoami", "--replicas=3", "--port=80", "--",
      "/bin/sh", "-c", "echo"), "deployment/w2"),
    (("service", "clusterip", "web", "--tcp=80:80"), "service/web"),
    (("service", "nodeport", "np", "--tcp=80:8080"), "service/np"),
    (("ingress", "ing", "--rule=a.test/=web:80"), "ingress/ing"),
    (("ingress", "i2", "--class=traefik", "--rule=b.test/api*=web:http,tls=sec",
      "--default-backend=web:80", "--annotation=a=b"), "ingress/i2"),
    (("role", "r", "--verb=get,list", "--resource=pods,deployments.apps"), "role/r"),
    (("rolebinding", "rb", "--role=r", "--user=u", "--serviceaccount=default:sa"),
     "rolebinding/rb"),
    (("clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz"), "clusterrole/cr"),
    (("clusterrolebinding", "crb", "--clusterrole=cr", "--group=g"), "clusterrolebinding/crb"),
]  # fmt: skip


def _without_server_set(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    for name in ("uid", "resourceVersion", "creationTimestamp"):
        obj["metadata"].pop(name, None)
    for name in ("clusterIP", "clusterIPs"):  # allocated at random
        obj.get("spec", {}).pop(name, None)
    for port in obj.get("spec", {}).get("ports", []):
        port.pop("nodePort", None)
    return obj


def _contained(part: Any, whole: Any, where: str = "") -> list[str]:
    """Where ``part`` is not found in ``whole`` (dicts by key, lists element by element)."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return [miss for key, value in part.items()
                for miss in _contained(value, whole.get(key), f"{where}.{key}")]  # fmt: skip
    if isinstance(part, list) and isinstance(whole, list) and len(part) == len(whole):
        return [miss for i, (p, w) in enumerate(zip(part, whole, strict=True))
                for miss in _contained(p, w, f"{where}[{i}]")]  # fmt: skip
    return [] if part == whole else [f"{where}: {part!r} != {whole!r}"]


@pytest.fixture
def quiet_kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    """kubectl against an API without the workload controllers: what is stored stays as created."""
    with KubeAPIServer(workload_controllers=False) as srv:
        yield Kubectl(srv, tmp_path / "quiet")


@pytest.mark.parametrize(
    ("args", "ref"), IMPERATIVE_CREATES, ids=[ref for _, ref in IMPERATIVE_CREATES]
)
def test_imperative_create_stores_kubectls_own_object(
    quiet_kubectl: Kubectl, args: tuple[str, ...], ref: str
) -> None:
    kubectl = quiet_kubectl

    def create(*flags: str) -> list[str]:
        words = list(args)
        cut = words.index("--") if "--" in words else len(words)
        return ["create", *words[:cut], *flags, *words[cut:]]

    # kubectl's own JSON of the object, and that JSON created on the server in a dry run (the
    # server's own answer: `-f` sends and prints JSON as is): the protobuf body must store the
    # same object as the JSON one.
    printed = json.loads(kubectl.ok(*create("--dry-run=client", "-o", "json")))
    as_json = kubectl.ok("create", "-f", "-", "--dry-run=server", "-o", "json",
                         stdin=json.dumps(printed))  # fmt: skip
    sent = kubectl.run(*create("-v=8"))
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert "Content-Type: application/vnd.kubernetes.protobuf" in sent.stderr
    stored = json.loads(kubectl.ok("get", ref, "-o", "json"))
    assert _without_server_set(stored) == _without_server_set(json.loads(as_json))
    # Everything kubectl printed is stored, but the fields the server sets on create.
    printed["metadata"].pop("creationTimestamp")
    if ref.startswith("deployment/"):
        printed.pop("status")  # a kind with a status subresource: reset on create
    assert _contained(printed, stored) == []
