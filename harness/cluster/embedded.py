"""The embedded cluster: the local Kubernetes API plus the controllers that make the
tutorial's objects real on this machine, reached through a kubeconfig like any cluster.

- the local Kubernetes API (``harness.kubeapi``) with its Deployment and ReplicaSet
  controllers;
- the node agent (``harness.cluster.node``): one Node, runs the pods of the images it knows;
- the EndpointSlice controller (``harness.cluster.endpoints``);
- the NodePort proxy (``harness.cluster.nodeports``): ``127.0.0.1:<nodePort>``.

``ingress-harness cluster up`` runs one in a background process (``harness.cluster.cli``);
tests may run one in-process with :class:`EmbeddedCluster`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from harness.cluster.endpoints import EndpointSliceController
from harness.cluster.node import NODE_ADDRESS, NodeAgent, port_free
from harness.cluster.nodeports import NodePortProxy
from harness.kubeapi.server import KubeAPIServer
from harness.traefik.process import find_traefik_binary, traefik_version

CONTEXT = "ingress-harness"


def kubeconfig(server_url: str, token: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for the embedded cluster (one cluster, user and context)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT,
                                                   "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }  # fmt: skip


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (a kubeconfig holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


class EmbeddedCluster:
    """API, controllers, node agent, EndpointSlices and NodePorts, started and stopped
    together. ``stop()`` is safe after a failed ``start()`` and stops every container."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int = 0,
        traefik_binary: str | None = None,
        pod_cidr: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.api = KubeAPIServer(port=port)
        self.token = secrets.token_urlsafe(32)
        self._binary = traefik_binary
        self._pod_cidr = pod_cidr
        self.node: NodeAgent | None = None
        self.endpoints: EndpointSliceController | None = None
        self.nodeports: NodePortProxy | None = None
        self._exit = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return self.api.url

    def start(self) -> EmbeddedCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        binary = find_traefik_binary(self._binary)
        version = traefik_version(binary)
        # A nodePort must also be free on the node's address, not only in the store.
        self.api.store.node_port_free = lambda p: port_free(NODE_ADDRESS, p)
        self.api.start()
        self._exit.callback(self.api.stop)
        self.endpoints = EndpointSliceController(self.api.store)
        self.endpoints.start()
        self._exit.callback(self.endpoints.stop)
        self.nodeports = NodePortProxy(self.api.store)
        self.nodeports.start()
        self._exit.callback(self.nodeports.stop)
        self.node = NodeAgent(
            self.api.store,
            api_url=self.api.url,
            workdir=self.workdir,
            traefik_binary=binary,
            traefik_version=version,
            pod_cidr=self._pod_cidr,
        )
        self.node.start()
        self._exit.callback(self.node.stop)

    def kubeconfig(self) -> dict[str, Any]:
        return kubeconfig(self.api.url, self.token)

    def write_kubeconfig(self, path: Path) -> None:
        write_private(path, yaml.safe_dump(self.kubeconfig(), sort_keys=False))

    def stop(self) -> None:
        """Stop in reverse order: the node's containers first (gracefully), the API last."""
        self._exit.close()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
