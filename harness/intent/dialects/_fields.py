"""Every field of the routing objects, accounted for: modeled, inert, or refused.

A field that can change which backend answers, what path or headers it sees, or whether the
route answers at all must be either modeled by the oracle (and so checked), or make the run
refuse the manifest before any traffic, naming file, line and field. Nothing is dropped
silently. These tables say, per kind, what each field is:

- a nested table: the field is a mapping (or, for a field ending in ``[]``, a list of mappings)
  whose own fields are looked up in it;
- ``MODELED``: read by the dialect and judged by the checks;
- ``Inert(why)``: accepted, it does not change what a correct request gets (recorded as an
  informational finding when present, so a reviewer sees it was read);
- ``Refused(why, advice)``: the run stops with file:line:field, what it does and what to do.

A field not in a table is refused as unknown (a typo, or something the harness does not know):
Traefik would either reject the object or do something the harness cannot predict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from harness.intent.dialects._objects import Context, K8sObject
from harness.intent.dialects._yaml import YNode
from harness.intent.model import FINDING_NOT_MODELED


@dataclass(frozen=True)
class Inert:
    why: str


@dataclass(frozen=True)
class Refused:
    why: str
    advice: str


class _Modeled:
    def __repr__(self) -> str:
        return "MODELED"


MODELED = _Modeled()
Field = Union["Table", Inert, Refused, _Modeled]
Table = Mapping[str, Field]

#: Fields Kubernetes and tools put on every object; none of them changes routing.
_METADATA: Table = {
    "name": MODELED,
    "namespace": MODELED,
    "annotations": MODELED,  # checked key by key by the dialects
    "labels": MODELED,
    "generateName": Refused("the object has no fixed name", "Give it metadata.name"),
    "uid": MODELED,
    "resourceVersion": MODELED,
    "generation": MODELED,
    "creationTimestamp": MODELED,
    "managedFields": MODELED,
    "finalizers": MODELED,
    "ownerReferences": MODELED,
    "selfLink": MODELED,
}

_SERVICE_BACKEND: Table = {
    "name": MODELED,
    "port": {"number": MODELED, "name": MODELED},
}
_BACKEND_V1: Table = {
    "service": _SERVICE_BACKEND,
    "resource": Refused("resource backends are not served by Traefik", "Use backend.service"),
}
_BACKEND_V1BETA1: Table = {
    "serviceName": MODELED,
    "servicePort": MODELED,
    "resource": Refused("resource backends are not served by Traefik", "Use serviceName"),
}
_CERT_RESOLVER = Refused(
    "a certificate resolver (ACME) obtains certificates from a certificate authority on the "
    "internet, which the local target cannot reach; the local target serves a certificate it "
    "generates for the declared hosts instead",
    "Remove the certificate resolver for this run (the route stays a TLS router)",
)
_TLS_OPTIONS = Refused(
    "TLS options (protocol versions, ciphers, client certificates) live in a TLSOption object "
    "the harness does not model; a client the options refuse gets no answer at all",
    "Remove the TLS options reference for this run",
)


def _ingress(backend: Table) -> Table:
    return {
        "apiVersion": MODELED,
        "kind": MODELED,
        "metadata": _METADATA,
        "status": Inert("written by the controller, not by users"),
        "spec": {
            "ingressClassName": MODELED,
            "defaultBackend": backend,
            "backend": backend,
            "tls[]": {"hosts": MODELED, "secretName": MODELED},
            "rules[]": {
                "host": MODELED,
                "http": {
                    "paths[]": {"path": MODELED, "pathType": MODELED, "backend": backend},
                },
            },
        },
    }


INGRESS_V1 = _ingress(_BACKEND_V1)
INGRESS_V1BETA1 = _ingress(_BACKEND_V1BETA1)

_CRD_SERVICE: Table = {
    "name": MODELED,
    "namespace": MODELED,
    "kind": MODELED,
    "port": MODELED,
    "weight": MODELED,
    "strategy": Refused(
        "a load-balancing strategy other than the default weighted round robin changes which "
        "backend answers (p2c ignores weights, hrw pins clients)",
        "Leave strategy unset (wrr) to verify the weights",
    ),
    "sticky": Inert(
        "sticky cookies pin a client that sends the cookie back; the shares across clients "
        "without cookies are what is verified"
    ),
    "scheme": Refused(
        "the scheme Traefik uses towards the backend (https, h2c) changes what the backend must "
        "speak; the local target's echo backends speak plain HTTP",
        "Leave scheme unset to verify the routing",
    ),
    "serversTransport": Refused(
        "a servers transport changes how Traefik connects to the backend",
        "Leave it unset for this run",
    ),
    "passHostHeader": Refused(
        "passHostHeader: false changes the Host header the backend sees, which is not modeled",
        "Leave passHostHeader unset (true)",
    ),
    "responseForwarding": Inert("changes only when response bytes are flushed"),
    "healthCheck": Refused(
        "a health check can take backends out of the rotation", "Leave healthCheck unset"
    ),
    "nativeLB": Refused(
        "nativeLB sends traffic to the Service's cluster IP instead of its endpoints",
        "Leave nativeLB unset",
    ),
    "nodePortLB": Refused(
        "nodePortLB sends traffic to node ports instead of the endpoints",
        "Leave nodePortLB unset",
    ),
}

INGRESSROUTE: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "spec": {
        "entryPoints": MODELED,
        "ingressClassName": MODELED,
        "tls": {
            "secretName": MODELED,
            "certResolver": _CERT_RESOLVER,
            "domains[]": _CERT_RESOLVER,
            "options": _TLS_OPTIONS,
            "store": Refused(
                "a TLS store other than the default one is not modeled",
                "Remove tls.store for this run",
            ),
        },
        "parentRefs": Refused("parent references are not modeled", "Leave parentRefs unset"),
        "routes[]": {
            "kind": MODELED,
            "match": MODELED,
            "priority": MODELED,
            "syntax": MODELED,
            "middlewares[]": {"name": MODELED, "namespace": MODELED},
            "services[]": _CRD_SERVICE,
            "observability": Inert("access logs, metrics and tracing only"),
        },
    },
}

TRAEFIKSERVICE: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "spec": {
        "weighted": {"services[]": _CRD_SERVICE, "sticky": MODELED},
        "mirroring": Refused(
            "mirroring sends copies of requests to other services; only weighted TraefikServices "
            "are modeled",
            "Use spec.weighted",
        ),
        "highestRandomWeight": Refused(
            "highest random weight pins each client to one backend", "Use spec.weighted"
        ),
        "failover": Refused("failover moves traffic when health checks fail", "Use spec.weighted"),
    },
}

#: A Middleware's ``spec`` is read whole by harness.traefik.middlewares (parse_middleware_spec),
#: which models, accepts as inert or refuses each type and field, naming the field.
MIDDLEWARE: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "spec": MODELED,
}

#: ``traefik.ingress.kubernetes.io/`` annotations of the Ingress provider (v3), after the prefix.
INGRESS_ANNOTATIONS: Mapping[str, Field] = {
    "router.priority": MODELED,
    "router.middlewares": MODELED,
    "router.pathmatcher": MODELED,
    "router.entrypoints": MODELED,
    "router.tls": MODELED,
    "router.tls.certresolver": _CERT_RESOLVER,
    "router.tls.options": _TLS_OPTIONS,
    # v3 (the default) is accepted, v2 refused: harness/intent/dialects/_ingress.py.
    "router.rulesyntax": MODELED,
    "router.observability.accesslogs": Inert("access logs only"),
    "router.observability.metrics": Inert("metrics only"),
    "router.observability.tracing": Inert("tracing only"),
    "service.sticky.cookie": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.name": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.secure": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.samesite": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.httponly": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.maxage": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.path": _CRD_SERVICE["sticky"],
    "service.sticky.cookie.domain": _CRD_SERVICE["sticky"],
    "service.serversscheme": _CRD_SERVICE["scheme"],
    "service.serverstransport": _CRD_SERVICE["serversTransport"],
    "service.passhostheader": _CRD_SERVICE["passHostHeader"],
    "service.nativelb": _CRD_SERVICE["nativeLB"],
    "service.nodeportlb": _CRD_SERVICE["nodePortLB"],
}
ROUTER_PREFIX = "traefik.ingress.kubernetes.io/"


def _key(name: str, table: Table) -> tuple[str, Field] | None:
    if name in table:
        return name, table[name]
    if f"{name}[]" in table:
        return f"{name}[]", table[f"{name}[]"]
    return None


def check_fields(ctx: Context, obj: K8sObject, table: Table) -> None:
    """Walk ``obj``'s document against ``table``: refuse what is refused or unknown (naming
    file, line and field), note what is inert."""
    _walk(ctx, obj.doc, table, obj.kind)


def _walk(ctx: Context, node: YNode, table: Table, kind: str) -> None:
    for name, child in node.mapping():
        found = _key(name, table)
        if found is None:
            known = ", ".join(sorted(k.removesuffix("[]") for k in table))
            child.fail(
                f"unknown field {name!r} in {kind} (known here: {known}); the harness cannot "
                "say what it does to traffic",
                "Fix the field name, or remove the field",
            )
        key, disposition = found
        if isinstance(disposition, Mapping):
            items = child.sequence() if key.endswith("[]") else [child]
            for item in items:
                _walk(ctx, item, disposition, kind)
        else:
            _apply_disposition(ctx, name, disposition, child)


def check_router_annotations(ctx: Context, obj: K8sObject) -> None:
    """Every ``traefik.ingress.kubernetes.io/router.*`` and ``service.*`` annotation is modeled,
    inert or refused; an unknown one is refused (Traefik cannot parse it either and skips the
    whole Ingress)."""
    for key, node in obj.annotations:
        if not key.startswith(ROUTER_PREFIX):
            continue
        short = key.removeprefix(ROUTER_PREFIX)
        if not short.startswith(("router.", "service.")):
            continue  # Traefik 1.x keys: the legacy reader handles them.
        disposition = INGRESS_ANNOTATIONS.get(short)
        if disposition is None:
            known = ", ".join(sorted(INGRESS_ANNOTATIONS))
            node.fail(
                f"unknown Traefik annotation {key} (Traefik reads {known}, each after "
                f"{ROUTER_PREFIX}): Traefik skips an Ingress whose annotations it cannot parse",
                "Fix the annotation name, or remove it",
            )
        _apply_disposition(ctx, key, disposition, node)


# -- Gateway API (gateway.networking.k8s.io): harness/intent/dialects/_gateway.py ---------------

_NOT_YET = "the harness does not model it yet"
_GATEWAY_STATUS = Inert("written by the controller (Traefik), read back by the harness")

GATEWAYCLASS: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "status": _GATEWAY_STATUS,
    "spec": {
        "controllerName": MODELED,
        "description": Inert("documentation only"),
        "parametersRef": Refused(
            "Traefik's Gateway provider does not read GatewayClass parameters",
            "Remove parametersRef",
        ),
    },
}

_LISTENER: Table = {
    "name": MODELED,
    "port": MODELED,
    "protocol": MODELED,
    "hostname": MODELED,
    "allowedRoutes": {
        "namespaces": {
            "from": MODELED,
            "selector": {
                "matchLabels": MODELED,
                "matchExpressions[]": {"key": MODELED, "operator": MODELED, "values": MODELED},
            },
        },
        "kinds[]": {"group": MODELED, "kind": MODELED},
    },
    "tls": {
        "mode": MODELED,
        "certificateRefs[]": {
            "group": MODELED,
            "kind": MODELED,
            "name": MODELED,
            "namespace": MODELED,
        },
        "options": Inert("Traefik's Gateway provider reads no listener TLS options"),
        "frontendValidation": Refused(
            "client certificate validation: Traefik's Gateway provider does not read it, so it "
            "serves requests without a client certificate the spec would refuse",
            "Remove tls.frontendValidation",
        ),
    },
}

GATEWAY: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "status": _GATEWAY_STATUS,
    "spec": {
        "gatewayClassName": MODELED,
        "listeners[]": _LISTENER,
        "addresses": Refused(
            "requested addresses are the cluster's load balancer's business; the local target "
            "serves the listeners on its own entry points",
            "Remove spec.addresses",
        ),
        "infrastructure": Inert("labels and annotations of the generated infrastructure"),
    },
}

_HTTP_BACKEND_REF: Table = {
    "group": MODELED,
    "kind": MODELED,
    "name": MODELED,
    "namespace": MODELED,
    "port": MODELED,
    "weight": MODELED,
    "filters": Refused(
        f"per-backend filters change what one backend sees; {_NOT_YET}",
        "Put the filter on the rule, or remove it",
    ),
}

_HEADER_MODIFIER: Table = {
    "set[]": {"name": MODELED, "value": MODELED},
    "remove": MODELED,
    "add[]": {"name": MODELED, "value": MODELED},
}
_PATH_MODIFIER: Table = {"type": MODELED, "replaceFullPath": MODELED, "replacePrefixMatch": MODELED}
_FILTERS: Table = {
    "type": MODELED,
    "requestHeaderModifier": _HEADER_MODIFIER,
    "responseHeaderModifier": _HEADER_MODIFIER,
    "urlRewrite": {"hostname": MODELED, "path": _PATH_MODIFIER},
    "requestRedirect": {
        "scheme": MODELED,
        "hostname": MODELED,
        "port": MODELED,
        "statusCode": MODELED,
        "path": _PATH_MODIFIER,
    },
    # Traefik 3.7.15 cannot load either (an "unsupported filter"): modeled as the 500 it
    # answers, judged against the spec's meaning (the dialect's _UNSUPPORTED_FILTERS).
    "requestMirror": MODELED,
    "cors": MODELED,
    "extensionRef": {"group": MODELED, "kind": MODELED, "name": MODELED},
}

HTTPROUTE: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "status": _GATEWAY_STATUS,
    "spec": {
        "parentRefs[]": {
            "group": MODELED,
            "kind": MODELED,
            "namespace": MODELED,
            "name": MODELED,
            "sectionName": MODELED,
            "port": MODELED,
        },
        "hostnames": MODELED,
        "rules[]": {
            "name": Inert("a name for status and policies only"),
            "matches[]": {
                "path": {"type": MODELED, "value": MODELED},
                "headers[]": {"type": MODELED, "name": MODELED, "value": MODELED},
                "queryParams[]": {"type": MODELED, "name": MODELED, "value": MODELED},
                "method": MODELED,
            },
            "filters[]": _FILTERS,
            "backendRefs[]": _HTTP_BACKEND_REF,
            "timeouts": Refused(
                f"request timeouts make a slow backend answer 504; {_NOT_YET}",
                "Remove timeouts for this run",
            ),
            "retry": Refused(f"retries change which backend answers; {_NOT_YET}", "Remove retry"),
            "sessionPersistence": Refused(
                "session persistence pins a client to a backend", "Remove sessionPersistence"
            ),
        },
    },
}

REFERENCEGRANT: Table = {
    "apiVersion": MODELED,
    "kind": MODELED,
    "metadata": _METADATA,
    "spec": {
        "from[]": {"group": MODELED, "kind": MODELED, "namespace": MODELED},
        "to[]": {"group": MODELED, "kind": MODELED, "name": MODELED},
    },
}


def _not_modeled_yet(what: str) -> Refused:
    return Refused(
        f"{what}; the harness does not model it on ingress-nginx Ingresses yet",
        "Remove it to verify the rest, or verify that Ingress by hand",
    )


_NGINX_INERT_TIMEOUTS = Inert("timeouts and retries: a healthy backend answers the same")
_NGINX_INERT_BUFFERS = Inert("buffer and body-size limits: the harness's requests are small")
_NGINX_STICKY = Inert(
    "session affinity pins a client that sends the cookie; the shares across clients without "
    "cookies are what is verified"
)
_NGINX_ANSWERS = "decides whether the route answers at all"
#: ``nginx.ingress.kubernetes.io/`` annotations, after the prefix, as ingress-nginx documents
#: them: what the dialect models (and what Traefik's NGINX provider does with each is in
#: harness/intent/dialects/_nginx.py), accepts as inert, or refuses.
NGINX_ANNOTATIONS: Mapping[str, Field] = {
    **dict.fromkeys(
        (
            "canary",
            "canary-weight",
            "canary-weight-total",
            "canary-by-header",
            "canary-by-header-value",
            "canary-by-header-pattern",
            "canary-by-cookie",
        ),
        MODELED,
    ),
    "use-regex": MODELED,
    "rewrite-target": MODELED,
    "app-root": MODELED,
    "permanent-redirect": MODELED,
    "permanent-redirect-code": MODELED,
    "temporal-redirect": MODELED,
    "temporal-redirect-code": MODELED,
    "ssl-redirect": MODELED,
    "force-ssl-redirect": MODELED,
    "from-to-www-redirect": MODELED,
    "x-forwarded-prefix": MODELED,
    "upstream-vhost": MODELED,
    "custom-headers": MODELED,
    "server-alias": MODELED,
    "backend-protocol": MODELED,
    "proxy-connect-timeout": _NGINX_INERT_TIMEOUTS,
    "proxy-read-timeout": _NGINX_INERT_TIMEOUTS,
    "proxy-send-timeout": _NGINX_INERT_TIMEOUTS,
    "proxy-next-upstream": _NGINX_INERT_TIMEOUTS,
    "proxy-next-upstream-tries": _NGINX_INERT_TIMEOUTS,
    "proxy-next-upstream-timeout": _NGINX_INERT_TIMEOUTS,
    "proxy-body-size": _NGINX_INERT_BUFFERS,
    "client-body-buffer-size": _NGINX_INERT_BUFFERS,
    "proxy-buffering": _NGINX_INERT_BUFFERS,
    "proxy-buffer-size": _NGINX_INERT_BUFFERS,
    "proxy-buffers-number": _NGINX_INERT_BUFFERS,
    "proxy-request-buffering": _NGINX_INERT_BUFFERS,
    "proxy-max-temp-file-size": _NGINX_INERT_BUFFERS,
    "proxy-http-version": Inert("the HTTP version towards the backend"),
    "limit-rate": Inert("bandwidth per response: the harness's answers are small"),
    "limit-rate-after": Inert("bandwidth per response: the harness's answers are small"),
    "proxy-cookie-path": Inert("rewrites Set-Cookie paths; the echo backends set no cookies"),
    "proxy-cookie-domain": Inert("rewrites Set-Cookie domains; the echo backends set no cookies"),
    "enable-access-log": Inert("access logs only"),
    "enable-opentelemetry": Inert("tracing only"),
    "enable-rewrite-log": Inert("logs only"),
    "load-balance": Inert("the algorithm across one Service's endpoints"),
    "mirror-target": Inert("a copy of the request goes elsewhere; the answer is the route's"),
    "mirror-uri": Inert("a copy of the request goes elsewhere; the answer is the route's"),
    "enable-cors": Inert("CORS response headers (preflight answers are not probed)"),
    "cors-allow-origin": Inert("CORS response headers"),
    "cors-allow-methods": Inert("CORS response headers"),
    "cors-allow-headers": Inert("CORS response headers"),
    "cors-allow-credentials": Inert("CORS response headers"),
    "cors-expose-headers": Inert("CORS response headers"),
    "cors-max-age": Inert("CORS response headers"),
    "affinity": _NGINX_STICKY,
    "affinity-mode": _NGINX_STICKY,
    "affinity-canary-behavior": _NGINX_STICKY,
    "session-cookie-name": _NGINX_STICKY,
    "session-cookie-path": _NGINX_STICKY,
    "session-cookie-secure": _NGINX_STICKY,
    "session-cookie-samesite": _NGINX_STICKY,
    "session-cookie-domain": _NGINX_STICKY,
    "session-cookie-max-age": _NGINX_STICKY,
    "session-cookie-expires": _NGINX_STICKY,
    "service-upstream": Inert("the Service's ClusterIP instead of its endpoints: same backends"),
    "upstream-hash-by": Refused(
        "hashing pins each client to one endpoint", "Remove it to verify the routing"
    ),
    **dict.fromkeys(
        (
            "auth-type",
            "auth-secret",
            "auth-realm",
            "auth-secret-type",
            "auth-url",
            "auth-signin",
            "auth-method",
            "auth-response-headers",
            "auth-snippet",
            "auth-tls-secret",
            "auth-tls-verify-client",
            "auth-tls-pass-certificate-to-upstream",
            "enable-global-auth",
            "whitelist-source-range",
            "allowlist-source-range",
            "denylist-source-range",
            "limit-rps",
            "limit-rpm",
            "limit-connections",
            "limit-burst-multiplier",
            "enable-modsecurity",
            "enable-owasp-core-rules",
            "modsecurity-snippet",
            "modsecurity-transaction-id",
            "satisfy",
        ),
        Refused(
            f"authentication, source ranges, rate limits and WAF rules: {_NGINX_ANSWERS}",
            "Verify the routing without it (remove the annotation) and its effect by hand",
        ),
    ),
    **dict.fromkeys(
        ("configuration-snippet", "server-snippet", "stream-snippet"),
        Refused(
            "a snippet is raw nginx configuration; Traefik's NGINX provider skips the whole "
            "Ingress unless allowSnippetAnnotations is set",
            "Replace the snippet by annotations",
        ),
    ),
    **dict.fromkeys(
        ("custom-http-errors", "default-backend", "ssl-passthrough"),
        Refused(
            "it sends some requests to another backend or bypasses HTTP routing",
            "Remove it to verify the routing",
        ),
    ),
}
NGINX_PREFIX = "nginx.ingress.kubernetes.io/"


def check_nginx_annotations(ctx: Context, obj: K8sObject) -> list[tuple[str, YNode]]:
    """Every ``nginx.ingress.kubernetes.io/`` annotation of an ingress-nginx Ingress is modeled,
    inert or refused (an unknown one is refused: a typo that ingress-nginx ignores silently);
    returns them, short key and node, for the migration report."""
    found: list[tuple[str, YNode]] = []
    for key, node in obj.annotations:
        if not key.startswith(NGINX_PREFIX):
            continue
        short = key.removeprefix(NGINX_PREFIX)
        disposition = NGINX_ANNOTATIONS.get(short)
        if disposition is None:
            node.fail(
                f"unknown ingress-nginx annotation {key}: ingress-nginx ignores it (a typo?), "
                "and the harness cannot say what it would do",
                "Fix the annotation name, or remove it",
            )
        _apply_disposition(ctx, key, disposition, node)
        found.append((short, node))
    return found


def _apply_disposition(ctx: Context, key: str, disposition: Field | None, node: YNode) -> None:
    """A refused field or annotation fails with its reason; an inert one is said to be
    accepted."""
    if isinstance(disposition, Refused):
        node.fail(f"{key}: {disposition.why}", disposition.advice)
    if isinstance(disposition, Inert):
        ctx.note(
            FINDING_NOT_MODELED,
            f"{key} is accepted as inert: {disposition.why}",
            node.source(),
            "info",
        )
