"""Dialects: manifests in the forms people write them → intent, and intent → manifests to apply.

Read (``load_intent``): YAML files, multi-document, with positions kept so every error names
file, line and field. Understood forms:

- ``networking.k8s.io/v1`` Ingress with Traefik v3 annotations (``router.priority``,
  ``router.middlewares``, ``router.pathmatcher``), Middleware (the types of
  ``harness.traefik.middlewares``: modeled, inert or refused by name; chains expanded);
- ``extensions/v1beta1`` and ``networking.k8s.io/v1beta1`` Ingress (converted, with a finding);
- Traefik 1.x annotations (``traefik.frontend.rule.type``, ``.../rule-type``, ``.../priority``,
  ``.../service-weights``), read as meant and translated, with a finding that v3 ignores them;
- IngressRoute (``traefik.io``; ``traefik.containo.us`` with a finding) and TraefikService
  (``weighted``, nesting flattened);
- Gateway API ``gateway.networking.k8s.io/v1`` GatewayClass, Gateway and HTTPRoute, read as
  Traefik's Gateway provider builds its routers (``_gateway.py``); ReferenceGrant (v1beta1);
- Service (ports, for named-port resolution); IngressClass; workload kinds are skipped;
- Ingresses for ingress-nginx (their class, or ``kubernetes.io/ingress.class: nginx``), with
  ``nginx.ingress.kubernetes.io/*`` annotations: read with ingress-nginx's meaning, and built as
  Traefik's NGINX provider builds them (``Intent.effective``; ``_nginx``).

Backend Services: every Service a route sends to must be a ``Service`` object in the manifests,
unless the caller names it in ``known_services`` (the harness then creates it), or passes
``known_services="*"`` (external mode: the proxy's cluster already has them). This catches a
typo in a service name before any traffic is sent.

Render (``render_manifests``): v1 Ingress + Middleware for Ingress-provider routes, IngressRoute +
TraefikService + Middleware for CRD-provider routes (including translated 1.x weights).
"""

from __future__ import annotations

import os
from collections.abc import Sequence, Set
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.checks.probes import unprobed_regex_findings
from harness.errors import ManifestError
from harness.intent.dialects._crd import read_ingressroute
from harness.intent.dialects._fields import NGINX_PREFIX, REFERENCEGRANT, check_fields
from harness.intent.dialects._gateway import read_httproute, unsupported_filter_routes
from harness.intent.dialects._ingress import (
    ingress_v1_body,
    legacy_annotation_keys,
    read_ingress,
)
from harness.intent.dialects._nginx import (
    NginxReading,
    alias_outranked_notes,
    canary_outranked_notes,
    nginx_selection,
    outranked_notes,
    read_nginx_ingresses,
    record_fates,
)
from harness.intent.dialects._objects import (
    IGNORED_KINDS,
    LEGACY_INGRESS_APIS,
    TRAEFIK_OLD_GROUP,
    Context,
    Draft,
    K8sObject,
    KnownServices,
    check_duplicates,
    ignored,
    read_object,
    read_service,
)
from harness.intent.dialects._yaml import load_documents, manifest_error
from harness.intent.model import (
    FINDING_LEGACY_AS_WRITTEN,
    Intent,
    LegacyMode,
    ManifestObject,
    ObjectRole,
    Route,
    ServicePortRef,
    ServiceRef,
    UnservedRoute,
)


def __getattr__(name: str) -> Any:
    # The rendering lives with the model of Traefik (harness.traefik.render), which reads the
    # dialects' annotation names: imported on first use, so either package can load first.
    if name == "render_manifests":
        from harness.traefik.render import render_manifests

        return render_manifests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KnownServices", "load_intent", "load_scenarios", "manifest_files", "render_manifests"]

_SUFFIXES = (".yaml", ".yml")
_SHARED_KINDS = (
    frozenset({"Service", "IngressClass", "GatewayClass", "Gateway", "ReferenceGrant"})
    | IGNORED_KINDS
)


def manifest_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files to read: each path as given, directories expanded to their ``*.yaml``/``*.yml``
    files in name order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
            if not found:
                raise ManifestError(
                    f"{path}: directory has no .yaml or .yml files. Point at the manifests"
                )
            out.extend(found)
        else:
            out.append(path)
    if not out:
        raise ManifestError("no manifest files given. Pass at least one file or directory")
    return out


def _read_objects(files: list[Path], namespace: str) -> list[K8sObject]:
    objects: list[K8sObject] = []
    for path in files:
        for doc in load_documents(path):
            obj = read_object(doc, namespace)
            if obj is not None:
                objects.append(obj)
    return objects


def load_intent(
    paths: Sequence[str | os.PathLike[str]],
    *,
    namespace: str = "default",
    known_services: KnownServices = None,
    legacy: LegacyMode = "translate",
    nginx_without_class: bool = False,
) -> Intent:
    """Read manifest files (or directories of them) into one ``Intent``.

    ``namespace`` is used for objects without ``metadata.namespace``; ``legacy`` says how legacy
    forms are verified (see ``LegacyMode``); ``nginx_without_class``: Traefik's NGINX provider
    also serves Ingresses without a class (``watchIngressWithoutClass``), as its Ingress
    provider does. Raises ``ManifestError`` (naming file, line and field) for anything that
    cannot be turned into intent.
    """
    files = manifest_files(paths)
    objects = _read_objects(files, namespace)
    check_duplicates(objects)
    ctx = _context(objects, namespace, known_services, read_legacy=True, legacy_mode=legacy)
    routes, unserved, nginx = _read_routes(ctx, nginx_without_class)
    headers_maps = _custom_headers_config_maps(objects)
    manifest_objects = tuple(_manifest_object(obj, legacy, headers_maps) for obj in objects)
    effective: Intent | None = None
    if legacy == "as-written" and any(o.legacy for o in manifest_objects):
        # What Traefik v3 builds from the objects as applied: the 1.x annotations ignored.
        v3 = _context(objects, namespace, known_services, read_legacy=False, legacy_mode=legacy)
        v3_routes, v3_unserved, _ = _read_routes(v3, nginx_without_class)
        effective = Intent(
            routes=v3_routes,
            services=_service_refs(v3, v3_routes + tuple(u.route for u in v3_unserved)),
            unserved=v3_unserved,
            files=tuple(str(f) for f in files),
            namespace=namespace,
        )
        for obj in manifest_objects:
            if obj.legacy:
                ctx.note(
                    FINDING_LEGACY_AS_WRITTEN,
                    f"{obj.kind} {obj.name!r} is applied as written (--legacy as-written): "
                    + obj.note
                    + "; the checks judge what it declares, so those that depend on a 1.x "
                    "annotation fail. --legacy translate verifies the intended meaning through "
                    "a v3 translation instead",
                    obj.source,
                )
    route_notes: dict[str, str] = {}
    if nginx.traefik_drafts:
        effective, route_notes = _nginx_effective(ctx, routes, effective, nginx)
    unsupported = unsupported_filter_routes(routes)
    if unsupported:
        # Traefik answers 500 on an HTTPRoute rule with a filter it cannot load.
        served = effective or Intent(routes=routes, namespace=namespace)
        effective = replace(
            served, routes=tuple(unsupported.get(r.id, (r, ""))[0] for r in served.routes)
        )
        route_notes.update({rid: note for rid, (_, note) in unsupported.items()})
    return Intent(
        routes=routes,
        services=_service_refs(ctx, routes + tuple(u.route for u in unserved)),
        unserved=unserved,
        # A regex that no request value could be generated for is said, not silently unprobed.
        findings=tuple(ctx.findings) + tuple(unprobed_regex_findings(routes)),
        files=tuple(str(f) for f in files),
        namespace=namespace,
        objects=manifest_objects,
        legacy_mode=legacy if any(o.legacy for o in manifest_objects) else None,
        effective=effective,
        migration=tuple(nginx.fates),
        route_notes=route_notes,
        refs_not_permitted=tuple(ctx.refs_not_permitted),
    )


def _nginx_effective(
    ctx: Context, routes: tuple[Route, ...], effective: Intent | None, nginx: NginxReading
) -> tuple[Intent, dict[str, str]]:
    """What Traefik serves when some Ingresses are ingress-nginx's: the other routes as they are
    served, the ingress-nginx ones as its NGINX provider builds them; and, per declared route,
    how that differs (for failure messages)."""
    served = effective or Intent(routes=routes, namespace=ctx.namespace)
    declared_nginx = {r.id for r in _routes(nginx.drafts)}
    others = tuple(r for r in served.routes if r.id not in declared_nginx)
    traefik_routes = _routes(nginx.traefik_drafts)
    alias_outranked_notes(ctx, nginx, routes, traefik_routes)
    notes = {k: list(v) for k, v in nginx.notes.items()}
    outranked = dict(outranked_notes(ctx, routes, traefik_routes))
    for rid, text in outranked.items():
        notes.setdefault(rid, []).append(text)
    canary_outranked = canary_outranked_notes(ctx, routes, traefik_routes)
    for rid, _, text in canary_outranked:
        notes.setdefault(rid, []).append(text)
    record_fates(nginx, ctx, outranked, canary_outranked)
    return (
        replace(served, routes=others + traefik_routes),
        {rid: "; ".join(texts) for rid, texts in notes.items()},
    )


def _context(
    objects: list[K8sObject],
    namespace: str,
    known_services: KnownServices,
    *,
    read_legacy: bool,
    legacy_mode: LegacyMode,
) -> Context:
    ctx = Context(
        namespace=namespace,
        known_services=known_services,
        read_legacy=read_legacy,
        legacy_mode=legacy_mode,
    )
    ctx.objects = objects
    headers_maps = _custom_headers_config_maps(objects)
    for obj in objects:
        if obj.kind == "Namespace":
            continue  # Its labels are read by the Gateway dialect (allowedRoutes selectors).
        if obj.kind == "ConfigMap" and (obj.namespace, obj.name) in headers_maps:
            continue  # Read with the Ingress whose custom-headers names it, and applied.
        if obj.kind in IGNORED_KINDS:
            ignored(ctx, obj)
        elif obj.kind == "Service":
            ctx.services[(obj.namespace, obj.name)] = read_service(obj)
    return ctx


def _read_routes(
    ctx: Context, nginx_without_class: bool = False
) -> tuple[tuple[Route, ...], tuple[UnservedRoute, ...], NginxReading]:
    """The routes Traefik serves, those of Ingresses it does not (another class), and the
    ingress-nginx Ingresses read (their declared routes are among the served ones)."""
    drafts: list[Draft] = []
    nginx_objects = []
    for obj in ctx.objects:
        how = nginx_selection(ctx, obj, without_class=nginx_without_class)
        if how is not None:
            nginx_objects.append((obj, how))
        elif obj.kind == "Ingress":
            drafts.extend(read_ingress(ctx, obj))
        elif obj.kind == "IngressRoute":
            drafts.extend(read_ingressroute(ctx, obj))
        elif obj.kind == "HTTPRoute":
            drafts.extend(read_httproute(ctx, obj))
        elif obj.kind == "ReferenceGrant":
            check_fields(ctx, obj, REFERENCEGRANT)
    nginx = read_nginx_ingresses(ctx, nginx_objects, also_traefik=nginx_without_class)
    if nginx_without_class:
        # Class-less Ingresses: Traefik's own Ingress provider serves them as well.
        for obj, _ in nginx_objects:
            if obj.doc.require("spec").get("ingressClassName") is None:
                nginx.traefik_drafts.extend(read_ingress(ctx, obj))
    drafts.extend(nginx.drafts)
    routes = _routes(drafts)
    served = tuple(r for r, d in zip(routes, drafts, strict=True) if not d.unserved)
    unserved = tuple(
        UnservedRoute(r, d.unserved) for r, d in zip(routes, drafts, strict=True) if d.unserved
    )
    return served, unserved, nginx


#: Kinds whose objects are not namespaced.
_CLUSTER_SCOPED = frozenset(
    {"IngressClass", "GatewayClass", "Namespace", "ClusterRole", "ClusterRoleBinding"}
)
_WORKLOADS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob"}
)


def _custom_headers_config_maps(objects: Sequence[K8sObject]) -> set[tuple[str, str]]:
    """The ConfigMaps (namespace, name) an Ingress's ingress-nginx ``custom-headers`` names:
    Traefik's NGINX provider reads them, so they are applied."""
    out: set[tuple[str, str]] = set()
    for obj in objects:
        node = obj.annotation(NGINX_PREFIX + "custom-headers") if obj.kind == "Ingress" else None
        if node is not None and not node.is_null:
            namespace, _, name = str(node.value()).strip().partition("/")
            out.add((namespace, name))
    return out


def _manifest_object(
    obj: K8sObject, legacy_mode: LegacyMode, headers_maps: Set[tuple[str, str]] = frozenset()
) -> ManifestObject:
    """What the local target does with ``obj`` (see ``ObjectRole``); ``headers_maps``: the
    ConfigMaps custom-headers names."""
    body = obj.doc.value()
    if obj.kind not in _CLUSTER_SCOPED and isinstance(body.get("metadata"), dict):
        body["metadata"]["namespace"] = obj.namespace
    legacy_keys = legacy_annotation_keys(obj)
    legacy = obj.api_version in (*LEGACY_INGRESS_APIS, TRAEFIK_OLD_GROUP) or bool(legacy_keys)

    def made(role: ObjectRole, note: str, new_body: dict[str, Any] | None = None) -> ManifestObject:
        return ManifestObject(
            kind=obj.kind,
            api_version=obj.api_version,
            name=obj.name,
            namespace=obj.namespace,
            body=new_body if new_body is not None else body,
            source=obj.doc.source(),
            role=role,
            note=note,
            legacy=legacy,
        )

    if obj.kind in _WORKLOADS:
        return made(
            "skipped",
            "a cluster would run it; the local target backs every Service "
            "with its own echo backends instead",
        )
    if obj.kind in ("EndpointSlice", "Endpoints"):
        return made("skipped", "the local target publishes EndpointSlices for its echo backends")
    if obj.kind == "Namespace":
        return made(
            "skipped",
            "the local target publishes it, labels included, before the other objects (a "
            "Gateway listener's allowedRoutes selector matches them)",
        )
    if obj.kind == "ConfigMap" and (obj.namespace, obj.name) in headers_maps:
        return made("applied", "the custom-headers of an ingress-nginx Ingress")
    if obj.kind in IGNORED_KINDS:
        return made("skipped", "it does not affect HTTP routing")
    if legacy and legacy_mode == "translate":
        return made(
            "translated",
            "replaced by the harness's Traefik v3 translation of its routes (--legacy translate)",
        )
    ignored_keys = f"Traefik v3 ignores {', '.join(legacy_keys)}" if legacy_keys else ""
    if obj.api_version == TRAEFIK_OLD_GROUP:
        return made(
            "skipped",
            "Traefik v3 does not watch the traefik.containo.us group, so it is not served",
        )
    if obj.kind == "Ingress" and obj.api_version in LEGACY_INGRESS_APIS:
        note = f"{obj.api_version} is served as networking.k8s.io/v1 (Kubernetes 1.22 removed it)"
        return made(
            "converted", "; ".join(n for n in (note, ignored_keys) if n), ingress_v1_body(body)
        )
    return made("applied", ignored_keys)


def _routes(drafts: list[Draft]) -> tuple[Route, ...]:
    """Readable, unique ids: ``<object>:<host><path>`` (``*`` for any host), ``#2`` on clashes."""
    taken: set[str] = set()
    out: list[Route] = []
    for d in drafts:
        hint = d.id_hint or f"{d.host or '*'}{d.path or ''}"
        base = f"{d.obj.name}:{hint}"
        rid, n = base, 2
        while rid in taken:
            rid = f"{base}#{n}"
            n += 1
        taken.add(rid)
        out.append(
            Route(
                id=rid,
                host=d.host,
                path=d.path,
                match=d.match,
                middlewares=d.middlewares,
                priority=d.priority,
                backends=d.backends,
                provider=d.provider,
                source=d.source,
                namespace=d.obj.namespace,
                dialects=d.dialects,
                path_type=d.path_type,
                match_rule=d.match_rule,
                ingress_class=d.ingress_class,
                entry_points=d.entry_points,
                tls=d.tls,
                tls_secrets=d.tls_secrets,
                conditions=d.conditions,
            )
        )
    return tuple(out)


def _service_refs(ctx: Context, routes: tuple[Route, ...]) -> tuple[ServiceRef, ...]:
    refs: dict[tuple[str, str], ServiceRef] = {}
    for route in routes:
        for b in route.backends:
            namespace = b.namespace or route.namespace
            key = (namespace, b.service)
            if key in refs:
                continue
            other = next((r for (_, name), r in refs.items() if name == b.service), None)
            if other is not None:
                # The local target backs a Service with the echo backends of its name.
                raise manifest_error(
                    route.source,
                    f"Service {b.service!r} is a backend in namespace {namespace!r} and in "
                    f"namespace {other.namespace!r}: the harness tells backends apart by their "
                    "Service name, so it could not say which of the two answered",
                    "Give the Services different names",
                )
            declared = ctx.services.get(key)
            if declared is not None:
                refs[key] = ServiceRef(
                    b.service, namespace, declared.ports, True, declared.obj.doc.source()
                )
            else:
                ports = tuple(
                    ServicePortRef(
                        p if isinstance(p, str) else None, p if isinstance(p, int) else None
                    )
                    for p in ctx.referenced.get(key, {})
                    if p is not None
                )
                refs[key] = ServiceRef(b.service, namespace, ports, False)
    return tuple(refs.values())


def load_scenarios(
    directory: str | os.PathLike[str],
    *,
    namespace: str = "default",
    known_services: KnownServices = None,
    legacy: LegacyMode = "translate",
    nginx_without_class: bool = False,
) -> dict[str, Intent]:
    """Scenarios in a manifests directory: every file that declares routes is one scenario,
    read together with the shared files (those holding only Services, IngressClasses and
    skipped kinds). Keyed by file stem, in name order.

    This is how ``harness/suites/manifests/`` is laid out: the tutorial edits the same objects
    from step to step, so each step is its own scenario rather than one big intent.
    """
    files = manifest_files([directory])
    shared: list[Path] = []
    scenario_files: list[Path] = []
    for path in files:
        kinds = {obj.kind for obj in _read_objects([path], namespace)}
        (shared if kinds <= _SHARED_KINDS else scenario_files).append(path)
    if not scenario_files:
        raise ManifestError(
            f"{directory}: no file declares routes (Ingress, IngressRoute or HTTPRoute)"
        )
    return {
        path.stem: load_intent(
            [*shared, path],
            namespace=namespace,
            known_services=known_services,
            legacy=legacy,
            nginx_without_class=nginx_without_class,
        )
        for path in scenario_files
    }
