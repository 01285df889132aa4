"""The cluster target: a Kubernetes cluster reached through a kubeconfig, with a proxy already
running in it (Traefik watching the cluster's Ingresses and CRDs).

Per run the target creates one namespace of its own (labelled as the harness's, named after
the run id), runs a whoami Deployment behind every Service the manifests name, waits until the
cluster's endpoints controller lists their pods as ready, and applies each scenario's objects
into that namespace as written (only the namespace, and references to it, changed). The proxy
is reached at ``--proxy-url`` or at the address its Service publishes (``--proxy-service``).
Everything is deleted with the namespace at the end; namespaces a killed run left behind are
found by label and removed by a later run once they are older than a grace period.

Before anything is created, a preflight asks the API (SelfSubjectAccessReview) for every
permission the run needs and refuses the run with one message listing all that are missing.

Whether a change has reached the proxy is seen through the proxy itself, since a cluster's
Traefik API is usually not reachable: after the change, canaries move to new hosts (an Ingress;
when the scenarios use Traefik's CRDs an IngressRoute, using a Middleware and a TraefikService
named after the move when the scenarios apply those kinds), and the change counts as seen once
the proxy answers every canary's host: Traefik watches each kind on its own and applies a
kind's objects in the order it saw them.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from harness.errors import AccessDenied, ClusterError, ConfigError, WaitTimeout
from harness.intent.model import Intent, ServiceRef
from harness.targets.apply import Applier
from harness.targets.base import APPLY_TIMEOUT, AtProxyURL, check_reachable, service_for_ref
from harness.targets.local_stack import MANAGED_BY
from harness.traefik.render import manifests_to_apply
from harness.traffic.tls import TLSVerify
from harness.waiting import wait_until

#: The upstream whoami image, pinned (the harness parses its output format).
DEFAULT_BACKEND_IMAGE: Final = "traefik/whoami:v1.11.0"
#: whoami's default port (``WHOAMI_PORT_NUMBER`` moves it).
WHOAMI_PORT: Final = 80

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
RUN_LABEL: Final = "ingress-harness/run-id"
BACKEND_LABEL: Final = "ingress-harness/backend"
CREATED_ANNOTATION: Final = "ingress-harness/created-at"
NAMESPACE_PREFIX: Final = "ingress-harness-"
CANARY: Final = "ingress-harness-canary"

#: How long deleting the run's namespace may take (a cluster's namespace controller deletes the
#: contents first), in seconds.
CLEANUP_TIMEOUT: Final = 120.0
#: Seconds one request to the proxy may take while waiting for a canary.
_PROBE_TIMEOUT: Final = 5.0

_MIDDLEWARES_ANNOTATION: Final = "traefik.ingress.kubernetes.io/router.middlewares"
_TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ClusterOptions:
    """What the user chose about the cluster target (see the README's Options)."""

    run_id: str
    backend_image: str = DEFAULT_BACKEND_IMAGE
    replicas: int = 2
    proxy_url: str | None = None
    #: (namespace, name) of the proxy's Service, when the proxy URL is to be discovered.
    proxy_service: tuple[str, str] | None = None
    ready_timeout: float = 30.0
    #: A harness namespace older than this (seconds) was left by a killed run.
    stale_after: float = 3600.0
    #: Tells apart the namespaces of one run's xdist workers (e.g. ``gw0``).
    worker: str = ""
    #: How an HTTPS proxy's certificates are checked (--proxy-tls-verify).
    tls_verify: TLSVerify = field(default_factory=TLSVerify)


def namespace_name(run_id: str, worker: str = "") -> str:
    """The run's namespace: ``ingress-harness-<run id>[-<worker>]`` as a DNS label."""
    raw = "-".join(p for p in (run_id, worker) if p)
    label = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-") or "run"
    return (NAMESPACE_PREFIX + label)[:63].rstrip("-")


# -- what the run needs --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource, in a namespace ("" for the cluster scope)."""

    verb: str
    group: str
    resource: str
    namespace: str = ""

    def __str__(self) -> str:
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        scope = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {qualified} ({scope})"


#: What applying one object takes (Applier.apply: get, then create or patch; removal: delete).
_APPLY_VERBS: Final = ("get", "create", "patch", "delete")


def required_permissions(
    namespace: str,
    applied: Iterable[tuple[str, str]],
    proxy_service: tuple[str, str] | None,
) -> list[Permission]:
    """Every permission a run in ``namespace`` needs: its namespace, the backends, the kinds it
    applies (``applied``: (group, resource) pairs) and the proxy's discovery."""
    needs = [Permission(v, "", "namespaces") for v in ("create", "get", "list", "delete")]
    needs.append(Permission("create", "apps", "deployments", namespace))
    # Applier.put: get, then create or replace (the namespace's deletion removes them).
    needs += [Permission(v, "", "services", namespace) for v in ("create", "get", "update")]
    needs.append(Permission("list", "", "pods", namespace))
    needs.append(Permission("list", "discovery.k8s.io", "endpointslices", namespace))
    for group, resource in sorted(set(applied)):
        needs += [Permission(v, group, resource, namespace) for v in _APPLY_VERBS]
    if proxy_service is not None:
        needs.append(Permission("get", "", "services", proxy_service[0]))
        needs.append(Permission("list", "", "nodes"))
    return sorted(set(needs))


def missing_permissions(api_client: k8s.ApiClient, needs: Sequence[Permission]) -> list[Permission]:
    """The permissions of ``needs`` the API says this client lacks (SelfSubjectAccessReview)."""
    api = k8s.AuthorizationV1Api(api_client)
    missing = []
    for need in needs:
        body = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=need.verb,
                    group=need.group,
                    resource=need.resource,
                    namespace=need.namespace,
                )
            )
        )
        try:
            answer = api.create_self_subject_access_review(body, _request_timeout=(5.0, 30.0))
        except ApiException as exc:
            raise ClusterError(
                f"the cluster's API at {api_client.configuration.host} refused a "
                f"SelfSubjectAccessReview ({exc.status} {exc.reason})"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(
                f"the cluster's API at {api_client.configuration.host} does not answer "
                f"({type(exc).__name__}); check --kubeconfig and --context"
            ) from None
        if answer.status is None or not answer.status.allowed:
            missing.append(need)
    return missing


def check_permissions(api_client: k8s.ApiClient, needs: Sequence[Permission]) -> None:
    """Refuse the run, listing every missing permission at once, before anything is created."""
    missing = missing_permissions(api_client, needs)
    if missing:
        raise AccessDenied(
            f"the cluster target cannot run with these credentials: {len(missing)} of "
            f"{len(needs)} permissions it needs are missing: "
            + "; ".join(map(str, missing))
            + ". Grant them (a ClusterRole bound to this user or ServiceAccount) or use "
            "another --context; nothing was created"
        )


# -- relocating the manifests into the run's namespace ------------------------------------


def relocate(body: Mapping[str, Any], source: str, target: str) -> dict[str, Any]:
    """``body`` moved from namespace ``source`` to ``target``: ``metadata.namespace`` and the
    references to ``source`` a Traefik object can hold (the ``router.middlewares`` annotation's
    ``<namespace>-<name>``, ``namespace`` fields of IngressRoute and TraefikService services and
    middlewares). Nothing else changes: the rest is applied as written."""
    out = copy.deepcopy(dict(body))
    meta = out.setdefault("metadata", {})
    meta["namespace"] = target
    annotations = meta.get("annotations") or {}
    if _MIDDLEWARES_ANNOTATION in annotations:
        refs = [r.strip() for r in str(annotations[_MIDDLEWARES_ANNOTATION]).split(",")]
        annotations[_MIDDLEWARES_ANNOTATION] = ",".join(
            f"{target}-{r[len(source) + 1 :]}" if r.startswith(f"{source}-") else r for r in refs
        )
    spec = out.get("spec")
    if isinstance(spec, dict):
        entries: list[Any] = []
        for route in spec.get("routes") or []:
            if isinstance(route, dict):
                entries += route.get("services") or []
                entries += route.get("middlewares") or []
        weighted = spec.get("weighted")
        if isinstance(weighted, dict):
            entries += weighted.get("services") or []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("namespace") == source:
                entry["namespace"] = target
    return out


def source_namespace(scenarios: Mapping[str, Intent]) -> str:
    """The one namespace the manifests use (the run relocates it); refused when several."""
    used = {i.namespace for i in scenarios.values()}
    used |= {o.namespace for i in scenarios.values() for o in i.objects}
    used |= {s.namespace for i in scenarios.values() for s in i.services}
    if len(used) > 1:
        raise ConfigError(
            "the cluster target applies the manifests into one namespace of its own per run; "
            f"they use {len(used)} namespaces ({', '.join(sorted(used))}): keep them in one"
        )
    return used.pop() if used else "default"


# -- the backends ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One Service the manifests name and the whoami Deployment behind it."""

    name: str
    service: dict[str, Any]
    deployment: dict[str, Any]


def _declared_services(scenarios: Mapping[str, Intent]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for intent in scenarios.values():
        for obj in intent.objects:
            if obj.kind == "Service" and obj.role == "applied":
                found.setdefault(obj.name, []).append(obj.body)
    return found


def _target_port(service: Mapping[str, Any], where: str) -> tuple[int, list[str]]:
    """(port whoami listens on, container port names) serving the Service's target ports."""
    numbers: set[int] = set()
    names: set[str] = set()
    for port in service.get("spec", {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            numbers.add(target)
        elif isinstance(target, str) and target.isdigit():
            numbers.add(int(target))
        elif isinstance(target, str):
            names.add(target)
    if len(numbers) + len(names) > 1:
        shown = ", ".join(sorted(map(str, numbers)) + sorted(names))
        raise ConfigError(
            f"{where}: target ports {shown}: the cluster target backs a Service with whoami "
            "pods, which listen on one port; give the Service one target port"
        )
    return (numbers.pop() if numbers else WHOAMI_PORT), sorted(names)


def plan_backends(
    scenarios: Mapping[str, Intent], namespace: str, image: str, replicas: int
) -> list[Backend]:
    """A whoami Deployment and the Service as declared (or, for a Service the manifests do not
    declare, one with the ports the routes reference) for every Service the scenarios name.

    The pods carry the labels the Service selects (every declaration of it), so the cluster's
    endpoints controller lists them; a Service without a selector, or one whose selector also
    matches another backend's pods, is refused (its endpoints would not be whoami pods of it).
    """
    declared = _declared_services(scenarios)
    refs: dict[str, ServiceRef] = {}
    for intent in scenarios.values():
        for ref in intent.services:
            refs.setdefault(ref.name, ref)
    backends: list[Backend] = []
    for name in sorted(refs):
        bodies = declared.get(name) or [service_for_ref(refs[name])]
        where = f"Service {name!r}"
        labels: dict[str, str] = {}
        for body in bodies:
            selector = body.get("spec", {}).get("selector") or {}
            if not selector:
                raise ConfigError(
                    f"{where} has no spec.selector: the cluster target runs whoami pods behind "
                    "each Service and needs a selector that picks them"
                )
            for key, value in selector.items():
                if labels.setdefault(str(key), str(value)) != str(value):
                    raise ConfigError(
                        f"{where} is declared with selectors that disagree on {key!r} "
                        f"({labels[key]!r} and {value!r})"
                    )
        service = relocate(bodies[0], str(bodies[0]["metadata"].get("namespace", "")), namespace)
        port, port_names = _target_port(service, where)
        pod_labels = {**labels, BACKEND_LABEL: name}
        container: dict[str, Any] = {
            "name": "whoami",
            "image": image,
            "env": [
                {"name": "WHOAMI_NAME", "value": name},
                {"name": "WHOAMI_PORT_NUMBER", "value": str(port)},
            ],
            "ports": [{"name": n, "containerPort": port} for n in port_names]
            or [{"containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": port}},
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY, BACKEND_LABEL: name},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {"containers": [container]},
                },
            },
        }
        backends.append(Backend(name, service, deployment))
    for one in backends:
        selector = one.service["spec"]["selector"]
        for other in backends:
            if other is not one and _selects(selector, other.deployment["spec"]["template"]):
                raise ConfigError(
                    f"Service {one.name!r} selects {selector}, which also matches the pods of "
                    f"Service {other.name!r}: its endpoints would mix two backends"
                )
    return backends


def _endpoints_ready(slices: Sequence[Mapping[str, Any]], service: str) -> int:
    """How many distinct ready addresses the EndpointSlices of ``service`` list."""
    addresses: set[str] = set()
    for piece in slices:
        if (piece.get("metadata", {}).get("labels") or {}).get(
            "kubernetes.io/service-name"
        ) != service:
            continue
        for endpoint in piece.get("endpoints") or []:
            # The API's rule: a ready condition that is not set counts as ready.
            if (endpoint.get("conditions") or {}).get("ready") is not False:
                addresses.update(endpoint.get("addresses") or [])
    return len(addresses)


def _selects(selector: Mapping[str, str], obj: Mapping[str, Any]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _container_problems(status: Mapping[str, Any]) -> list[str]:
    """``whoami waiting: ErrImagePull`` for each container that is not ready."""
    out = []
    for container in status.get("containerStatuses") or []:
        for state, detail in (container.get("state") or {}).items():
            if not container.get("ready") and isinstance(detail, dict):
                reason = detail.get("reason") or detail.get("message") or ""
                out.append(f"{container.get('name')} {state}{': ' + reason if reason else ''}")
    return out


def _pod_problem(pods: Sequence[Mapping[str, Any]], backend: Backend) -> str:
    """The state of the backend's pods, for a timeout message."""
    mine = [p for p in pods if _selects(backend.deployment["spec"]["selector"]["matchLabels"], p)]
    if not mine:
        return "no pods: is something running the Deployment's pods?"
    states = []
    for pod in mine[:3]:
        status = pod.get("status") or {}
        problems = _container_problems(status)
        extra = f" ({'; '.join(problems)})" if problems else ""
        states.append(f"pod {pod['metadata']['name']} {status.get('phase', 'Unknown')}{extra}")
    return ", ".join(states)


# -- the proxy's address --------------------------------------------------------------------


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _proxy_port(service: Mapping[str, Any], label: str) -> dict[str, Any]:
    ports = list(service.get("spec", {}).get("ports") or [])
    for wanted in (
        lambda p: p.get("name") in ("web", "http"),
        lambda p: p.get("port") == 80,
        lambda p: len(ports) == 1,
    ):
        found = [p for p in ports if wanted(p)]
        if found:
            return dict(found[0])
    shown = ", ".join(f"{p.get('name') or '(unnamed)'}:{p.get('port')}" for p in ports) or "none"
    raise ClusterError(
        f"--proxy-service {label}: no HTTP port (named web or http, or port 80) among its "
        f"ports {shown}; give --proxy-url instead"
    )


def discover_proxy_url(applier: Applier, namespace: str, name: str) -> str:
    """The proxy's URL from its Service: a LoadBalancer ingress IP or hostname at the Service's
    port, else the port's NodePort on a node's InternalIP (then ExternalIP). The error says
    what was tried."""
    label = f"{namespace}/{name}"
    service = applier.get(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}, namespace
    )
    if service is None:
        raise ClusterError(f"--proxy-service {label}: no such Service in the cluster")
    port = _proxy_port(service, label)
    kind = service.get("spec", {}).get("type", "ClusterIP")
    tried = []
    ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        host = entry.get("ip") or entry.get("hostname")
        if host:
            return f"http://{_host(host)}:{port['port']}"
    tried.append(
        "a LoadBalancer ingress: none published (status.loadBalancer.ingress is empty)"
        if kind == "LoadBalancer"
        else f"a LoadBalancer ingress: the Service is of type {kind}"
    )
    node_port = port.get("nodePort")
    if node_port:
        nodes = applier.list_objects("v1", "Node")
        for address_type in ("InternalIP", "ExternalIP"):
            for node in nodes:
                for address in node.get("status", {}).get("addresses") or []:
                    if address.get("type") == address_type and address.get("address"):
                        return f"http://{_host(address['address'])}:{node_port}"
        tried.append(
            f"NodePort {node_port} on a node address: none of the {len(nodes)} nodes has an "
            "InternalIP or ExternalIP"
        )
    else:
        tried.append(f"a NodePort: port {port.get('name') or port.get('port')} has none")
    raise ClusterError(
        f"--proxy-service {label}: cannot tell where the proxy answers; tried "
        + "; then ".join(tried)
        + ". Give --proxy-url"
    )


# -- the target -----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _age(namespace: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds since the harness created ``namespace`` (its annotation, else the server's
    creationTimestamp)."""
    meta = namespace.get("metadata", {})
    stamp = (meta.get("annotations") or {}).get(CREATED_ANNOTATION) or meta.get("creationTimestamp")
    try:
        created = datetime.strptime(str(stamp), _TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        return None  # an unreadable stamp: never judged stale
    return (now - created).total_seconds()


def remove_stale_namespaces(applier: Applier, stale_after: float) -> list[str]:
    """Delete the namespaces runs of the harness left behind (its label, its name prefix)
    once older than ``stale_after`` seconds; return their names. Nothing else is touched."""
    now = _now()
    removed = []
    ours = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    for ns in applier.list_objects("v1", "Namespace", label_selector=ours):
        meta = ns.get("metadata", {})
        name = str(meta.get("name", ""))
        if (
            not name.startswith(NAMESPACE_PREFIX)
            or RUN_LABEL not in (meta.get("labels") or {})
            or meta.get("deletionTimestamp")
        ):
            continue
        age = _age(ns, now)
        if age is not None and age > stale_after:
            applier.delete(_namespace_object(name))
            removed.append(name)
    return removed


def _namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


class ClusterTarget(AtProxyURL):
    """A cluster through a kubeconfig: the run's namespace, backends and manifests, the proxy
    already there. Use :meth:`start`; :meth:`stop` deletes what the run created (idempotent,
    safe after a failed start)."""

    kind = "cluster"
    can_apply = True

    def __init__(
        self, options: ClusterOptions, api_client: k8s.ApiClient, workdir: Path, context: str = ""
    ) -> None:
        self.options = options
        self.api_client = api_client
        self.applier = Applier(api_client, cache_dir=workdir / "kube-cache")
        self.namespace = namespace_name(options.run_id, options.worker)
        self.context = context
        self.proxy_url = ""
        self.backends: list[Backend] = []
        self.removed_stale: list[str] = []
        self._source = "default"
        #: The Traefik CRD kinds the scenarios apply (each watched on its own by Traefik).
        self._crd_kinds: frozenset[str] = frozenset()
        self._canary_service: tuple[str, dict[str, Any]] = ("", {})
        self._moves = 0
        self._exit = contextlib.ExitStack()

    @property
    def tls_verify(self) -> TLSVerify:
        return self.options.tls_verify

    # -- bring-up ----------------------------------------------------------------------------

    def objects_of(self, intent: Intent) -> list[dict[str, Any]]:
        """What applying ``intent`` sends: its manifests as written, relocated into the run's
        namespace; cluster-scoped kinds (IngressClass) are the cluster's own and not applied."""
        return [
            relocate(body, self._source, self.namespace)
            for body in manifests_to_apply(intent)
            if self.applier.is_namespaced(body)
        ]

    def needs(self, scenarios: Mapping[str, Intent]) -> list[Permission]:
        """The permissions a run of ``scenarios`` needs (see :func:`required_permissions`)."""
        applied = [body for intent in scenarios.values() for body in self.objects_of(intent)]
        kinds = {self.applier.resource_name(body) for body in applied}
        kinds.add(("networking.k8s.io", "ingresses"))  # the canary, the derived routes
        if self._crd_kinds:
            kinds.add(("traefik.io", "ingressroutes"))  # the CRD provider's canary
        return required_permissions(self.namespace, kinds, self.options.proxy_service)

    def start(self, scenarios: Mapping[str, Intent]) -> ClusterTarget:
        try:
            self._start(scenarios)
        except BaseException:
            self.stop()
            raise
        return self

    def preflight(self, scenarios: Mapping[str, Intent]) -> None:
        """What can be known before anything is created: the manifests fit the cluster target
        (one namespace, backends it can run) and the credentials have every permission."""
        self.backends = plan_backends(
            scenarios, self.namespace, self.options.backend_image, self.options.replicas
        )
        if not self.backends:
            raise ConfigError("the scenarios name no Service: nothing to run behind the proxy")
        self._source = source_namespace(scenarios)
        self._crd_kinds = frozenset(
            str(body["kind"])
            for intent in scenarios.values()
            for body in self.objects_of(intent)
            if str(body.get("apiVersion", "")).startswith("traefik.io/")
        )
        check_permissions(self.api_client, self.needs(scenarios))

    def _start(self, scenarios: Mapping[str, Intent]) -> None:
        opts = self.options
        self.preflight(scenarios)
        # Reads only, before anything is created: the proxy's address.
        if opts.proxy_url:
            proxy_url = opts.proxy_url
        else:
            assert opts.proxy_service is not None  # the settings require one of the two
            proxy_url = discover_proxy_url(self.applier, *opts.proxy_service)
        self.removed_stale = remove_stale_namespaces(self.applier, opts.stale_after)
        self._create_namespace()
        for backend in self.backends:
            self.applier.create(backend.deployment)
            self.applier.put(backend.service)
        self.wait_for_backends(self.backends)
        check_reachable(proxy_url)
        self.proxy_url = proxy_url
        first = self.backends[0]
        self._canary_service = (first.name, dict(first.service["spec"]["ports"][0]))
        self._move_canaries(
            what="the proxy to serve the run's canary (is its Traefik watching namespace "
            f"{self.namespace} and Ingresses without a class?)"
        )

    def _create_namespace(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": {
                    MANAGED_BY_LABEL: MANAGED_BY,
                    RUN_LABEL: _label_value(self.options.run_id),
                },
                "annotations": {CREATED_ANNOTATION: _now().strftime(_TIMESTAMP)},
            },
        }
        try:
            self.applier.create(body)
        except DynamicApiError as exc:
            if exc.status == 409:
                raise ClusterError(
                    f"namespace {self.namespace} already exists: another run with run id "
                    f"{self.options.run_id!r}? (HARNESS_RUN_ID)"
                ) from None
            raise
        self._exit.callback(self._delete_namespace)

    def _slices(self) -> list[dict[str, Any]]:
        return self.applier.list_objects("discovery.k8s.io/v1", "EndpointSlice", self.namespace)

    def wait_for_backends(self, backends: Sequence[Backend]) -> None:
        """Until the EndpointSlices of every backend list all its replicas as ready; the
        timeout names each backend that is not, with the state of its pods."""
        wanted = self.options.replicas

        def not_ready() -> list[Backend]:
            slices = self._slices()
            return [b for b in backends if _endpoints_ready(slices, b.name) < wanted]

        try:
            wait_until(
                lambda: not not_ready(),
                timeout=self.options.ready_timeout,
                what="the backends' EndpointSlices",
            )
        except WaitTimeout:
            slices = self._slices()
            pods = self.applier.list_objects("v1", "Pod", self.namespace)
            late = [
                f"{b.name}: {_endpoints_ready(slices, b.name)} of {wanted} endpoints ready "
                f"({_pod_problem(pods, b)})"
                for b in not_ready()
            ]
            raise ClusterError(
                f"timed out after {self.options.ready_timeout:g} s (--stack-timeout) waiting "
                f"for the backends in namespace {self.namespace} to be ready in their "
                f"EndpointSlices: {'; '.join(late) or 'all ready at the last look'}"
            ) from None

    # -- changes -----------------------------------------------------------------------------

    def _canaries(self, move: int) -> tuple[list[dict[str, Any]], list[str]]:
        """The canary objects of one move, in the order they are applied, and their hosts.

        Traefik watches every kind on its own, so one canary per kind the scenarios apply: the
        Ingress (its host moves) for the Ingress provider; for the CRD provider an IngressRoute
        (its host moves) using a Middleware and a TraefikService named after the move when the
        scenarios apply those kinds (a route whose Middleware or TraefikService the provider has
        not seen yet is not served).
        """
        service, port = self._canary_service
        ns = self.namespace

        def meta(name: str) -> dict[str, Any]:
            return {"name": name, "namespace": ns, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}

        objects: list[dict[str, Any]] = []
        hosts: list[str] = []
        moved = f"{CANARY}-{move}"
        if self._crd_kinds:
            route: dict[str, Any] = {
                "kind": "Rule",
                "services": [{"name": service, "port": port["port"]}],
            }
            if "Middleware" in self._crd_kinds:
                objects.append(
                    {
                        "apiVersion": "traefik.io/v1alpha1",
                        "kind": "Middleware",
                        "metadata": meta(moved),
                        "spec": {"stripPrefix": {"prefixes": [f"/{moved}"]}},
                    }
                )
                route["middlewares"] = [{"name": moved}]
            if "TraefikService" in self._crd_kinds:
                objects.append(
                    {
                        "apiVersion": "traefik.io/v1alpha1",
                        "kind": "TraefikService",
                        "metadata": meta(moved),
                        "spec": {"weighted": {"services": route["services"]}},
                    }
                )
                route["services"] = [{"name": moved, "kind": "TraefikService"}]
            host = f"{moved}-crd.{ns}.harness.invalid"
            route["match"] = f"Host(`{host}`)"
            objects.append(
                {
                    "apiVersion": "traefik.io/v1alpha1",
                    "kind": "IngressRoute",
                    "metadata": meta(CANARY),
                    "spec": {"routes": [route]},
                }
            )
            hosts.append(host)
        host = f"{moved}.{ns}.harness.invalid"
        backend_port = {"name": port["name"]} if port.get("name") else {"number": port["port"]}
        path = {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": backend_port}},
        }
        objects.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta(CANARY),
                "spec": {"rules": [{"host": host, "http": {"paths": [path]}}]},
            }
        )
        hosts.append(host)
        return objects, hosts

    def _served(self, host: str) -> bool:
        try:
            answer = httpx.get(
                f"{self.proxy_url}/",
                headers={"Host": host},
                timeout=_PROBE_TIMEOUT,
                trust_env=False,
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and f"Name: {self._canary_service[0]}" in answer.text

    def _move_canaries(self, *, what: str = "the proxy to serve the run's canary") -> None:
        """Move every canary (new hosts, new Middleware and TraefikService) and wait until the
        proxy answers each: every change applied before has then been seen by the proxy's
        providers, kind by kind. The previous move's Middleware and TraefikService go after."""
        self._moves += 1
        objects, hosts = self._canaries(self._moves)
        self.applier.apply_all(objects)
        for host in hosts:
            wait_until(
                lambda: self._served(host),  # noqa: B023 - called before the loop moves on
                timeout=APPLY_TIMEOUT,
                what=f"{what}: Host {host} at {self.proxy_url}",
            )
        if self._moves > 1:
            previous, _ = self._canaries(self._moves - 1)
            for obj in previous:
                if obj["metadata"]["name"] != CANARY:
                    self.applier.delete(obj)

    def _put_services(self, intent: Intent) -> None:
        """The scenario's own declaration of its Services (names, ports, port names as
        written), replacing the run's; waited for when the ports changed."""
        changed = []
        by_name = {b.name: b for b in self.backends}
        for obj in intent.objects:
            if obj.kind != "Service" or obj.role != "applied":
                continue
            body = relocate(obj.body, self._source, self.namespace)
            backend = by_name[obj.name]
            if body["spec"] != backend.service["spec"]:
                self.applier.put(body)
                by_name[obj.name] = Backend(backend.name, body, backend.deployment)
                changed.append(by_name[obj.name])
        self.backends = [by_name[b.name] for b in self.backends]
        if changed:
            self.wait_for_backends(changed)

    def apply_intent(self, intent: Intent) -> None:
        self._put_services(intent)
        self.applier.apply_all(self.objects_of(intent))
        self._move_canaries()

    def remove_intent(self, intent: Intent) -> None:
        self.applier.delete_all(self.objects_of(intent))
        self._move_canaries()

    def reload(self) -> bool:
        """A configuration change of the proxy that touches no route under test."""
        self._move_canaries()
        return True

    def service_of(self, whoami_name: str | None) -> str | None:
        # WHOAMI_NAME is the Service's name.
        return whoami_name

    def describe(self) -> dict[str, Any]:
        """The target as a report header shows it (no credentials)."""
        return {
            "target": self.kind,
            "context": self.context,
            "api_server": self.api_client.configuration.host,
            "namespace": self.namespace,
            "proxy_url": self.proxy_url,
            "proxy_service": "/".join(self.options.proxy_service or ()) or None,
            "backend_image": self.options.backend_image,
            "backends": {b.name: self.options.replicas for b in self.backends},
            "removed_stale_namespaces": self.removed_stale,
        }

    # -- cleanup -----------------------------------------------------------------------------

    def _delete_namespace(self) -> None:
        self.applier.delete(_namespace_object(self.namespace))
        wait_until(
            lambda: self.applier.get(_namespace_object(self.namespace)) is None,
            timeout=CLEANUP_TIMEOUT,
            what=f"namespace {self.namespace} to be deleted (a later run removes it)",
        )

    def stop(self) -> None:
        """Delete everything the run created (its namespace and all in it). Idempotent."""
        self._exit.close()


def _label_value(text: str) -> str:
    """``text`` as a label value (63 characters of [A-Za-z0-9._-], alphanumeric at the ends)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._") or "run"


def cluster_client(kubeconfig: str | None, context: str | None) -> tuple[k8s.ApiClient, str]:
    """The API client of ``context`` in ``kubeconfig`` (None: the kubeconfig's own defaults),
    and the context's name; refused when the API does not answer ``/version``."""
    from kubernetes import config as k8s_config

    from harness.targets.apply import api_client_from_kubeconfig

    api_client = api_client_from_kubeconfig(kubeconfig, context)
    try:
        k8s.VersionApi(api_client).get_code(_request_timeout=(5.0, 30.0))
    except (urllib3.exceptions.HTTPError, ApiException) as exc:
        api_client.close()
        reason = exc.reason if isinstance(exc, ApiException) else type(exc).__name__
        raise ClusterError(
            f"the cluster's API at {api_client.configuration.host} does not answer ({reason}); "
            "check --kubeconfig and --context"
        ) from None
    if context:
        return api_client, context
    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except (k8s_config.ConfigException, OSError):
        return api_client, ""
    return api_client, str((active or {}).get("name", ""))
