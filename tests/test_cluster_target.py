"""The cluster target against the local Kubernetes API through a kubeconfig: the preflight, the
run's namespace and its cleanup, the backends, the readiness wait, the proxy's discovery, and a
scenario applied and served by the real Traefik watching that API.

Until the embedded cluster runs pods, ``tests/kubelet_standin.py`` does what its node agent and
endpoints controller will: it runs the whoami pods on echo backends and publishes their
EndpointSlices, through the API.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubelet_standin import KubeletStandIn
from suite_runs import run_pytest

from harness.errors import AccessDenied, ClusterError, ConfigError
from harness.intent.dialects import load_intent, load_scenarios
from harness.intent.model import Intent
from harness.kubeapi.access import AccessTable
from harness.kubeapi.server import KubeAPIServer
from harness.plugin.settings import DEFAULT_MANIFESTS
from harness.procs import python_child_env
from harness.targets.apply import Applier
from harness.targets.cluster import (
    BACKEND_LABEL,
    CREATED_ANNOTATION,
    MANAGED_BY_LABEL,
    RUN_LABEL,
    ClusterOptions,
    ClusterTarget,
    cluster_client,
    discover_proxy_url,
    namespace_name,
    plan_backends,
    relocate,
    remove_stale_namespaces,
)
from harness.traefik.process import TraefikProcess, TraefikSettings, find_traefik_binary
from harness.waiting import wait_until

Obj = dict[str, Any]

ADMIN, VIEWER = "admin-token", "viewer-token"
ACCESS = {
    ADMIN: {"user": "admin", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
    # Reads everything and may change Services, nothing else.
    VIEWER: {
        "user": "viewer",
        "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]},
            {"verbs": ["*"], "apiGroups": [""], "resources": ["services"]},
        ],
    },
}
DEFAULT_NAMESPACES = {"default", "kube-system", "kube-public"}

MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {name: cheddar}
spec:
  selector: {app: cheese, task: cheddar}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: stilton}
spec:
  selector: {app: cheese, task: stilton}
  ports: [{name: web, port: 8080, targetPort: 80}]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip}
spec:
  stripPrefix: {prefixes: [/cheddar]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: cheeses
  annotations:
    traefik.ingress.kubernetes.io/router.middlewares: default-strip@kubernetescrd
spec:
  rules:
  - host: cheeses.minikube
    http:
      paths:
      - path: /cheddar
        pathType: Prefix
        backend: {service: {name: cheddar, port: {name: http}}}
  - host: stilton.minikube
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: stilton, port: {number: 8080}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cheddar}
spec:
  selector: {matchLabels: {app: cheese, task: cheddar}}
  template:
    metadata: {labels: {app: cheese, task: cheddar}}
    spec: {containers: [{name: cheese, image: errm/cheese:cheddar}]}
"""


@pytest.fixture(scope="module")
def api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(access=AccessTable.from_mapping(ACCESS)) as server:
        yield server


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server}}],
                "users": [{"name": "someone", "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "someone"}}],
                "current-context": "local",
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def admin_kubeconfig(api: KubeAPIServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kubeconfig(tmp_path_factory.mktemp("kc") / "admin.yaml", api.url, ADMIN)


@pytest.fixture(scope="module")
def admin(api: KubeAPIServer, admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Applier]:  # fmt: skip
    api_client, _ = cluster_client(str(admin_kubeconfig), None)
    yield Applier(api_client, cache_dir=tmp_path_factory.mktemp("admin-cache"))
    api_client.close()


@pytest.fixture(scope="module")
def standin(api: KubeAPIServer) -> Iterator[KubeletStandIn]:
    with KubeletStandIn(api.url, {"cheddar": 2, "stilton": 2}, token=ADMIN) as kubelet:
        yield kubelet


@pytest.fixture(scope="module")
def proxy(api: KubeAPIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Traefik watching the API as a cluster's proxy would (all namespaces)."""
    settings = TraefikSettings(
        kube_endpoint=api.url, binary=find_traefik_binary(), throttle_seconds=0.5, token=ADMIN
    )
    traefik = TraefikProcess(settings, tmp_path_factory.mktemp("traefik"))
    try:
        traefik.start(timeout=30.0)
        yield traefik.proxy_url
    finally:
        traefik.stop()


def cluster_target(kubeconfig: Path, tmp_path: Path, **options: Any) -> ClusterTarget:
    api_client, context = cluster_client(str(kubeconfig), None)
    defaults: dict[str, Any] = {"run_id": "20261201T120000Z", "ready_timeout": 30.0}
    return ClusterTarget(ClusterOptions(**{**defaults, **options}), api_client, tmp_path, context)


def user_intent(tmp_path: Path, text: str = MANIFESTS) -> dict[str, Intent]:
    path = tmp_path / "manifests.yaml"
    path.write_text(text, encoding="utf-8")
    return {"manifests": load_intent([path], legacy="as-written")}


def harness_namespaces(admin: Applier) -> set[str]:
    return {n["metadata"]["name"] for n in admin.list_objects("v1", "Namespace")} - (
        DEFAULT_NAMESPACES
    )


# --------------------------------------------------------------------------------------------
# Preflight.


def test_preflight_with_a_restricted_token_lists_every_missing_permission_in_one_message(
    api: KubeAPIServer, admin: Applier, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "viewer.yaml", api.url, VIEWER)
    target = cluster_target(kubeconfig, tmp_path, proxy_service=("traefik", "traefik"))
    scenarios = load_scenarios(DEFAULT_MANIFESTS)
    before = harness_namespaces(admin)
    with pytest.raises(AccessDenied) as err:
        target.start(scenarios)
    message = str(err.value)
    needs = target.needs(scenarios)
    # The viewer may read everything and change Services: every other change is missing.
    missing = [n for n in needs if n.verb not in ("get", "list") and n.resource != "services"]
    assert f"{len(missing)} of {len(needs)} permissions it needs are missing" in message
    for need in needs:
        assert (str(need) in message) == (need in missing), need
    ns = target.namespace
    for expected in (
        "create namespaces (cluster-wide)",
        "delete namespaces (cluster-wide)",
        f"create deployments.apps (in namespace {ns})",
        f"patch ingresses.networking.k8s.io (in namespace {ns})",
        f"create middlewares.traefik.io (in namespace {ns})",
        f"delete traefikservices.traefik.io (in namespace {ns})",
        "nothing was created",
    ):
        assert expected in message
    assert harness_namespaces(admin) == before
    assert admin.list_objects("apps/v1", "Deployment") == []


def test_preflight_refuses_the_pytest_run_as_a_usage_error(
    api: KubeAPIServer, admin: Applier, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "viewer.yaml", api.url, VIEWER)
    before = harness_namespaces(admin)
    run = run_pytest(
        "harness/suites/test_routing.py",
        "--kubeconfig",
        kubeconfig,
        "--proxy-url",
        "http://127.0.0.1:9",
        "--basetemp",
        tmp_path / "basetemp",
        timeout=300,
    )
    assert run.returncode == 4, run.output  # pytest's usage error
    assert "ERROR: ingress-harness: the cluster target cannot run with these credentials" in (
        run.stderr
    ), run.output
    assert "create namespaces (cluster-wide)" in run.stderr
    assert "Traceback" not in run.output
    assert harness_namespaces(admin) == before


# --------------------------------------------------------------------------------------------
# Namespaces: the run's own, and those killed runs left.


def _namespace(name: str, *, labelled: bool, age: timedelta) -> Obj:
    stamp = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {MANAGED_BY_LABEL: "ingress-harness", RUN_LABEL: "old-run"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": {CREATED_ANNOTATION: stamp}},
    }


def test_stale_harness_namespaces_are_removed_and_no_others(admin: Applier) -> None:
    hours = timedelta(hours=2)
    namespaces = {
        "ingress-harness-stale": _namespace("ingress-harness-stale", labelled=True, age=hours),
        "ingress-harness-young": _namespace(
            "ingress-harness-young", labelled=True, age=timedelta(0)
        ),
        # Old, but not the harness's: no label, or the label without the harness's name.
        "ingress-harness-foreign": _namespace("ingress-harness-foreign", labelled=False, age=hours),
        "team-cheese": _namespace("team-cheese", labelled=True, age=hours),
    }
    for body in namespaces.values():
        admin.create(body)
    try:
        removed = remove_stale_namespaces(admin, stale_after=3600.0)
        assert removed == ["ingress-harness-stale"]
        assert admin.get(namespaces["ingress-harness-stale"]) is None
        for name in ("ingress-harness-young", "ingress-harness-foreign", "team-cheese"):
            assert admin.get(namespaces[name]) is not None, name
    finally:
        for body in namespaces.values():
            admin.delete(body)


def test_a_run_creates_its_namespace_and_backends_and_deletes_everything_at_the_end(
    admin: Applier, admin_kubeconfig: Path, standin: KubeletStandIn, proxy: str, tmp_path: Path
) -> None:
    scenarios = user_intent(tmp_path)
    stale = _namespace("ingress-harness-left-behind", labelled=True, age=timedelta(hours=3))
    admin.create(stale)
    target = cluster_target(admin_kubeconfig, tmp_path, proxy_url=proxy, replicas=2)
    try:
        target.start(scenarios)
        ns = target.namespace
        assert ns == "ingress-harness-20261201t120000z"
        assert target.removed_stale == ["ingress-harness-left-behind"]
        live_ns = admin.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        assert live_ns is not None
        assert live_ns["metadata"]["labels"][MANAGED_BY_LABEL] == "ingress-harness"
        assert live_ns["metadata"]["labels"][RUN_LABEL] == "20261201T120000Z"
        datetime.strptime(live_ns["metadata"]["annotations"][CREATED_ANNOTATION],
                          "%Y-%m-%dT%H:%M:%SZ")  # fmt: skip

        deployments = {
            d["metadata"]["name"]: d for d in admin.list_objects("apps/v1", "Deployment", ns)
        }
        assert sorted(deployments) == ["cheddar", "stilton"]  # the user's Deployment: not applied
        for name, deployment in deployments.items():
            spec = deployment["spec"]
            assert spec["replicas"] == 2
            (container,) = spec["template"]["spec"]["containers"]
            assert container["image"] == "traefik/whoami:v1.11.0"
            assert {"name": "WHOAMI_NAME", "value": name} in container["env"]
            labels = spec["template"]["metadata"]["labels"]
            assert labels["app"] == "cheese" and labels["task"] == name
            assert labels[BACKEND_LABEL] == name
        # whoami listens where the Service's targetPort says: a name, or a number.
        assert deployments["cheddar"]["spec"]["template"]["spec"]["containers"][0]["ports"] == [
            {"name": "http", "containerPort": 80, "protocol": "TCP"}
        ]
        services = {s["metadata"]["name"]: s for s in admin.list_objects("v1", "Service", ns)}
        declared = {d["metadata"]["name"]: d for d in yaml.safe_load_all(MANIFESTS)
                    if d["kind"] == "Service"}  # fmt: skip
        for name, body in declared.items():
            live = services[name]["spec"]
            assert live["selector"] == body["spec"]["selector"]
            assert [(p["name"], p["port"], p["targetPort"]) for p in live["ports"]] == [
                (p["name"], p["port"], p["targetPort"]) for p in body["spec"]["ports"]
            ]

        # The scenario, relocated into the run's namespace (its Middleware reference too),
        # is served by the proxy; removed, it is not.
        target.apply_intent(scenarios["manifests"])
        applied = admin.list_objects("networking.k8s.io/v1", "Ingress", ns)
        cheeses = next(i for i in applied if i["metadata"]["name"] == "cheeses")
        assert (
            cheeses["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
            == f"{ns}-strip@kubernetescrd"
        )
        with httpx.Client(base_url=proxy, timeout=5.0, trust_env=False) as http:
            answer = http.get("/cheddar/x", headers={"Host": "cheeses.minikube"})
            assert answer.status_code == 200
            assert "Name: cheddar" in answer.text and "GET /x HTTP/1.1" in answer.text
            assert "Name: stilton" in http.get("/", headers={"Host": "stilton.minikube"}).text
            target.remove_intent(scenarios["manifests"])
            gone = http.get("/cheddar/x", headers={"Host": "cheeses.minikube"})
            assert gone.status_code == 404
    finally:
        target.stop()
        target.api_client.close()
    assert admin.get(live_ns) is None
    assert admin.list_objects("apps/v1", "Deployment") == []
    assert not [n for n in harness_namespaces(admin) if n.startswith("ingress-harness-")]


def test_the_wait_times_out_naming_the_backends_that_never_got_ready(
    admin: Applier, admin_kubeconfig: Path, standin: KubeletStandIn, proxy: str, tmp_path: Path
) -> None:
    # The stand-in runs only cheddar and stilton: gouda's pods stay Pending.
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: gouda}
        spec:
          selector: {task: gouda}
          ports: [{name: http, port: 80}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: gouda}
        spec:
          rules:
          - host: gouda.minikube
            http:
              paths:
              - path: /
                pathType: Prefix
                backend: {service: {name: gouda, port: {name: http}}}
    """)
    target = cluster_target(
        admin_kubeconfig, tmp_path, proxy_url=proxy, ready_timeout=1.0, run_id="pending"
    )
    with pytest.raises(ClusterError) as err:
        target.start(user_intent(tmp_path, text))
    target.api_client.close()
    message = str(err.value)
    assert "timed out after 1 s (--stack-timeout) waiting for the backends in namespace " \
        "ingress-harness-pending" in message  # fmt: skip
    assert "gouda: 0 of 2 endpoints ready (pod gouda-" in message
    assert " Pending" in message
    # A failed start deletes what it created.
    assert "ingress-harness-pending" not in harness_namespaces(admin)


# --------------------------------------------------------------------------------------------
# The proxy's address.


@pytest.fixture
def proxy_namespace(admin: Applier) -> Iterator[str]:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "proxy"}}
    admin.create(body)
    yield "proxy"
    admin.delete(body)
    for node in admin.list_objects("v1", "Node"):
        admin.delete({"apiVersion": "v1", "kind": "Node", "metadata": node["metadata"]})


def _proxy_service(admin: Applier, kind: str, ingress: list[Obj]) -> None:
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "traefik", "namespace": "proxy"},
        "spec": {
            "type": kind,
            "selector": {"app": "traefik"},
            "ports": [
                {"name": "websecure", "port": 443},
                {"name": "web", "port": 80, "nodePort": 30080} if kind != "ClusterIP"
                else {"name": "web", "port": 80},
            ],
        },
    }  # fmt: skip
    admin.create(body)
    if ingress:
        live = admin.get(body)
        assert live is not None
        live["status"] = {"loadBalancer": {"ingress": ingress}}
        _put_status(admin, "/api/v1/namespaces/proxy/services/traefik/status", live)


def _put_status(admin: Applier, path: str, body: Obj) -> None:
    """What a cloud controller or a kubelet writes: an object's status."""
    httpx.put(
        f"{admin.api_client.configuration.host}{path}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN}"},
        trust_env=False,
    ).raise_for_status()


def _node(admin: Applier, name: str, addresses: list[Obj]) -> None:
    admin.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    live = admin.get({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    assert live is not None
    live["status"] = {"addresses": addresses}
    _put_status(admin, f"/api/v1/nodes/{name}/status", live)


@pytest.mark.parametrize(
    ("kind", "ingress", "nodes", "expected"),
    [
        ("LoadBalancer", [{"ip": "127.0.0.5"}], [], "http://127.0.0.5:80"),
        ("LoadBalancer", [{"hostname": "lb.example.com"}], [], "http://lb.example.com:80"),
        ("LoadBalancer", [], [[{"type": "InternalIP", "address": "127.0.0.7"}]],
         "http://127.0.0.7:30080"),
        ("NodePort", [], [[{"type": "Hostname", "address": "n1"}],
                          [{"type": "ExternalIP", "address": "::1"}]], "http://[::1]:30080"),
    ],
    ids=["lb-ip", "lb-hostname", "lb-pending-nodeport", "nodeport-external-ip"],
)  # fmt: skip
def test_the_proxy_is_found_from_its_service(
    admin: Applier,
    proxy_namespace: str,
    kind: str,
    ingress: list[Obj],
    nodes: list[list[Obj]],
    expected: str,
) -> None:
    _proxy_service(admin, kind, ingress)
    for i, addresses in enumerate(nodes):
        _node(admin, f"node-{i}", addresses)
    assert discover_proxy_url(admin, proxy_namespace, "traefik") == expected


def test_an_unreachable_proxy_service_says_what_was_tried(
    admin: Applier, proxy_namespace: str
) -> None:
    _proxy_service(admin, "NodePort", [])
    _node(admin, "node-0", [{"type": "Hostname", "address": "n0"}])
    with pytest.raises(ClusterError) as err:
        discover_proxy_url(admin, proxy_namespace, "traefik")
    assert str(err.value) == (
        "--proxy-service proxy/traefik: cannot tell where the proxy answers; tried a "
        "LoadBalancer ingress: the Service is of type NodePort; then NodePort 30080 on a node "
        "address: none of the 1 nodes has an InternalIP or ExternalIP. Give --proxy-url"
    )
    with pytest.raises(ClusterError, match="proxy/nope: no such Service"):
        discover_proxy_url(admin, proxy_namespace, "nope")


# --------------------------------------------------------------------------------------------
# Planning, without a cluster.


def test_relocation_changes_the_namespace_and_the_references_to_it_only() -> None:
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "r", "namespace": "shop"},
        "spec": {
            "routes": [
                {
                    "match": "Host(`shop.example`)",
                    "services": [{"name": "a", "namespace": "shop", "port": 80}, {"name": "b"}],
                    "middlewares": [{"name": "strip", "namespace": "shop"}],
                }
            ]
        },
    }
    moved = relocate(route, "shop", "run-1")
    assert moved["metadata"]["namespace"] == "run-1"
    (r,) = moved["spec"]["routes"]
    assert r["services"] == [{"name": "a", "namespace": "run-1", "port": 80}, {"name": "b"}]
    assert r["middlewares"] == [{"name": "strip", "namespace": "run-1"}]
    assert route["metadata"]["namespace"] == "shop"  # the original is left alone
    ingress = {
        "metadata": {
            "name": "i",
            "namespace": "shop",
            "annotations": {
                "traefik.ingress.kubernetes.io/router.middlewares": (
                    "shop-strip@kubernetescrd, other-auth@kubernetescrd"
                )
            },
        }
    }
    annotations = relocate(ingress, "shop", "run-1")["metadata"]["annotations"]
    assert annotations["traefik.ingress.kubernetes.io/router.middlewares"] == (
        "run-1-strip@kubernetescrd,other-auth@kubernetescrd"
    )


def test_the_tutorial_plans_one_backend_per_service() -> None:
    backends = plan_backends(load_scenarios(DEFAULT_MANIFESTS), "ns", "whoami:x", 3)
    assert [b.name for b in backends] == ["cheddar", "stilton", "wensleydale"]
    for b in backends:
        assert b.deployment["spec"]["replicas"] == 3
        assert b.service["metadata"]["namespace"] == "ns"
        assert b.deployment["spec"]["selector"]["matchLabels"] == {
            "app": "cheese", "task": b.name, BACKEND_LABEL: b.name}  # fmt: skip


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ("metadata: {name: cheddar}\nspec: {ports: [{name: http, port: 80}]}",
         "Service 'cheddar' has no spec.selector"),
        ("metadata: {name: cheddar}\nspec:\n  selector: {app: cheese}\n"
         "  ports: [{name: http, port: 80}, {name: b, port: 81, targetPort: 8081}]",
         "Service 'cheddar': target ports 80, 8081: the cluster target backs a Service with "
         "whoami pods, which listen on one port"),
    ],
    ids=["no-selector", "two-target-ports"],
)  # fmt: skip
def test_services_the_target_cannot_back_are_refused(
    tmp_path: Path, services: str, message: str
) -> None:
    text = f"apiVersion: v1\nkind: Service\n{services}\n---\n" + MANIFESTS.split("---\n", 2)[2]
    text = text.replace("name: stilton, port: {number: 8080}", "name: cheddar, port: {number: 80}")
    with pytest.raises(ConfigError) as err:
        plan_backends(user_intent(tmp_path, text), "ns", "whoami:x", 1)
    assert message in str(err.value)


def test_a_selector_that_picks_another_backends_pods_is_refused(tmp_path: Path) -> None:
    text = MANIFESTS.replace("selector: {app: cheese, task: stilton}", "selector: {app: cheese}")
    with pytest.raises(ConfigError) as err:
        plan_backends(user_intent(tmp_path, text), "ns", "whoami:x", 1)
    assert "Service 'stilton' selects {'app': 'cheese'}, which also matches the pods of " \
        "Service 'cheddar'" in str(err.value)  # fmt: skip


@pytest.mark.parametrize(
    ("run_id", "worker", "expected"),
    [
        ("20261201T153309Z", "", "ingress-harness-20261201t153309z"),
        ("20261201T153309Z", "gw1", "ingress-harness-20261201t153309z-gw1"),
        ("Nightly run #7", "", "ingress-harness-nightly-run-7"),
        ("x" * 80, "", "ingress-harness-" + "x" * 47),
    ],
)
def test_namespace_names_are_dns_labels(run_id: str, worker: str, expected: str) -> None:
    assert namespace_name(run_id, worker) == expected


# --------------------------------------------------------------------------------------------
# Through pytest: the options, the fixtures, results.json.


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--proxy-service", "traefik/traefik"], {},
         "--proxy-service needs the cluster target (--kubeconfig or --context)"),
        (["--kubeconfig", "{kubeconfig}"], {},
         "the cluster target needs one of --proxy-url (where the proxy answers) or "
         "--proxy-service NAMESPACE/NAME"),
        (["--kubeconfig", "{kubeconfig}", "--context", "nope", "--proxy-url", "http://127.0.0.1:9"],
         {}, "--context must be a context of the kubeconfig (local), got 'nope'"),
        (["--kubeconfig", "{kubeconfig}"], {"HARNESS_PROXY_SERVICE": "Traefik/traefik"},
         "--proxy-service (from env HARNESS_PROXY_SERVICE) must be NAMESPACE/NAME of a Service"),
        (["--kubeconfig", "{kubeconfig}", "--proxy-url", "http://127.0.0.1:9"], {},
         "the cluster's API at http://127.0.0.1:9 does not answer"),
    ],
    ids=["service-without-cluster", "cluster-without-proxy", "unknown-context", "env",
         "api-down"],
)  # fmt: skip
def test_cluster_options_that_do_not_fit_are_usage_errors(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    # Nothing listens there: the options are refused first, or the API is found not answering.
    kubeconfig = write_kubeconfig(tmp_path / "kc.yaml", "http://127.0.0.1:9", "t")
    argv = [a.format(kubeconfig=kubeconfig) for a in args]
    basetemp = tmp_path / "basetemp"
    run = run_pytest(
        "harness/suites/test_routing.py", *argv, "--basetemp", basetemp, env=env, timeout=120
    )
    assert run.returncode == 4, run.output
    assert f"ERROR: ingress-harness: {expected}" in run.stderr, run.output
    assert not basetemp.exists()


def test_the_suites_run_on_the_cluster_target_through_a_kubeconfig(
    admin: Applier, admin_kubeconfig: Path, standin: KubeletStandIn, proxy: str, tmp_path: Path
) -> None:
    manifests = tmp_path / "cheeses.yaml"
    manifests.write_text(MANIFESTS, encoding="utf-8")
    report = tmp_path / "report"
    run = run_pytest(
        "harness/suites/test_routing.py",
        "harness/suites/test_strip.py",
        "harness/suites/test_registration.py",
        "harness/suites/test_apply_gaps.py",
        "-rs",
        "--kubeconfig",
        admin_kubeconfig,
        "--proxy-url",
        proxy,
        "--manifests",
        manifests,
        "--probe-rounds",
        "2",
        "--report-dir",
        report,
        "--baseline",
        "none",
        timeout=600,
    )
    assert run.returncode == 0, run.output
    results = run.results(report)
    target = results["target"]
    assert target["target"] == "cluster" and target["proxy_url"] == proxy
    assert target["namespace"].startswith("ingress-harness-")
    assert target["backends"] == {"cheddar": 2, "stilton": 2}
    assert results["counts"]["failed"] == 0 and results["counts"]["error"] == 0
    passed = {c["kind"] for c in results["checks"] if c["outcome"] == "passed"}
    assert passed == {"routing", "edge", "strip", "registration"}, results["counts"]
    assert "not yet on the cluster target" in run.stdout  # the gap suite's apply strategies
    assert not [n for n in harness_namespaces(admin) if n.startswith("ingress-harness-")]


INNER_TEST = """
import os, threading

def test_hold_the_cluster_target(cluster_target):
    path = os.environ["HARNESS_TEST_NAMESPACE"]
    with open(path + ".tmp", "w") as fh:
        fh.write(cluster_target.namespace)
    os.rename(path + ".tmp", path)
    if os.environ["HARNESS_TEST_MODE"] == "fail":
        raise AssertionError("deliberate failure")
    # Held until the outer test interrupts this session; bounded all the same.
    threading.Event().wait(60)
"""


@pytest.mark.parametrize("mode", ["fail", "interrupt"])
def test_a_failed_or_interrupted_run_leaves_no_namespace(
    admin: Applier,
    admin_kubeconfig: Path,
    standin: KubeletStandIn,
    proxy: str,
    tmp_path: Path,
    mode: str,
) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TEST, encoding="utf-8")
    (tmp_path / "cheeses.yaml").write_text(MANIFESTS, encoding="utf-8")
    marker = tmp_path / "namespace"
    # This checkout's harness (not an installed one), configured only by the command line.
    env = {k: v for k, v in python_child_env().items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    env.update(HARNESS_TEST_NAMESPACE=str(marker), HARNESS_TEST_MODE=mode)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_inner.py",
         "--kubeconfig", str(admin_kubeconfig), "--proxy-url", proxy,
         "--manifests", "cheeses.yaml"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: marker.exists() or proc.poll() is not None,
            timeout=120,
            what="the inner session to set up its cluster target",
        )
        if not marker.exists():
            out = proc.communicate(timeout=10)[0]
            pytest.fail(f"inner session exited {proc.returncode} before its target was up:\n{out}")
        namespace = marker.read_text(encoding="utf-8")
        if mode == "interrupt":
            assert namespace in harness_namespaces(admin)  # held by the inner session
            proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=180)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == (1 if mode == "fail" else 2), out
    assert namespace not in harness_namespaces(admin)
    assert admin.list_objects("apps/v1", "Deployment") == []
