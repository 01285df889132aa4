"""Ingresses written for ingress-nginx: selected as Traefik's NGINX provider selects them, read
with ingress-nginx's documented meaning (the routes the checks judge), and built as the provider
builds them (the routes Traefik serves, ``Intent.effective``).

Selection (``shouldProcess``): ``spec.ingressClassName`` naming an IngressClass of controller
``k8s.io/ingress-nginx`` (``nginx`` when the manifests do not define it: the local target
supplies it, as ingress-nginx's Helm chart installs it), else the ``kubernetes.io/ingress.class:
nginx`` annotation, else, with ``nginx_without_class``, an Ingress without any class (which
Traefik's own Ingress provider serves too: a finding says so).

What ingress-nginx means (the declared routes; its documentation: annotations, canary,
ingress-path-matching):

- Locations of a host: an Exact path (``location = /p``) wins over every prefix; among prefixes
  the longest wins. Prefix is element-wise (``/p`` and ``/p/...``), ImplementationSpecific an
  nginx prefix location (``/pX`` too). The declared routes carry explicit priorities that encode
  this order (the rule strings they show are the harness's, not a router's).
- A canary Ingress (``canary: "true"``) matched to a primary path (same host, path and pathType)
  is attached to the primary's Service (the upstream ``namespace-service-port``), so it applies
  to every path routed to that Service, as on ingress-nginx (a finding says so). Precedence:
  ``canary-by-header`` (``always``/``never``, or exactly ``canary-by-header-value``, or matching
  ``canary-by-header-pattern``; any other value falls through), then ``canary-by-cookie``
  (``always``/``never``), then ``canary-weight`` of ``canary-weight-total`` (default 100).
- Redirects (``_nginx_redirects``, both sides): ``permanent-redirect`` / ``temporal-redirect``
  (+ codes) answer every request of the location; ``force-ssl-redirect`` answers plain HTTP
  with 308 to https (a trailing ``/`` dropped); ``ssl-redirect`` needs ``spec.tls`` (refused
  here), so it is a no-op; ``app-root`` is a declared route for ``/`` of its host above every
  location (nginx's server-level ``if``), and on Traefik a middleware on every router of the
  host plus, when no path of the host is ``/``, a router ``Host(h) && Path("/")``;
  ``from-to-www-redirect`` a declared route for the host's other name (``www.`` added or
  removed) answering 308 to the host, and on Traefik a router ``Host(other)`` per path. Where
  Traefik departs (temporal code 308, a redirect on a regex host, the HTTPS redirect first, the
  trailing slash kept) the route notes and the annotation's fate say so.
- What the backend sees and the client gets (the route's middlewares, on both sides, in the
  provider's order): ``upstream-vhost`` the Host; ``custom-headers`` (a ConfigMap of the
  manifests, same namespace) response headers; ``x-forwarded-prefix`` the X-Forwarded-Prefix,
  only with a ``rewrite-target`` (ingress-nginx sets it in its rewrite; Traefik's provider
  replaces the path's match with it, keeping the rest); ``backend-protocol`` HTTP and
  AUTO_HTTP change nothing (the others are refused). ``server-alias`` serves every location of
  the host on the aliases (one nginx server); the provider adds them only to the annotated
  Ingress's routers, whose longer rules then outrank the host's longer paths (a note per
  route, the annotation's fate ``changed``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from harness.intent.dialects._fields import INGRESS_V1, check_fields, check_nginx_annotations
from harness.intent.dialects._ingress import ANN_CLASS, HOST_PATTERN, ingress_backend
from harness.intent.dialects._nginx_redirects import (
    Redirects,
    app_root_middleware,
    read_redirects,
    www_middlewares,
    www_pair,
)
from harness.intent.dialects._objects import API_INGRESS_V1, Context, Draft, K8sObject
from harness.intent.dialects._yaml import YNode
from harness.intent.model import (
    DIALECT_INGRESS_NGINX,
    DIALECT_INGRESS_V1,
    FINDING_INGRESS_CLASS,
    FINDING_NGINX_CANARY_PER_SERVICE,
    FINDING_NGINX_IGNORED,
    FINDING_NGINX_MEANING_CHANGED,
    FINDING_NOT_MODELED,
    FINDING_SERVED_TWICE,
    NGINX_CONTROLLER,
    PROVIDER_NGINX,
    AnnotationFate,
    AnnotationFateKind,
    Intent,
    MatchKind,
    RequestCondition,
    Route,
    RouteMiddleware,
    Source,
    WeightedBackend,
)
from harness.traefik import nginx as provider
from harness.traefik.goregexp import GoRegexp, GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import Headers, Middleware, RewriteTarget
from harness.traefik.nginx import ANNOTATION_PREFIX, Canary

#: The IngressClass name Traefik's NGINX provider serves by default (``ingressClass``).
NGINX_CLASS = "nginx"

# Explicit priorities of the declared routes: Exact above every prefix, then the longest path;
# within a location, the header above the cookie above the plain route. A header or cookie
# sent twice: nginx reads the first value, and the probes send ``always`` first.
_EXACT_TIER = 3_000_000
_PREFIX_TIER = 1_000_000
_RANK = {("header", "canary"): 4, ("header", "primary"): 3}
_RANK.update({("cookie", "canary"): 2, ("cookie", "primary"): 1})
#: The paths strictValidatePathType lets through under Exact and Prefix.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._\-/]*$")
#: The x-forwarded-prefix values both accept (ingress-nginx's RegexPathWithCapture, the
#: provider's regexPathWithCapture); either ignores any other.
_CAPTURE_PATH = re.compile(r"^/?[-._~a-zA-Z0-9/$:]*$")
#: custom-headers: the header names and values the provider accepts (headerRegexp,
#: headerValueRegexp); ingress-nginx's checks are no wider.
_HEADER_NAME = re.compile(r"^[a-zA-Z\d\-_]+$")
_HEADER_VALUE = re.compile(r"^[a-zA-Z\d_ :;.,\\/\"'?!(){}\[\]@<>=\-+*#$&`|~^%]+$")
#: backend-protocol values that change nothing the echo backends see (plain HTTP/1.1).
_PLAIN_PROTOCOLS = ("HTTP", "AUTO_HTTP")


def nginx_selection(ctx: Context, obj: K8sObject, *, without_class: bool) -> str | None:
    """How Traefik's NGINX provider selects this Ingress (for findings), or None when it does
    not."""
    if obj.kind != "Ingress" or obj.api_version != API_INGRESS_V1:
        return None
    spec = obj.doc.get("spec")
    name_node = spec.get("ingressClassName") if spec is not None else None
    if name_node is not None:
        name = name_node.string("an IngressClass name")
        klass = next((o for o in ctx.of_kind("IngressClass") if o.name == name), None)
        if klass is None:
            return f"spec.ingressClassName {name}" if name == NGINX_CLASS else None
        controller = klass.doc.require("spec").get("controller")
        if controller is not None and controller.string() == NGINX_CONTROLLER:
            return f"IngressClass {name} of controller {NGINX_CONTROLLER}"
        return None
    ann = obj.annotation(ANN_CLASS)
    if ann is not None:
        return f"{ANN_CLASS}: {NGINX_CLASS}" if ann.string() == NGINX_CLASS else None
    return "no class (watchIngressWithoutClass)" if without_class else None


@dataclass
class _Path:
    obj: K8sObject
    rule_index: int
    path_index: int
    host: str | None
    path: str | None
    path_type: str
    backend: WeightedBackend
    node: YNode


@dataclass
class _Ingress:
    obj: K8sObject
    annotations: list[tuple[str, YNode]]
    canary: Canary | None
    #: use-regex or rewrite-target: every path of its hosts becomes a regex (both sides).
    regex: bool
    rewrite: YNode | None = None
    paths: list[_Path] = field(default_factory=list)
    redirects: Redirects | None = None
    #: Redirect annotations (short key) -> (fate, note) where not the default.
    redirect_fates: dict[str, tuple[AnnotationFateKind, str]] = field(default_factory=dict)
    forwarded_prefix: YNode | None = None
    #: upstream-vhost: the Host the backend sees.
    vhost: str | None = None
    #: custom-headers: the ConfigMap's entries, set on every answer of its paths.
    custom_headers: tuple[tuple[str, str], ...] = ()
    #: server-alias: the hosts as written (trimmed, without duplicates), and its node.
    aliases: tuple[str, ...] = ()
    alias_node: YNode | None = None


@dataclass
class _Attached:
    """A canary attached to a primary Service."""

    canary: Canary
    backend: WeightedBackend
    ingress: _Ingress
    source: Source


@dataclass
class NginxReading:
    """The ingress-nginx Ingresses of the manifests, read: the declared routes (ingress-nginx's
    meaning), the routes Traefik's NGINX provider builds, each annotation's fate and, per
    declared route id, how Traefik serves it differently."""

    drafts: list[Draft] = field(default_factory=list)
    traefik_drafts: list[Draft] = field(default_factory=list)
    fates: list[AnnotationFate] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    #: What :func:`record_fates` reads once the Traefik-side comparison is done.
    fate_inputs: tuple[list[_Ingress], dict[tuple[str, str, int | str | None], _Attached]] = (
        [],
        {},
    )
    #: server-alias: per Ingress giving it, the declared routes on its aliases, and those
    #: Traefik's NGINX provider does not serve there (another Ingress's paths of the host).
    alias_routes: dict[str, list[str]] = field(default_factory=dict)
    alias_lost: set[str] = field(default_factory=set)


def _bool(node: YNode, key: str) -> bool:
    value = node.string().strip()
    if value not in ("true", "false"):
        node.fail(
            f"{key} {value!r} is neither true nor false: ingress-nginx reads Go booleans (1, t, "
            "True...), Traefik's NGINX provider only the word true, so they would disagree",
            f'Write {key}: "true" or "false"',
        )
    return value == "true"


def _int(node: YNode, key: str) -> int:
    value = node.string().strip()
    if not value.lstrip("-").isdigit():
        node.fail(
            f"{key} {value!r} is not a whole number (both ingress-nginx and Traefik ignore it)",
            f'Write a number, e.g. {key}: "10"',
        )
    return int(value)


def _check_backend_protocol(node: YNode | None) -> None:
    """``backend-protocol``: HTTP and AUTO_HTTP (any case, as both read it) reach the echo
    backends as the default does; the others are refused."""
    if node is None or node.string().strip().upper() in _PLAIN_PROTOCOLS:
        return
    value = node.string().strip()
    if value.upper() == "FCGI":
        problem = (
            "backend-protocol FCGI: ingress-nginx speaks FastCGI to the backend, Traefik's "
            "NGINX provider plain HTTP (it does not know FCGI)"
        )
    elif value.upper() in ("HTTPS", "GRPC", "GRPCS"):
        problem = (
            f"backend-protocol {value}: the backend is spoken to over "
            f"{'TLS' if value.upper() != 'GRPC' else 'HTTP/2 cleartext'}, and the harness's "
            "echo backends speak plain HTTP/1.1 only"
        )
    else:
        problem = (
            f"backend-protocol {value!r} is none of HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, FCGI: "
            "ingress-nginx rejects it, Traefik's NGINX provider speaks HTTP"
        )
    node.fail(
        f"{problem}; the harness does not model it on ingress-nginx Ingresses yet",
        'Verify the routing with backend-protocol: "HTTP" (or without it) and the protocol by hand',
    )


def _upstream_vhost(node: YNode) -> str:
    value = node.string().strip()
    if not value or "$" in value or any(c.isspace() for c in value):
        node.fail(
            f"upstream-vhost {value!r}: the harness models a literal host name only (nginx "
            "variables such as $host or $service_name are not modeled)",
            'Write the host the backend must see, e.g. upstream-vhost: "internal.example"',
        )
    return value


def _custom_headers(ctx: Context, obj: K8sObject, node: YNode) -> tuple[tuple[str, str], ...]:
    """``custom-headers: <namespace>/<configmap>``: the ConfigMap's entries (from the
    manifests), each a response header on ingress-nginx (more_set_headers) and on Traefik
    (a headers middleware's customResponseHeaders)."""
    ref = node.string().strip()
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        node.fail(
            f"custom-headers {ref!r} is not <namespace>/<configmap> (ingress-nginx finds no "
            "ConfigMap and denies the location, Traefik's NGINX provider sends its paths to an "
            "unavailable service)",
            f'Write custom-headers: "{obj.namespace}/<configmap>"',
        )
    if namespace != obj.namespace:
        node.fail(
            f"custom-headers names ConfigMap {ref} of another namespace: ingress-nginx reads "
            "it, Traefik's NGINX provider refuses it (its paths go to an unavailable service) "
            "unless allowCrossNamespaceResources is set; the harness does not model that yet",
            f"Put the ConfigMap in namespace {obj.namespace!r}",
        )
    found = next(
        (o for o in ctx.of_kind("ConfigMap") if (o.namespace, o.name) == (namespace, name)), None
    )
    if found is None:
        node.fail(
            f"custom-headers names ConfigMap {ref}, which is not in the manifests: the harness "
            "cannot say which headers it sets (ingress-nginx denies a location whose ConfigMap "
            "is missing)",
            "Add the ConfigMap to the manifests",
        )
    data = found.doc.get("data")
    entries = data.mapping() if data is not None else []
    if not entries:
        found.doc.fail(
            f"ConfigMap {ref} (custom-headers of Ingress {obj.name!r}) has no data: no header "
            "to set",
            "Add the headers under data, e.g. X-Frame-Options: DENY",
        )
    out: list[tuple[str, str]] = []
    for key, value_node in entries:
        value = value_node.string("a header value")
        if not _HEADER_NAME.match(key) or not _HEADER_VALUE.match(value):
            value_node.fail(
                f"header {key}: {value!r} of ConfigMap {ref}: Traefik's NGINX provider takes "
                "only names of letters, digits, - and _ and printable values, and sends every "
                "path of the Ingress to an unavailable service otherwise",
                "Use a plain header name and value",
            )
        out.append((key, value))
    return tuple(out)


def _aliases(node: YNode) -> tuple[str, ...]:
    """``server-alias``: comma-separated host names (both split on ``,`` and trim)."""
    names = tuple(dict.fromkeys(a.strip() for a in node.string().split(",") if a.strip()))
    for alias in names:
        if not HOST_PATTERN.match(alias) or alias.startswith("*."):
            node.fail(
                f"server-alias {alias!r} is not a lowercase DNS name: nginx's server_name "
                "takes wildcards and regexes, Traefik's Host() neither, so they would disagree",
                'Write host names, e.g. server-alias: "www.a.test,a.example"',
            )
    return names


def _read_one(ctx: Context, obj: K8sObject) -> _Ingress:
    check_fields(ctx, obj, INGRESS_V1)
    annotations = check_nginx_annotations(ctx, obj)
    by_key = dict(annotations)
    spec = obj.doc.require("spec", "Add spec.rules")
    for what in ("tls", "defaultBackend"):
        node = spec.get(what)
        if node is not None:
            node.fail(
                f"spec.{what} on an ingress-nginx Ingress is not modeled yet (ingress-nginx "
                "redirects to HTTPS for spec.tls and serves spec.defaultBackend for every "
                "unmatched request of its hosts)",
                f"Remove spec.{what} to verify the routing",
            )
    canary: Canary | None = None
    if "canary" in by_key and _bool(by_key["canary"], "canary"):
        canary = Canary(
            header=by_key["canary-by-header"].string() if "canary-by-header" in by_key else "",
            header_value=(
                by_key["canary-by-header-value"].string()
                if "canary-by-header-value" in by_key
                else ""
            ),
            header_pattern=(
                by_key["canary-by-header-pattern"].string()
                if "canary-by-header-pattern" in by_key
                else ""
            ),
            cookie=by_key["canary-by-cookie"].string() if "canary-by-cookie" in by_key else "",
            weight=_int(by_key["canary-weight"], "canary-weight")
            if "canary-weight" in by_key
            else None,
            weight_total=_int(by_key["canary-weight-total"], "canary-weight-total")
            if "canary-weight-total" in by_key
            else None,
        )
    use_regex = "use-regex" in by_key and _bool(by_key["use-regex"], "use-regex")
    rewrite = by_key.get("rewrite-target")
    redirects = read_redirects(
        by_key, canary=canary is not None, rewrite=rewrite, as_bool=_bool, as_int=_int
    )
    ing = _Ingress(
        obj,
        annotations,
        canary,
        regex=use_regex or rewrite is not None,
        rewrite=rewrite,
        redirects=redirects,
    )
    _check_backend_protocol(by_key.get("backend-protocol"))
    ing.forwarded_prefix = by_key.get("x-forwarded-prefix")
    if ing.forwarded_prefix is not None and not _CAPTURE_PATH.match(
        ing.forwarded_prefix.string().strip()
    ):
        ing.forwarded_prefix.fail(
            f"x-forwarded-prefix {ing.forwarded_prefix.string()!r} is not a path of letters, "
            "digits, -._~/:$ (ingress-nginx and Traefik's NGINX provider both ignore it)",
            'Write a path, e.g. x-forwarded-prefix: "/app"',
        )
    vhost = by_key.get("upstream-vhost")
    if vhost is not None:
        ing.vhost = _upstream_vhost(vhost)
    headers = by_key.get("custom-headers")
    if headers is not None:
        ing.custom_headers = _custom_headers(ctx, obj, headers)
    ing.alias_node = by_key.get("server-alias")
    if ing.alias_node is not None:
        ing.aliases = _aliases(ing.alias_node)
    rules = spec.get("rules")
    for ri, rule in enumerate(rules.sequence() if rules is not None else []):
        host_node = rule.get("host")
        host = host_node.string("a host name") if host_node is not None else None
        if host_node is not None and host is not None and not HOST_PATTERN.match(host):
            host_node.fail(
                f"host {host!r} is not a lowercase DNS name (optionally '*.' wildcard, no port)",
                "Write the host in lowercase without a port, e.g. cheeses.minikube",
            )
        http = rule.get("http")
        if http is None:
            ctx.note(FINDING_NOT_MODELED, "rule without http paths: ignored", rule.source(), "info")
            continue
        for pi, entry in enumerate(http.require("paths", "List the paths").sequence()):
            path_node = entry.get("path")
            path = path_node.string("a path") if path_node is not None else None
            type_node = entry.require(
                "pathType", "Add pathType: Prefix, Exact or ImplementationSpecific"
            )
            path_type = type_node.string("a pathType")
            if path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
                type_node.fail(
                    f"unknown pathType {path_type!r}", "Use Exact, Prefix or ImplementationSpecific"
                )
            if path is not None and not path.startswith("/"):
                path_node.fail(f"path {path!r} does not start with '/'", "Start the path with '/'")  # type: ignore[union-attr]
            if path and path_type != "ImplementationSpecific" and not _PLAIN_PATH.match(path):
                path_node.fail(  # type: ignore[union-attr]
                    f"path {path!r} has regex characters under pathType {path_type}: "
                    "ingress-nginx (strict-validate-path-type, the default since 1.12) and "
                    "Traefik's NGINX provider (strictValidatePathType) both reject the Ingress",
                    "Use pathType: ImplementationSpecific for a regex path",
                )
            backend = ingress_backend(ctx, obj, entry.require("backend", "Add the backend Service"))
            ing.paths.append(
                _Path(obj, ri, pi, host or None, path or None, path_type, backend, entry)
            )
    return ing


def read_nginx_ingresses(
    ctx: Context, objects: Sequence[tuple[K8sObject, str]], *, also_traefik: bool
) -> NginxReading:
    """Read the ingress-nginx Ingresses (each with how it was selected) together: canaries
    attach across Ingresses. ``also_traefik``: Traefik's own Ingress provider serves them too
    (class-less Ingresses with ``watchIngressWithoutClass``)."""
    out = NginxReading()
    ingresses = [_read_one(ctx, obj) for obj, _ in objects]
    for obj, how in objects:
        ctx.note(
            FINDING_INGRESS_CLASS,
            f"Ingress {obj.name!r} is an ingress-nginx Ingress ({how}): Traefik's NGINX provider "
            "serves it, and the checks judge what ingress-nginx documents for it",
            obj.doc.source(),
            "info",
        )
        if how == f"spec.ingressClassName {NGINX_CLASS}":
            ctx.note(
                FINDING_INGRESS_CLASS,
                f"Ingress {obj.name!r} names IngressClass {NGINX_CLASS!r}, which is not in the "
                f"manifests: the harness takes it as ingress-nginx's (controller "
                f"{NGINX_CONTROLLER}, as ingress-nginx's Helm chart installs it), and the local "
                "target supplies it; on a cluster it must exist",
                obj.doc.source(),
                "info",
            )
        if also_traefik:
            ctx.note(
                FINDING_SERVED_TWICE,
                f"Ingress {obj.name!r} has no class, so Traefik's Ingress provider serves it as "
                "well as the NGINX provider (watchIngressWithoutClass): two routers per path, "
                "ranked by rule length. Give it spec.ingressClassName: nginx",
                obj.doc.source(),
            )
    primaries = [i for i in ingresses if i.canary is None]
    hosts = {p.host for i in primaries for p in i.paths}
    if None in hosts and len(hosts) > 1:
        host_less = next(p for i in primaries for p in i.paths if p.host is None)
        host_less.node.fail(
            "a rule without a host next to rules with hosts: ingress-nginx serves it only on "
            "hosts no rule names, Traefik on every host (at a lower priority); the harness "
            "does not model that difference yet",
            "Give the rule a host",
        )
    regex_hosts = {p.host for i in primaries if i.regex for p in i.paths}
    attached = _attach_canaries(ctx, ingresses, primaries)
    roots = _app_roots(primaries)
    owners = _alias_owners(ctx, ingresses, hosts)
    for ing in primaries:
        for p in ing.paths:
            root = roots.get(p.host)
            owner = owners.get(p.host)
            start, t_start = len(out.drafts), len(out.traefik_drafts)
            _declare(
                out,
                ctx,
                p,
                attached,
                regex=p.host in regex_hosts,
                ing=ing,
                aliases=owner.aliases if owner is ing else (),
                root=(app_root_middleware(*root),) if root else (),
            )
            if owner is not None:
                _alias_copies(out, p, owner, start, t_start, served=owner is ing)
    _declare_app_roots(out, primaries, roots)
    for ing in primaries:
        if ing.redirects is not None:
            regex = any(p.host in regex_hosts for p in ing.paths)
            ing.redirect_fates = ing.redirects.fates(regex, _root_lost_to_https(ing, primaries))
    _declare_www_redirects(out, ingresses, primaries)
    out.fate_inputs = (ingresses, attached)
    return out


def _app_roots(primaries: list[_Ingress]) -> dict[str | None, tuple[str, str, str, YNode]]:
    """Host -> (namespace, Ingress, root, node) of its app-root: ingress-nginx applies it at
    server level and Traefik's NGINX provider to every router of the host alike."""
    roots: dict[str | None, tuple[str, str, str, YNode]] = {}
    for ing in primaries:
        r = ing.redirects
        if r is None or r.app_root is None:
            continue
        node = r.nodes["app-root"]
        for host in dict.fromkeys(p.host for p in ing.paths):
            other = roots.get(host)
            if other is not None and other[2] != r.app_root:
                node.fail(
                    f"a second app-root ({r.app_root}) for host {host or '*'} (Ingress "
                    f"{other[1]!r} sets {other[2]}): the harness does not model which one wins",
                    "Set app-root on one Ingress of the host",
                )
            roots.setdefault(host, (ing.obj.namespace, ing.obj.name, r.app_root, node))
    return roots


def _serves_root(p: _Path) -> bool:
    return p.path in ("/", None)


def _root_lost_to_https(ing: _Ingress, primaries: list[_Ingress]) -> bool:
    """Whether Traefik answers ``/`` of this Ingress's app-root host with a force-ssl-redirect
    router (ingress-nginx answers the app-root redirect first)."""
    if ing.redirects is None or ing.redirects.app_root is None:
        return False
    hosts = {p.host for p in ing.paths}
    return any(
        i.redirects is not None and i.redirects.force_ssl and _serves_root(p) and p.host in hosts
        for i in primaries
        for p in i.paths
    )


def _declare_www_redirects(
    out: NginxReading, ingresses: list[_Ingress], primaries: list[_Ingress]
) -> None:
    """from-to-www-redirect: the other name of each host (``www.`` added or removed) answers
    every request with 308 to the host, unless an Ingress serves that name (both skip it).
    ingress-nginx: one redirect server; Traefik's NGINX provider: a router ``Host(from)`` per
    path, named ``<path's router>-from-to-www-redirect``."""
    served = {p.host for i in ingresses for p in i.paths}
    declared_for: set[str] = set()
    for ing in primaries:
        r = ing.redirects
        if r is None or not r.from_to_www:
            continue
        node = r.nodes["from-to-www-redirect"]
        skipped = {www_pair(p.host)[0] for p in ing.paths if p.host} & served
        if skipped and skipped == {www_pair(p.host)[0] for p in ing.paths if p.host}:
            ing.redirect_fates["from-to-www-redirect"] = (
                "honoured",
                f"a no-op: Ingresses serve {', '.join(sorted(skipped))}, so neither ingress-nginx "
                "nor Traefik's NGINX provider redirects them",
            )
        for p in ing.paths:
            if p.host is None or p.host.startswith("*."):
                what = "a wildcard host" if p.host else "a rule without a host"
                node.fail(
                    f"from-to-www-redirect on {what}: the harness does not model which names "
                    "ingress-nginx redirects",
                    "Give the rule a plain host, e.g. example.com",
                )
            source, to = www_pair(p.host)
            if source in served:
                continue
            declared_mw, traefik_mw = www_middlewares(ing.obj.namespace, ing.obj.name, to, node)
            declared = Draft(
                obj=ing.obj,
                host=source,
                path=None,
                match="prefix",
                middlewares=(declared_mw,),
                priority=_PREFIX_TIER,
                backends=(p.backend,),
                provider=PROVIDER_NGINX,
                source=node.source(),
                dialects=(DIALECT_INGRESS_V1, DIALECT_INGRESS_NGINX),
                path_type="Prefix",
                ingress_class=NGINX_CLASS,
                id_hint=f"{source} from-to-www-redirect",
            )
            if source not in declared_for:
                declared_for.add(source)
                out.drafts.append(declared)
                _note(
                    out,
                    declared,
                    f"from-to-www-redirect to {to}: ingress-nginx writes its own port (80/443, "
                    "left out here as the default); Traefik's NGINX provider the port of the "
                    "request's Host",
                )
            name = provider.router_name(ing.obj.namespace, ing.obj.name, p.rule_index, p.path_index)
            out.traefik_drafts.append(
                dataclasses.replace(
                    declared,
                    priority=None,
                    middlewares=(traefik_mw,),
                    match_rule=provider.router_rule(source, None, "Prefix", regex=False),
                    id_hint=f"{name}-from-to-www-redirect",
                )
            )


def _declare_app_roots(
    out: NginxReading,
    primaries: list[_Ingress],
    roots: dict[str | None, tuple[str, str, str, YNode]],
) -> None:
    """ingress-nginx's app-root: a route for ``/`` of the host above every location; Traefik's
    NGINX provider: a router ``Host(h) && Path("/")`` when no path of the host is ``/``."""
    for host, root in roots.items():
        ing = next(i for i in primaries if i.obj.name == root[1] and i.obj.namespace == root[0])
        first = next(p for p in ing.paths if p.host == host)
        mw = app_root_middleware(*root)
        declared = Draft(
            obj=ing.obj,
            host=host,
            path="/",
            match="exact",
            middlewares=(mw,),
            priority=_EXACT_TIER + 100,
            backends=(first.backend,),
            provider=PROVIDER_NGINX,
            source=root[3].source(),
            dialects=(DIALECT_INGRESS_V1, DIALECT_INGRESS_NGINX),
            path_type="Exact",
            ingress_class=NGINX_CLASS,
            id_hint=f"{host or '*'}/ app-root",
        )
        out.drafts.append(declared)
        if ing.redirects is not None and _root_lost_to_https(ing, primaries):
            _note(out, declared, ing.redirects.root_note())
        if any(_serves_root(p) for i in primaries for p in i.paths if p.host == host):
            continue
        name = provider.router_name(ing.obj.namespace, ing.obj.name, first.rule_index, 0)
        out.traefik_drafts.append(
            dataclasses.replace(
                declared,
                priority=None,
                match_rule=provider.router_rule(host, "/", "Exact", regex=False),
                id_hint=f"{name}-app-root-redirect",
            )
        )


def _alias_owners(
    ctx: Context, ingresses: list[_Ingress], hosts: set[str | None]
) -> dict[str | None, _Ingress]:
    """Per host, the Ingress whose ``server-alias`` names its aliases, the aliases that are
    hosts of some rule dropped (ingress-nginx and Traefik's NGINX provider both drop them)."""
    owners: dict[str | None, _Ingress] = {}
    claimed: dict[str, str | None] = {}
    for ing in ingresses:
        node = ing.alias_node
        if node is None:
            continue
        if ing.canary is not None:
            ctx.note(
                FINDING_NOT_MODELED,
                f"canary Ingress {ing.obj.name!r}: server-alias is ignored on a canary by "
                "ingress-nginx and Traefik's NGINX provider alike",
                node.source(),
                "info",
            )
            continue
        own_hosts = {p.host for p in ing.paths}
        if len(own_hosts) != 1 or None in own_hosts:
            node.fail(
                "server-alias on an Ingress without exactly one host: ingress-nginx gives "
                "the aliases to each host's server (one server_name), Traefik's NGINX "
                "provider to every router of the Ingress; the harness does not model that yet",
                "Put the paths of one host in an Ingress of their own with the server-alias",
            )
        (host,) = own_hosts
        if host in owners:
            node.fail(
                f"a second server-alias for host {host} (Ingress {owners[host].obj.name!r} has "
                "one): ingress-nginx keeps the first by creation time, Traefik's NGINX "
                "provider serves each on its own Ingress's paths; the harness does not model "
                "that yet",
                "Give the host's aliases on one Ingress",
            )
        dropped = [a for a in ing.aliases if a in hosts]
        if dropped:
            ctx.note(
                FINDING_NOT_MODELED,
                f"Ingress {ing.obj.name!r}: server-alias {', '.join(dropped)} is a host of a "
                "rule, so ingress-nginx and Traefik's NGINX provider both ignore it",
                node.source(),
            )
        for alias in ing.aliases:
            if alias in claimed and alias not in dropped:
                node.fail(
                    f"server-alias {alias} is also an alias of host {claimed[alias]}: nginx "
                    "serves a server_name from one server only; the harness does not model "
                    "which",
                    "Name each alias once",
                )
            claimed[alias] = host
        ing.aliases = tuple(a for a in ing.aliases if a not in dropped)
        if ing.aliases:
            owners[host] = ing
    return owners


def _alias_copies(
    out: NginxReading, p: _Path, owner: _Ingress, start: int, t_start: int, *, served: bool
) -> None:
    """The routes just declared for ``p`` (from ``start``, Traefik's from ``t_start``) again
    on each alias of its host: ingress-nginx serves every location of the host on its aliases
    (one server, several server_name), Traefik's NGINX provider only the paths of the Ingress
    that names them (``served``), whose rule lists the aliases."""
    host = p.host or ""
    for draft in list(out.drafts[start:]):
        notes = out.notes.get(_route_id_of(draft), [])
        for alias in owner.aliases:
            copy = dataclasses.replace(
                draft, host=alias, id_hint=alias + draft.id_hint[len(host) :]
            )
            out.drafts.append(copy)
            rid = _route_id_of(copy)
            out.alias_routes.setdefault(owner.obj.name, []).append(rid)
            if notes:
                out.notes[rid] = list(notes)
            if not served:
                out.alias_lost.add(rid)
                _note(
                    out,
                    copy,
                    f"server-alias {alias} (Ingress {owner.obj.name!r}): ingress-nginx serves "
                    f"every location of {host} on {alias}, this one of Ingress "
                    f"{p.obj.name!r} too; Traefik's NGINX provider adds {alias} only to the "
                    f"routers of Ingress {owner.obj.name!r}",
                )
    if not served:
        return
    for draft in list(out.traefik_drafts[t_start:]):
        for alias in owner.aliases:
            out.traefik_drafts.append(
                dataclasses.replace(draft, host=alias, id_hint=f"{draft.id_hint} {alias}")
            )


def _rewrites_partly(out: NginxReading, ing: _Ingress) -> bool:
    """Whether Traefik's NGINX provider rewrites a path of ``ing`` only in part (the note
    :func:`_rewrite` leaves)."""
    return any(
        n.startswith("rewrite-target")
        for p in ing.paths
        for n in out.notes.get(_route_id(p, f"{p.host or '*'}{p.path or ''}"), [])
    )


def _service_key(p: _Path) -> tuple[str, str, int | str | None]:
    return (p.obj.namespace, p.backend.service, p.backend.port)


def _attach_canaries(
    ctx: Context, ingresses: list[_Ingress], primaries: list[_Ingress]
) -> dict[tuple[str, str, int | str | None], _Attached]:
    by_location = {
        (p.obj.namespace, p.host, p.path, p.path_type): p for i in primaries for p in i.paths
    }
    attached: dict[tuple[str, str, int | str | None], _Attached] = {}
    for ing in ingresses:
        if ing.canary is None:
            continue
        for p in ing.paths:
            primary = by_location.get((p.obj.namespace, p.host, p.path, p.path_type))
            where = f"{p.host or '*'}{p.path or ''} ({p.path_type})"
            if primary is None:
                ctx.note(
                    FINDING_NOT_MODELED,
                    f"canary Ingress {ing.obj.name!r}: no Ingress serves {where}, so "
                    "ingress-nginx and Traefik both ignore this canary path",
                    p.node.source(),
                )
                continue
            if primary.backend.service == p.backend.service:
                continue  # A canary to the primary's own Service changes nothing.
            key = _service_key(primary)
            if key in attached:
                ctx.note(
                    FINDING_NOT_MODELED,
                    f"canary Ingress {ing.obj.name!r}: Service {key[1]!r} already has the canary "
                    f"of {attached[key].ingress.obj.name!r}; this one is ignored",
                    p.node.source(),
                )
                continue
            attached[key] = _Attached(ing.canary, p.backend, ing, p.node.source())
            others = [
                q for i in primaries for q in i.paths if _service_key(q) == key and q is not primary
            ]
            if others:
                where_else = ", ".join(f"{q.host or '*'}{q.path or ''}" for q in others)
                ctx.note(
                    FINDING_NGINX_CANARY_PER_SERVICE,
                    f"canary Ingress {ing.obj.name!r} is declared for {where} but applies to "
                    f"every path routed to Service {key[1]!r} port {key[2]}, also {where_else}: "
                    "ingress-nginx attaches a canary to the upstream (namespace-service-port), "
                    "and Traefik's NGINX provider to the primary Service, alike",
                    p.node.source(),
                )
    return attached


def _priority(p: _Path, rank: int) -> int:
    if p.path_type == "Exact":
        return _EXACT_TIER + rank
    return _PREFIX_TIER + 8 * len(p.path or "") + rank


def _route_id(p: _Path, hint: str) -> str:
    return f"{p.obj.name}:{hint}"


def _declare(
    out: NginxReading,
    ctx: Context,
    p: _Path,
    attached: dict[tuple[str, str, int | str | None], _Attached],
    *,
    regex: bool,
    ing: _Ingress,
    aliases: tuple[str, ...],
    root: tuple[RouteMiddleware, ...],
) -> None:
    match: MatchKind = "exact" if p.path_type == "Exact" else "prefix"
    where = f"{p.host or '*'}{p.path or ''}"
    path = p.path
    if regex and p.path_type != "Exact" and p.path:
        # ingress-nginx's location ~* "^/p", Traefik's PathRegexp("(?i)^/p"): the same regex.
        match, path = "regex", "(?i)^" + p.path
        _go_regex(p.node, path)
    declared_mw, traefik_mw = _middlewares(out, p, ing)
    ns, name = p.obj.namespace, p.obj.name
    redirects = ing.redirects or Redirects()
    declared_mw = redirects.declared(ns, name) + declared_mw
    traefik_mw = redirects.traefik(ns, name, p.path, regex_host=regex, root=root) + traefik_mw
    for _, text in redirects.departures(regex, where):
        out.notes.setdefault(_route_id(p, where), []).append(text)
    base = Draft(
        obj=p.obj,
        host=p.host,
        path=path,
        match=match,
        middlewares=declared_mw,
        priority=_priority(p, 0),
        backends=(p.backend,),
        provider=PROVIDER_NGINX,
        source=p.node.source(),
        dialects=(DIALECT_INGRESS_V1, DIALECT_INGRESS_NGINX),
        path_type=p.path_type,
        ingress_class=NGINX_CLASS,
        id_hint=where,
    )
    rule = provider.router_rule(p.host, p.path, p.path_type, regex=regex, aliases=aliases)
    name = provider.router_name(p.obj.namespace, p.obj.name, p.rule_index, p.path_index)
    traefik = dataclasses.replace(
        base, priority=None, match_rule=rule, id_hint=name, middlewares=traefik_mw
    )
    found = attached.get(_service_key(p))
    if found is None:
        out.drafts.append(base)
        out.traefik_drafts.append(traefik)
        _path_type_notes(out, p, base)
        return
    c, canary = found.canary, found.backend
    share = c.declared_share()
    weights = (
        WeightedBackend(p.backend.service, p.backend.port, share.denominator - share.numerator),
        WeightedBackend(canary.service, canary.port, share.numerator),
    )
    main = dataclasses.replace(base, backends=weights if share > 0 else (p.backend,))
    out.drafts.append(main)
    _path_type_notes(out, p, main)
    t_primary, t_canary = c.traefik_weights()
    out.traefik_drafts.append(
        dataclasses.replace(
            traefik,
            backends=(
                WeightedBackend(p.backend.service, p.backend.port, t_primary),
                WeightedBackend(canary.service, canary.port, t_canary),
            ),
        )
    )
    if c.traefik_share() != share:
        _note(
            out,
            main,
            f"canary-weight {c.weight or 0} of canary-weight-total {c.weight_total} (canary "
            f"Ingress {found.ingress.obj.name!r}, {found.source.file}:{found.source.line}): "
            f"ingress-nginx sends {_percent(share)} to {canary.service}; Traefik's NGINX provider "
            f"takes the total as max({c.weight_total}, 100) = {sum(c.traefik_weights())} and "
            f"sends {_percent(c.traefik_share())}",
        )
    for hint, conditions, to, rank in _canary_routes(c, found.source):
        out.drafts.append(
            dataclasses.replace(
                base,
                backends=(canary if to == "canary" else p.backend,),
                priority=_priority(p, rank),
                conditions=conditions,
                id_hint=f"{where} {hint}",
            )
        )
    selections = _canary_routes(c, found.source)
    for suffix, t_rule, to in (
        ("-canary", c.canary_rule(rule), "canary"),
        ("-non-canary", c.non_canary_rule(rule), "primary"),
    ):
        if t_rule is not None:
            # One of the router's alternatives as its condition: enough for the oracle to keep
            # a request without the header or cookie off it.
            first = next(s for s in selections if s[2] == to)
            out.traefik_drafts.append(
                dataclasses.replace(
                    traefik,
                    match_rule=t_rule,
                    backends=(canary if to == "canary" else p.backend,),
                    conditions=first[1],
                    id_hint=name + suffix,
                )
            )


def _go_regex(node: YNode, pattern: str) -> GoRegexp:
    try:
        return compile_go_regexp(pattern)
    except GoRegexpError as err:
        node.fail(
            f"{err}: ingress-nginx's PCRE and Traefik's Go regexp may read it differently",
            "Write the path in the syntax both share (RE2)",
        )


def _middlewares(
    out: NginxReading, p: _Path, ing: _Ingress
) -> tuple[tuple[RouteMiddleware, ...], tuple[RouteMiddleware, ...]]:
    """What the path's annotations do to the request and the answer, on ingress-nginx
    (declared) and on Traefik's NGINX provider, in the provider's order: rewrite-target (with
    x-forwarded-prefix), upstream-vhost, custom-headers."""
    declared, traefik = _rewrite(out, p, ing.rewrite, ing.forwarded_prefix)
    same: list[RouteMiddleware] = []
    if ing.vhost is not None:
        same.append(_annotation_middleware(ing, "upstream-vhost", Headers((("Host", ing.vhost),))))
    if ing.custom_headers:
        model = Headers(custom_response_headers=ing.custom_headers)
        same.append(_annotation_middleware(ing, "custom-headers", model))
    return (*declared, *same), (*traefik, *same)


def _annotation_middleware(ing: _Ingress, short: str, model: Middleware) -> RouteMiddleware:
    node = dict(ing.annotations)[short]
    return RouteMiddleware(
        ing.obj.namespace,
        ing.obj.name,
        f"annotation {short}",
        model,
        node.source(),
        {short: node.string()},
    )


def _rewrite(
    out: NginxReading, p: _Path, node: YNode | None, prefix_node: YNode | None = None
) -> tuple[tuple[RouteMiddleware, ...], tuple[RouteMiddleware, ...]]:
    """``rewrite-target`` on ingress-nginx (nginx ``rewrite "(?i)<path>" <target> break``:
    the whole path is replaced, captures taken from the path) and on Traefik (every match of
    ``(?i)<path>`` replaced, the rest kept; 400 when the result is not clean). With
    ``x-forwarded-prefix`` (only then, on both): ``X-Forwarded-Prefix`` is the value, its
    ``$n`` the path's captures, on ingress-nginx; on Traefik the path with every match
    replaced by the value."""
    if node is None or not p.path:
        return (), ()
    target = node.string().strip()
    if "://" in target:
        node.fail(
            "a rewrite-target with a scheme redirects; the harness models path rewrites only",
            "Use a path, e.g. /$2",
        )
    if target == p.path:
        # Both skip a rewrite to the path itself, and X-Forwarded-Prefix with it (ingress-nginx's
        # buildProxyPass, the provider's buildRewriteTarget); the host still matches by regex.
        return (), ()
    source = node.source()
    spec = {"rewrite-target": target, "path": p.path}
    prefix = prefix_node.string().strip() if prefix_node is not None else ""
    if prefix:
        spec["x-forwarded-prefix"] = prefix
    whole = RewriteTarget(_go_regex(node, f"(?i)^(?:{p.path}).*$"), target, prefix)
    kind = "annotation rewrite-target"
    declared = (RouteMiddleware(p.obj.namespace, p.obj.name, kind, whole, source, spec),)
    matched = RewriteTarget(_go_regex(node, "(?i)" + p.path), target, prefix)
    traefik = (RouteMiddleware(p.obj.namespace, p.obj.name, kind, matched, source, spec),)
    if not p.path.endswith((".*", ".*)", "$")):
        out.notes.setdefault(_route_id(p, f"{p.host or '*'}{p.path}"), []).append(
            f"rewrite-target {target} on path {p.path}: ingress-nginx replaces the whole path "
            f"with {target}; Traefik's NGINX provider replaces only the part (?i){p.path} "
            "matches and keeps the rest (400 when the result is not a clean path)"
            + (
                f"; x-forwarded-prefix {prefix}: ingress-nginx sets X-Forwarded-Prefix to "
                f"{prefix}, Traefik's NGINX provider to the path with that part replaced by it"
                if prefix
                else ""
            )
        )
    return declared, traefik


def _canary_routes(
    c: Canary, source: Source
) -> list[tuple[str, tuple[RequestCondition, ...], str, int]]:
    """The declared canary selections: (id hint, conditions, canary or primary, rank). A
    ``never`` only where it changes something (a weight, or a cookie below the header): without
    one the request reaches the primary anyway, and a request carrying both ``always`` and
    ``never`` is left out of the overlap probes (nginx joins a repeated header's values)."""
    routes: list[tuple[str, tuple[RequestCondition, ...], str, int]] = []
    weighted = c.declared_share() > 0
    if c.header:
        if c.header_value:
            cond = RequestCondition("header", c.header, c.header_value, source=source)
        elif c.header_pattern:
            cond = RequestCondition("header", c.header, c.header_pattern, "regex", source=source)
        else:
            cond = RequestCondition("header", c.header, "always", source=source)
        routes.append((f"[{c.header}: {cond.value}]", (cond,), "canary", _RANK["header", "canary"]))
        if c.header_is_special and (weighted or c.cookie):
            never = RequestCondition("header", c.header, "never", source=source)
            routes.append((f"[{c.header}: never]", (never,), "primary", _RANK["header", "primary"]))
    if c.cookie:
        for value, to in (("always", "canary"), ("never", "primary"))[: 2 if weighted else 1]:
            cond = RequestCondition("cookie", c.cookie, value, source=source)
            routes.append((f"[cookie {c.cookie}={value}]", (cond,), to, _RANK["cookie", to]))
    return routes


def _percent(share: Fraction) -> str:
    return f"{float(share) * 100:.4g}%"


def _note(out: NginxReading, draft: Draft, text: str) -> None:
    out.notes.setdefault(_route_id_of(draft), []).append(text)


def _route_id_of(draft: Draft) -> str:
    return f"{draft.obj.name}:{draft.id_hint}"


def _path_type_notes(out: NginxReading, p: _Path, draft: Draft) -> None:
    if (
        draft.match != "regex"
        and p.path_type == "ImplementationSpecific"
        and p.path not in ("/", None)
    ):
        _note(
            out,
            draft,
            f"pathType ImplementationSpecific {p.path}: ingress-nginx serves it as an nginx "
            f"prefix location, character by character ({p.path}X too); Traefik's NGINX provider "
            "reads it as Prefix, element by element",
        )


def outranked_notes(
    ctx: Context, declared: Sequence[Route], traefik: Sequence[Route]
) -> list[tuple[str, str]]:
    """Declared Exact paths that another of the NGINX provider's routers outranks on Traefik
    (it ranks by rule length; ingress-nginx serves ``location = /p`` first): (route id, note),
    with a finding each."""
    from harness.traefik.oracle import expect

    served = Intent(routes=tuple(traefik), namespace=ctx.namespace)
    out: list[tuple[str, str]] = []
    for route in declared:
        if route.provider != PROVIDER_NGINX or route.match != "exact" or route.conditions:
            continue
        host = route.host or "any.test"
        path = route.path or "/"
        own = next((t for t in traefik if t.source == route.source and not t.conditions), None)
        winner = expect(served, host, path).decided_by
        if own is None or winner is None or winner.route_id == own.id:
            continue
        if {b.service for b in winner.backends} == {b.service for b in route.backends}:
            continue
        note = (
            f"pathType Exact {path}: ingress-nginx serves it first (location = {path}); Traefik's "
            f"NGINX provider ranks routers by rule length, so {winner.rule} (priority "
            f"{winner.priority}) outranks {own.rule} (priority {own.effective_priority}) and "
            f"{'/'.join(b.service for b in winner.backends if b.weight > 0)} answers"
        )
        if "PathRegexp" in winner.rule:
            note += (
                f"; the PathRegexp comes from use-regex or rewrite-target on an Ingress of "
                f"{host}, which makes every path of the host a regex"
            )
        ctx.note(FINDING_NGINX_MEANING_CHANGED, note, route.source)
        out.append((route.id, note))
    return out


def alias_outranked_notes(
    ctx: Context, out: NginxReading, declared: Sequence[Route], traefik: Sequence[Route]
) -> None:
    """Declared routes that a router lengthened by ``server-alias`` outranks on Traefik: its
    rule ``(Host("h") || Host("alias")) && ...`` is longer than theirs, while ingress-nginx
    picks the longest location of the host. Noted on the route and counted against the
    annotation (``out.alias_lost``), with a finding each."""
    from harness.traefik.oracle import expect

    served = Intent(routes=tuple(traefik), namespace=ctx.namespace)
    for route in declared:
        if route.provider != PROVIDER_NGINX or route.conditions or route.match == "regex":
            continue
        winner = expect(served, route.host or "any.test", route.path or "/").decided_by
        if winner is None or " || Host(" not in winner.rule.split(" && (", 1)[0]:
            continue
        if {b.service for b in winner.backends} == {b.service for b in route.backends}:
            continue
        owner = winner.route_id.split(":", 1)[0]
        note = (
            f"server-alias of Ingress {owner!r} lengthens its router's rule to {winner.rule} "
            f"(priority {winner.priority}), which outranks the router of {route.path} on "
            f"Traefik, so {'/'.join(b.service for b in winner.backends)} answers; "
            f"ingress-nginx serves the longest location, {route.path}"
        )
        ctx.note(FINDING_NGINX_MEANING_CHANGED, note, route.source)
        out.notes.setdefault(route.id, []).append(note)
        out.alias_lost.add(route.id)
        out.alias_routes.setdefault(owner, []).append(route.id)


def canary_outranked_notes(
    ctx: Context, declared: Sequence[Route], traefik: Sequence[Route]
) -> list[tuple[str, str, str]]:
    """Declared routes of other Services that a canary router outranks on Traefik when the
    request selects the canary: its rule ``(rule) && (Header(...))`` is longer than theirs,
    while ingress-nginx picks the location first and only then the canary. (route id, canary
    router's Ingress, note), with a finding each."""
    from harness.traefik.oracle import traefik_matches

    out: list[tuple[str, str, str]] = []
    canaries = [t for t in traefik if t.id.endswith("-canary") and t.conditions]
    for route in declared:
        if route.provider != PROVIDER_NGINX or route.conditions:
            continue
        own = next((t for t in traefik if t.source == route.source and not t.conditions), None)
        for c in canaries:
            if (
                own is None
                or c.host != route.host
                or c.effective_priority <= own.effective_priority
            ):
                continue
            primary = {
                b.service
                for t in traefik
                if t.source == c.source and not t.conditions
                for b in t.backends
                if b.weight
            }
            if primary & {b.service for b in route.backends}:
                continue  # The canary applies to the primary Service's own paths on both.
            plain = dataclasses.replace(c, conditions=())
            covers = c.path in ("(?i)^/", "/")
            if not covers and route.match != "regex" and route.path:
                covers = traefik_matches(plain, route.host or "any.test", route.path)
            if not covers:
                continue
            cond = c.conditions[0]
            note = (
                f"with {cond.label()}, ingress-nginx serves {route.path} from its own location "
                f"({'/'.join(b.service for b in route.backends)}) and only then looks for a "
                f"canary; on Traefik the canary router {c.rule} (priority {c.effective_priority}) "
                f"outranks {own.rule} (priority {own.effective_priority}) and "
                f"{'/'.join(b.service for b in c.backends)} answers"
            )
            ctx.note(FINDING_NGINX_MEANING_CHANGED, note, route.source)
            out.append((route.id, c.source.name, note))
            break
    return out


def record_fates(
    out: NginxReading,
    ctx: Context,
    outranked: dict[str, str],
    canary_outranked: Sequence[tuple[str, str, str]] = (),
) -> None:
    """Each annotation's fate on Traefik (``out.fates``), with the routes that depend on it:
    ``outranked`` are the declared Exact routes another router outranks on Traefik (route id:
    note), which a regex-enabling annotation of their host brought about."""
    ingresses, attached = out.fate_inputs
    # Canary Ingress name -> the routes of other Services its routers outrank on Traefik.
    primary_of = {a.ingress.obj.name: a for a in attached.values()}
    lost_to_canary: dict[str, list[tuple[str, str]]] = {}
    for rid, primary_ingress, note in canary_outranked:
        for name, a in primary_of.items():
            if any(d.obj.name == primary_ingress and a.backend in d.backends for d in out.drafts):
                lost_to_canary.setdefault(name, []).append((rid, note))
    by_host: dict[str | None, list[str]] = {}
    for d in out.drafts:
        by_host.setdefault(d.host, []).append(_route_id_of(d))
    route_ids: dict[str, list[str]] = {}
    for d in out.drafts:
        route_ids.setdefault(d.obj.name, []).append(_route_id_of(d))
    served_by_canary: dict[str, list[str]] = {}
    for d in out.drafts:
        for a in attached.values():
            if any(b.service == a.backend.service for b in d.backends) or d.conditions:
                served_by_canary.setdefault(a.ingress.obj.name, []).append(_route_id_of(d))
    for ing in ingresses:
        routes = tuple(
            dict.fromkeys(
                served_by_canary.get(ing.obj.name, [])
                if ing.canary is not None
                else route_ids.get(ing.obj.name, [])
            )
        )
        for short, node in ing.annotations:
            key = ANNOTATION_PREFIX + short
            value = node.string()
            fate: AnnotationFateKind = "honoured"
            note = "read by Traefik's NGINX provider with ingress-nginx's meaning"
            if short not in provider.TRAEFIK_READS:
                fate = "ignored"
                note = (
                    "Traefik's NGINX provider does not read it and logs nothing; the harness "
                    "takes it as inert for routing"
                )
                ctx.note(
                    FINDING_NGINX_IGNORED,
                    f"Ingress {ing.obj.name!r}: {key} is ignored by Traefik's NGINX provider "
                    "without a log line",
                    node.source(),
                )
            elif short in ing.redirect_fates:
                fate, note = ing.redirect_fates[short]
                if fate == "changed":
                    ctx.note(
                        FINDING_NGINX_MEANING_CHANGED,
                        f"Ingress {ing.obj.name!r}: {note}",
                        node.source(),
                    )
            elif short == "rewrite-target" and _rewrites_partly(out, ing):
                fate = "changed"
                note = (
                    "ingress-nginx replaces the whole path with the target; Traefik's NGINX "
                    "provider replaces only the part the path's regex matches"
                )
            elif short == "x-forwarded-prefix" and _rewrites_partly(out, ing):
                fate = "changed"
                note = (
                    f"ingress-nginx sets X-Forwarded-Prefix to {value.strip()} (with "
                    "rewrite-target); Traefik's NGINX provider to the request path with the "
                    "part the path's regex matches replaced by it, the rest kept"
                )
            elif short == "x-forwarded-prefix" and (
                ing.rewrite is None
                or all(ing.rewrite.string().strip() == q.path for q in ing.paths)
            ):
                note += (
                    "; on both it takes effect only with a rewrite-target other than the path "
                    "(ingress-nginx sets the header in its rewrite)"
                )
            elif short == "server-alias":
                routes = tuple(dict.fromkeys(out.alias_routes.get(ing.obj.name, [])))
                lost = [r for r in routes if r in out.alias_lost]
                if lost:
                    fate = "changed"
                    note = (
                        "ingress-nginx serves every location of the host on the aliases, the "
                        "longest first; Traefik's NGINX provider adds the aliases to this "
                        "Ingress's routers only, whose longer rules also outrank the host's "
                        "longer paths: " + ", ".join(lost)
                    )
            elif short == "custom-headers":
                names = ", ".join(k for k, _ in ing.custom_headers)
                note += (
                    f", once its globalAllowedResponseHeaders lists {names} (as "
                    "ingress-nginx's global-allowed-response-headers must; the local target "
                    "sets it): response headers on every answer of its paths"
                )
            elif short in ("use-regex", "rewrite-target"):
                hosts = {p.host for p in ing.paths}
                host_routes = [r for h in hosts for r in by_host.get(h, [])]
                routes = tuple(dict.fromkeys((*routes, *host_routes)))
                note += (
                    "; on both, every path of its hosts (on any Ingress) becomes a "
                    "case-insensitive regex anchored at the start"
                )
                lost = [outranked[r] for r in host_routes if r in outranked]
                if lost:
                    fate = "changed"
                    note += (
                        ", but Traefik ranks the regex routers by rule length, above Exact "
                        "paths: " + "; ".join(lost)
                    )
            elif short in ("canary-by-header", "canary-by-cookie") and ing.obj.name in (
                lost_to_canary
            ):
                taken = lost_to_canary[ing.obj.name]
                routes = tuple(dict.fromkeys((*routes, *(r for r, _ in taken))))
                fate = "changed"
                note = (
                    "Traefik's canary routers have longer rules than the host's other routers, "
                    "so a request that selects the canary reaches it also under longer paths of "
                    "other Services: " + "; ".join(n for _, n in taken)
                )
            elif short == "canary-weight-total" and ing.canary is not None:
                c = ing.canary
                if c.traefik_share() != c.declared_share():
                    fate = "changed"
                    note = (
                        f"ingress-nginx: canary-weight {c.weight or 0} of {c.weight_total} = "
                        f"{_percent(c.declared_share())} to the canary; Traefik's NGINX "
                        f"provider takes the total as max({c.weight_total}, 100): "
                        f"{_percent(c.traefik_share())}"
                    )
                    ctx.note(
                        FINDING_NGINX_MEANING_CHANGED,
                        f"Ingress {ing.obj.name!r}: {note}",
                        node.source(),
                    )
            out.fates.append(
                AnnotationFate(
                    ingress=ing.obj.name,
                    namespace=ing.obj.namespace,
                    key=key,
                    value=value,
                    fate=fate,
                    note=note,
                    source=node.source(),
                    routes=routes,
                )
            )
