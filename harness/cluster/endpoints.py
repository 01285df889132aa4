"""The embedded cluster's EndpointSlice controller: a Service's pods as ``discovery.k8s.io/v1``
EndpointSlices, kept up to date, as kube-controller-manager's endpointslice controller does.

For every Service with a selector (not ExternalName): the pods of its namespace that match it
and have a pod IP, as endpoints with ``conditions.ready`` (the pod's Ready condition, and not
terminating), ``serving`` (Ready, also while terminating) and ``terminating``, ``nodeName`` and
a ``targetRef`` to the pod. Slice ports are the Service's ports (their names kept: Traefik
matches them by name) resolved per pod: a numeric ``targetPort`` as it is, a named one to the
container port of that name (pods that resolve differently get slices of their own; a pod
without the named port is left out). Slices carry ``kubernetes.io/service-name``,
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` and the Service as
controller owner; slices with another ``managed-by`` are left alone, as the real controller
does. Services without a selector keep the slices their owner publishes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Final

from harness.kubeapi.controllers import pod_ready_since
from harness.kubeapi.store import (
    Kind,
    ListOptions,
    ObjectStore,
    StatusError,
    clone,
    label_selector_matches,
)

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

MANAGED_BY: Final = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"


def slice_ports(service: Obj, pod: Obj) -> tuple[tuple[str, int, str], ...] | None:
    """The Service's ports for one pod: (name, port, protocol) each; None when a named
    targetPort names no container port of the pod (the pod is not an endpoint then)."""
    named: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                named[str(port["name"])] = int(port["containerPort"])
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            if target not in named:
                return None
            number = named[target]
        else:
            number = int(target)
        out.append((str(port.get("name", "")), number, str(port.get("protocol", "TCP"))))
    return tuple(out)


def endpoint_of(pod: Obj) -> Obj:
    meta, status = pod["metadata"], pod.get("status") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    serving = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    endpoint: Obj = {
        "addresses": [status["podIP"]],
        "conditions": {
            "ready": serving and not terminating and pod_ready_since(pod) is not None,
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                      "uid": meta["uid"]},
    }  # fmt: skip
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


class EndpointSliceController:
    """Keeps the EndpointSlices of every selector Service; ``start()``/``stop()`` a thread,
    ``sync()`` one pass."""

    def __init__(self, store: ObjectStore, *, resync: float = 1.0) -> None:
        kinds = {(k.group, k.plural): k for k in store.kinds}
        self.store = store
        self.resync = resync
        self.pods: Kind = kinds[("", "pods")]
        self.services: Kind = kinds[("", "services")]
        self.slices: Kind = kinds[("discovery.k8s.io", "endpointslices")]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="endpointslices", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self.store.wake_watches()
            thread.join(timeout)

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # a bug here must not end the controller silently
                logger.exception("embedded cluster: endpointslice controller failed a pass")
            seen = self.store.wait_for_change(seen, self.resync, self._stop)

    def _list(self, kind: Kind) -> list[Obj]:
        return list(self.store.list_objects(kind, "", ListOptions())["items"])

    def sync(self) -> None:
        pods = self._list(self.pods)
        slices = [
            s
            for s in self._list(self.slices)
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        ]
        wanted: set[str] = set()
        for service in self._list(self.services):
            spec = service.get("spec") or {}
            if not spec.get("selector") or spec.get("type") == "ExternalName":
                continue
            try:
                wanted |= self._sync_service(service, pods, slices)
            except StatusError as exc:
                if exc.code not in (404, 409):
                    raise
        for stale in slices:
            meta = stale["metadata"]
            if meta["uid"] not in wanted:
                with contextlib.suppress(StatusError):
                    self.store.delete(self.slices, meta["namespace"], meta["name"])

    def _sync_service(self, service: Obj, pods: list[Obj], slices: list[Obj]) -> set[str]:
        meta = service["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        selector = {"matchLabels": service["spec"]["selector"]}
        groups: dict[tuple[tuple[str, int, str], ...], list[Obj]] = {}
        for pod in pods:
            pod_meta, status = pod["metadata"], pod.get("status") or {}
            if pod_meta["namespace"] != namespace or not status.get("podIP"):
                continue
            if status.get("phase") in ("Succeeded", "Failed"):
                continue
            if not label_selector_matches(selector, pod_meta.get("labels") or {}):
                continue
            ports = slice_ports(service, pod)
            if ports is not None:
                groups.setdefault(ports, []).append(endpoint_of(pod))
        mine = [
            s
            for s in slices
            if s["metadata"]["namespace"] == namespace
            and (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
        ]
        kept: set[str] = set()
        unused = list(mine)
        for ports, endpoints in sorted(groups.items()):
            body = self._slice_body(service, ports, endpoints)
            existing = next((s for s in unused if self._ports_of(s) == ports), None)
            if existing is None:
                existing = next(iter(unused), None)
            if existing is None:
                created = self.store.create(self.slices, namespace, body)
                kept.add(created["metadata"]["uid"])
                continue
            unused.remove(existing)
            kept.add(existing["metadata"]["uid"])
            updated = clone(existing)
            updated.update({k: v for k, v in body.items() if k != "metadata"})
            updated["metadata"]["labels"] = body["metadata"]["labels"]
            updated["metadata"]["ownerReferences"] = body["metadata"]["ownerReferences"]
            if updated != existing:
                self.store.replace(self.slices, namespace, existing["metadata"]["name"], updated)
        if not groups and not mine:
            # A Service without endpoints still has one (empty) slice, as on a cluster.
            created = self.store.create(self.slices, namespace, self._slice_body(service, (), []))
            kept.add(created["metadata"]["uid"])
        elif not groups and mine:
            empty = mine[0]
            kept.add(empty["metadata"]["uid"])
            if empty.get("endpoints"):
                updated = clone(empty)
                updated["endpoints"] = []
                self.store.replace(self.slices, namespace, empty["metadata"]["name"], updated)
        return kept

    @staticmethod
    def _ports_of(es: Obj) -> tuple[tuple[str, int, str], ...]:
        return tuple(
            (str(p.get("name", "")), int(p.get("port", 0)), str(p.get("protocol", "TCP")))
            for p in es.get("ports") or []
        )

    @staticmethod
    def _slice_body(
        service: Obj, ports: tuple[tuple[str, int, str], ...], endpoints: list[Obj]
    ) -> Obj:
        meta = service["metadata"]
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": {SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            "endpoints": sorted(endpoints, key=lambda e: e["targetRef"]["name"]),
        }
