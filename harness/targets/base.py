"""Targets: where the proxy under test lives, and how intent gets onto it.

- ``LocalTarget``: the embedded local stack. Intent is rendered to Traefik v3 objects and applied
  through the Kubernetes API; the backends the intent names are registered as Services.
- ``ClusterTarget`` (:mod:`harness.targets.cluster`): a cluster through a kubeconfig, with its
  proxy already running; the harness runs whoami backends and applies the manifests there.
- ``ExternalTarget``: a proxy someone else configured. Nothing is applied; the harness verifies
  the proxy against the intent read from the given manifests, telling backends apart by the
  whoami ``Name:`` line (or a user-given mapping).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from harness.errors import ConfigError, StackError, TargetUnreachable
from harness.intent.model import (
    NGINX_CONTROLLER,
    PROVIDER_NGINX,
    TRAEFIK_CONTROLLER,
    Intent,
    Route,
    ServicePortRef,
    ServiceRef,
)
from harness.targets.local_stack import (
    MANAGED_BY,
    SERVICE_PORT,
    SERVICE_PORT_NAME,
    LocalStack,
    endpoint_slice,
    gateway_class,
    uses_gateway_api,
)
from harness.traefik.entrypoints import LOCAL_ARRIVALS, Arrival, arrival_for
from harness.traefik.process import canonical_rule, enabled_routers
from harness.traefik.render import manifests_to_apply
from harness.traffic.tls import UNVERIFIED, TLSVerify

#: How long applying or removing a scenario may take to show in Traefik's routers: a few
#: throttle windows (2 s each by default) plus the watch latency.
APPLY_TIMEOUT = 30.0


class Target(Protocol):
    """What the suites need from wherever the proxy runs."""

    kind: str
    proxy_url: str
    can_apply: bool

    def describe(self) -> dict[str, Any]: ...

    def apply_intent(self, intent: Intent) -> None: ...

    def remove_intent(self, intent: Intent) -> None: ...

    def reload(self) -> bool: ...

    def service_of(self, whoami_name: str | None) -> str | None: ...

    def url_at(self, arrival: Arrival) -> str: ...

    def url_for(self, route: Route) -> str: ...

    def arrival_for(self, route: Route) -> Arrival | None: ...

    @property
    def tls_verify(self) -> TLSVerify: ...


def parse_backend_map(entries: Sequence[str]) -> dict[str, str]:
    """``NAME=SERVICE`` pairs (whoami Name line -> Service in the manifests)."""
    mapping: dict[str, str] = {}
    for entry in entries:
        name, sep, service = entry.partition("=")
        if not sep or not name.strip() or not service.strip():
            raise ConfigError(
                f"--backend-map {entry!r}: expected NAME=SERVICE, e.g. cheddar-v2=cheddar"
            )
        mapping[name.strip()] = service.strip()
    return mapping


def check_reachable(proxy_url: str, timeout: float = 5.0) -> None:
    """Fail early and clearly when nothing answers at ``proxy_url`` (any HTTP answer will do).

    Over HTTPS the certificate is not judged here: the URL names a load balancer or an address
    (no SNI), for which a proxy presents its default certificate, or one that does not name the
    address; each probe judges the certificate for its route's host (SNI) as
    ``--proxy-tls-verify`` says."""
    try:
        httpx.get(proxy_url, timeout=timeout, trust_env=False, verify=UNVERIFIED.context())
    except httpx.HTTPError as exc:
        raise TargetUnreachable(
            f"the proxy at {proxy_url} does not answer ({type(exc).__name__}: {exc}). "
            "Check --proxy-url, and that the proxy is running and reachable from here."
        ) from None


class AtProxyURL:
    """Traffic to a proxy the harness did not start: its URL is the one entry point (which of
    the proxy's entry points that reaches is the proxy's own configuration)."""

    proxy_url: str

    def url_at(self, arrival: Arrival) -> str:
        """Every probe goes to the proxy URL, in its scheme."""
        return self.proxy_url

    def url_for(self, route: Route) -> str:
        """Where bulk traffic for ``route`` goes: the proxy URL."""
        return self.proxy_url

    def arrival_for(self, route: Route) -> Arrival | None:
        """None: the proxy URL is the entry point."""
        return None


class ExternalTarget(AtProxyURL):
    """A proxy configured by someone else: verify only."""

    kind = "external"
    can_apply = False

    def __init__(
        self,
        proxy_url: str,
        backend_map: Mapping[str, str] | None = None,
        tls_verify: TLSVerify | None = None,
    ) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.backend_map = dict(backend_map or {})
        self._tls_verify = tls_verify or TLSVerify()
        check_reachable(self.proxy_url)

    @property
    def tls_verify(self) -> TLSVerify:
        return self._tls_verify

    def describe(self) -> dict[str, Any]:
        return {"target": self.kind, "proxy_url": self.proxy_url, "backend_map": self.backend_map}

    def apply_intent(self, intent: Intent) -> None:
        """Nothing to apply: the proxy is expected to be configured with this intent already."""

    def remove_intent(self, intent: Intent) -> None:
        """Nothing to remove."""

    def reload(self) -> bool:
        return False

    def service_of(self, whoami_name: str | None) -> str | None:
        if whoami_name is None:
            return None
        return self.backend_map.get(whoami_name, whoami_name)


def supplied_ingress_classes(intent: Intent) -> list[dict[str, Any]]:
    """The IngressClasses the manifests' Ingresses name by ``spec.ingressClassName`` but do not
    define: a cluster has them (Traefik's Helm chart installs ``traefik``), so the local target
    supplies them, of Traefik's controller (a finding says so when the intent is read)."""
    defined = {o.name for o in intent.objects if o.kind == "IngressClass"}
    named = {
        str(o.body["spec"]["ingressClassName"])
        for o in intent.objects
        if o.kind == "Ingress"
        and o.role in ("applied", "converted")
        and (o.body.get("spec") or {}).get("ingressClassName")
    }
    # An ingress-nginx Ingress's class (Traefik's NGINX provider serves it) is ingress-nginx's.
    nginx = {r.ingress_class for r in intent.routes if r.provider == PROVIDER_NGINX}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": name, "labels": {"app": MANAGED_BY}},
            "spec": {"controller": NGINX_CONTROLLER if name in nginx else TRAEFIK_CONTROLLER},
        }
        for name in sorted(named - defined)
    ]


def supplied_gateway_classes(intent: Intent) -> list[dict[str, Any]]:
    """The GatewayClasses the manifests' Gateways name but do not define: supplied as
    Traefik's (controller ``traefik.io/gateway-controller``), as a cluster's Traefik install
    has them (a finding says so when the intent is read)."""
    defined = {o.name for o in intent.objects if o.kind == "GatewayClass"}
    named = {
        str(o.body["spec"]["gatewayClassName"])
        for o in intent.objects
        if o.kind == "Gateway" and o.role == "applied"
    }
    return [gateway_class(name) for name in sorted(named - defined)]


def service_for_ref(ref: ServiceRef) -> dict[str, Any]:
    """A Service for one the manifests do not declare: the ports the routes reference (numbers;
    names as given), named uniquely as Kubernetes requires of a multi-port Service."""
    ports = [p for p in ref.ports if p.number is not None] or [
        ServicePortRef(name=SERVICE_PORT_NAME, number=SERVICE_PORT)
    ]
    entries = []
    for i, p in enumerate(ports):
        name = p.name or (SERVICE_PORT_NAME if len(ports) == 1 else f"{SERVICE_PORT_NAME}-{i}")
        entries.append({"name": name, "port": p.number, "targetPort": name, "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ref.name, "namespace": ref.namespace, "labels": {"app": ref.name}},
        "spec": {"selector": {"app": ref.name}, "ports": entries},
    }


def _crd_middlewares(intent: Intent) -> set[str]:
    """The Traefik names (``namespace-name@kubernetescrd``) of the Middleware objects applying
    ``intent`` creates."""
    return {
        f"{obj['metadata'].get('namespace') or intent.namespace}-{obj['metadata']['name']}"
        "@kubernetescrd"
        for obj in manifests_to_apply(intent)
        if obj.get("kind") == "Middleware" and str(obj.get("apiVersion", "")).startswith("traefik.")
    }


class LocalTarget:
    """The embedded stack: intent is applied through the Kubernetes API."""

    kind = "local"
    can_apply = True

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.proxy_url = stack.proxy_url
        self._reloads = 0

    def url_at(self, arrival: Arrival) -> str:
        return self.stack.running_traefik().entry_url(arrival.entry_point, https=arrival.https)

    def arrival_for(self, route: Route) -> Arrival | None:
        """The first entry point that serves ``route``, in its scheme (plain HTTP on web for a
        route bound to no entry point and not TLS); None when none of the local ones does."""
        return arrival_for(route, LOCAL_ARRIVALS)

    def url_for(self, route: Route) -> str:
        """Where bulk traffic for ``route`` goes: see :meth:`arrival_for`."""
        arrival = self.arrival_for(route)
        return self.proxy_url if arrival is None else self.url_at(arrival)

    @property
    def tls_verify(self) -> TLSVerify:
        """The stack's own CA: it issued every certificate Traefik presents for a route."""
        if self.stack.certificates is None:
            raise ConfigError("the local stack is not started")
        return self.stack.certificates.verify

    def describe(self) -> dict[str, Any]:
        return self.stack.describe()

    def _routers_of(self, intent: Intent) -> Counter[tuple[str, int]]:
        """The routers ``intent`` makes Traefik serve, as (rule, priority) with multiplicity.

        Routes declared at the same place with the same rule become one router (Traefik names
        routers after the Ingress, host and path), so they count once.
        """
        strict = self.stack.options.strict_prefix_matching
        routers = {
            (
                r.source.kind,
                r.source.name,
                r.rule_for(strict_prefix_matching=strict),
                r.priority_for(strict_prefix_matching=strict),
            ): (
                canonical_rule(r.rule_for(strict_prefix_matching=strict)),
                r.priority_for(strict_prefix_matching=strict),
            )
            for r in intent.routes
        }
        return Counter(routers.values())

    @staticmethod
    def _served(routers: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
        return Counter(
            (canonical_rule(str(r.get("rule"))), int(r.get("priority", 0)))
            for r in enabled_routers(routers)
        )

    def register_services(self, intent: Intent) -> None:
        """Publish the Services the routes use, backed by the stack's echo backends of the same
        name: a Service in the manifests is applied as written (names, ports and port names
        kept); one the caller vouched for is created with the ports the routes reference. Each
        echo instance gets an EndpointSlice whose ports carry the Service's port names (Traefik
        matches slice ports to Service ports by name)."""
        backends = self.stack.backends.by_service() if self.stack.backends else {}
        applier = self.stack.running_applier()
        written = {
            (o.namespace, o.name): o.body
            for o in intent.objects
            if o.kind == "Service" and o.role == "applied"
        }
        for ref in intent.services:
            instances = backends.get(ref.name)
            if not instances:
                raise ConfigError(
                    f"service {ref.name!r} has no echo backend in the local stack "
                    f"(backends: {', '.join(sorted(backends))})"
                )
            service = written.get((ref.namespace, ref.name)) or service_for_ref(ref)
            # Exactly as declared: the stack's own Service of that name is replaced, not merged.
            applier.put(service)
            port_names = [str(p.get("name") or "") for p in service["spec"].get("ports", [])]
            for inst in instances:
                slice_obj = endpoint_slice(ref.name, inst, ref.namespace)
                slice_obj["ports"] = [
                    {"name": name, "port": inst.port, "protocol": "TCP"} for name in port_names
                ]
                applier.put(slice_obj)

    def apply_intent(self, intent: Intent) -> None:
        """Apply the intent's manifests and wait until Traefik serves every route it builds from
        them (``Intent.served``: what is applied, not what is declared, for legacy forms applied
        as written)."""
        self.stack.publish_namespaces(intent)
        self.register_services(intent)
        for klass in supplied_ingress_classes(intent) + supplied_gateway_classes(intent):
            self.stack.running_applier().put(klass)
        # Before the routes: the Ingress provider reads a route's Secrets when it builds it.
        self.stack.publish_certificates(intent, timeout=APPLY_TIMEOUT)
        self.stack.running_applier().apply_all(
            self.stack.local_listeners(manifests_to_apply(intent))
        )
        if uses_gateway_api(intent):
            rejected = self.stack.rejected_routes(intent, timeout=APPLY_TIMEOUT)
            if rejected:
                raise StackError(
                    "Traefik rejected routes of the manifests (route status, as Traefik wrote "
                    "it): " + "; ".join(rejected)
                )
        wanted = self._routers_of(intent.served)
        traefik = self.stack.running_traefik()
        traefik.wait_for_routers(
            lambda routers: all(self._served(routers)[k] >= n for k, n in wanted.items()),
            timeout=APPLY_TIMEOUT,
            what=f"Traefik to serve the routers (rule, priority) {sorted(wanted.items())}",
        )
        # The Middleware objects come through another provider (kubernetescrd), on a throttle
        # of its own: a router can be served before its Middleware is.
        middlewares = _crd_middlewares(intent)
        traefik.wait_for_middlewares(
            lambda served: middlewares <= {m.get("name") for m in served},
            timeout=APPLY_TIMEOUT,
            what=f"Traefik to serve the middlewares {sorted(middlewares)}",
        )
        self.stack.wait_for_nginx_weights(intent.served, timeout=APPLY_TIMEOUT)

    def remove_intent(self, intent: Intent) -> None:
        """Delete what applying the intent created (Services stay: scenarios share them) and
        wait until Traefik no longer serves any of it."""
        traefik = self.stack.running_traefik()
        before = self._served(traefik.routers())
        self.stack.running_applier().delete_all(manifests_to_apply(intent))
        gone = self._routers_of(intent.served)
        traefik.wait_for_routers(
            lambda routers: all(
                self._served(routers)[k] <= max(0, before[k] - n) for k, n in gone.items()
            ),
            timeout=APPLY_TIMEOUT,
            what=f"Traefik to stop serving the routers (rule, priority) {sorted(gone.items())}",
        )
        # Else a scenario applied next with a Middleware of the same name could be served
        # with this one's (the routers' wait does not see a Middleware's content).
        middlewares = _crd_middlewares(intent)
        traefik.wait_for_middlewares(
            lambda served: not middlewares & {m.get("name") for m in served},
            timeout=APPLY_TIMEOUT,
            what=f"Traefik to stop serving the middlewares {sorted(middlewares)}",
        )

    def reload(self) -> bool:
        self.stack.reload_traefik(timeout=APPLY_TIMEOUT)
        return True

    def service_of(self, whoami_name: str | None) -> str | None:
        return whoami_name
