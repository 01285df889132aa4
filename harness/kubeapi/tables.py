"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

``kubectl get`` sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
rows the server computes. The columns and cell values follow the real server's printers
(pkg/printers/internalversion) for the kinds served; a custom resource gets Name and Age, as a
CRD without additionalPrinterColumns does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from harness.kubeapi.store import Kind, label_selector_string

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]

NONE: Final = "<none>"


@dataclass(frozen=True)
class Column:
    name: str
    cell: Cell
    type: str = "string"
    priority: int = 0
    description: str = ""
    format: str = ""


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: ``45s``, ``5m3s``, ``3h``, ``2d4h``, ``3y``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def _since(stamp: Any) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _meta(obj: Obj, name: str) -> Any:
    return (obj.get("metadata") or {}).get(name)


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _join(values: Sequence[Any], empty: str = NONE) -> str:
    return ",".join(str(v) for v in values) if values else empty


def _name_column() -> Column:
    return Column(
        "Name", lambda o: _meta(o, "name"), format="name",
        description="Name must be unique within a namespace.",
    )  # fmt: skip


def _age_column() -> Column:
    return Column(
        "Age", lambda o: _since(_meta(o, "creationTimestamp")),
        description="CreationTimestamp is a timestamp representing the server time when this "
        "object was created.",
    )  # fmt: skip


def _pod_status(pod: Obj) -> str:
    status = _status(pod)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if _meta(pod, "deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_ready(pod: Obj) -> str:
    statuses = _status(pod).get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    return f"{ready}/{len(_spec(pod).get('containers') or [])}"


def _template_spec(obj: Obj) -> Obj:
    return (_spec(obj).get("template") or {}).get("spec") or {}


def _containers(obj: Obj) -> str:
    return _join([c.get("name") for c in _template_spec(obj).get("containers") or []])


def _images(obj: Obj) -> str:
    return _join([c.get("image") for c in _template_spec(obj).get("containers") or []])


def _selector(obj: Obj) -> str:
    return label_selector_string(_spec(obj).get("selector") or {}) or NONE


def _service_external_ip(svc: Obj) -> str:
    spec = _spec(svc)
    ingress = ((_status(svc).get("loadBalancer") or {}).get("ingress")) or []
    addresses = [i.get("ip") or i.get("hostname") for i in ingress]
    external = list(spec.get("externalIPs") or [])
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", NONE))
    if spec.get("type") == "LoadBalancer":
        return _join(addresses + external, "<pending>")
    return _join(external)


def _service_ports(svc: Obj) -> str:
    out = []
    for port in _spec(svc).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        out.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return _join(out)


def _ingress_hosts(ing: Obj) -> str:
    hosts = [r.get("host") or "*" for r in _spec(ing).get("rules") or []]
    return _join(hosts, "*")


def _lb_addresses(obj: Obj) -> str:
    ingress = ((_status(obj).get("loadBalancer") or {}).get("ingress")) or []
    return ",".join(str(i.get("ip") or i.get("hostname")) for i in ingress)


def _node_status(node: Obj) -> str:
    conditions = {c.get("type"): c.get("status") for c in _status(node).get("conditions") or []}
    ready = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready", ""), "Unknown")
    return f"{ready},SchedulingDisabled" if _spec(node).get("unschedulable") else ready


def _slice_ports(es: Obj) -> str:
    ports = [p.get("port") for p in es.get("ports") or [] if p.get("port") is not None]
    return _join(ports, "<unset>")


def _slice_endpoints(es: Obj) -> str:
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (
        f" + {len(addresses) - 3} more..." if len(addresses) > 3 else ""
    )
    return shown or "<unset>"


def _int(value: Any) -> int:
    return int(value or 0)


_COLUMNS: Final[dict[str, list[Column]]] = {
    "pods": [
        Column("Ready", _pod_ready, description="The aggregate readiness state of this pod."),
        Column("Status", _pod_status, description="The aggregate status of the containers."),
        Column("Restarts", lambda o: str(sum(_int(c.get("restartCount")) for c in
               _status(o).get("containerStatuses") or [])),
               description="The number of times the containers in this pod have been restarted."),
        _age_column(),
        Column("IP", lambda o: _status(o).get("podIP") or NONE, priority=1,
               description="IP address allocated to the pod."),
        Column("Node", lambda o: _spec(o).get("nodeName") or NONE, priority=1,
               description="Name of the Node this pod runs on."),
        Column("Nominated Node", lambda o: _status(o).get("nominatedNodeName") or NONE,
               priority=1, description="Name of the node the scheduler nominated."),
        Column("Readiness Gates", lambda o: NONE, priority=1,
               description="The readiness gates of the pod."),
    ],
    "deployments": [
        Column("Ready", lambda o: f"{_int(_status(o).get('readyReplicas'))}/"
               f"{_int(_spec(o).get('replicas'))}",
               description="Number of the pod with ready state."),
        Column("Up-to-date", lambda o: _int(_status(o).get("updatedReplicas")), "integer",
               description="Total number of non-terminated pods targeted by this deployment "
               "that have the desired template spec."),
        Column("Available", lambda o: _int(_status(o).get("availableReplicas")), "integer",
               description="Total number of available pods (ready for at least "
               "minReadySeconds) targeted by this deployment."),
        _age_column(),
        Column("Containers", _containers, priority=1, description="Names of each container."),
        Column("Images", _images, priority=1, description="Images referenced by each container."),
        Column("Selector", _selector, priority=1, description="Label selector for pods."),
    ],
    "replicasets": [
        Column("Desired", lambda o: _int(_spec(o).get("replicas")), "integer",
               description="Number of desired pods."),
        Column("Current", lambda o: _int(_status(o).get("replicas")), "integer",
               description="The most recently observed number of replicas."),
        Column("Ready", lambda o: _int(_status(o).get("readyReplicas")), "integer",
               description="The number of pods targeted by this ReplicaSet with a Ready "
               "Condition."),
        _age_column(),
        Column("Containers", _containers, priority=1, description="Names of each container."),
        Column("Images", _images, priority=1, description="Images referenced by each container."),
        Column("Selector", _selector, priority=1, description="Label selector for pods."),
    ],
    "services": [
        Column("Type", lambda o: _spec(o).get("type", "ClusterIP"),
               description="The type of the service."),
        Column("Cluster-IP", lambda o: _spec(o).get("clusterIP") or NONE,
               description="The IP address of the service."),
        Column("External-IP", _service_external_ip,
               description="External IP addresses of the service."),
        Column("Port(s)", _service_ports, description="The ports exposed by the service."),
        _age_column(),
        Column("Selector", lambda o: _join([f"{k}={v}" for k, v in
               sorted((_spec(o).get("selector") or {}).items())]), priority=1,
               description="Route service traffic to pods with label keys and values matching "
               "this selector."),
    ],
    "ingresses": [
        Column("Class", lambda o: _spec(o).get("ingressClassName") or NONE,
               description="The name of the IngressClass resource."),
        Column("Hosts", _ingress_hosts, description="Hosts that incoming requests are matched "
               "against."),
        Column("Address", _lb_addresses, description="Address is a list containing ingress "
               "points for the load-balancer."),
        Column("Ports", lambda o: "80, 443" if _spec(o).get("tls") else "80",
               description="Ports of TLS configurations that open."),
        _age_column(),
    ],
    "ingressclasses": [
        Column("Controller", lambda o: _spec(o).get("controller", ""),
               description="Controller that is responsible for handling this class."),
        Column("Parameters", lambda o: NONE if not _spec(o).get("parameters") else
               f"{_spec(o)['parameters'].get('kind')}/{_spec(o)['parameters'].get('name')}",
               description="A reference to a resource with additional parameters."),
        _age_column(),
    ],
    "namespaces": [
        Column("Status", lambda o: _status(o).get("phase", ""),
               description="The status of the namespace."),
        _age_column(),
    ],
    "nodes": [
        Column("Status", _node_status, description="The status of the node."),
        Column("Roles", lambda o: NONE, description="The roles of the node."),
        _age_column(),
        Column("Version", lambda o: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", ""),
               description="Kubelet Version reported by the node."),
    ],
    "secrets": [
        Column("Type", lambda o: o.get("type", ""), description="The type of the secret."),
        Column("Data", lambda o: len(o.get("data") or {}), "integer",
               description="The number of entries in the data."),
        _age_column(),
    ],
    "configmaps": [
        Column("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
               "integer", description="The number of entries in the data."),
        _age_column(),
    ],
    "serviceaccounts": [
        Column("Secrets", lambda o: len(o.get("secrets") or []), "integer",
               description="The number of secrets of the service account."),
        _age_column(),
    ],
    "endpointslices": [
        Column("AddressType", lambda o: o.get("addressType", ""),
               description="The type of address carried by this EndpointSlice."),
        Column("Ports", _slice_ports, description="Ports of the EndpointSlice."),
        Column("Endpoints", _slice_endpoints, description="Endpoints of the EndpointSlice."),
        _age_column(),
    ],
    "endpoints": [
        Column("Endpoints", lambda o: _join([f"{a.get('ip')}:{p.get('port')}"
               for s in o.get("subsets") or [] for a in s.get("addresses") or []
               for p in s.get("ports") or []]),
               description="Endpoints of the service."),
        _age_column(),
    ],
}  # fmt: skip

_EVENT_COLUMNS: Final = [
    Column("Last Seen", lambda o: _since(o.get("lastTimestamp") or o.get("eventTime")
           or _meta(o, "creationTimestamp")), description="Time since the event last happened."),
    Column("Type", lambda o: o.get("type", ""), description="Type of this event."),
    Column("Reason", lambda o: o.get("reason", ""), description="Why the event happened."),
    Column("Object", lambda o: f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
           f"{(o.get('involvedObject') or {}).get('name', '')}",
           description="The object this event is about."),
    Column("Message", lambda o: o.get("message", ""), description="What happened."),
]  # fmt: skip


def columns(kind: Kind) -> list[Column]:
    """The columns of ``kubectl get`` for ``kind``."""
    if kind.plural == "events" and not kind.group:
        return list(_EVENT_COLUMNS)
    return [_name_column(), *_COLUMNS.get(kind.plural, [_age_column()])]


def _row_object(kind: Kind, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}  # fmt: skip


def table(kind: Kind, objects: Sequence[Obj], list_meta: Obj, include_object: str) -> Obj:
    """A Table of ``objects``; ``include_object``: None, Metadata (default) or Object."""
    cols = columns(kind)
    rows = []
    for obj in objects:
        row: Obj = {"cells": [col.cell(obj) for col in cols]}
        embedded = _row_object(kind, obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {"name": c.name, "type": c.type, "format": c.format, "description": c.description,
             "priority": c.priority}
            for c in cols
        ],
        "rows": rows,
    }  # fmt: skip
