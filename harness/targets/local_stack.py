"""The local target: real Traefik, a local Kubernetes API stand-in, echo backends, all on loopback.

Traefik serves the ``web`` and ``websecure`` entry points. Its certificates are generated: a CA
of the run (``ca.pem`` in the work folder, which the probes trust) issues one certificate for the
hosts of every route that declares TLS; it replaces each TLS Secret the manifests name (as the
echo backends replace the Services' pods) and is Traefik's default certificate (a ``default``
TLSStore), so a TLS router without a Secret gets it too.

Bringing it up is what a cluster operator would do, in miniature: the API server comes first, the
backends are registered in it as Services with EndpointSlices (one slice per instance, since every
instance listens on its own loopback port), Traefik is started with its Kubernetes Ingress and CRD
providers (and its Gateway provider, when the manifests hold Gateway API objects) pointed at
that API, and the stack is ready when Traefik serves a canary route from each provider (so each
provider has synced, not just started).

With ``nginx_provider`` Traefik's NGINX provider runs as well ("beside") or instead of the Ingress
provider ("alone"); the stack then publishes the IngressClass ``nginx`` of controller
``k8s.io/ingress-nginx`` (as ingress-nginx's Helm chart installs it) and a canary Ingress of that
class.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme
from kubernetes import client as k8s

from harness.backends.echo import (
    BackendInstance,
    BackendPool,
    BackendProcess,
    ListenerSpec,
    start_backends,
)
from harness.errors import StackError
from harness.intent.model import (
    GATEWAY_API_V1,
    GATEWAY_CONTROLLER,
    GATEWAY_GROUP,
    NGINX_CONTROLLER,
    PROVIDER_NGINX,
    Intent,
)
from harness.kubeapi.server import KubeAPIServer
from harness.targets.apply import Applier, api_client_for_url
from harness.traefik.gateway import gateway_listeners, listener_entry_points
from harness.traefik.process import (
    NginxProviderMode,
    TraefikProcess,
    TraefikSettings,
    enabled_routers,
    find_traefik_binary,
)
from harness.traefik.render import manifests_to_apply
from harness.traffic.tls import TLSVerify
from harness.waiting import wait_until

#: The tutorial's backends (service name -> instances).
TUTORIAL_SERVICES: Mapping[str, int] = {"stilton": 1, "cheddar": 1, "wensleydale": 1}

#: Where the harness keeps its own objects (the readiness canaries).
SYSTEM_NAMESPACE = "harness-system"
CANARY = "harness-canary"
#: The canary Ingress of Traefik's NGINX provider (class NGINX_CLASS).
NGINX_CANARY = "harness-canary-nginx"
NGINX_CLASS = "nginx"

SERVICE_PORT_NAME = "http"
SERVICE_PORT = 80
MANAGED_BY = "ingress-harness"
#: The Secret holding Traefik's default certificate (in SYSTEM_NAMESPACE).
DEFAULT_CERTIFICATE = "harness-default-certificate"


@dataclass(frozen=True)
class LocalStackOptions:
    """What a user can choose about the local target."""

    services: Mapping[str, int] = field(default_factory=lambda: dict(TUTORIAL_SERVICES))
    namespace: str = "default"
    traefik_binary: str | None = None
    throttle_seconds: float = 2.0
    strict_prefix_matching: bool = False
    traefik_log_level: str = "INFO"
    ready_timeout: float = 30.0
    #: Start Traefik with its Gateway API provider too (the manifests hold Gateway API objects).
    gateway: bool = False
    #: Traefik's NGINX provider: None (off), "beside" the Ingress provider, or "alone".
    nginx_provider: NginxProviderMode | None = None
    #: The NGINX provider's watchIngressWithoutClass.
    nginx_without_class: bool = False
    #: The NGINX provider's globalAllowedResponseHeaders (the custom-headers the manifests set).
    nginx_allowed_response_headers: tuple[str, ...] = ()


def service_objects(
    service: str, instances: Sequence[BackendInstance], namespace: str
) -> list[dict[str, Any]]:
    """A Service and one EndpointSlice per instance, as a controller would publish them."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "namespace": namespace, "labels": {"app": service}},
            "spec": {
                "selector": {"app": service},
                "ports": [
                    {
                        "name": SERVICE_PORT_NAME,
                        "port": SERVICE_PORT,
                        "targetPort": SERVICE_PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    ]
    objs.extend(endpoint_slice(service, inst, namespace) for inst in instances)
    return objs


def endpoint_slice(
    service: str,
    instance: BackendInstance,
    namespace: str,
    *,
    ready: bool = True,
    terminating: bool = False,
) -> dict[str, Any]:
    """The EndpointSlice of one backend instance (its own slice: its own port)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{instance.instance}",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": SERVICE_PORT_NAME, "port": instance.port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [instance.host],
                "hostname": instance.instance,
                "conditions": {
                    "ready": ready and not terminating,
                    "serving": ready,
                    "terminating": terminating,
                },
            }
        ],
    }


def _canary_ingress(name: str, host: str, klass: str | None = None) -> dict[str, Any]:
    ingress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE},
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": CANARY,
                                        "port": {"name": SERVICE_PORT_NAME},
                                    }
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }
    if klass is not None:
        ingress["spec"]["ingressClassName"] = klass
    return ingress


def nginx_canary_objects() -> list[dict[str, Any]]:
    """The IngressClass Traefik's NGINX provider serves, and its canary Ingress."""
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": NGINX_CLASS, "labels": {"app": MANAGED_BY}},
            "spec": {"controller": NGINX_CONTROLLER},
        },
        _canary_ingress(NGINX_CANARY, "canary-nginx.harness.invalid", NGINX_CLASS),
    ]


def canary_objects(target_port: int) -> list[dict[str, Any]]:
    """One route per provider that Traefik must serve before the stack counts as ready.

    The canary's endpoint need not answer: Traefik builds a router as soon as the Service has
    an endpoint, and the harness only looks at the router list.
    """
    ns = SYSTEM_NAMESPACE
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        *service_objects(
            CANARY,
            [BackendInstance(service=CANARY, instance="0", host="127.0.0.1", port=target_port)],
            ns,
        ),
        _canary_ingress(CANARY, "canary.harness.invalid"),
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": CANARY, "namespace": ns},
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": "Host(`canary-crd.harness.invalid`)",
                        "kind": "Rule",
                        "services": [{"name": CANARY, "port": SERVICE_PORT}],
                    }
                ],
            },
        },
    ]


def uses_gateway_api(intent: Intent) -> bool:
    """True when the manifests hold Gateway API objects (then Traefik needs its Gateway
    provider)."""
    return any(o.api_version.startswith(GATEWAY_GROUP + "/") for o in intent.objects)


def gateway_class(name: str) -> dict[str, Any]:
    """A GatewayClass of Traefik's Gateway controller."""
    return {
        "apiVersion": GATEWAY_API_V1,
        "kind": "GatewayClass",
        "metadata": {"name": name, "labels": {"app": MANAGED_BY}},
        "spec": {"controllerName": GATEWAY_CONTROLLER},
    }


def gateway_canary_objects(web_port: int) -> list[dict[str, Any]]:
    """The Gateway provider's canary: a GatewayClass, a Gateway listening on ``web`` (by its
    port, as Traefik binds listeners to entry points) and an HTTPRoute to the canary Service."""
    ns = SYSTEM_NAMESPACE
    return [
        gateway_class(CANARY),
        {
            "apiVersion": GATEWAY_API_V1,
            "kind": "Gateway",
            "metadata": {"name": CANARY, "namespace": ns},
            "spec": {
                "gatewayClassName": CANARY,
                "listeners": [{"name": "web", "port": web_port, "protocol": "HTTP"}],
            },
        },
        {
            "apiVersion": GATEWAY_API_V1,
            "kind": "HTTPRoute",
            "metadata": {"name": CANARY, "namespace": ns},
            "spec": {
                "parentRefs": [{"name": CANARY}],
                "hostnames": ["canary-gateway.harness.invalid"],
                "rules": [{"backendRefs": [{"name": CANARY, "port": SERVICE_PORT}]}],
            },
        },
    ]


def tls_hosts(intent: Intent) -> list[str]:
    """The hosts the generated certificate is for: the probe host of every route that declares
    TLS (a TLS router, or one whose object names a certificate)."""
    from harness.checks.probes import probe_host

    return sorted({probe_host(r.host) for r in intent.routes if r.declares_tls})


def gateway_certificate_refs(intent: Intent) -> list[tuple[str, str]]:
    """``(namespace, name)`` of the Secrets the HTTPS listeners of the intent's Gateways name
    (``tls.certificateRefs``): replaced by the generated certificate, as Ingress TLS Secrets."""
    out: list[tuple[str, str]] = []
    for obj in intent.objects:
        if obj.kind != "Gateway" or obj.role != "applied":
            continue
        for listener in (obj.body.get("spec") or {}).get("listeners") or []:
            if listener.get("protocol") != "HTTPS":
                continue
            for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
                out.append((str(ref.get("namespace") or obj.namespace), str(ref["name"])))
    return out


def tls_secret(name: str, namespace: str, cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": MANAGED_BY}},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert_pem).decode("ascii"),
            "tls.key": base64.b64encode(key_pem).decode("ascii"),
        },
    }


class Certificates:
    """The run's CA and the certificates it issues for the declared hosts."""

    def __init__(self, workdir: Path) -> None:
        self.ca = trustme.CA(organization_name="ingress-harness local target")
        self.ca_file = workdir / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem.bytes())

    @property
    def verify(self) -> TLSVerify:
        """How probes check the local target's certificates: against this CA."""
        return TLSVerify(ca_file=self.ca_file)

    def objects_for(
        self, hosts: Sequence[str], named: Sequence[tuple[str, str]] = ()
    ) -> list[dict[str, Any]]:
        """One certificate for ``hosts``, as each ``(namespace, name)`` Secret and as the default
        certificate (with the ``default`` TLSStore that names it)."""
        leaf = self.ca.issue_cert(*hosts)
        cert_pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        key_pem = leaf.private_key_pem.bytes()
        return [
            *(tls_secret(name, ns, cert_pem, key_pem) for ns, name in named),
            tls_secret(DEFAULT_CERTIFICATE, SYSTEM_NAMESPACE, cert_pem, key_pem),
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "TLSStore",
                "metadata": {"name": "default", "namespace": SYSTEM_NAMESPACE},
                "spec": {"defaultCertificate": {"secretName": DEFAULT_CERTIFICATE}},
            },
        ]

    def presented_for(self, port: int, host: str, timeout: float = 2.0) -> bool:
        """True when a TLS handshake on ``port`` with SNI ``host`` gets a certificate this CA
        issued for ``host``."""
        context = self.verify.context()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
                context.wrap_socket(sock, server_hostname=host),
            ):
                return True
        except (ssl.SSLError, OSError):
            return False


def canaries_served(
    routers: Sequence[Mapping[str, Any]],
    providers: Sequence[str] = ("kubernetes", "kubernetescrd"),
) -> bool:
    """True when Traefik serves the canary route of each of its Kubernetes ``providers``."""
    serving = {r.get("provider") for r in routers if CANARY in str(r.get("name", ""))}
    return set(providers) <= serving


def nginx_weights_served(
    intent: Intent, routers: Sequence[Mapping[str, Any]], services: Sequence[Mapping[str, Any]]
) -> bool:
    """True when every weighted route Traefik's NGINX provider builds for ``intent`` is served
    with the modeled weights: its router (named as the route id says, after the object's name)
    sends to a weighted service with those weights. A primary Ingress alone gives the same
    router rule without its canary, so the rule does not tell the two configurations apart."""
    by_router = {
        str(r.get("name", "")).split("@")[0]: r for r in routers if r.get("status") == "enabled"
    }
    by_service = {str(s.get("name", "")).split("@")[0]: s for s in services}
    for route in intent.routes:
        if route.provider != PROVIDER_NGINX or not route.weighted:
            continue
        # The router name, without the server-alias host a route on an alias adds.
        router = by_router.get(route.id.split(":", 1)[1].split(" ", 1)[0])
        if router is None:
            return False
        weighted = (by_service.get(str(router.get("service", ""))) or {}).get("weighted") or {}
        served = sorted(int(w.get("weight", 0)) for w in weighted.get("services", []))
        if served != sorted(b.weight for b in route.backends):
            return False
    return True


class LocalStack:
    """The whole local target. Use as a context manager; stop() is safe after a failed start()."""

    def __init__(self, options: LocalStackOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self._exit = contextlib.ExitStack()
        self.kubeapi: KubeAPIServer | None = None
        self.backends: BackendPool | None = None
        self.traefik: TraefikProcess | None = None
        self.api_client: k8s.ApiClient | None = None
        self.applier: Applier | None = None
        self.certificates: Certificates | None = None
        #: Namespaces seen in the local API (publish_namespaces asks about each once).
        self._namespaces: set[str] = set()
        self._reloads = 0

    @property
    def proxy_url(self) -> str:
        return self.running_traefik().proxy_url

    def running_traefik(self) -> TraefikProcess:
        if self.traefik is None:
            raise StackError("the local stack is not started")
        return self.traefik

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = find_traefik_binary(opts.traefik_binary)
        self.certificates = Certificates(self.workdir)

        self.kubeapi = KubeAPIServer()
        self.kubeapi.start()
        self._exit.callback(self.kubeapi.stop)

        self.api_client = api_client_for_url(self.kubeapi.url)
        self._exit.callback(self.api_client.close)
        self.applier = Applier(self.api_client, cache_dir=self.workdir / "kube-cache")

        self.backends = start_backends(opts.services, distinct_addresses=True)
        self._exit.callback(self.backends.stop)
        self.register_backends(self.backends.by_service())
        port = int(self.kubeapi.url.rsplit(":", 1)[1])
        self.applier.apply_all(canary_objects(port))
        if opts.nginx_provider is not None:
            self.applier.apply_all(nginx_canary_objects())

        settings = TraefikSettings(
            kube_endpoint=self.kubeapi.url,
            binary=binary,
            throttle_seconds=opts.throttle_seconds,
            strict_prefix_matching=opts.strict_prefix_matching,
            log_level=opts.traefik_log_level,
            gateway=opts.gateway,
            nginx_provider=opts.nginx_provider,
            nginx_without_class=opts.nginx_without_class,
            nginx_allowed_response_headers=opts.nginx_allowed_response_headers,
        )
        self.traefik = TraefikProcess(settings, self.workdir / "traefik")
        self._exit.callback(self.traefik.stop)
        if opts.gateway:
            self.applier.apply_all(gateway_canary_objects(self.traefik.web_port))
        self.traefik.start(timeout=opts.ready_timeout)
        self.traefik.wait_for_routers(
            functools.partial(canaries_served, providers=settings.providers),
            timeout=opts.ready_timeout,
            what="Traefik to serve the canary routes of its providers "
            + ", ".join(settings.providers),
        )

    def local_listeners(self, objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``objects`` with every Gateway listener's port replaced by the port of the local
        entry point it maps to (:func:`harness.traefik.gateway.listener_entry_points`: HTTP
        ``web`` then ``webalt``, HTTPS ``websecure``), and every HTTPRoute
        ``parentRefs[].port`` that named such a port likewise: Traefik binds a listener to the
        entry point listening on its port, and the local entry points listen on ports of their
        own (the dialect says so in a finding)."""
        ports = self.running_traefik().entry_ports
        gateways = [
            o
            for o in objects
            if o.get("kind") == "Gateway"
            and str(o.get("apiVersion", "")).startswith(GATEWAY_GROUP + "/")
        ]
        local = {
            key: ports[ep]
            for key, ep in listener_entry_points(gateway_listeners(gateways)).items()
            if ep in ports
        }
        declared = {port: local_port for (_, port), local_port in local.items()}
        out: list[dict[str, Any]] = []
        for obj in objects:
            copied = copy.deepcopy(dict(obj))
            if any(obj is g for g in gateways):
                for listener in (copied.get("spec") or {}).get("listeners") or []:
                    key = (str(listener.get("protocol", "")), listener.get("port"))
                    if key in local:
                        listener["port"] = local[key]
            elif obj.get("kind") == "HTTPRoute":
                for ref in (copied.get("spec") or {}).get("parentRefs") or []:
                    if ref.get("port") in declared:
                        ref["port"] = declared[ref["port"]]
            out.append(copied)
        return out

    def publish_certificates(self, intent: Intent, timeout: float = 30.0) -> None:
        """Issue the certificate for the routes of ``intent`` that declare TLS, publish it as
        their Secrets and the default certificate, and wait (polled) until Traefik presents it
        on ``websecure`` for each of their hosts."""
        hosts = tls_hosts(intent)
        if hosts:
            named = {(r.namespace, s) for r in intent.routes for s in r.tls_secrets}
            named.update(gateway_certificate_refs(intent))
            self.publish_certificate(hosts, sorted(named), timeout=timeout)

    def publish_certificate(
        self, hosts: Sequence[str], named: Sequence[tuple[str, str]] = (), timeout: float = 30.0
    ) -> None:
        """Issue one certificate for ``hosts``, publish it as the ``named`` Secrets and the
        default certificate, and wait until Traefik presents it for each host on websecure."""
        if self.certificates is None:
            raise StackError("the local stack is not started")
        certificates = self.certificates
        self.running_applier().apply_all(certificates.objects_for(hosts, named))
        port = self.running_traefik().websecure_port
        for host in hosts:
            wait_until(
                functools.partial(certificates.presented_for, port, host),
                timeout=timeout,
                what=f"Traefik to present the generated certificate for {host} on websecure",
            )

    def wait_for_nginx_weights(self, intent: Intent, timeout: float = 30.0) -> None:
        """Wait (polled) until Traefik serves the NGINX provider's weighted routes of ``intent``
        (what Traefik builds) with the modeled weights (see :func:`nginx_weights_served`)."""
        if not any(r.provider == PROVIDER_NGINX and r.weighted for r in intent.routes):
            return
        traefik = self.running_traefik()

        def served() -> bool:
            try:
                return nginx_weights_served(intent, traefik.routers(), traefik.services())
            except httpx.HTTPError:
                return False

        wait_until(
            served,
            timeout=timeout,
            what="Traefik's NGINX provider to serve its canaries' weighted services",
        )

    def register_backends(self, by_service: Mapping[str, Sequence[BackendInstance]]) -> None:
        """Publish backends as Services + EndpointSlices in the run's namespace."""
        applier = self.running_applier()
        for service, instances in by_service.items():
            applier.apply_all(service_objects(service, instances, self.options.namespace))

    # -- backend changes (gap measurements) ------------------------------------------------

    def start_extra_backend(
        self, service: str, instance: str, host: str = "127.0.0.1"
    ) -> BackendProcess:
        """Start one more echo backend instance in a process of its own, stopped with the stack
        at the latest. Nothing is published: see :meth:`publish_endpoint`.

        Traefik keeps one server per endpoint *address*, so instances that must be served side
        by side need different loopback addresses (``host``, e.g. 127.0.10.1).
        """
        process = BackendProcess.start([ListenerSpec(service, instance, host)])
        self._exit.callback(process.stop)
        return process

    def publish_endpoint(
        self,
        instance: BackendInstance,
        *,
        ready: bool = True,
        terminating: bool = False,
        port_names: Sequence[str] = (SERVICE_PORT_NAME,),
    ) -> None:
        """Create or update the EndpointSlice of one instance of ``instance.service``, with
        these conditions (terminating with ready=True means still serving)."""
        obj = endpoint_slice(
            instance.service, instance, self.options.namespace, ready=ready, terminating=terminating
        )
        obj["ports"] = [{"name": n, "port": instance.port, "protocol": "TCP"} for n in port_names]
        self.running_applier().apply(obj)

    def withdraw_endpoint(self, instance: BackendInstance) -> bool:
        """Delete the EndpointSlice of one instance; True when it existed."""
        return self.running_applier().delete(
            endpoint_slice(instance.service, instance, self.options.namespace)
        )

    def route_conditions(
        self, intent: Intent, timeout: float = 30.0
    ) -> dict[tuple[str, str], tuple[str, str]]:
        """The conditions Traefik wrote on the status of each HTTPRoute of ``intent``, once it
        wrote them for the route's current generation (polled): ``(route, type)`` →
        ``(status, reason)``, the worst over the route's parents (a False anywhere wins)."""
        return {k: (v[0], v[1]) for k, v in self._route_status(intent, timeout).items()}

    def rejected_routes(self, intent: Intent, timeout: float = 30.0) -> list[str]:
        """Each HTTPRoute condition of ``intent`` Traefik set False, with its reason and
        message as Traefik wrote them (empty: every route accepted, its references
        resolved), but for the ResolvedRefs False (RefNotPermitted) the intent expects of a
        route with a backendRef no ReferenceGrant permits (its requests are expected 500)."""
        expected = {name for _, name in intent.refs_not_permitted}
        return [
            f"HTTPRoute {name!r}: {kind} False, reason {reason}"
            + (f": {message}" if message else "")
            for (name, kind), (status, reason, message) in sorted(
                self._route_status(intent, timeout).items()
            )
            if status == "False"
            and not (kind == "ResolvedRefs" and reason == "RefNotPermitted" and name in expected)
        ]

    def publish_namespaces(self, intent: Intent) -> None:
        """Every namespace ``intent``'s objects and Services live in: a Namespace of the
        manifests as written (its labels are what a listener's ``allowedRoutes`` selector
        matches), another one created bare when the API has none yet (one that exists keeps
        its labels; each is asked about once per stack, as applies come one after another)."""
        applier = self.running_applier()
        declared = {o.name: o.body for o in intent.objects if o.kind == "Namespace"}
        # What is sent: a legacy object translated for the run is not (its rendering is).
        used = {
            str(body.get("metadata", {}).get("namespace") or intent.namespace)
            for body in manifests_to_apply(intent)
            if applier.is_namespaced(body)
        } | {s.namespace for s in intent.services}
        for _, body in sorted(declared.items()):
            applier.put(body)
        for name in sorted(used - set(declared) - self._namespaces):
            bare = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            if applier.get(bare) is None:
                applier.create(bare)
        self._namespaces |= used | set(declared)

    def _route_status(
        self, intent: Intent, timeout: float
    ) -> dict[tuple[str, str], tuple[str, str, str]]:
        applier = self.running_applier()
        routes = [o.body for o in intent.objects if o.kind == "HTTPRoute" and o.role == "applied"]
        found: dict[tuple[str, str], tuple[str, str, str]] = {}

        def written() -> bool:
            found.clear()
            for body in routes:
                live = applier.get(body)
                if live is None:
                    return False
                generation = live["metadata"].get("generation")
                parents = [
                    p
                    for p in (live.get("status") or {}).get("parents") or []
                    if p.get("controllerName") == GATEWAY_CONTROLLER
                ]
                if not parents:
                    return False
                for parent in parents:
                    for c in parent.get("conditions") or []:
                        if c.get("observedGeneration") != generation:
                            return False
                        key = (str(live["metadata"]["name"]), str(c.get("type")))
                        value = (
                            str(c.get("status")),
                            str(c.get("reason")),
                            str(c.get("message") or ""),
                        )
                        if key not in found or value[0] == "False":
                            found[key] = value
            return True

        wait_until(written, timeout=timeout, what="Traefik to write the HTTPRoutes' status")
        return found

    def running_applier(self) -> Applier:
        if self.applier is None:
            raise StackError("the local stack is not started")
        return self.applier

    def reload_traefik(self, timeout: float = 30.0) -> None:
        """Make Traefik rebuild its router tree without touching any route under test.

        Traefik skips a configuration equal to the current one, so the canary's host changes.
        """
        self._reloads += 1
        self._move_canary("Ingress", f"canary-{self._reloads}.harness.invalid", timeout)

    def reload_providers(self, timeout: float = 30.0) -> float:
        """Make both Kubernetes providers of Traefik apply a new configuration (the canaries'
        hosts change), the CRD provider first, and return when Traefik serves the Ingress
        provider's, on the monotonic clock (polled every 20 ms).

        Each provider applies at most one configuration per throttle window, so a change made a
        known time after this waits a known time (at most the rest of the window) for the
        Ingress provider, and no longer for the CRD provider, which applied earlier.
        """
        self._reloads += 1
        self._move_canary("IngressRoute", f"canary-crd-{self._reloads}.harness.invalid", timeout)
        return self._move_canary("Ingress", f"canary-{self._reloads}.harness.invalid", timeout)

    def _move_canary(self, kind: str, host: str, timeout: float) -> float:
        """Point the canary route of ``kind`` (Ingress or IngressRoute) at ``host``, wait until
        Traefik serves it (polled every 20 ms) and return when it did, on the monotonic clock."""
        port = int(self.kubeapi.url.rsplit(":", 1)[1]) if self.kubeapi else 0
        # Without Traefik's Ingress provider, the NGINX provider's canary Ingress moves instead.
        name = (
            NGINX_CANARY if kind == "Ingress" and self.options.nginx_provider == "alone" else CANARY
        )
        (obj,) = [
            o
            for o in canary_objects(port) + nginx_canary_objects()
            if o["kind"] == kind and o["metadata"]["name"] == name
        ]
        if kind == "IngressRoute":
            obj["spec"]["routes"][0]["match"] = f"Host(`{host}`)"
        else:
            obj["spec"]["rules"][0]["host"] = host
        self.running_applier().apply(obj)
        traefik = self.running_traefik()

        def served() -> bool:
            if not traefik.is_running():
                raise StackError(f"Traefik exited; last lines of its log:\n{traefik.log_tail()}")
            try:
                routers = traefik.routers()
            except httpx.HTTPError:
                return False
            return any(host in str(r.get("rule")) for r in enabled_routers(routers))

        wait_until(
            served,
            timeout=timeout,
            what=f"Traefik to serve the canary host {host}",
            interval=0.02,
            max_interval=0.02,
        )
        return time.monotonic()

    def stop(self) -> None:
        """Stop everything that was started, in reverse order. Idempotent."""
        self._exit.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def child_pids(self) -> list[int]:
        """Pids of the processes this stack started (Traefik, backend processes)."""
        pids = [p.pid for p in self.backends.processes] if self.backends is not None else []
        if self.traefik is not None and self.traefik.pid is not None:
            pids.append(self.traefik.pid)
        return pids

    def describe(self) -> dict[str, Any]:
        """The target as a report header shows it (no credentials)."""
        info: dict[str, Any] = {"target": "local", "namespace": self.options.namespace}
        if self.traefik is not None:
            info["traefik"] = self.traefik.describe()
        if self.backends is not None:
            info["backends"] = {
                svc: [f"{i.instance}@{i.host}:{i.port}" for i in insts]
                for svc, insts in self.backends.by_service().items()
            }
        return info


@contextlib.contextmanager
def local_stack(options: LocalStackOptions, workdir: Path) -> Iterator[LocalStack]:
    stack = LocalStack(options, workdir)
    with stack:
        yield stack
