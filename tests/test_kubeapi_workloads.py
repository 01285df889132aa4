"""Workloads on the local Kubernetes API: kinds, defaults, validation, garbage collection, the
Deployment and ReplicaSet controllers (driven pass by pass on the store), field validation,
OpenAPI v3, Table printing and the access table (over HTTP, with the official client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness.errors import ConfigError
from harness.kubeapi.access import AccessTable
from harness.kubeapi.controllers import HASH_LABEL, REVISION, WorkloadControllers
from harness.kubeapi.server import KubeAPIServer
from harness.kubeapi.store import Kind, ListOptions, ObjectStore, StatusError
from harness.kubeapi.tables import human_duration, table

Obj = dict[str, Any]
TIMEOUT = 10.0


def deployment(name: str = "cheddar", replicas: int = 2, version: str = "v0.0.1") -> Obj:
    """Shaped like the tutorial's cheese Deployments."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "cheese", "cheese": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "cheese", "task": name}},
            "template": {
                "metadata": {"labels": {"app": "cheese", "task": name, "version": version}},
                "spec": {
                    "containers": [
                        {
                            "name": "cheese",
                            "image": "traefik/whoami",
                            "env": [{"name": "WHOAMI_NAME", "value": name}],
                            "ports": [{"containerPort": 80}],
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def store() -> ObjectStore:
    return ObjectStore()


def kind(store: ObjectStore, plural: str) -> Kind:
    found = next(k for k in store.kinds if k.plural == plural)
    return found


def items(store: ObjectStore, plural: str) -> list[Obj]:
    return list(store.list_objects(kind(store, plural), "default", ListOptions())["items"])


def mark_ready(store: ObjectStore, pod: Obj, ip: str = "127.0.0.2") -> None:
    """What a node agent writes for a started pod: a binding, then Running and Ready."""
    pods, name = kind(store, "pods"), pod["metadata"]["name"]
    store.bind_pod("default", name, {"target": {"kind": "Node", "name": "local"}})
    current = store.get(pods, "default", name)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    current["status"].update(
        phase="Running",
        podIP=ip,
        conditions=[{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        containerStatuses=[{"name": "cheese", "ready": True, "restartCount": 0}],
    )
    store.replace(pods, "default", name, current, subresource="status")


def finish_terminating(store: ObjectStore) -> None:
    """The node agent's last step for a pod being deleted: stop it, delete with grace 0."""
    for pod in items(store, "pods"):
        if pod["metadata"].get("deletionTimestamp"):
            store.delete(
                kind(store, "pods"),
                "default",
                pod["metadata"]["name"],
                options={"gracePeriodSeconds": 0},
            )


# --------------------------------------------------------------------------------------------
# Kinds, defaults, validation.


def test_deployment_defaults_like_the_api_server(store: ObjectStore) -> None:
    body = deployment()
    del body["spec"]["replicas"]
    created = store.create(kind(store, "deployments"), "default", body)
    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["schedulerName"] == "default-scheduler"
    container = pod_spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag: latest
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["ports"][0]["protocol"] == "TCP"
    assert created["metadata"]["generation"] == 1 and "status" not in created


def test_generation_moves_with_the_spec_not_with_the_status(store: ObjectStore) -> None:
    deployments = kind(store, "deployments")
    created = store.create(deployments, "default", deployment())
    created["status"] = {"replicas": 5}
    after_status = store.replace(deployments, "default", "cheddar", created, subresource="status")
    assert after_status["metadata"]["generation"] == 1
    assert after_status["status"] == {"replicas": 5}
    after_status["spec"]["replicas"] = 3
    after_spec = store.replace(deployments, "default", "cheddar", after_status)
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["status"] == {"replicas": 5}  # the main resource does not write status


def test_deployment_validation_is_a_422_naming_every_field(store: ObjectStore) -> None:
    body = deployment()
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    del body["spec"]["template"]["spec"]["containers"][0]["image"]
    body["spec"]["strategy"] = {"type": "Sometimes"}
    with pytest.raises(StatusError) as err:
        store.create(kind(store, "deployments"), "default", body)
    assert err.value.code == 422 and err.value.reason == "Invalid"
    message = err.value.message
    assert message.startswith('Deployment.apps "cheddar" is invalid: [')
    assert "spec.template.metadata.labels: Invalid value" in message
    assert "`selector` does not match template `labels`" in message
    assert "spec.template.spec.containers[0].image: Required value" in message
    assert 'spec.strategy.type: Unsupported value: "Sometimes"' in message
    fields = [c["field"] for c in err.value.details["causes"]]
    assert "spec.template.spec.containers[0].image" in fields


def test_deployment_selector_is_immutable(store: ObjectStore) -> None:
    deployments = kind(store, "deployments")
    created = store.create(deployments, "default", deployment())
    created["spec"]["selector"]["matchLabels"]["extra"] = "x"
    created["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    with pytest.raises(StatusError, match=r"spec.selector: Invalid value: .*field is immutable"):
        store.replace(deployments, "default", "cheddar", created)


def test_pod_defaults_pending_status_and_admission(store: ObjectStore) -> None:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1.0"}]}}
    pod = store.create(kind(store, "pods"), "default", body)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default" and spec["enableServiceLinks"] is True
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert {t["key"] for t in spec["tolerations"]} == {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    # Every namespace has its default service account (the service account controller's job).
    assert store.get(kind(store, "serviceaccounts"), "default", "default")


def test_pod_updates_may_only_change_images(store: ObjectStore) -> None:
    pods = kind(store, "pods")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    pod = store.create(pods, "default", body)
    pod["spec"]["containers"][0]["image"] = "x:2"
    pod = store.replace(pods, "default", "p", pod)
    pod["spec"]["dnsPolicy"] = "Default"
    with pytest.raises(StatusError, match="pod updates may not change fields"):
        store.replace(pods, "default", "p", pod)


def test_pod_deletion_is_graceful_only_once_a_node_runs_it(store: ObjectStore) -> None:
    pods = kind(store, "pods")
    body = {"spec": {"containers": [{"name": "c", "image": "x"}]}}
    store.create(pods, "default", {"metadata": {"name": "pending"}, **body})
    store.create(pods, "default", {"metadata": {"name": "running"}, **body})
    mark_ready(store, store.get(pods, "default", "running"))
    code, _ = store.delete(pods, "default", "pending")
    assert code == 200 and [p["metadata"]["name"] for p in items(store, "pods")] == ["running"]
    code, marked = store.delete(pods, "default", "running")
    assert code == 200 and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    # A status update while terminating keeps the pod; grace 0 (the node agent) removes it.
    marked["status"]["phase"] = "Running"
    store.replace(pods, "default", "running", marked, subresource="status")
    assert len(items(store, "pods")) == 1
    store.delete(pods, "default", "running", options={"gracePeriodSeconds": 0})
    assert items(store, "pods") == []


def test_binding_assigns_a_node_once(store: ObjectStore) -> None:
    pods = kind(store, "pods")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    store.create(pods, "default", body)
    bound = store.bind_pod("default", "p", {"target": {"kind": "Node", "name": "n1"}})
    assert bound["spec"]["nodeName"] == "n1"
    with pytest.raises(StatusError, match='already assigned to node "n1"') as err:
        store.bind_pod("default", "p", {"target": {"kind": "Node", "name": "n2"}})
    assert err.value.code == 409


def test_scale_subresource_sets_replicas(store: ObjectStore) -> None:
    deployments = kind(store, "deployments")
    store.create(deployments, "default", deployment())
    scale = store.get_scale(deployments, "default", "cheddar")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"]["selector"] == "app=cheese,task=cheddar"
    patched = store.update_scale(
        deployments,
        "default",
        "cheddar",
        patch=(b'{"spec":{"replicas":4}}', "application/merge-patch+json"),
    )
    assert patched["spec"]["replicas"] == 4
    assert store.get(deployments, "default", "cheddar")["metadata"]["generation"] == 2
    with pytest.raises(StatusError, match=r"spec.replicas: Invalid value: -1") as err:
        store.update_scale(deployments, "default", "cheddar", body={"spec": {"replicas": -1}})
    assert err.value.code == 422


# --------------------------------------------------------------------------------------------
# Field validation (the decoder's unknown-field and type checks).


def test_strict_field_validation_refuses_unknown_fields(store: ObjectStore) -> None:
    body = deployment()
    body["spec"]["foo"] = "bar"
    body["spec"]["template"]["spec"]["containers"][0]["colour"] = "blue"
    with pytest.raises(StatusError) as err:
        store.create(kind(store, "deployments"), "default", body, field_validation="Strict")
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    # In document order, as the real decoder reports them.
    assert err.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].colour", unknown field "spec.foo"'
    )


def test_warn_field_validation_drops_unknown_fields_with_a_warning(store: ObjectStore) -> None:
    body = deployment()
    body["spec"]["foo"] = "bar"
    warnings: list[str] = []
    created = store.create(
        kind(store, "deployments"), "default", body, field_validation="Warn", warnings=warnings
    )
    assert warnings == ['unknown field "spec.foo"'] and "foo" not in created["spec"]
    ignored: list[str] = []
    body["metadata"]["name"] = "other"
    store.create(
        kind(store, "deployments"), "default", body, field_validation="Ignore", warnings=ignored
    )
    assert ignored == []


def test_wrong_types_are_refused_whatever_the_validation(store: ObjectStore) -> None:
    body = deployment()
    body["spec"]["replicas"] = "two"
    with pytest.raises(StatusError) as err:
        store.create(kind(store, "deployments"), "default", body, field_validation="Ignore")
    assert err.value.code == 400
    assert "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas" in (
        err.value.message
    )


def test_custom_resources_keep_every_field(store: ObjectStore) -> None:
    routes = kind(store, "ingressroutes")
    body = {"metadata": {"name": "r"}, "spec": {"routes": [{"match": "Host(`a`)"}], "x": 1}}
    created = store.create(routes, "default", body, field_validation="Strict")
    assert created["spec"]["x"] == 1


# --------------------------------------------------------------------------------------------
# Controllers, pass by pass.


@pytest.fixture
def controllers(store: ObjectStore) -> WorkloadControllers:
    return WorkloadControllers(store)


def test_replicaset_controller_creates_owned_pods(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    store.create(kind(store, "deployments"), "default", deployment(replicas=3))
    controllers.sync_until_stable()
    [rs] = items(store, "replicasets")
    digest = rs["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"cheddar-{digest}"
    assert rs["spec"]["selector"]["matchLabels"][HASH_LABEL] == digest
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = items(store, "pods")
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"cheddar-{digest}-")
        assert pod["metadata"]["labels"][HASH_LABEL] == digest
        [ref] = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == (
            "ReplicaSet",
            rs["metadata"]["uid"],
            True,
        )
        assert pod["status"]["phase"] == "Pending"
    status = store.get(kind(store, "deployments"), "default", "cheddar")["status"]
    assert status["replicas"] == 3 and status["updatedReplicas"] == 3
    assert status["availableReplicas"] == 0 and status["unavailableReplicas"] == 3
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "False"
    # Created, then its pods appeared: progressing, as the real controller reports it.
    assert conditions["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert conditions["Progressing"]["message"] == f'ReplicaSet "cheddar-{digest}" is progressing.'


def test_ready_pods_complete_the_rollout(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    store.create(kind(store, "deployments"), "default", deployment())
    controllers.sync_until_stable()
    for i, pod in enumerate(items(store, "pods")):
        mark_ready(store, pod, f"127.0.0.{10 + i}")
    controllers.sync_until_stable()
    [rs] = items(store, "replicasets")
    assert rs["status"]["readyReplicas"] == 2 and rs["status"]["availableReplicas"] == 2
    status = store.get(kind(store, "deployments"), "default", "cheddar")["status"]
    assert status["observedGeneration"] == 1
    assert (
        status["readyReplicas"],
        status["availableReplicas"],
        status["unavailableReplicas"],
    ) == (2, 2, 0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conditions["Progressing"]["message"] == (
        f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'
    )


def test_rolling_update_stays_within_surge_and_unavailability(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    body = deployment(replicas=4)
    body["spec"]["strategy"] = {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}  # fmt: skip
    store.create(deployments, "default", body)
    controllers.sync_until_stable()
    for pod in items(store, "pods"):
        mark_ready(store, pod)
    controllers.sync_until_stable()
    [old_rs] = items(store, "replicasets")
    current = store.get(deployments, "default", "cheddar")
    current["spec"]["template"]["metadata"]["labels"]["version"] = "v0.0.2"
    store.replace(deployments, "default", "cheddar", current)
    steps = 0
    while steps < 20:
        controllers.sync_until_stable()
        rss = items(store, "replicasets")
        live = [p for p in items(store, "pods") if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if p["status"].get("phase") == "Running"]
        assert len(live) <= 4 + 1, "maxSurge exceeded"
        assert len(ready) >= 4 - 1, "maxUnavailable exceeded"
        pending = [p for p in live if p["status"]["phase"] == "Pending"]
        finish_terminating(store)
        if (
            not pending
            and len(rss) == 2
            and all(
                rs["spec"]["replicas"]
                == (0 if rs["metadata"]["uid"] == old_rs["metadata"]["uid"] else 4)
                for rs in rss
            )
        ):
            break
        for pod in pending:
            mark_ready(store, pod)
        steps += 1
    assert steps < 20, "the rollout did not finish"
    controllers.sync_until_stable()
    finish_terminating(store)
    controllers.sync_until_stable()
    new_rs = next(
        rs
        for rs in items(store, "replicasets")
        if rs["metadata"]["uid"] != old_rs["metadata"]["uid"]
    )
    assert new_rs["metadata"]["annotations"][REVISION] == "2"
    assert (
        store.get(kind(store, "replicasets"), "default", old_rs["metadata"]["name"])["spec"][
            "replicas"
        ]
        == 0
    )
    status = store.get(deployments, "default", "cheddar")
    assert status["metadata"]["annotations"][REVISION] == "2"
    assert status["status"]["updatedReplicas"] == 4 and status["status"]["replicas"] == 4
    assert {p["metadata"]["labels"][HASH_LABEL] for p in items(store, "pods")} == {
        new_rs["metadata"]["labels"][HASH_LABEL]
    }


def test_no_progress_past_the_deadline_is_reported(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    store.create(deployments, "default", deployment())
    controllers.sync_until_stable()
    # The last progress was long ago (rewritten through the status, as time would).
    current = store.get(deployments, "default", "cheddar")
    for condition in current["status"]["conditions"]:
        condition["lastUpdateTime"] = "2020-01-01T00:00:00Z"
    store.replace(deployments, "default", "cheddar", current, subresource="status")
    controllers.sync_until_stable()
    status = store.get(deployments, "default", "cheddar")["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")
    for pod in items(store, "pods"):
        mark_ready(store, pod)
    controllers.sync_until_stable()
    status = store.get(deployments, "default", "cheddar")["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")


def test_recreate_scales_old_to_zero_before_new(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    body = deployment()
    body["spec"]["strategy"] = {"type": "Recreate"}
    store.create(deployments, "default", body)
    controllers.sync_until_stable()
    for pod in items(store, "pods"):
        mark_ready(store, pod)
    current = store.get(deployments, "default", "cheddar")
    current["spec"]["template"]["metadata"]["labels"]["version"] = "v2"
    store.replace(deployments, "default", "cheddar", current)
    controllers.sync_until_stable()
    replicas = sorted(rs["spec"]["replicas"] for rs in items(store, "replicasets"))
    assert replicas == [0, 0]  # old pods are still terminating: the new one waits
    finish_terminating(store)
    controllers.sync_until_stable()
    assert sorted(rs["spec"]["replicas"] for rs in items(store, "replicasets")) == [0, 2]


def test_revision_history_limit_deletes_old_replicasets(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    body = deployment(replicas=0)
    body["spec"]["revisionHistoryLimit"] = 1
    store.create(deployments, "default", body)
    for version in ("v2", "v3", "v4"):
        controllers.sync_until_stable()
        current = store.get(deployments, "default", "cheddar")
        current["spec"]["template"]["metadata"]["labels"]["version"] = version
        store.replace(deployments, "default", "cheddar", current)
    controllers.sync_until_stable()
    revisions = sorted(
        int(rs["metadata"]["annotations"][REVISION]) for rs in items(store, "replicasets")
    )
    assert revisions == [3, 4]


def test_scaling_down_deletes_unscheduled_pods_first(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    store.create(deployments, "default", deployment(replicas=3))
    controllers.sync_until_stable()
    running = items(store, "pods")[0]
    mark_ready(store, running)
    current = store.get(deployments, "default", "cheddar")
    current["spec"]["replicas"] = 1
    store.replace(deployments, "default", "cheddar", current)
    controllers.sync_until_stable()
    assert [p["metadata"]["name"] for p in items(store, "pods")] == [running["metadata"]["name"]]


# --------------------------------------------------------------------------------------------
# Garbage collection.


def test_background_deletion_collects_replicasets_and_pods(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    store.create(kind(store, "deployments"), "default", deployment())
    controllers.sync_until_stable()
    assert items(store, "replicasets") and items(store, "pods")
    store.delete(kind(store, "deployments"), "default", "cheddar",
                 options={"propagationPolicy": "Background"})  # fmt: skip
    assert items(store, "deployments") == items(store, "replicasets") == items(store, "pods") == []


def test_orphan_deletion_keeps_dependents_without_the_owner(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    store.create(kind(store, "deployments"), "default", deployment())
    controllers.sync_until_stable()
    store.delete(kind(store, "deployments"), "default", "cheddar",
                 options={"propagationPolicy": "Orphan"})  # fmt: skip
    [rs] = items(store, "replicasets")
    assert "ownerReferences" not in rs["metadata"] and len(items(store, "pods")) == 2


def test_foreground_deletion_waits_for_terminating_pods(
    store: ObjectStore, controllers: WorkloadControllers
) -> None:
    deployments = kind(store, "deployments")
    store.create(deployments, "default", deployment(replicas=1))
    controllers.sync_until_stable()
    mark_ready(store, items(store, "pods")[0])
    code, body = store.delete(deployments, "default", "cheddar",
                              options={"propagationPolicy": "Foreground"})  # fmt: skip
    assert code == 200 and "foregroundDeletion" in body["metadata"]["finalizers"]
    # The running pod is terminating: its ReplicaSet and the Deployment wait for it.
    assert items(store, "deployments") and items(store, "replicasets")
    finish_terminating(store)
    assert items(store, "deployments") == items(store, "replicasets") == items(store, "pods") == []


def test_bad_propagation_policy_is_refused(store: ObjectStore) -> None:
    store.create(kind(store, "deployments"), "default", deployment())
    with pytest.raises(StatusError, match='propagationPolicy: Unsupported value: "Sideways"'):
        store.delete(kind(store, "deployments"), "default", "cheddar",
                     options={"propagationPolicy": "Sideways"})  # fmt: skip


# --------------------------------------------------------------------------------------------
# Over HTTP: controllers in the server, OpenAPI, Table, access.


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(bookmark_interval=0.2) as srv:
        yield srv


@pytest.fixture
def http(server: KubeAPIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, trust_env=False) as c:
        yield c


def test_server_runs_the_controllers(server: KubeAPIServer) -> None:
    from harness.waiting import wait_until

    api = client.ApiClient(client.Configuration(host=server.url))
    try:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment("default", deployment())
        rs = wait_until(
            lambda: apps.list_namespaced_replica_set("default").items,
            timeout=TIMEOUT,
            what="the ReplicaSet of the Deployment",
        )
        assert rs[0].metadata.name.startswith("cheddar-")
        pods = wait_until(
            lambda: len(client.CoreV1Api(api).list_namespaced_pod("default").items) == 2,
            timeout=TIMEOUT,
            what="two pods",
        )
        assert pods
    finally:
        api.close()


def test_openapi_v3_index_and_documents(http: httpx.Client) -> None:
    index = http.get("/openapi/v3").json()["paths"]
    assert {
        "api/v1",
        "apis/apps/v1",
        "apis/networking.k8s.io/v1",
        "apis/traefik.io/v1alpha1",
    } <= set(index)
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    doc = http.get(url).json()
    schema = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}
    ]
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["containers"]["x-kubernetes-patch-strategy"] == "merge"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    assert http.get("/openapi/v3/apis/nope/v1").status_code == 404


def test_table_printing_for_deployments_and_pods(server: KubeAPIServer, http: httpx.Client) -> None:
    from harness.waiting import wait_until

    http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment()).raise_for_status()
    wait_until(lambda: len(http.get("/api/v1/namespaces/default/pods").json()["items"]) == 2,
               timeout=TIMEOUT, what="two pods")  # fmt: skip
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = http.get("/apis/apps/v1/namespaces/default/deployments", headers=accept).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    [row] = table["rows"]
    assert row["cells"][:4] == ["cheddar", "0/2", 2, 0]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    pods = http.get("/api/v1/namespaces/default/pods", headers=accept).json()
    assert [c["name"] for c in pods["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert {tuple(r["cells"][1:3]) for r in pods["rows"]} == {("0/1", "Pending")}
    plain = http.get("/api/v1/namespaces/default/pods").json()
    assert plain["kind"] == "PodList"
    refused = http.get("/api/v1/pods", headers={"Accept": "application/json;as=Nothing"})
    assert refused.status_code == 406


ACCESS = {
    "viewer-token": {
        "user": "viewer",
        "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps"],
             "resources": ["pods", "deployments"], "namespaces": ["default"]},
        ],
    }
}  # fmt: skip


@pytest.fixture
def restricted() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(access=AccessTable.from_mapping(ACCESS)) as srv:
        yield srv


def review(http: httpx.Client, token: str, **attrs: str) -> Obj:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}}  # fmt: skip
    response = http.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    result: Obj = response.json()
    return result


def test_restricted_token_gets_ssar_answers_and_403s(restricted: KubeAPIServer) -> None:
    with httpx.Client(base_url=restricted.url, timeout=TIMEOUT, trust_env=False) as http:
        allowed = review(http, "viewer-token", verb="list", resource="pods", namespace="default")
        assert allowed["status"]["allowed"] is True
        denied = review(http, "viewer-token", verb="create", group="apps",
                        resource="deployments", namespace="default")  # fmt: skip
        assert denied["status"] == {"allowed": False}
        other_ns = review(http, "viewer-token", verb="list", resource="pods", namespace="x")
        assert other_ns["status"]["allowed"] is False
        auth = {"Authorization": "Bearer viewer-token"}
        assert http.get("/api/v1/namespaces/default/pods", headers=auth).status_code == 200
        refused = http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment(),
                            headers=auth)  # fmt: skip
        assert refused.status_code == 403
        status = refused.json()
        assert status["reason"] == "Forbidden"
        assert status["message"] == (
            'deployments.apps is forbidden: User "viewer" cannot create resource "deployments" '
            'in API group "apps" in the namespace "default"'
        )
        one = http.get("/api/v1/namespaces/default/secrets/s", headers=auth).json()
        assert one["message"] == (
            'secrets "s" is forbidden: User "viewer" cannot get resource "secrets" in API group '
            '"" in the namespace "default"'
        )
        nodes = http.get("/api/v1/nodes", headers=auth).json()
        assert nodes["message"].endswith(
            'cannot list resource "nodes" in API group "" at the cluster scope'
        )
        # Discovery and OpenAPI stay open; an unknown token is 401; no token is anonymous.
        assert http.get("/apis", headers=auth).status_code == 200
        assert http.get("/api/v1/pods", headers={"Authorization": "Bearer nope"}).status_code == 401
        anonymous = http.get("/api/v1/namespaces/default/pods").json()
        assert 'User "system:anonymous" cannot list' in anonymous["message"]


def test_without_a_table_every_token_may_do_everything(http: httpx.Client) -> None:
    answer = review(http, "anything", verb="delete", resource="nodes")
    assert answer["status"]["allowed"] is True


def test_the_python_client_sees_403_as_forbidden(restricted: KubeAPIServer) -> None:
    config = client.Configuration(host=restricted.url, api_key={"authorization": "viewer-token"},
                                  api_key_prefix={"authorization": "Bearer"})  # fmt: skip
    with client.ApiClient(config) as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_secret("default")
        assert err.value.status == 403
        assert "cannot list resource" in json.loads(err.value.body)["message"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"t": {"rules": []}}, "token #1: field `user` must be a string"),
        ({"t": {"user": "u", "rules": [{"verbs": ["fly"], "apiGroups": [""],
                                        "resources": ["pods"]}]}},
         "token #1, rules[0]: field `verbs`: unknown verb 'fly' (one of get, list, watch, create, "
         "update, patch, delete, deletecollection, or *)"),
        ({"t": {"user": "u", "rules": [{"verbs": ["get"], "resources": ["pods"]}]}},
         "token #1, rules[0]: field `apiGroups` is required"),
        ({"t": {"user": "u", "rules": [{"verbs": ["get"], "apiGroups": [""],
                                        "resources": ["pods"], "namespace": ["x"]}]}},
         "token #1, rules[0]: unknown field `namespace`"),
    ],
)  # fmt: skip
def test_bad_access_tables_name_the_field(table: Obj, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        AccessTable.from_mapping(table, "access.yaml")
    assert str(err.value) == f"access.yaml: {message}"
    assert "t:" not in str(err.value).replace("at:", "")  # the token itself is never shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-5, "<invalid>"), (-0.5, "0s"), (59, "59s"), (119, "119s"), (185, "3m5s"), (600, "10m"),
     (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (3 * 86400 + 7200, "3d2h"), (30 * 86400, "30d"),
     (3 * 365 * 86400 + 86400, "3y1d"), (9 * 365 * 86400, "9y")],
)  # fmt: skip
def test_ages_are_printed_like_kubectl(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_service_columns_show_node_ports_and_load_balancers(store: ObjectStore) -> None:
    services = kind(store, "services")
    body = {"metadata": {"name": "traefik"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}  # fmt: skip
    svc = store.create(services, "default", body)
    row = table(services, [svc], {}, "None")["rows"][0]
    cluster_ip = svc["spec"]["clusterIP"]
    assert row["cells"][:5] == ["traefik", "NodePort", cluster_ip, "<none>", "80:30080/TCP"]
    assert "object" not in row


def node_port_service(name: str, node_port: int | None = None) -> Obj:
    port: Obj = {"name": "web", "port": 80}
    if node_port is not None:
        port["nodePort"] = node_port
    return {"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [port]}}


def test_node_ports_are_allocated_in_range_and_never_twice(store: ObjectStore) -> None:
    services = kind(store, "services")
    taken = {30000, 30001}
    store.node_port_free = lambda port: port not in taken  # e.g. bound by another program
    ports = [
        store.create(services, "default", node_port_service(f"s{i}"))["spec"]["ports"][0][
            "nodePort"
        ]
        for i in range(20)
    ]
    assert len(set(ports)) == 20 and all(30002 <= p <= 32767 for p in ports)
    with pytest.raises(StatusError) as twice:
        store.create(services, "default", node_port_service("again", ports[0]))
    assert twice.value.code == 422
    assert "spec.ports[0].nodePort: Invalid value: " in twice.value.message
    assert "provided port is already allocated" in twice.value.message
    with pytest.raises(StatusError) as outside:
        store.create(services, "default", node_port_service("low", 8080))
    assert "provided port is not in the valid range. The range of valid ports is 30000-32767" in (
        outside.value.message
    )
    # An update keeps the Service's own nodePort (it is not "allocated twice").
    svc = store.get(services, "default", "s0")
    svc["metadata"]["labels"] = {"x": "y"}
    assert store.replace(services, "default", "s0", svc)["spec"]["ports"][0]["nodePort"] == ports[0]


def test_rbac_objects_are_stored_and_validated(store: ObjectStore) -> None:
    roles, bindings = kind(store, "clusterroles"), kind(store, "clusterrolebindings")
    store.create(roles, "", {"metadata": {"name": "traefik"},
                             "rules": [{"apiGroups": [""], "resources": ["services"],
                                        "verbs": ["list"]}]})  # fmt: skip
    binding = {"metadata": {"name": "traefik"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "traefik"},
               "subjects": [{"kind": "ServiceAccount", "name": "traefik"}]}  # fmt: skip
    with pytest.raises(StatusError) as missing:
        store.create(bindings, "", binding)
    assert "subjects[0].namespace: Required value" in missing.value.message
    binding["subjects"][0]["namespace"] = "kube-system"
    stored = store.create(bindings, "", binding)
    stored["roleRef"]["name"] = "other"
    with pytest.raises(StatusError) as immutable:
        store.replace(bindings, "", "traefik", stored)
    assert "roleRef: Invalid value" in immutable.value.message
    assert "cannot change roleRef" in immutable.value.message


def test_a_namespace_waits_for_the_pods_a_node_runs(store: ObjectStore) -> None:
    namespaces, pods, maps = (
        kind(store, "namespaces"),
        kind(store, "pods"),
        kind(store, "configmaps"),
    )
    store.create(namespaces, "", {"metadata": {"name": "run"}})
    spec = {"containers": [{"name": "c", "image": "traefik/whoami"}]}
    for name in ("bound", "pending"):
        store.create(pods, "run", {"metadata": {"name": name}, "spec": spec})
    store.create(maps, "run", {"metadata": {"name": "cm"}})
    store.bind_pod("run", "bound", {"target": {"kind": "Node", "name": "local"}})
    code, body = store.delete(namespaces, "", "run")
    assert code == 200 and body["status"]["phase"] == "Terminating"
    # The unscheduled pod and the rest go at once; the running one is marked for its node.
    left = store.list_objects(pods, "run", ListOptions())["items"]
    assert [p["metadata"]["name"] for p in left] == ["bound"]
    assert left[0]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.list_objects(maps, "run", ListOptions())["items"] == []
    with pytest.raises(StatusError) as refused:
        store.create(maps, "run", {"metadata": {"name": "late"}})
    assert "because it is being terminated" in refused.value.message
    # Its node removes it (grace 0, as a kubelet does once the containers stopped): then the
    # namespace is gone too.
    store.delete(pods, "run", "bound", options={"gracePeriodSeconds": 0})
    with pytest.raises(StatusError) as gone:
        store.get(namespaces, "", "run")
    assert gone.value.code == 404
