"""Traefik's NGINX provider (``providers.kubernetesIngressNGINX``): what it builds from Ingresses
written for ingress-nginx, next to what ingress-nginx documents for the same annotations.

Read from Traefik's source (pkg/provider/kubernetes/ingress-nginx, v3.7 branch: build.go,
translator.go, annotations.go) and confirmed on the binary (3.7.15, ``tests/test_nginx_stack.py``
reads the routers and services from Traefik's API):

- One router per Ingress path, named ``<namespace>-<ingress>-rule-<i>-path-<j>`` (plus ``-tls``),
  on every entry point, with no explicit priority: Traefik ranks it by the length of its rule.
- The rule: ``Host("h") && `` then ``Path("/p")`` for Exact, ``(Path("/p") || PathPrefix("/p/"))``
  for Prefix and ImplementationSpecific (``PathPrefix("/")`` for ``/``); when ``use-regex`` or
  ``rewrite-target`` is set on any Ingress of the host, every Prefix path of the host becomes
  ``PathRegexp("(?i)^/p")`` (as ingress-nginx enforces ``~*`` on every path of the host).
- A canary Ingress (``canary: "true"``) is matched to a primary path by namespace, host, path and
  pathType, and then attached to the primary *Service* (namespace, name, port): every path routed
  to that Service, on any Ingress and host, gets it. The primary router then sends to a weighted
  service ``primary: total - weight, canary: weight`` where ``total = max(canary-weight-total,
  100)`` and ``weight`` is clamped to ``[0, total]``; a header or cookie canary adds a router
  ``(rule) && (Header(...) || ...)`` to the canary and, with a weight, one for ``never`` to the
  primary.
- Redirects (``harness.intent.dialects._nginx_redirects``, confirmed on 3.7.15 by
  ``tests/test_nginx_redirects.py``): ``force-ssl-redirect`` puts redirectScheme https (308)
  first on the non-TLS router, ``app-root`` goes on every router of the host (and a router
  ``Host(h) && Path("/")`` when no path of the host is ``/``), ``permanent-redirect`` /
  ``temporal-redirect`` become redirectRegex ``.*`` (``^https?://[^/]+<path>`` on a regex host)
  with the code as ``statusCode``; ``from-to-www-redirect`` adds a router ``Host(other)`` per
  path with a 308 redirectRegex to the host.
- ``server-alias`` hosts that no rule names join the host of the annotated Ingress's routers,
  ``(Host("h") || Host("a")) && ...`` (a longer rule, so a higher priority); ``upstream-vhost``
  sets the Host, ``custom-headers`` the ConfigMap's entries as response headers (only those
  ``globalAllowedResponseHeaders`` lists: any other sends the Ingress's paths to an unavailable
  service, 503), ``x-forwarded-prefix`` only within ``rewrite-target``: the request path with the
  rewrite's regex match replaced by the value; ``backend-protocol`` picks the servers' scheme
  (``HTTPS``/``GRPCS`` https, ``GRPC`` h2c, any other http).
- Annotations outside the provider's ``IngressConfig`` are ignored without a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from harness.intent.model import PROVIDER_NGINX, Intent, go_quote

if TYPE_CHECKING:
    from harness.checks.probes import Probe
    from harness.traefik.oracle import Expectation

#: The Traefik release this model was confirmed on.
CONFIRMED_ON = "3.7.15"

ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
#: What ingress-nginx and Traefik's provider take when ``canary-weight-total`` is not given.
DEFAULT_WEIGHT_TOTAL = 100

#: Every annotation (after the prefix) Traefik 3.7's NGINX provider reads (``IngressConfig``).
TRAEFIK_READS = frozenset(
    """
    auth-type auth-secret auth-realm auth-secret-type auth-url auth-signin
    auth-response-headers auth-snippet auth-method enable-global-auth auth-tls-secret
    auth-tls-verify-client auth-tls-pass-certificate-to-upstream force-ssl-redirect
    ssl-redirect ssl-passthrough use-regex rewrite-target app-root permanent-redirect
    permanent-redirect-code temporal-redirect temporal-redirect-code
    from-to-www-redirect server-alias affinity affinity-canary-behavior
    session-cookie-name session-cookie-secure session-cookie-path session-cookie-domain
    session-cookie-samesite session-cookie-max-age session-cookie-expires
    service-upstream upstream-hash-by backend-protocol proxy-ssl-secret proxy-ssl-verify
    proxy-ssl-name proxy-ssl-server-name proxy-connect-timeout proxy-read-timeout
    proxy-send-timeout proxy-next-upstream proxy-next-upstream-tries
    proxy-next-upstream-timeout proxy-http-version enable-cors cors-allow-credentials
    cors-expose-headers cors-allow-headers cors-allow-methods cors-allow-origin
    cors-max-age enable-access-log whitelist-source-range allowlist-source-range
    limit-rpm limit-rps limit-burst-multiplier limit-connections custom-headers
    upstream-vhost x-forwarded-prefix custom-http-errors default-backend
    proxy-request-buffering client-body-buffer-size proxy-body-size proxy-buffering
    proxy-buffer-size proxy-buffers-number proxy-max-temp-file-size
    configuration-snippet server-snippet canary canary-by-cookie canary-by-header
    canary-by-header-value canary-by-header-pattern canary-weight canary-weight-total
    enable-modsecurity enable-owasp-core-rules modsecurity-transaction-id
    modsecurity-snippet
    """.split()  # noqa: SIM905 (a word list reads better than a literal of 100 strings)
)


def go_quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: a backslash before each of ``\\.+*?()|[]{}^$``."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def prefix_rule(path: str) -> str:
    """The provider's element-wise prefix (``buildPrefixRule``)."""
    if path == "/":
        return 'PathPrefix("/")'
    base = path.removesuffix("/")
    return f"(Path({go_quote(base)}) || PathPrefix({go_quote(base + '/')}))"


def path_rule(path: str, path_type: str, *, host_uses_regex: bool) -> str:
    """The path matcher of the provider's router for one Ingress path (``buildRule``)."""
    if path_type == "Exact":
        return f"Path({go_quote(path)})"
    if host_uses_regex:
        return f"PathRegexp({go_quote('(?i)^' + path)})"
    return prefix_rule(path)


def router_rule(
    host: str | None,
    path: str | None,
    path_type: str,
    *,
    regex: bool,
    aliases: tuple[str, ...] = (),
) -> str:
    """The whole rule of the provider's router for one Ingress path; ``aliases`` (its
    Ingress's ``server-alias`` hosts that no rule names) join the host (``buildRule``)."""
    hosts = " || ".join(f"Host({go_quote(h)})" for h in (host, *aliases)) if host else ""
    parts = [f"({hosts})" if aliases else hosts] if host else []
    if path:
        parts.append(path_rule(path, path_type, host_uses_regex=regex))
    return " && ".join(parts)


@dataclass(frozen=True)
class Canary:
    """A canary Ingress's selection and weight, as written (``None``: annotation absent)."""

    header: str = ""
    header_value: str = ""
    header_pattern: str = ""
    cookie: str = ""
    weight: int | None = None
    weight_total: int | None = None

    @property
    def header_is_special(self) -> bool:
        """A header without a value or pattern: ``always`` and ``never`` select."""
        return bool(self.header) and not self.header_value and not self.header_pattern

    def declared_share(self) -> Fraction:
        """The canary's share of the requests no header or cookie decides, on ingress-nginx:
        ``canary-weight / canary-weight-total`` (the total 100 when not given)."""
        total = self.weight_total if self.weight_total is not None else DEFAULT_WEIGHT_TOTAL
        weight = min(max(self.weight or 0, 0), total) if total > 0 else 0
        return Fraction(weight, total) if total > 0 else Fraction(0)

    def traefik_weights(self) -> tuple[int, int]:
        """The provider's weighted service: (primary, canary), with the total taken as
        ``max(canary-weight-total, 100)``."""
        total = max(self.weight_total or 0, DEFAULT_WEIGHT_TOTAL)
        weight = min(max(self.weight or 0, 0), total)
        return total - weight, weight

    def traefik_share(self) -> Fraction:
        primary, canary = self.traefik_weights()
        return Fraction(canary, primary + canary)

    def canary_rule(self, rule: str) -> str | None:
        """The provider's canary router rule (``appendCanaryRule``), None without a header or
        cookie."""
        rules: list[str] = []
        if self.header:
            if not self.header_value and self.header_pattern:
                rules.append(
                    f"HeaderRegexp({go_quote(self.header)}, {go_quote(self.header_pattern)})"
                )
            elif self.header_value:
                rules.append(f"Header({go_quote(self.header)}, {go_quote(self.header_value)})")
            else:
                rules.append(f'Header({go_quote(self.header)}, "always")')
        if self.cookie:
            cookie = _cookie_rule(self.cookie, "always")
            if self.header_is_special:
                cookie = f'({cookie} && !Header({go_quote(self.header)}, "never"))'
            rules.append(cookie)
        return f"({rule}) && ({' || '.join(rules)})" if rules else None

    def non_canary_rule(self, rule: str) -> str | None:
        """The provider's router to the primary for ``never`` (``appendNonCanaryRule``); only
        with a weight, since the primary router sends everything to the primary otherwise."""
        if not self.traefik_weights()[1]:
            return None
        rules: list[str] = []
        if self.header_is_special:
            rules.append(f'Header({go_quote(self.header)}, "never")')
        if self.cookie:
            rules.append(_cookie_rule(self.cookie, "never"))
        return f"({rule}) && ({' || '.join(rules)})" if rules else None


def _cookie_rule(cookie: str, value: str) -> str:
    pattern = f"(^|;\\s*){go_quote_meta(cookie)}={value}(;|$)"
    return f'HeaderRegexp("Cookie", {go_quote(pattern)})'


_SEEN_LABELS = ("X-Forwarded-Prefix", "Host", "request headers", "response headers")


def _seen(e: Expectation) -> tuple[str | None, ...]:
    """What the backend and the client see besides the path: X-Forwarded-Prefix, the Host,
    the request headers and the response headers the middlewares set (None: none)."""
    c = e.decided_by
    if c is None:
        return (None, None, None, None)
    request = "; ".join(f"{k}: {', '.join(v) or 'removed'}" for k, v in c.request_headers)
    response = "; ".join(f"{k}: {v or 'removed'}" for k, v in c.response_headers)
    return (c.forwarded_prefix, c.host_header, request or None, response or None)


def nginx_response_headers(intent: Intent) -> tuple[str, ...]:
    """The response header names the custom-headers of ``intent``'s ingress-nginx Ingresses
    set: what the NGINX provider's ``globalAllowedResponseHeaders`` must list."""
    from harness.traefik.middlewares import Headers

    return tuple(
        sorted(
            {
                name
                for r in intent.served.routes
                for m in r.middlewares
                if isinstance(m.model, Headers) and m.kind == "annotation custom-headers"
                for name, _ in m.model.custom_response_headers
            }
        )
    )


def router_name(namespace: str, ingress: str, rule_index: int, path_index: int) -> str:
    """The provider's router name (``provider.Normalize``: runs of other characters become
    ``-``)."""
    raw = f"{namespace}-{ingress}-rule-{rule_index}-path-{path_index}"
    return re.sub(r"[^a-zA-Z0-9]+", "-", raw).strip("-")


def traefik_side(served: Intent, probe: Probe) -> str | None:
    """The other oracle, for a failure message: what Traefik's NGINX provider does with the
    probe's request (``served``: the intent as the provider builds it), when that differs from
    what ingress-nginx does (the probe's expectation); None when both agree."""
    from harness.traefik.oracle import expect

    declared = probe.expectation
    theirs = expect(
        served,
        probe.host,
        probe.path,
        arrival=probe.arrival,
        headers=probe.headers,
        method=probe.method,
    )

    def answer(e: Expectation) -> tuple[object, ...]:
        backends = tuple(sorted(b.service for b in e.backends if b.weight > 0))
        return (e.status, backends, e.upstream_path, e.location, *_seen(e))

    if answer(theirs) == answer(declared):
        return None
    top = theirs.decided_by
    if top is None:
        return f"Traefik's NGINX provider (model, {CONFIRMED_ON}): no router matches, 404"
    what = (
        f"{theirs.status} redirect to {theirs.location}"
        if theirs.location is not None
        else f"status {theirs.status}"
        if theirs.status is not None
        else "/".join(b.service for b in theirs.backends if b.weight > 0)
        + (f" as {theirs.upstream_path}" if theirs.upstream_path else "")
    )
    # The headers the two differ on, as Traefik serves them.
    what += "".join(
        f", {label} {value or 'absent'}"
        for label, value, other in zip(_SEEN_LABELS, _seen(theirs), _seen(declared), strict=True)
        if value != other
    )
    router = top.route_id.split(":", 1)[-1]
    if top.provider != PROVIDER_NGINX:
        # Served by another provider too (a class-less Ingress with watchIngressWithoutClass).
        return (
            f"Traefik (model, {CONFIRMED_ON}): the {top.provider} provider serves the Ingress "
            f"too; its router for {router}, {top.rule} (priority {top.priority}), decides: {what}"
        )
    return (
        f"Traefik's NGINX provider (model, {CONFIRMED_ON}): router {router} {top.rule} "
        f"(priority = rule length {top.priority}) decides: {what}"
    )
