"""Intent → Kubernetes objects that Traefik 3.7 understands.

- Routes served by the Ingress provider become ``networking.k8s.io/v1`` Ingresses. Traefik's
  router annotations apply to a whole Ingress, so routes are grouped by source object, priority,
  middlewares and path matcher; a group that differs gets its own Ingress (the Traefik 1.x
  ``PathPrefixStrip`` Ingress of the tutorial becomes one Ingress per path, each with its own
  stripPrefix Middleware, which is what 1.x did per path).
- A route's middlewares (chains expanded) become one Middleware each, with the spec as written,
  referenced in order (``router.middlewares`` or the IngressRoute's ``middlewares``).
- Routes served by the CRD provider become ``traefik.io/v1alpha1`` IngressRoutes; a weighted route
  points at a ``TraefikService`` with ``weighted.services[].weight`` (schema: pkg/provider/
  kubernetes/crd/traefikio/v1alpha1/service.go).
- Services and EndpointSlices are not rendered here (the local stack and the cluster target
  create them from ``Intent.services``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.intent.dialects._ingress import (
    ANN_CLASS,
    ANN_ENTRYPOINTS,
    ANN_MIDDLEWARES,
    ANN_PATHMATCHER,
    ANN_PRIORITY,
    ANN_TLS,
)
from harness.intent.model import (
    PROVIDER_CRD,
    PROVIDER_INGRESS,
    Intent,
    Route,
    RouteMiddleware,
    WeightedBackend,
    sub_intent,
)

MANAGED_BY = {"app.kubernetes.io/managed-by": "ingress-harness"}
ROUTES_ANNOTATION = "ingress-harness/routes"
_MIN_INT32 = -(2**31)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "root"


def _name(base: str, taken: set[str]) -> str:
    name = _slug(base)[:60].strip("-") or "route"
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _meta(name: str, namespace: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _port(backend: WeightedBackend) -> dict[str, Any]:
    if isinstance(backend.port, int):
        return {"number": backend.port}
    if isinstance(backend.port, str):
        return {"name": backend.port}
    raise ConfigError(
        f"backend Service {backend.service!r} has no port; an Ingress needs one. "
        "Give the port in the manifest"
    )


def _middlewares(
    base: str, namespace: str, middlewares: tuple[RouteMiddleware, ...], taken: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """One Middleware object per middleware (spec as written), and their names in order."""
    objects: list[dict[str, Any]] = []
    names: list[str] = []
    for m in middlewares:
        name = _name(f"{base}-{m.name or 'strip'}", taken)
        objects.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "Middleware",
                "metadata": _meta(name, namespace),
                "spec": copy.deepcopy(dict(m.spec)),
            }
        )
        names.append(name)
    return objects, names


def _is_default_backend(route: Route) -> bool:
    return route.priority == _MIN_INT32 and route.host is None and route.path == "/"


def _path_type(route: Route) -> str:
    if route.path_type in ("Exact", "Prefix", "ImplementationSpecific"):
        return route.path_type
    return "Exact" if route.match == "exact" else "Prefix"


def _render_ingresses(
    routes: list[Route], namespace: str, ingress_class_name: str | None, taken: dict[str, set[str]]
) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[Route]] = {}
    for route in routes:
        impl = None
        if _path_type(route) == "ImplementationSpecific":
            impl = "Path" if route.match == "exact" else "PathPrefix"
        key = (
            route.source.name,
            route.priority,
            route.middlewares,
            impl,
            route.ingress_class,
            route.entry_points,
            route.tls,
            route.tls_secrets,
        )
        groups.setdefault(key, []).append(route)
    per_object: dict[str, int] = {}
    for key in groups:
        per_object[key[0]] = per_object.get(key[0], 0) + 1

    out: list[dict[str, Any]] = []
    for (
        obj_name,
        priority,
        middlewares,
        impl,
        klass,
        eps,
        tls,
        secrets,
    ), members in groups.items():
        first = members[0]
        base = (
            obj_name
            if per_object[obj_name] == 1
            else f"{obj_name}-{_slug(first.path or first.host or '')}"
        )
        name = _name(base, taken["Ingress"])
        annotations: dict[str, str] = {ROUTES_ANNOTATION: ",".join(r.id for r in members)}
        if priority is not None and not _is_default_backend(first):
            annotations[ANN_PRIORITY] = str(priority)
        if impl == "Path":
            annotations[ANN_PATHMATCHER] = "Path"
        if middlewares:
            objects, names = _middlewares(name, namespace, middlewares, taken["Middleware"])
            out.extend(objects)
            annotations[ANN_MIDDLEWARES] = ",".join(f"{namespace}-{n}@kubernetescrd" for n in names)
        if eps is not None:
            annotations[ANN_ENTRYPOINTS] = ",".join(eps)
        if tls:
            annotations[ANN_TLS] = "true"
        spec: dict[str, Any] = {}
        if secrets:
            spec["tls"] = [{"secretName": secret} for secret in secrets]
        if ingress_class_name is not None:
            spec["ingressClassName"] = ingress_class_name
        elif klass:
            annotations[ANN_CLASS] = klass
        if len(members) == 1 and _is_default_backend(first):
            b = first.backends[0]
            spec["defaultBackend"] = {"service": {"name": b.service, "port": _port(b)}}
        else:
            rules: dict[str | None, list[dict[str, Any]]] = {}
            for r in members:
                b = r.backends[0]
                entry: dict[str, Any] = {"pathType": _path_type(r)}
                if r.path is not None:
                    entry["path"] = r.path
                entry["backend"] = {"service": {"name": b.service, "port": _port(b)}}
                rules.setdefault(r.host, []).append(entry)
            spec["rules"] = [
                ({"host": host} if host else {}) | {"http": {"paths": paths}}
                for host, paths in rules.items()
            ]
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": _meta(name, namespace, annotations),
                "spec": spec,
            }
        )
    return out


def _render_ingressroutes(
    routes: list[Route], namespace: str, taken: dict[str, set[str]]
) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[Route]] = {}
    for route in routes:
        key = (route.source.name, route.entry_points, route.tls, route.tls_secrets)
        groups.setdefault(key, []).append(route)
    out: list[dict[str, Any]] = []
    for (obj_name, eps, tls, secrets), members in groups.items():
        name = _name(obj_name, taken["IngressRoute"])
        extra: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for r in members:
            entry: dict[str, Any] = {"match": r.rule, "kind": "Rule"}
            if r.priority is not None:
                entry["priority"] = r.priority
            if r.middlewares:
                objects, names = _middlewares(name, namespace, r.middlewares, taken["Middleware"])
                extra.extend(objects)
                entry["middlewares"] = [{"name": n} for n in names]
            if len(r.backends) == 1:
                b = r.backends[0]
                svc: dict[str, Any] = {"name": b.service}
                if b.port is not None:
                    svc["port"] = b.port
                entry["services"] = [svc]
            else:
                ts_name = _name(f"{name}-wrr", taken["TraefikService"])
                weighted = []
                for b in r.backends:
                    item: dict[str, Any] = {"name": b.service}
                    if b.port is not None:
                        item["port"] = b.port
                    item["weight"] = b.weight
                    weighted.append(item)
                extra.append(
                    {
                        "apiVersion": "traefik.io/v1alpha1",
                        "kind": "TraefikService",
                        "metadata": _meta(ts_name, namespace),
                        "spec": {"weighted": {"services": weighted}},
                    }
                )
                entry["services"] = [{"name": ts_name, "kind": "TraefikService"}]
            entries.append(entry)
        out.extend(extra)
        out.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": _meta(
                    name, namespace, {ROUTES_ANNOTATION: ",".join(r.id for r in members)}
                ),
                "spec": _ingressroute_spec(entries, eps, tls, secrets),
            }
        )
    return out


def _ingressroute_spec(
    routes: list[dict[str, Any]],
    entry_points: tuple[str, ...] | None,
    tls: bool,
    secrets: tuple[str, ...],
) -> dict[str, Any]:
    spec: dict[str, Any] = {"routes": routes}
    if entry_points is not None:
        spec["entryPoints"] = list(entry_points)
    if tls:
        spec["tls"] = {"secretName": secrets[0]} if secrets else {}
    return spec


def render_manifests(
    intent: Intent, namespace: str, *, ingress_class_name: str | None = None
) -> list[dict[str, Any]]:
    """Kubernetes objects (plain dicts) that make Traefik 3.7 serve ``intent`` in ``namespace``.

    Order: Middlewares and TraefikServices before the Ingresses/IngressRoutes that use them.
    ``ingress_class_name`` sets ``spec.ingressClassName`` on every Ingress (then an IngressClass
    with controller ``traefik.io/ingress-controller`` must exist); without it Ingresses carry no
    class, or the ``kubernetes.io/ingress.class`` annotation they were declared with.
    """
    if not _DNS_LABEL.match(namespace):
        raise ConfigError(f"namespace {namespace!r} is not a valid Kubernetes namespace name")
    taken: dict[str, set[str]] = {
        k: set() for k in ("Ingress", "IngressRoute", "Middleware", "TraefikService")
    }
    by_provider: dict[str, list[Route]] = {PROVIDER_INGRESS: [], PROVIDER_CRD: []}
    for route in intent.routes:
        if route.provider not in by_provider:
            raise ConfigError(
                f"route {route.id!r} has provider {route.provider!r}, which the harness cannot "
                "render"
            )
        if route.provider == PROVIDER_INGRESS and route.match == "regex":
            raise ConfigError(
                f"route {route.id!r} ({route.source}) has a regex path, which Traefik's Ingress "
                "provider cannot serve: render it as an IngressRoute (PathRegexp)"
            )
        by_provider[route.provider].append(route)
    objects = _render_ingresses(by_provider[PROVIDER_INGRESS], namespace, ingress_class_name, taken)
    objects += _render_ingressroutes(by_provider[PROVIDER_CRD], namespace, taken)
    rank = {"Middleware": 0, "TraefikService": 1, "Ingress": 2, "IngressRoute": 3}
    return sorted(objects, key=lambda o: rank[o["kind"]])


def manifests_to_apply(intent: Intent, *, with_services: bool = False) -> list[dict[str, Any]]:
    """What applying ``intent`` sends to the API: the manifests' own objects as written
    (converted legacy Ingresses in their v1 form), the rendering of the routes of translated
    legacy objects, and for derived intent (no objects) the rendering of all its routes.
    Services only with ``with_services`` (targets publish them with their endpoints)."""
    if not intent.objects:
        return render_manifests(intent, intent.namespace)
    out = [
        o.body
        for o in intent.objects
        if o.role in ("applied", "converted") and (with_services or o.kind != "Service")
    ]
    translated = {(o.kind, o.namespace, o.name) for o in intent.objects if o.role == "translated"}
    routes = [r for r in intent.routes if (r.source.kind, r.namespace, r.source.name) in translated]
    if routes:
        out.extend(render_manifests(sub_intent(intent, routes), intent.namespace))
    return out


def write_translations(scenarios: Mapping[str, Intent], folder: Path) -> list[Path]:
    """``--legacy-out``: each scenario with legacy objects as the v3 manifests that verify it
    (``<scenario>.yaml``), a starting point for migrating them."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, intent in scenarios.items():
        if not any(o.role == "translated" for o in intent.objects):
            continue
        path = folder / f"{name}.yaml"
        header = (
            f"# Traefik v3 translation of {', '.join(intent.files)} written by ingress-harness "
            "(--legacy translate).\n"
        )
        path.write_text(
            header
            + yaml.safe_dump_all(manifests_to_apply(intent, with_services=True), sort_keys=False),
            "utf-8",
        )
        written.append(path)
    return written
