"""The local Kubernetes API against the official client: it must answer like kube-apiserver.

Most tests drive the server with ``kubernetes`` (CoreV1Api, NetworkingV1Api, CustomObjectsApi,
the dynamic client, ``watch.Watch``), the way the harness and users do; the streaming list and
raw error bodies are read with httpx, because the Python client has no streaming-list support.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from harness.errors import ConfigError, KubeAPIError
from harness.kubeapi.server import KubeAPIServer
from harness.kubeapi.store import (
    KINDS,
    ObjectStore,
    StatusError,
    parse_label_selector,
    strategic_merge_patch,
)
from harness.waiting import wait_until

# Generous bounds for a loaded 2-core CI machine; each watch read below is also bounded by count.
TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(bookmark_interval=0.2) as srv:
        yield srv


@pytest.fixture
def api(server: KubeAPIServer) -> Iterator[client.ApiClient]:
    api_client = client.ApiClient(client.Configuration(host=server.url))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def net(api: client.ApiClient) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(api)


@pytest.fixture
def http(server: KubeAPIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, trust_env=False) as c:
        yield c


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["code"] == exc.status
    return body


def service(name: str, labels: dict[str, str] | None = None, port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"ports": [{"port": port}]},
    }


def configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "v"}}


def ingress(name: str, path: str = "/a", **path_fields: Any) -> dict[str, Any]:
    item = {
        "path": path,
        "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}},
        **path_fields,
    }
    return {"metadata": {"name": name}, "spec": {"rules": [{"http": {"paths": [item]}}]}}


def middleware(name: str, prefixes: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": name},
        "spec": {"stripPrefix": {"prefixes": prefixes}},
    }


def read_frames(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` watch frames from ``response.iter_lines()`` (one iterator per stream:
    httpx streams can be iterated only once)."""
    frames: list[dict[str, Any]] = []
    for line in lines:
        if line.strip():
            frames.append(json.loads(line))
        if len(frames) >= count:
            break
    return frames


# --------------------------------------------------------------------------------------------
# Lifecycle.


def test_server_binds_a_free_loopback_port_and_stops_cleanly() -> None:
    srv = KubeAPIServer()
    with pytest.raises(KubeAPIError, match="not running"):
        _ = srv.url
    srv.start()
    url = srv.url
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert httpx.get(url + "/healthz", trust_env=False).text == "ok"
    finally:
        srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", trust_env=False)
    srv.start()  # a stopped server can be started again (on a new free port)
    try:
        assert httpx.get(srv.url + "/healthz", trust_env=False).status_code == 200
    finally:
        srv.stop()


def test_rejects_a_non_loopback_host() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        KubeAPIServer(host="0.0.0.0")


def test_stop_ends_open_watches_promptly(server: KubeAPIServer) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT, trust_env=False) as c,
        c.stream("GET", "/api/v1/configmaps", params={"watch": "true"}) as response,
    ):
        assert response.status_code == 200
        # This server's own threads (other servers of the session, e.g. a local stack's, keep
        # theirs): the serving thread and the workload controllers'.
        port = httpx.URL(server.url).port
        controllers = server.controllers
        mine = [t for t in threading.enumerate() if t.name == f"kubeapi-{port}"]
        if controllers is not None and controllers._thread is not None:
            mine.append(controllers._thread)
        assert mine
        server.stop()
        # A clean end: the last chunk, no error. stop() wakes watches through the store's
        # Condition (no poll interval), so the stream ends instead of waiting for its timeout.
        assert list(response.iter_lines()) == []
    wait_until(
        lambda: not [t for t in mine if t.is_alive()],
        timeout=TIMEOUT,
        what="the local API's threads to end",
    )


# --------------------------------------------------------------------------------------------
# Discovery.


def test_discovery_documents(http: httpx.Client) -> None:
    version = http.get("/version").json()
    assert version["gitVersion"].startswith("v1.") and version["major"] == "1"
    assert http.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    assert {"networking.k8s.io", "discovery.k8s.io", "traefik.io"} <= set(groups)
    assert groups["traefik.io"]["preferredVersion"]["groupVersion"] == "traefik.io/v1alpha1"
    traefik = http.get("/apis/traefik.io/v1alpha1").json()
    served = {k.plural for k in KINDS if k.group == "traefik.io"}
    assert {r["name"] for r in traefik["resources"]} == served
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["services"]["namespaced"] and not core["nodes"]["namespaced"]
    assert "watch" in core["services"]["verbs"] and "services/status" in core


def test_unknown_paths_and_methods_answer_with_status(http: httpx.Client) -> None:
    missing = http.get("/apis/example.com/v1/widgets")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    assert http.get("/api/v1/namespaces/default/widgets").status_code == 404
    assert http.get("/api/v1/namespaces/default/nodes").status_code == 404
    post_item = http.post("/api/v1/namespaces/default/configmaps/x", json={})
    assert post_item.status_code == 405 and post_item.json()["reason"] == "MethodNotAllowed"


def test_protobuf_only_accept_is_406(http: httpx.Client) -> None:
    answer = http.get("/api/v1/services", headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert answer.status_code == 406
    mixed = {"Accept": "application/vnd.kubernetes.protobuf,application/json"}
    listed = http.get("/api/v1/services", headers=mixed)
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json"


# --------------------------------------------------------------------------------------------
# Create, get, errors.


def test_create_sets_server_fields_and_defaults(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", service("web"))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and int(meta.resource_version) > 0
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.spec.ports[0].target_port == 80 and created.spec.ports[0].protocol == "TCP"
    fetched = core.read_namespaced_service("web", "default")
    assert fetched.metadata.uid == meta.uid
    assert fetched.metadata.resource_version == meta.resource_version


def test_generate_name(core: client.CoreV1Api) -> None:
    body = {"metadata": {"generateName": "cm-"}, "data": {}}
    a = core.create_namespaced_config_map("default", body)
    b = core.create_namespaced_config_map("default", body)
    assert a.metadata.name.startswith("cm-") and len(a.metadata.name) == len("cm-") + 5
    assert a.metadata.name != b.metadata.name


def test_generation_counts_spec_changes_only(net: client.NetworkingV1Api) -> None:
    created = net.create_namespaced_ingress("default", ingress("ing"))
    assert created.metadata.generation == 1
    labelled = net.patch_namespaced_ingress(
        "ing", "default", {"metadata": {"labels": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert labelled.metadata.generation == 1
    moved = net.patch_namespaced_ingress(
        "ing", "default", [{"op": "replace", "path": "/spec/rules/0/http/paths/0/path",
                            "value": "/b"}],
    )  # fmt: skip
    assert moved.metadata.generation == 2


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("nope", configmap("x"))
    status = status_of(info.value)
    assert info.value.status == 404 and status["reason"] == "NotFound"
    assert status["message"] == 'namespaces "nope" not found'


def test_create_twice_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("x"))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("x"))
    status = status_of(info.value)
    assert info.value.status == 409 and status["reason"] == "AlreadyExists"
    assert status["details"] == {"name": "x", "group": "", "kind": "configmaps"}


def test_get_missing_is_404(net: client.NetworkingV1Api) -> None:
    with pytest.raises(ApiException) as info:
        net.read_namespaced_ingress("ghost", "default")
    status = status_of(info.value)
    assert status["message"] == 'ingresses.networking.k8s.io "ghost" not found'
    assert status["details"]["group"] == "networking.k8s.io"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/apis/networking.k8s.io/v1/namespaces/default/ingresses",
         ingress("i", pathType=None), "spec.rules[0].http.paths[0].pathType"),
        ("/apis/networking.k8s.io/v1/namespaces/default/ingresses",
         ingress("i", backend={}), "spec.rules[0].http.paths[0].backend"),
        ("/apis/networking.k8s.io/v1/namespaces/default/ingresses",
         ingress("i", path="rel"), "spec.rules[0].http.paths[0].path"),
        ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
         {"metadata": {"name": "s"}, "endpoints": []}, "addressType"),
        ("/api/v1/namespaces/default/services",
         {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "http"}]}}, "spec.ports[0].port"),
        ("/api/v1/namespaces/default/configmaps", {"metadata": {}}, "metadata.name"),
        ("/api/v1/namespaces/default/configmaps",
         {"metadata": {"name": "Not_Valid"}}, "metadata.name"),
        ("/apis/traefik.io/v1alpha1/namespaces/default/ingressroutes",
         {"metadata": {"name": "r"}, "spec": {"routes": [{"kind": "Rule"}]}},
         "spec.routes[0].match"),
        ("/apis/traefik.io/v1alpha1/namespaces/default/middlewares",
         {"metadata": {"name": "m"}}, "spec"),
    ],
)  # fmt: skip
def test_invalid_objects_are_422(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    answer = http.post(path, json=body)
    status = answer.json()
    assert answer.status_code == 422, status
    assert status["reason"] == "Invalid" and status["kind"] == "Status"
    assert field in [c["field"] for c in status["details"]["causes"]]
    assert field in status["message"]


def test_invalid_ingress_through_the_client(net: client.NetworkingV1Api) -> None:
    # (kubernetes v37 checks required fields such as pathType itself, before sending.)
    with pytest.raises(ApiException) as info:
        net.create_namespaced_ingress("default", ingress("bad", path="rel"))
    status = status_of(info.value)
    assert status["message"] == (
        'Ingress.networking.k8s.io "bad" is invalid: spec.rules[0].http.paths[0].path: '
        'Invalid value: "rel": must be an absolute path'
    )


def test_bad_bodies_are_400(http: httpx.Client) -> None:
    url = "/api/v1/namespaces/default/services"
    wrong_kind = http.post(
        url, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    )
    assert wrong_kind.status_code == 400 and wrong_kind.json()["reason"] == "BadRequest"
    wrong_version = http.post(url, json={"apiVersion": "v2", "kind": "Service"})
    assert wrong_version.status_code == 400
    garbage = http.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and "json parse error" in garbage.json()["message"]
    labels = http.post(url, json={"metadata": {"name": "s", "labels": {"a": 1}}})
    assert labels.status_code == 400


# --------------------------------------------------------------------------------------------
# Lists.


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("owner!=helm", ["plain", "tier-web", "tier-db"]),
        ("owner=helm", ["helm"]),
        ("owner==helm", ["helm"]),
        ("tier", ["tier-web", "tier-db"]),
        ("!tier", ["plain", "helm"]),
        ("tier in (web, cache)", ["tier-web"]),
        ("tier notin (web)", ["plain", "helm", "tier-db"]),
        ("tier=db,owner!=helm", ["tier-db"]),
        ("", ["plain", "helm", "tier-web", "tier-db"]),
    ],
)
def test_list_with_label_selectors(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    for name, labels in [
        ("plain", {}),
        ("helm", {"owner": "helm"}),
        ("tier-web", {"tier": "web"}),
        ("tier-db", {"tier": "db"}),
    ]:
        core.create_namespaced_secret("default", {"metadata": {"name": name, "labels": labels}})
    listed = core.list_secret_for_all_namespaces(label_selector=selector)
    assert sorted(s.metadata.name for s in listed.items) == sorted(expected)


def test_list_scopes_and_field_selectors(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("other", configmap("a"))
    core.create_namespaced_config_map("other", configmap("b"))
    assert len(core.list_namespaced_config_map("other").items) == 2
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.name=a")
    assert sorted(c.metadata.namespace for c in everywhere.items) == ["default", "other"]
    not_a = core.list_config_map_for_all_namespaces(field_selector="metadata.name!=a")
    assert [c.metadata.name for c in not_a.items] == ["b"]
    with pytest.raises(ApiException) as info:
        core.list_config_map_for_all_namespaces(field_selector="spec.foo=bar")
    assert (
        info.value.status == 400 and "field label not supported" in status_of(info.value)["message"]
    )


def test_malformed_label_selector_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as info:
        core.list_config_map_for_all_namespaces(label_selector="a in b")
    assert info.value.status == 400 and status_of(info.value)["reason"] == "BadRequest"


def test_list_resource_version_is_the_global_one(
    core: client.CoreV1Api, server: KubeAPIServer
) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    listed = core.list_namespaced_service("default")  # no services: still the global RV
    assert listed.metadata.resource_version == server.store.resource_version
    assert listed.kind == "ServiceList" and listed.api_version == "v1"


def test_pages_are_one_consistent_snapshot(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map("default", configmap(f"cm{i}"))
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    core.create_namespaced_config_map("default", configmap("cm2a"))  # after the snapshot
    core.delete_namespaced_config_map("cm4", "default")
    names = [c.metadata.name for c in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
    assert names == ["cm0", "cm1", "cm2", "cm3", "cm4"]


def test_list_at_an_exact_older_resource_version(core: client.CoreV1Api) -> None:
    before = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.patch_namespaced_config_map(
        "a", "default", {"data": {"k": "new"}}, _content_type="application/merge-patch+json"
    )
    core.create_namespaced_config_map("default", configmap("b"))
    old = core.list_namespaced_config_map(
        "default", resource_version=before, resource_version_match="Exact"
    )
    assert [(c.metadata.name, c.data["k"]) for c in old.items] == [("a", "v")]
    assert old.metadata.resource_version == before


def test_list_from_the_future_is_504(core: client.CoreV1Api, server: KubeAPIServer) -> None:
    server.store.too_large_rv_wait = 0.1
    with pytest.raises(ApiException) as info:
        core.list_namespaced_config_map("default", resource_version="999999")
    status = status_of(info.value)
    assert info.value.status == 504 and status["details"]["causes"][0]["reason"] == (
        "ResourceVersionTooLarge"
    )


# --------------------------------------------------------------------------------------------
# Updates.


def test_replace_with_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", service("web"))
    fresh = core.read_namespaced_service("web", "default")
    fresh.metadata.labels = {"v": "2"}
    core.replace_namespaced_service("web", "default", fresh)
    created.metadata.labels = {"v": "stale"}
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_service("web", "default", created)
    status = status_of(info.value)
    assert info.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on services "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert core.read_namespaced_service("web", "default").metadata.labels == {"v": "2"}


def test_replace_keeps_allocated_and_server_fields(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", service("web"))
    body = service("web", port=8080)
    replaced = core.replace_namespaced_service("web", "default", body)  # no RV: unconditional
    assert replaced.spec.cluster_ip == created.spec.cluster_ip
    assert replaced.metadata.uid == created.metadata.uid
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)


def test_a_no_op_update_keeps_the_resource_version(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("a"))
    same = core.replace_namespaced_config_map("a", "default", created)
    assert same.metadata.resource_version == created.metadata.resource_version


def test_custom_resources_need_a_resource_version_to_replace(http: httpx.Client) -> None:
    url = "/apis/traefik.io/v1alpha1/namespaces/default/middlewares"
    assert http.post(url, json=middleware("m", ["/a"])).status_code == 201
    answer = http.put(f"{url}/m", json=middleware("m", ["/b"]))
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_merge_patch(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", {"keep": "1", "drop": "1"}))
    patched = core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"labels": {"drop": None, "new": "1"}}, "data": {"x": "y"}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert patched.metadata.labels == {"keep": "1", "new": "1"}
    assert patched.data == {"k": "v", "x": "y"}


def test_json_patch_and_its_errors(core: client.CoreV1Api, http: httpx.Client) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    patched = core.patch_namespaced_config_map(
        "a", "default", [{"op": "add", "path": "/data/z", "value": "1"},
                         {"op": "remove", "path": "/data/k"}],
    )  # fmt: skip
    assert patched.data == {"z": "1"}
    url = "/api/v1/namespaces/default/configmaps/a"
    headers = {"Content-Type": "application/json-patch+json"}
    not_a_list = http.patch(url, content=b'{"data": {}}', headers=headers)
    assert not_a_list.status_code == 400 and not_a_list.json()["reason"] == "BadRequest"
    failing = http.patch(
        url, json=[{"op": "test", "path": "/data/z", "value": "other"}], headers=headers
    )
    assert failing.status_code == 422


def test_strategic_merge_patch_merges_service_ports_by_port(core: client.CoreV1Api) -> None:
    body = service("web")
    body["spec"]["ports"] = [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]
    core.create_namespaced_service("default", body)
    smp = "application/strategic-merge-patch+json"
    patched = core.patch_namespaced_service(
        "web", "default",
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"name": "https", "port": 443}]}},
        _content_type=smp,
    )  # fmt: skip
    ports = {p.port: p for p in patched.spec.ports}
    assert sorted(ports) == [80, 443, 9000]
    assert ports[80].target_port == 8080 and ports[80].name == "http"
    removed = core.patch_namespaced_service(
        "web", "default", {"spec": {"ports": [{"$patch": "delete", "port": 9000}]}},
        _content_type=smp,
    )  # fmt: skip
    assert sorted(p.port for p in removed.spec.ports) == [80, 443]
    merged = core.patch_namespaced_service(
        "web", "default", {"spec": {"ports": [{"name": "only", "port": 1}]}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert [p.port for p in merged.spec.ports] == [1]  # merge patch replaces lists


def test_patch_content_types_that_are_refused(http: httpx.Client) -> None:
    url = "/apis/traefik.io/v1alpha1/namespaces/default/middlewares"
    http.post(url, json=middleware("m", ["/a"]))
    smp = http.patch(
        f"{url}/m", json={"spec": {}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )  # fmt: skip
    assert smp.status_code == 415  # like the real server, for custom resources
    apply = http.patch(
        f"{url}/m", content=b"spec: {}", headers={"Content-Type": "application/apply-patch+yaml"}
    )
    assert apply.status_code == 415 and "server-side apply" in apply.json()["message"]


def test_status_subresource_separates_spec_and_status(net: client.NetworkingV1Api) -> None:
    net.create_namespaced_ingress("default", ingress("ing"))
    lb = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    net.patch_namespaced_ingress_status(
        "ing", "default", {"status": lb}, _content_type="application/merge-patch+json"
    )
    ignored = net.patch_namespaced_ingress(
        "ing", "default", {"status": {"loadBalancer": {}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert ignored.status.load_balancer.ingress[0].ip == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Deletes.


def test_delete_answers_like_the_real_server(core: client.CoreV1Api) -> None:
    core.create_namespaced_service("default", service("web"))
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    deleted = core.delete_namespaced_service("web", "default")
    assert isinstance(deleted, client.V1Service) and deleted.metadata.name == "web"
    status = core.delete_namespaced_secret("s", "default")
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "s" and status["details"]["kind"] == "secrets"
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_secret("s", "default")
    assert info.value.status == 404


def test_delete_preconditions_and_collection(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", {"app": "x"}))
    core.create_namespaced_config_map("default", configmap("b", {"app": "x"}))
    core.create_namespaced_config_map("default", configmap("c", {"app": "y"}))
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_config_map(
            "a", "default", body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid="not-the-uid")),
        )  # fmt: skip
    assert info.value.status == 409 and "Precondition failed" in status_of(info.value)["message"]
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]


def test_finalizers_postpone_deletion(core: client.CoreV1Api) -> None:
    body = configmap("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_config_map("default", body)
    marked = core.delete_namespaced_config_map("a", "default")
    assert marked["metadata"]["deletionTimestamp"]
    assert core.read_namespaced_config_map("a", "default").metadata.deletion_timestamp
    core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("a", "default")
    assert info.value.status == 404


def test_deleting_a_namespace_deletes_its_objects(
    core: client.CoreV1Api, server: KubeAPIServer
) -> None:
    core.create_namespace({"metadata": {"name": "run"}})
    core.create_namespaced_config_map("run", configmap("a"))
    core.create_namespaced_service("run", service("web"))
    core.create_namespaced_config_map("default", configmap("keep"))
    rv = server.store.resource_version
    core.delete_namespace("run")
    assert core.list_config_map_for_all_namespaces().items[0].metadata.name == "keep"
    assert core.list_service_for_all_namespaces().items == []
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_config_map_for_all_namespaces, resource_version=rv, timeout_seconds=1
        )
    ]
    assert events == [("DELETED", "a")]
    with pytest.raises(ApiException) as info:
        core.delete_namespace("default")
    assert info.value.status == 403


# --------------------------------------------------------------------------------------------
# Watches.


def test_watch_replays_changes_in_order(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    core.patch_namespaced_config_map(
        "a", "default", {"data": {"k": "2"}}, _content_type="application/merge-patch+json"
    )
    core.delete_namespaced_config_map("a", "default")
    core.create_namespaced_secret("default", {"metadata": {"name": "other-kind"}})
    seen: list[tuple[str, str, int]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, int(obj.metadata.resource_version)))
        if len(seen) == 3:
            w.stop()
    assert [s[:2] for s in seen] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert [s[2] for s in seen] == sorted(s[2] for s in seen)  # increasing, deletion has its own


def test_live_watch_sees_events_after_the_stream_opens(
    http: httpx.Client, core: client.CoreV1Api
) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "10"}
    with http.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        core.create_namespaced_config_map("default", configmap("a"))
        core.delete_namespaced_config_map("a", "default")
        frames = read_frames(response.iter_lines(), 2)
    assert [f["type"] for f in frames] == ["ADDED", "DELETED"]
    assert frames[0]["object"]["kind"] == "ConfigMap"  # typed clients decode by kind


def test_watch_without_resource_version_starts_with_synthetic_added(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    w = watch.Watch()
    names = []
    for event in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=5):
        assert event["type"] == "ADDED"
        names.append(event["object"].metadata.name)
        if len(names) == 2:
            w.stop()
    assert names == ["a", "b"]


def test_streaming_list_sends_initial_events_then_the_end_bookmark(
    http: httpx.Client, core: client.CoreV1Api
) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map("default", configmap(name))
    snapshot_rv = core.list_config_map_for_all_namespaces().metadata.resource_version
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "resourceVersion": "",
        "timeoutSeconds": "10",
    }
    headers = {"Accept": "application/vnd.kubernetes.protobuf,application/json"}
    with http.stream("GET", "/api/v1/configmaps", params=params, headers=headers) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        initial = read_frames(lines, 4)
        core.create_namespaced_config_map("default", configmap("d"))
        live = read_frames(lines, 1)
    assert [(f["type"], f["object"]["metadata"].get("name")) for f in initial] == [
        ("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("BOOKMARK", None)
    ]  # fmt: skip
    end = initial[3]["object"]
    assert end["kind"] == "ConfigMap" and end["apiVersion"] == "v1"
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert end["metadata"]["resourceVersion"] == snapshot_rv
    assert live[0]["type"] == "ADDED" and live[0]["object"]["metadata"]["name"] == "d"
    assert int(live[0]["object"]["metadata"]["resourceVersion"]) > int(snapshot_rv)


def test_streaming_list_option_validation(http: httpx.Client) -> None:
    url = "/api/v1/configmaps"
    no_match = http.get(url, params={"watch": "1", "sendInitialEvents": "true"})
    assert no_match.status_code == 422
    assert no_match.json()["details"]["kind"] == "ListOptions"
    assert "NotOlderThan" in no_match.json()["message"]
    on_list = http.get(url, params={"sendInitialEvents": "true"})
    assert on_list.status_code == 422 and "forbidden for list" in on_list.json()["message"]
    match_on_watch = http.get(url, params={"watch": "1", "resourceVersionMatch": "NotOlderThan"})
    assert match_on_watch.status_code == 422
    # kube-apiserver accepts sendInitialEvents without allowWatchBookmarks (validation.go
    # keeps it valid for backward compatibility); the stream then has no end bookmark.
    params = {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
              "timeoutSeconds": "1"}  # fmt: skip
    with http.stream("GET", url, params=params) as response:
        assert response.status_code == 200
        assert [json.loads(line)["type"] for line in response.iter_lines() if line] == []


def test_watch_list_can_be_switched_off() -> None:
    with KubeAPIServer(watch_list=False) as srv:
        params = {"watch": "1", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
                  "resourceVersionMatch": "NotOlderThan"}  # fmt: skip
        answer = httpx.get(srv.url + "/api/v1/services", params=params, trust_env=False)
        assert answer.status_code == 422
        assert "WatchList feature gate" in answer.json()["message"]


def test_bookmarks_carry_only_the_resource_version(
    http: httpx.Client, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
              "timeoutSeconds": "10"}  # fmt: skip
    with http.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
        frames = read_frames(response.iter_lines(), 2)  # bookmark_interval is 0.2 s in these tests
    assert [f["type"] for f in frames] == ["BOOKMARK", "BOOKMARK"]
    assert frames[0]["object"] == {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": rv}
    }  # fmt: skip


def test_watch_sees_objects_leave_and_enter_its_selector(
    http: httpx.Client, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", configmap("a", {"app": "x"}))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    params = {"watch": "1", "resourceVersion": rv, "labelSelector": "app=x", "timeoutSeconds": "10"}
    merge = "application/merge-patch+json"
    with http.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "y"}}},
                                         _content_type=merge)  # fmt: skip
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "unseen"}},
                                         _content_type=merge)  # fmt: skip
        core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "x"}}},
                                         _content_type=merge)  # fmt: skip
        frames = read_frames(response.iter_lines(), 2)
    assert [f["type"] for f in frames] == ["DELETED", "ADDED"]
    assert frames[1]["object"]["data"] == {"k": "unseen"}


def test_watch_from_a_compacted_resource_version_gets_410() -> None:
    with KubeAPIServer(event_history=5) as srv:
        api_client = client.ApiClient(client.Configuration(host=srv.url))
        core = client.CoreV1Api(api_client)
        for i in range(20):
            core.create_namespaced_config_map("default", configmap(f"cm{i}"))
        params = {"watch": "1", "resourceVersion": "2"}
        with httpx.stream("GET", srv.url + "/api/v1/configmaps", params=params,
                          trust_env=False, timeout=TIMEOUT) as response:  # fmt: skip
            frames = [json.loads(line) for line in response.iter_lines() if line]
        api_client.close()
    assert len(frames) == 1 and frames[0]["type"] == "ERROR"
    assert frames[0]["object"]["code"] == 410 and frames[0]["object"]["reason"] == "Expired"


def test_watch_timeout_seconds_ends_the_stream(http: httpx.Client) -> None:
    started = time.monotonic()
    with http.stream(
        "GET", "/api/v1/configmaps", params={"watch": "1", "timeoutSeconds": "1"}
    ) as r:
        assert [line for line in r.iter_lines() if line] == []
    assert 0.9 < time.monotonic() - started < 5.0


def test_resource_versions_increase_across_kinds(
    core: client.CoreV1Api, net: client.NetworkingV1Api
) -> None:
    rvs = [
        core.create_namespaced_service("default", service("web")).metadata.resource_version,
        core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version,
        net.create_namespaced_ingress("default", ingress("i")).metadata.resource_version,
        core.create_namespaced_secret(
            "default", {"metadata": {"name": "s"}}
        ).metadata.resource_version,
    ]
    numbers = [int(rv) for rv in rvs]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


# --------------------------------------------------------------------------------------------
# Custom resources and the dynamic client.


def test_custom_objects_api_with_traefik_middleware(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    args = ("traefik.io", "v1alpha1", "default", "middlewares")
    created = co.create_namespaced_custom_object(*args, middleware("strip", ["/a"]))
    assert created["metadata"]["generation"] == 1
    patched = co.patch_namespaced_custom_object(
        *args, "strip", {"spec": {"stripPrefix": {"prefixes": ["/b"]}}}
    )  # merge patch: the client's default for custom objects
    assert patched["spec"]["stripPrefix"]["prefixes"] == ["/b"]
    assert patched["metadata"]["generation"] == 2
    listed = co.list_namespaced_custom_object(*args)
    assert listed["kind"] == "MiddlewareList" and listed["items"][0]["kind"] == "Middleware"
    co.delete_namespaced_custom_object(*args, "strip")
    with pytest.raises(ApiException) as info:
        co.get_namespaced_custom_object(*args, "strip")
    assert status_of(info.value)["message"] == 'middlewares.traefik.io "strip" not found'


def test_dynamic_client(api: client.ApiClient, tmp_path: Path) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    middlewares = dyn.resources.get(api_version="traefik.io/v1alpha1", kind="Middleware")
    created = middlewares.create(body=middleware("strip", ["/a"]), namespace="default")
    assert created.metadata.name == "strip"
    assert middlewares.get(name="strip", namespace="default").spec.stripPrefix.prefixes == ["/a"]
    services = dyn.resources.get(api_version="v1", kind="Service")
    services.create(body=service("web"), namespace="default")
    assert [s.metadata.name for s in services.get(namespace="default").items] == ["web"]
    ingresses = dyn.resources.get(api_version="networking.k8s.io/v1", kind="Ingress")
    with pytest.raises(Exception, match="pathType"):
        ingresses.create(body=ingress("bad", pathType=None), namespace="default")


# --------------------------------------------------------------------------------------------
# Store internals that the HTTP tests cannot pin down precisely.


def test_label_selector_parsing() -> None:
    reqs = parse_label_selector("a, !b, c=d, e!=f, g in (h, i), j notin (k), l>3")
    assert [(r.key, r.op) for r in reqs] == [
        ("a", "exists"), ("b", "!"), ("c", "="), ("e", "!="), ("g", "in"), ("j", "notin"),
        ("l", ">"),
    ]  # fmt: skip
    assert reqs[4].values == ("h", "i")
    for bad in ("a in ()", "a b", "=x", "a=(b)"):
        with pytest.raises(StatusError):
            parse_label_selector(bad)


def test_strategic_merge_directives() -> None:
    keys = {"metadata.ownerReferences": "uid", "metadata.finalizers": "<set>"}
    original = {
        "metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
        "spec": {"keep": 1, "drop": 2, "nested": {"a": 1, "b": 2}},
    }
    patch = {
        "metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "1", "name": "y"}]},
        "spec": {"drop": None, "nested": {"$patch": "replace", "c": 3}},
        "$setElementOrder/x": [],
    }
    assert strategic_merge_patch(original, patch, keys) == {
        "metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "y"}]},
        "spec": {"keep": 1, "nested": {"c": 3}},
    }
    assert strategic_merge_patch(original, {"spec": {"$patch": "delete"}}, keys) == {
        "metadata": original["metadata"]
    }


def test_store_is_safe_under_concurrent_writers() -> None:
    store = ObjectStore()
    kind = store.find_kind("", "v1", "configmaps")
    assert kind is not None
    start_rv = int(store.resource_version)

    def write(prefix: str) -> None:
        for i in range(50):
            store.create(kind, "default", {"metadata": {"name": f"{prefix}{i}"}})

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert int(store.resource_version) == start_rv + 200
