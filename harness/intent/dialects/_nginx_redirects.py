"""The redirect annotations of Ingresses written for ingress-nginx: what ingress-nginx answers
(the declared routes' middlewares) and what Traefik's NGINX provider answers (the effective
routes'), both as :mod:`harness.traefik.middlewares` models, with the departures as route notes
and annotation fates.

ingress-nginx (annotations.md; internal/ingress/annotations/redirect and rewrite; nginx.tmpl;
lua_ingress.lua):

- ``permanent-redirect`` / ``temporal-redirect`` (temporal wins): ``return <code> <url>`` in
  the location, for every request of it, any method; the code 301 / 302 unless
  ``permanent-redirect-code`` is 300-308 / ``temporal-redirect-code`` is 300-307. The URL
  must be of letters, digits and ``-._~/:,?&=`` (``URLIsValidRegex``).
- ``force-ssl-redirect: "true"``: a plain-HTTP request is answered 308 (``http-redirect-code``)
  to ``https://<Host without port><request URI>``, one trailing ``/`` of the URI dropped
  (``preserve-trailing-slash`` is false by default); ``/`` gives ``https://host``, the same URL
  as ``https://host/`` (RFC 3986 6.2.3), which the model writes. It runs at the end of the
  rewrite phase, so a location's ``return`` answers first.
- ``ssl-redirect`` (default true) redirects only where the Ingress has TLS for the host, and
  ``spec.tls`` is refused on ingress-nginx Ingresses (not modeled yet): a no-op here.
- ``app-root``: ``if ($uri = /) { return 302 $scheme://$http_host<root>; }`` at *server* level:
  ``/`` of the host, whichever location would serve it, before any location's redirect.
- ``from-to-www-redirect: "true"`` (pkg/util/ingress BuildRedirects, ngx_srv_redirect.lua): a
  server for the other name of each host (``www.`` added or removed; none where an Ingress
  serves that name) answers 308 to ``scheme://host:<server port>`` + the URI with one trailing
  ``/`` dropped; the server port is 80/443, the scheme's default, which the model leaves out.

Traefik's NGINX provider (3.7.15, confirmed by tests/test_nginx_redirects.py): the non-TLS
router of a ``force-ssl-redirect`` Ingress gets redirectScheme https with
``forcePermanentRedirect`` (308, the URI kept as sent, trailing ``/`` included) *first*, then
``app-root`` (every router of the host; plus a router ``Host(h) && Path("/")`` named
``<first path's router>-app-root-redirect`` when no path of the host is ``/``), then
redirectRegex ``.*`` → the URL with ``statusCode`` (codes 300-308 kept for both annotations,
else 301 / 302); on a regex host (use-regex or rewrite-target) the regex is
``^https?://[^/]+<path>``: only that part of the URL is replaced, the rest kept;
``from-to-www-redirect``: a router ``Host(<other name>)`` per path
(``<router>-from-to-www-redirect``) with redirectRegex ``... -> $1://host$2/$3`` (308; the
request's port kept), skipped alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.intent.dialects._yaml import YNode
from harness.intent.model import AnnotationFateKind, RouteMiddleware
from harness.traefik.goregexp import GoRegexp, GoRegexpError, compile_go_regexp
from harness.traefik.middlewares import AppRoot, Middleware, RedirectRegex, RedirectScheme

#: The redirect annotations this module reads (after the prefix).
REDIRECT_KEYS = (
    "permanent-redirect",
    "permanent-redirect-code",
    "temporal-redirect",
    "temporal-redirect-code",
    "ssl-redirect",
    "force-ssl-redirect",
    "app-root",
    "from-to-www-redirect",
)
#: ingress-nginx's URLIsValidRegex, and an absolute http(s) URL (the harness models no other).
_URL = re.compile(r"^https?://[A-Za-z0-9._~\-]+(:[0-9]+)?([/?][A-Za-z0-9._~\-/:,?&=]*)?$")
#: ingress-nginx's RegexPathWithCapture, without ``$`` (nginx and Traefik expand variables).
_ROOT = re.compile(r"^/[A-Za-z0-9._~\-/:]*$")
#: Codes nginx's ``return`` sends with a Location (others: the URL is the body).
_WITH_LOCATION = (301, 302, 303, 307, 308)
# nginx's HTTPS redirect: the Host without its port, one trailing slash of the URI dropped.
_NGINX_HTTPS = r"^http://(\[[^\]]*\]|[^/:]*)(?::[0-9]+)?(/|.*?)/?$"


def _compile(node: YNode, pattern: str) -> GoRegexp:
    try:
        return compile_go_regexp(pattern)
    except GoRegexpError as err:
        node.fail(f"{err}: the harness cannot model Traefik's redirect regex", "Write a plain path")


@dataclass(frozen=True)
class Redirects:
    """One Ingress's redirect annotations, read; ``url`` is None without a redirect."""

    nodes: Mapping[str, YNode] = field(default_factory=dict)
    key: str = ""
    url: str | None = None
    code: int = 0
    traefik_code: int = 0
    force_ssl: bool = False
    app_root: str | None = None
    from_to_www: bool = False

    def fates(
        self, regex_host: bool, root_lost_to_https: bool
    ) -> dict[str, tuple[AnnotationFateKind, str]]:
        """Annotation (short key) → (fate, note) where Traefik departs, or where a note helps;
        the others are honoured with the default note."""
        out: dict[str, tuple[AnnotationFateKind, str]] = {}
        for key, text in self.departures(regex_host, "the location"):
            before = out[key][1] + "; " if key in out else ""
            out[key] = ("changed", before + text)
        if "ssl-redirect" in self.nodes:
            out["ssl-redirect"] = (
                "honoured",
                "read by Traefik's NGINX provider with ingress-nginx's meaning: both redirect "
                "only for an Ingress with spec.tls, which the harness refuses on ingress-nginx "
                "Ingresses, so it redirects nothing here",
            )
        if self.app_root is not None and root_lost_to_https:
            out["app-root"] = ("changed", self.root_note())
        return out

    def root_note(self) -> str:
        return (
            f"app-root {self.app_root}: ingress-nginx answers / of the host with 302 to "
            f"{self.app_root} (server level, before a location's HTTPS redirect); Traefik's "
            "NGINX provider runs the force-ssl-redirect of the router serving / first and "
            "answers 308 to https"
        )

    def departures(self, regex_host: bool, where: str) -> list[tuple[str, str]]:
        """(annotation, note) for each way Traefik answers this Ingress's requests differently
        (``where``: the paths, for the note)."""
        out: list[tuple[str, str]] = []
        if self.url is not None and regex_host:
            out.append(
                (
                    self.key,
                    f"{self.key} {self.url} on a regex host (use-regex or rewrite-target): "
                    f"ingress-nginx answers every request of {where} with {self.url}; "
                    "Traefik's NGINX provider replaces only what ^https?://[^/]+<path> matches "
                    "(case-sensitively) and keeps the rest of the URL (<path>/x → "
                    f"{self.url}/x), and forwards a request whose case differs",
                )
            )
        if self.url is not None and self.code != self.traefik_code:
            out.append(
                (
                    f"{self.key}-code",
                    f"{self.key}-code {self.traefik_code}: ingress-nginx takes 300-307 only and "
                    f"answers {self.code}; Traefik's NGINX provider takes 300-308 and answers "
                    f"{self.traefik_code}",
                )
            )
        if self.force_ssl:
            out.append(
                (
                    "force-ssl-redirect",
                    "force-ssl-redirect: ingress-nginx drops a trailing / of the URI from the "
                    "HTTPS redirect (preserve-trailing-slash false: /p/ → https://host/p); "
                    "Traefik's NGINX provider keeps it (https://host/p/)",
                )
            )
        if self.force_ssl and self.url is not None:
            text = (
                f"{self.key} with force-ssl-redirect: ingress-nginx answers {self.code} to "
                f"{self.url} (the location's return runs before the HTTPS redirect); Traefik's "
                "NGINX provider redirects plain HTTP to https first (308)"
            )
            out += [(self.key, text), ("force-ssl-redirect", text)]
        return out

    def declared(self, namespace: str, ingress: str) -> tuple[RouteMiddleware, ...]:
        """ingress-nginx's answers, in the order nginx runs them (app-root apart: a route of
        its own)."""
        out: list[RouteMiddleware] = []
        if self.url is not None:
            model = RedirectRegex(compile_go_regexp(".*"), self.url, status=self.code)
            out.append(self._mw(namespace, ingress, self.key, model, {"url": self.url}))
        if self.force_ssl:
            node = self.nodes["force-ssl-redirect"]
            model = RedirectRegex(compile_go_regexp(_NGINX_HTTPS), "https://${1}${2}", status=308)
            spec = {"force-ssl-redirect": node.string()}
            out.append(self._mw(namespace, ingress, "force-ssl-redirect", model, spec))
        return tuple(out)

    def traefik(
        self,
        namespace: str,
        ingress: str,
        path: str | None,
        *,
        regex_host: bool,
        root: tuple[RouteMiddleware, ...],
    ) -> tuple[RouteMiddleware, ...]:
        """The provider's middlewares for one path's router, in its order: the HTTPS
        redirect, the host's app-root (``root``), the redirect."""
        out: list[RouteMiddleware] = []
        if self.force_ssl:
            model: Middleware = RedirectScheme("https", status=308)
            spec = {"redirectScheme": {"scheme": "https", "forcePermanentRedirect": True}}
            out.append(self._mw(namespace, ingress, "force-ssl-redirect", model, spec))
        out += root
        if self.url is not None:
            node = self.nodes[self.key]
            pattern = f"^https?://[^/]+{path}" if regex_host and path else ".*"
            model = RedirectRegex(_compile(node, pattern), self.url, status=self.traefik_code)
            spec = {"redirectRegex": {"regex": pattern, "replacement": self.url}}
            out.append(self._mw(namespace, ingress, self.key, model, spec))
        return tuple(out)

    def _mw(
        self, namespace: str, ingress: str, key: str, model: Middleware, spec: Mapping[str, object]
    ) -> RouteMiddleware:
        return RouteMiddleware(namespace, ingress, key, model, self.nodes[key].source(), spec)


def www_pair(host: str) -> tuple[str, str]:
    """(the host redirected from, the host redirected to) for from-to-www-redirect on
    ``host``."""
    return (host.removeprefix("www."), host) if host.startswith("www.") else (f"www.{host}", host)


#: Traefik's redirect regex for from-to-www-redirect (as its API shows it).
_TRAEFIK_WWW = r"^(https?)://(?:\[[^/\]]*\]|[^/:]+)(:[0-9]+)?[^/]*/(.*?)/?$"
# ingress-nginx's redirect server: its own port (80/443: the default, so none written), one
# trailing slash of the URI dropped, / kept as /.
_NGINX_WWW = r"^(https?)://[^/]*(/|.*?)/?$"


def www_middlewares(
    namespace: str, ingress: str, to: str, node: YNode
) -> tuple[RouteMiddleware, RouteMiddleware]:
    """(ingress-nginx's, Traefik's) answer on the host redirected from: 308 to ``to``."""
    declared = RedirectRegex(compile_go_regexp(_NGINX_WWW), "${1}://" + to + "${2}", status=308)
    traefik = RedirectRegex(compile_go_regexp(_TRAEFIK_WWW), f"$1://{to}$2/$3", status=308)
    spec = {"from-to-www-redirect": node.string(), "to": to}
    return (
        RouteMiddleware(namespace, ingress, "from-to-www-redirect", declared, node.source(), spec),
        RouteMiddleware(namespace, ingress, "from-to-www-redirect", traefik, node.source(), spec),
    )


def app_root_middleware(namespace: str, ingress: str, root: str, node: YNode) -> RouteMiddleware:
    """app-root on either side: ``/`` answered 302 to ``scheme://Host<root>``."""
    return RouteMiddleware(
        namespace, ingress, "app-root", AppRoot(root), node.source(), {"app-root": root}
    )


def _code(
    node: YNode | None, key: str, default: int, top: int, as_int: Callable[[YNode, str], int]
) -> tuple[int, int]:
    """(ingress-nginx's code, Traefik's code) for ``<kind>-redirect-code``."""
    if node is None:
        return default, default
    code = as_int(node, key)
    declared = code if 300 <= code <= top else default
    traefik = code if 300 <= code <= 308 else default
    if declared not in _WITH_LOCATION:
        node.fail(
            f"{key} {code}: nginx's return {code} sends the URL as the body, without a "
            "Location; the harness does not model that answer",
            "Use 301, 302, 303, 307 or 308",
        )
    return declared, traefik


def read_redirects(
    by_key: Mapping[str, YNode],
    *,
    canary: bool,
    rewrite: YNode | None,
    as_bool: Callable[[YNode, str], bool],
    as_int: Callable[[YNode, str], int],
) -> Redirects | None:
    """The redirect annotations of one Ingress (None: it has none; ``as_bool`` and ``as_int``
    read a value as both ingress-nginx and Traefik do); refuses what the harness does not
    model, naming the annotation."""
    nodes = {k: by_key[k] for k in REDIRECT_KEYS if k in by_key}
    if not nodes:
        return None
    first = next(iter(nodes.values()))
    if canary:
        first.fail(
            "a redirect annotation on a canary Ingress: ingress-nginx ignores it (a canary "
            "takes the primary's), and the harness does not model what Traefik does with it",
            "Put the redirect on the primary Ingress",
        )
    if "ssl-redirect" in nodes:
        as_bool(nodes["ssl-redirect"], "ssl-redirect")
    force = "force-ssl-redirect" in nodes and as_bool(
        nodes["force-ssl-redirect"], "force-ssl-redirect"
    )
    root: str | None = None
    if "app-root" in nodes:
        root = nodes["app-root"].string().strip()
        if not _ROOT.match(root):
            nodes["app-root"].fail(
                f"app-root {root!r} is not a plain path: ingress-nginx accepts a path of "
                "letters, digits and -._~/: (no query); the harness does not model variables",
                'Write a path, e.g. app-root: "/app"',
            )
    key, url, code, traefik_code = "", None, 0, 0
    for kind, default, top in (("temporal", 302, 307), ("permanent", 301, 308)):
        node = nodes.get(f"{kind}-redirect")
        if node is None:
            continue
        key, url = f"{kind}-redirect", node.string().strip()
        if not _URL.match(url):
            node.fail(
                f"{key} {url!r} is not an absolute http(s) URL of letters, digits and "
                "-._~/:,?&= (ingress-nginx refuses other characters; the harness models "
                "absolute URLs only)",
                f'Write e.g. {key}: "https://example.com/new"',
            )
        code, traefik_code = _code(nodes.get(f"{key}-code"), f"{key}-code", default, top, as_int)
        break
    if url is not None and rewrite is not None:
        rewrite.fail(
            "rewrite-target together with a redirect: nginx's order of rewrite and return "
            "decides which acts; the harness does not model it",
            "Keep either the rewrite or the redirect on this Ingress",
        )
    www = "from-to-www-redirect" in nodes and as_bool(
        nodes["from-to-www-redirect"], "from-to-www-redirect"
    )
    return Redirects(nodes, key, url, code, traefik_code, force, root, www)
