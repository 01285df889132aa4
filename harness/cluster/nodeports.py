"""NodePort Services of the embedded cluster on loopback: kube-proxy's part, in miniature.

Every TCP port of a NodePort or LoadBalancer Service gets a listener on
``127.0.0.1:<nodePort>`` (the node's address); each connection is forwarded to one ready
endpoint of that Service port (from its EndpointSlices: the slice port of the same name),
round robin over the endpoints, and spliced both ways until either side closes. Without a
ready endpoint a connection is reset, as kube-proxy rejects it. The mapping follows the API:
a new Service, a changed nodePort or a deleted Service opens and closes listeners within a
pass. A nodePort that cannot be bound on loopback (taken by another program) is reported as
a Warning Event on the Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from harness.cluster.endpoints import SERVICE_NAME_LABEL
from harness.cluster.node import NODE_ADDRESS
from harness.kubeapi.store import Kind, ListOptions, ObjectStore, StatusError

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

_CONNECT_TIMEOUT: Final = 5.0
_CHUNK: Final = 65536

ServicePort = tuple[str, str, str]  # namespace, service, port name


@dataclass
class _Mapping:
    target: ServicePort
    server: asyncio.AbstractServer
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    turn: Iterator[int] = field(default_factory=itertools.count)


class NodePortProxy:
    """Listeners for every nodePort; ``start()``/``stop()`` run them in a thread."""

    def __init__(self, store: ObjectStore, *, resync: float = 1.0) -> None:
        kinds = {(k.group, k.plural): k for k in store.kinds}
        self.store = store
        self.resync = resync
        self.services: Kind = kinds[("", "services")]
        self.slices: Kind = kinds[("discovery.k8s.io", "endpointslices")]
        self.events: Kind = kinds[("", "events")]
        self._loop = asyncio.new_event_loop()
        self._mappings: dict[int, _Mapping] = {}
        self._refused: set[tuple[int, ServicePort]] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="nodeports-io", daemon=True),
            threading.Thread(target=self._watch, name="nodeports-sync", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._threads:
            return
        self._stop.set()
        self.store.wake_watches()
        self._threads[1].join(timeout)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._threads[0].join(timeout)
        self._threads = []
        self._loop.close()

    def listening(self) -> dict[int, ServicePort]:
        """nodePort → (namespace, service, port name) of every open listener."""
        return {port: m.target for port, m in list(self._mappings.items())}

    def _watch(self) -> None:
        seen = -1
        while not self._stop.is_set():
            try:
                desired, endpoints = self._desired()
                future = asyncio.run_coroutine_threadsafe(
                    self._apply(desired, endpoints), self._loop
                )
                refused = future.result(timeout=30)
                for port, target in refused:
                    self._warn(port, target)
            except Exception:  # a bug here must not end the proxy silently
                logger.exception("embedded cluster: nodePort proxy failed a pass")
            seen = self.store.wait_for_change(seen, self.resync, self._stop)

    def _desired(self) -> tuple[dict[int, ServicePort], dict[ServicePort, list[tuple[str, int]]]]:
        desired: dict[int, ServicePort] = {}
        for svc in self.store.list_objects(self.services, "", ListOptions())["items"]:
            spec, meta = svc.get("spec") or {}, svc["metadata"]
            if spec.get("type") not in ("NodePort", "LoadBalancer"):
                continue
            for port in spec.get("ports") or []:
                if port.get("nodePort") and port.get("protocol", "TCP") == "TCP":
                    desired[int(port["nodePort"])] = (
                        meta["namespace"],
                        meta["name"],
                        str(port.get("name", "")),
                    )
        endpoints: dict[ServicePort, list[tuple[str, int]]] = {}
        for es in self.store.list_objects(self.slices, "", ListOptions())["items"]:
            service = (es["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if not service:
                continue
            ready = [
                str(address)
                for e in es.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready", True)
                for address in e.get("addresses") or []
            ]
            for port in es.get("ports") or []:
                key = (es["metadata"]["namespace"], service, str(port.get("name", "")))
                endpoints.setdefault(key, []).extend((ip, int(port["port"])) for ip in ready)
        return desired, endpoints

    async def _apply(
        self,
        desired: dict[int, ServicePort],
        endpoints: dict[ServicePort, list[tuple[str, int]]],
    ) -> list[tuple[int, ServicePort]]:
        for port in [p for p, m in self._mappings.items() if desired.get(p) != m.target]:
            mapping = self._mappings.pop(port)
            mapping.server.close()
        refused = []
        for port, target in desired.items():
            if port not in self._mappings:
                try:
                    server = await asyncio.start_server(
                        functools.partial(self._forward, port), NODE_ADDRESS, port
                    )
                except OSError as exc:
                    if (port, target) not in self._refused:
                        self._refused.add((port, target))
                        refused.append((port, target))
                    logger.debug("nodePort %d: %s", port, exc)
                    continue
                self._refused.discard((port, target))
                self._mappings[port] = _Mapping(target, server)
            self._mappings[port].endpoints = sorted(endpoints.get(target, []))
        return refused

    async def _close_all(self) -> None:
        for mapping in self._mappings.values():
            mapping.server.close()
        self._mappings.clear()

    async def _forward(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        mapping = self._mappings.get(port)
        if mapping is None or not mapping.endpoints:
            _reset(writer)
            return
        ip, target = mapping.endpoints[next(mapping.turn) % len(mapping.endpoints)]
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(ip, target), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            _reset(writer)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    def _warn(self, port: int, target: ServicePort) -> None:
        namespace, name, port_name = target
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with contextlib.suppress(StatusError):
            self.store.create(
                self.events,
                namespace,
                {
                    "metadata": {"generateName": f"{name}."},
                    "involvedObject": {"kind": "Service", "namespace": namespace, "name": name,
                                       "apiVersion": "v1"},
                    "reason": "NodePortNotListening", "type": "Warning", "count": 1,
                    "message": f"nodePort {port} (port {port_name or '(unnamed)'}) cannot be "
                               f"bound on {NODE_ADDRESS}: the port is taken by another program",
                    "source": {"component": "kube-proxy"}, "reportingComponent": "kube-proxy",
                    "firstTimestamp": now, "lastTimestamp": now,
                },
            )  # fmt: skip


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction: copy until EOF, then half-close (the other direction goes on); on a
    reset, close the other side too, so that its direction ends as well."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ConnectionError):
        writer.close()
