"""A test stand-in for a cluster's node agent and endpoints controller, acting through the API.

Until the embedded cluster runs pods itself, the cluster target's tests need something to do
what a kubelet and the endpoints controller do for the whoami Deployments it creates:

- for every pod of the API with a ``WHOAMI_NAME`` env, take one echo backend instance started
  for that Service (``start_backends``, real processes on their own loopback addresses), bind
  the pod to node ``standin``, and report it Running and Ready with that address as its IP;
- for every Service with a selector, publish one EndpointSlice per ready pod it selects, with
  the Service's port names and the port the pod's echo process listens on (a cluster's slice
  carries the container port; here each process has its own).

It polls the API every 50 ms in a thread until ``stop()``; the echo instance of a pod that is
gone serves the next pod of its Service. It never answers for pods it
cannot run (no ``WHOAMI_NAME``, or no echo instance left): those stay Pending, as pods with an
image a kubelet cannot pull.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from harness.backends.echo import BackendInstance, BackendPool, start_backends

Obj = dict[str, Any]


def _env(pod: Obj, name: str) -> str | None:
    for container in pod["spec"].get("containers") or []:
        for entry in container.get("env") or []:
            if entry.get("name") == name:
                return str(entry.get("value", ""))
    return None


class KubeletStandIn:
    """Runs the whoami pods of the API at ``api_url`` on echo backends (see the module)."""

    def __init__(self, api_url: str, services: Mapping[str, int], token: str = "") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=api_url, headers=headers, timeout=10.0, trust_env=False)
        self.pool: BackendPool = start_backends(services, distinct_addresses=True)
        self._free = {s: list(i) for s, i in self.pool.by_service().items()}
        self._running: dict[tuple[str, str], BackendInstance] = {}
        #: (namespace, Service, pod) -> the port names its slice was published with.
        self._published: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="kubelet-standin", daemon=True)

    def start(self) -> KubeletStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)
        self.http.close()
        self.pool.stop()
        if self._error is not None:
            raise AssertionError(f"the kubelet stand-in failed: {self._error!r}")

    def __enter__(self) -> KubeletStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self._run_pods()
                self._publish_endpoints()
        except BaseException as exc:
            self._error = exc

    def _run_pods(self) -> None:
        pods = self.http.get("/api/v1/pods").json()["items"]
        present = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods}
        for key in [k for k in self._running if k not in present]:
            # The pod is gone: its process serves the next pod of its Service.
            instance = self._running.pop(key)
            self._free[instance.service].append(instance)
            for published in [p for p in self._published if (p[0], p[2]) == key]:
                del self._published[published]
        for pod in pods:
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            service = _env(pod, "WHOAMI_NAME")
            if meta.get("deletionTimestamp") and pod["spec"].get("nodeName") == "standin":
                # As a kubelet: the pod's process stopped, the pod is removed for good (a
                # namespace being deleted waits for that).
                self.http.request(
                    "DELETE",
                    f"/api/v1/namespaces/{key[0]}/pods/{key[1]}",
                    json={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
                )
                continue
            if key in self._running or meta.get("deletionTimestamp") or service is None:
                continue
            if not self._free.get(service):
                continue
            instance = self._free[service].pop(0)
            base = f"/api/v1/namespaces/{key[0]}/pods/{key[1]}"
            bound = self.http.post(
                f"{base}/binding",
                json={
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": key[1]},
                    "target": {"kind": "Node", "name": "standin"},
                },
            )
            if bound.status_code >= 300:
                self._free[service].insert(0, instance)
                continue
            current = self.http.get(base).json()
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            current["status"].update(
                phase="Running",
                podIP=instance.host,
                podIPs=[{"ip": instance.host}],
                conditions=[{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                containerStatuses=[
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in current["spec"]["containers"]
                ],
            )
            reported = self.http.put(f"{base}/status", json=current)
            if reported.status_code in (404, 409):  # deleted, or changed since the read
                self._free[service].insert(0, instance)
                continue
            reported.raise_for_status()
            self._running[key] = instance

    def _publish_endpoints(self) -> None:
        services = self.http.get("/api/v1/services").json()["items"]
        for service in services:
            meta, spec = service["metadata"], service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector:
                continue
            namespace = meta["namespace"]
            port_names = [str(p.get("name") or "") for p in spec.get("ports") or []]
            for (pod_ns, pod_name), instance in list(self._running.items()):
                if pod_ns != namespace:
                    continue
                pod = self.http.get(f"/api/v1/namespaces/{pod_ns}/pods/{pod_name}")
                labels = pod.json()["metadata"].get("labels") or {} if pod.is_success else {}
                if not all(labels.get(k) == v for k, v in selector.items()):
                    continue
                self._put_slice(meta["name"], namespace, pod_name, instance, port_names)

    def _put_slice(
        self,
        service: str,
        namespace: str,
        pod: str,
        instance: BackendInstance,
        port_names: list[str],
    ) -> None:
        name = f"{service}-{pod}"[:63].rstrip("-")
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "kubelet-standin.test",
                },
            },
            "addressType": "IPv4",
            "ports": [{"name": n, "port": instance.port, "protocol": "TCP"} for n in port_names],
            "endpoints": [
                {
                    "addresses": [instance.host],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace},
                }
            ],
        }
        key = (namespace, service, pod)
        if self._published.get(key) == tuple(port_names):
            return
        base = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        live = self.http.get(f"{base}/{name}")
        if live.status_code == 404:
            written = self.http.post(base, json=body)
        elif live.is_success:
            body["metadata"]["resourceVersion"] = live.json()["metadata"]["resourceVersion"]
            written = self.http.put(f"{base}/{name}", json=body)
        else:
            return
        if written.is_success:
            self._published[key] = tuple(port_names)
