"""Traefik's request-changing HTTP Middlewares as a pure model: parse a Middleware ``spec``, apply
a chain of them to a request, and say what the backend or the client gets.

Modeled (traefik.io/v1alpha1 Middleware spec; semantics read in traefik/traefik's v3.7 source
(3.7.9), pkg/middlewares/, and confirmed on the binary ``CONFIRMED_ON`` by
tests/test_traefik_middlewares.py):

- ``stripPrefix`` (stripprefix/strip_prefix.go): the first listed prefix (spaces trimmed) that is
  a string prefix of the decoded path is removed, the rest gets a leading ``/`` unless empty;
  ``forceSlash`` is deprecated and defaults to **false** on 3.7 (the CRD comment's "true" is
  stale): only with ``forceSlash: true`` does an empty rest become ``/`` for the next middleware
  (the backend sees ``/`` either way; ``stripPrefix`` then ``addPrefix: /v1`` on ``/p`` gives
  ``/v1`` without it, ``/v1/`` with it). A rest that cleaning (``URL.JoinPath``) would change
  (``//x``, ``/./x``) is answered 400 by Traefik. ``X-Forwarded-Prefix`` gets the prefix added.
- ``stripPrefixRegex`` (stripprefixregex/): the first regex whose (non-empty, leftmost) match is a
  prefix of the path strips it, same rules and header.
- ``addPrefix`` (addprefix/): prefix + path, leading ``/`` ensured; an empty prefix is refused.
- ``replacePath`` (replacepath/): the path becomes ``path`` (an escaped form; no cleaning, no 400);
  ``X-Replaced-Path`` gets the old escaped path; an invalid escape is a 500.
- ``replacePathRegex`` (replacepathregex/): on the escaped path; when the regex matches, Go's
  ``ReplaceAllString`` with the (trimmed) replacement, ``X-Replaced-Path`` as above, then 500 on
  an invalid escape and 400 when cleaning would change the result.
- ``redirectScheme`` (redirect/redirect_scheme.go, redirect.go): rebuilds
  ``scheme://host[:port]uri`` from the request (``X-Forwarded-Proto`` counts) and redirects when
  the result differs: ``port`` omitted (or the scheme's default) drops the port; 302 (307 for a
  non-GET), 301/308 when ``permanent``. An unchanged URL passes through.
- ``redirectRegex`` (redirect/redirect_regex.go): Go regex on ``scheme://Host`` + request URI
  (Host as sent, port included), same statuses; ``Location`` is Go's ``url.Parse(..).String()``.
- ``headers`` (headers/header.go): ``customRequestHeaders`` set (canonical name) or remove
  (``""``); ``Host`` sets the Host the backend sees; ``customResponseHeaders`` set or remove on
  every answer that passes back through this middleware (the backend's, a later middleware's
  redirect or 400); of two headers middlewares, the earlier one wins on the response.
  Inert for routing and path (only response headers; a CORS preflight, OPTIONS with ``Origin``
  and ``Access-Control-Request-Method``, is answered 200 by Traefik): the CORS fields, the
  security-header fields (``stsSeconds``, ``frameDeny``, ``contentSecurityPolicy``, ...),
  ``sslProxyHeaders``, ``isDevelopment`` and the deprecated ``ssl*`` and ``featurePolicy``
  (ignored by v3). Refused: ``allowedHosts`` and ``hostsProxyHeaders`` (other hosts get 500),
  request headers the proxy itself rewrites (``X-Forwarded-For``, hop-by-hop headers), values
  or names Go's transport would reject, two names for one header (Go map order is random), and
  removing a response header Go's server writes again (``Date``, ``Content-Type``, ...: on
  3.7.15 ``Date: ""`` leaves ``Date`` in place).
- The Gateway provider's own ``URLRewrite`` and ``RequestRedirect``
  (middlewares/gatewayapi/urlrewrite, redirect; provider/kubernetes/gateway/httproute.go builds
  them from an HTTPRoute filter, the rule's match value as the prefix): not Middleware CRD
  types, built by the Gateway dialect. The new path is ``ReplaceFullPath``, or for
  ``ReplacePrefixMatch`` Go's ``path.Join(replacement, TrimPrefix(path, prefix))`` (cleaned, so
  a trailing slash of the replacement goes) plus ``/`` when the request path ended in one;
  the query kept; a path with a non-default encoding (``%2F``) is :class:`Unpredictable` (on
  3.7.15 the encoding survives the rewrite, which the source's ``EscapedPath`` does not say).
  URLRewrite's ``hostname`` sets the Host the backend sees. RequestRedirect answers
  ``statusCode`` (default 302, whatever the method) with ``Location`` = scheme (the filter's,
  else ``http``: X-Forwarded-Proto does not count), the filter's hostname or the request's
  (without its port), the filter's port (``443`` with ``https`` is written), else none when a
  scheme is set, else the request's; the path as above; the query kept. All confirmed on
  3.7.15 by tests/test_gateway_filters.py. A filter the provider cannot load (RequestMirror,
  CORS and an ExtensionRef of a kind it does not know, on 3.7.15: ``unsupported filter``) makes
  the router's service ``invalid-httproute-filter``, which answers 500 to every request with no
  middleware run: :class:`GatewayFilterError` (confirmed on 3.7.15 by
  tests/test_gateway_filters.py).
  Its header modifiers are read into ``headers``
  (``set``/``remove``), their ``add`` into :class:`Headers`' ``add_*_headers``: appended
  (Header.Add) to the values the request or answer carries, after the set. Not a middleware:
  :class:`UnresolvedBackends`, the provider's 500 for a rule whose every backendRef no
  ReferenceGrant permits (tests/test_gateway_references.py).
- The NGINX provider's own (provider/kubernetes/ingress-nginx, built from annotations; not
  Middleware CRD types): ``rewrite-target`` (:class:`RewriteTarget`), ``app-root``
  (:class:`AppRoot`: ``/`` answered 302 to ``scheme://Host`` + the root), and a fixed
  ``status`` on redirectRegex (``permanent-redirect``/``temporal-redirect``: that code for every
  method) and redirectScheme (``force-ssl-redirect``: 308), all confirmed on 3.7.15 by
  tests/test_nginx_redirects.py.
- ``chain`` (chain/chain.go): references, expanded in order by :func:`flatten` with a caller's
  lookup; a cycle is refused as Traefik refuses it (pkg/server/middleware/middlewares.go).

Inert (:data:`INERT_TYPES`: a correct request's status, backend, path and forwarded headers are
unchanged): ``compress`` (response encoding only; it may drop ``Accept-Encoding`` upstream),
``contentType``, ``grpcWeb`` (acts on gRPC-Web requests only), ``passTLSClientCert`` (TLS client
certificates only), ``retry`` (re-sends only failed attempts: it can hide failures the gap suite
would count), ``buffering`` without ``maxResponseBodyBytes`` (probes have no body).

Refused (:data:`REFUSED_TYPES`: they decide whether the route answers at all): ``basicAuth``,
``digestAuth``, ``forwardAuth`` (401/403), ``ipAllowList``/``ipWhiteList`` (403 by client
address), ``rateLimit``, ``inFlightReq`` (429/503 under the harness's load), ``circuitBreaker``
(trips on errors), ``errors`` (replaces answers), ``encodedCharacters`` (400 on encoded
characters), ``plugin`` (unknown code).

Older releases differ (harness.traefik.versions ``BEHAVIOUR_CHANGES``, each confirmed on the
binaries; :func:`apply_middlewares` takes the release's ``Behaviour``): before
``strip-rejects-unclean-path`` the rest after stripPrefix or stripPrefixRegex is cleaned and
forwarded (before ``strip-cleans-path``: forwarded as it is), and before
``replace-rejects-unclean-path`` the result of replacePathRegex is forwarded as it is, not
answered 400; before ``strip-trims-prefixes`` a stripPrefix prefix is compared as written,
spaces included.

Confirmed on 3.7.15 beyond the source: the ``forceSlash`` default (false), ``;`` in the query
reaching the backend as ``&``, the earlier headers middleware winning on the response (also on
a later middleware's 400 or redirect), Go's ``$``, ``\\d`` and case folding in stripPrefixRegex,
Go's empty-match rule in replacePathRegex, raw (escaped) paths kept through strip and add.

The request given to :func:`apply_middlewares` is as the router hands it to the middlewares:
the entry point has already cleaned the path (``sanitizePath``) and set the forwarded headers.
The forwarded request's target is what the backend reads on the wire (Traefik's proxy re-parses
the request URI and turns ``;`` in the query into ``&``). Where this model cannot tell what
Traefik does (a redirect to a URL outside the parsed subset, a regex on invalid UTF-8), the
answer is :class:`Unpredictable`, to be recorded as observed behaviour rather than judged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from harness.backends.whoami import canonical_header_key
from harness.traefik.goregexp import GoRegexp, GoRegexpError, compile_go_regexp
from harness.traefik.requests import (
    _URL,
    _escape,
    _parse_request_uri,
    _unescape,
    _valid_encoded,
    encoded_prefix_len,
    go_path_clean,
)
from harness.traefik.versions import (
    PINNED_BEHAVIOUR,
    REPLACE_REJECTS_UNCLEAN,
    STRIP_CLEANS_PATH,
    STRIP_REJECTS_UNCLEAN,
    STRIP_TRIMS_PREFIXES,
    Behaviour,
)

__all__ = [
    "CONFIRMED_ON",
    "INERT_TYPES",
    "MODELED_TYPES",
    "REFUSED_TYPES",
    "AddPrefix",
    "Answered",
    "AppRoot",
    "Chain",
    "ChainRef",
    "Forwarded",
    "GatewayFilterError",
    "Headers",
    "Inert",
    "Middleware",
    "MiddlewareSpecError",
    "Outcome",
    "Redirect",
    "RedirectRegex",
    "RedirectScheme",
    "ReplacePath",
    "ReplacePathRegex",
    "Request",
    "RequestRedirect",
    "StripPrefix",
    "StripPrefixRegex",
    "URLRewrite",
    "Unpredictable",
    "apply_middlewares",
    "flatten",
    "parse_middleware_spec",
]

#: The Traefik version these semantics were confirmed on (tests/test_traefik_middlewares.py).
CONFIRMED_ON = "3.7.15"

FieldPath = tuple[str | int, ...]


class MiddlewareSpecError(ValueError):
    """A Middleware spec the model refuses; ``field`` is the path inside ``spec`` (keys and list
    indexes) so that a dialect can name file:line:field."""

    def __init__(self, field: FieldPath, problem: str, advice: str) -> None:
        self.field = field
        self.problem = problem
        self.advice = advice
        super().__init__(f"spec.{self.field_path}: {problem}. {advice}")

    @property
    def field_path(self) -> str:
        out = ""
        for part in self.field:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


# -- the middleware types ---------------------------------------------------------------------


@dataclass(frozen=True)
class StripPrefix:
    #: Trimmed of spaces, as Traefik uses them.
    prefixes: tuple[str, ...]
    force_slash: bool = False
    #: The prefixes as written, when spaces were trimmed (releases before
    #: ``strip-trims-prefixes`` compare them as written).
    as_written: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StripPrefixRegex:
    regex: tuple[GoRegexp, ...]


@dataclass(frozen=True)
class AddPrefix:
    prefix: str


@dataclass(frozen=True)
class ReplacePath:
    path: str


@dataclass(frozen=True)
class ReplacePathRegex:
    regex: GoRegexp
    replacement: str


@dataclass(frozen=True)
class RedirectScheme:
    """``status``: the one status whatever the method (the NGINX provider's
    ``forcePermanentRedirect``: 308); None: by ``permanent`` and the method."""

    scheme: str
    port: str = ""
    permanent: bool = False
    status: int | None = None


@dataclass(frozen=True)
class RedirectRegex:
    """``status``: the one status whatever the method (``statusCode``, which the NGINX
    provider sets); None: by ``permanent`` and the method."""

    regex: GoRegexp
    replacement: str
    permanent: bool = False
    status: int | None = None


@dataclass(frozen=True)
class URLRewrite:
    """The Gateway provider's URLRewrite: ``path`` replaces the whole path, or with
    ``path_prefix`` (the rule's PathPrefix) replaces that prefix; ``hostname`` sets the Host."""

    hostname: str | None = None
    path: str | None = None
    path_prefix: str | None = None


@dataclass(frozen=True)
class RequestRedirect:
    """The Gateway provider's RequestRedirect; ``port`` ``""`` drops the request's port (set
    by the provider when the filter names a scheme), None keeps it."""

    scheme: str | None = None
    hostname: str | None = None
    port: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    status: int = 302


@dataclass(frozen=True)
class Headers:
    """The request- and path-relevant part of ``headers``; names as written (Go map keys)."""

    custom_request_headers: tuple[tuple[str, str], ...] = ()
    custom_response_headers: tuple[tuple[str, str], ...] = ()
    #: Any CORS field is set: OPTIONS preflights are answered by Traefik.
    cors: bool = False
    #: The Gateway header modifiers' ``add`` (``Header.Add``): appended to the values the
    #: request (or the answer) already carries. No headers Middleware field maps onto it.
    add_request_headers: tuple[tuple[str, str], ...] = ()
    add_response_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ChainRef:
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class Chain:
    middlewares: tuple[ChainRef, ...]


@dataclass(frozen=True)
class RewriteTarget:
    """Traefik's NGINX provider's ``rewrite-target`` (pkg/middlewares/ingressnginx/
    rewritetarget, not a Middleware type of its own): where ``regex`` is found in the escaped
    path, every match is replaced (Go ``ReplaceAllString``) and the result becomes the raw path;
    no ``X-Replaced-Path``; 500 when it is empty or a bad escape, 400 when cleaning would
    change it. ``x_forwarded_prefix`` (the ``x-forwarded-prefix`` annotation): when set, the
    request's ``X-Forwarded-Prefix`` becomes the escaped path with every match replaced by it
    (Go ``ReplaceAllString``, so ``$1`` takes a capture and the unmatched rest stays)."""

    regex: GoRegexp
    replacement: str
    x_forwarded_prefix: str = ""


@dataclass(frozen=True)
class AppRoot:
    """Traefik's NGINX provider's ``app-root`` (pkg/middlewares/ingressnginx/approot): a
    request for ``/`` (the cleaned path, any method, any query) is answered 302 to
    ``scheme://Host`` + ``path``; any other passes through."""

    path: str


@dataclass(frozen=True)
class GatewayFilterError:
    """What Traefik's Gateway provider serves for a route whose ``filter`` it cannot load: no
    middleware, a service answering 500 to every request (httproute.go,
    ``invalid-httproute-filter``)."""

    filter: str


@dataclass(frozen=True)
class UnresolvedBackends:
    """Not a Middleware: the Gateway provider's weighted service for a rule none of whose
    backendRefs it resolved (each a ``Status: 500`` entry; a ref no ReferenceGrant permits), so
    every request the router takes is answered 500 after the rule's filters."""

    reason: str


@dataclass(frozen=True)
class Inert:
    """An accepted type that does not change a correct request's answer."""

    kind: str


Middleware = (
    StripPrefix
    | StripPrefixRegex
    | AddPrefix
    | ReplacePath
    | ReplacePathRegex
    | RedirectScheme
    | RedirectRegex
    | Headers
    | URLRewrite
    | RequestRedirect
    | UnresolvedBackends
    | Chain
    | RewriteTarget
    | AppRoot
    | GatewayFilterError
    | Inert
)

MODELED_TYPES = (
    "stripPrefix",
    "stripPrefixRegex",
    "addPrefix",
    "replacePath",
    "replacePathRegex",
    "redirectScheme",
    "redirectRegex",
    "headers",
    "chain",
)
INERT_TYPES = ("compress", "contentType", "grpcWeb", "passTLSClientCert", "retry", "buffering")
REFUSED_TYPES: Mapping[str, str] = {
    "basicAuth": "answers 401 without credentials",
    "digestAuth": "answers 401 without credentials",
    "forwardAuth": "lets an outside service decide the answer",
    "ipAllowList": "answers 403 depending on the client address",
    "ipWhiteList": "answers 403 depending on the client address",
    "rateLimit": "answers 429 under the harness's traffic",
    "inFlightReq": "answers 429 under the harness's concurrent traffic",
    "circuitBreaker": "answers 503 once errors trip it",
    "errors": "replaces answers with another service's",
    "encodedCharacters": "answers 400 to requests with encoded characters",
    "plugin": "runs code the harness cannot model",
}

# -- parsing ----------------------------------------------------------------------------------

_HOP_BY_HOP = frozenset(
    {
        "Connection",
        "Proxy-Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Te",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
    }
)
#: Response headers Go's HTTP server writes itself when they are missing.
SERVER_WRITTEN = frozenset({"Date", "Content-Type", "Content-Length", "Transfer-Encoding"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CORS_FIELDS = (
    "accessControlAllowCredentials",
    "accessControlAllowHeaders",
    "accessControlAllowMethods",
    "accessControlAllowOriginList",
    "accessControlAllowOriginListRegex",
    "accessControlExposeHeaders",
    "accessControlMaxAge",
    "addVaryHeader",
)
_RESPONSE_ONLY_FIELDS = (
    "sslProxyHeaders",
    "stsSeconds",
    "stsIncludeSubdomains",
    "stsPreload",
    "forceSTSHeader",
    "frameDeny",
    "customFrameOptionsValue",
    "contentTypeNosniff",
    "browserXssFilter",
    "customBrowserXSSValue",
    "contentSecurityPolicy",
    "contentSecurityPolicyReportOnly",
    "publicKey",
    "referrerPolicy",
    "permissionsPolicy",
    "isDevelopment",
    "featurePolicy",
    "sslRedirect",
    "sslTemporaryRedirect",
    "sslHost",
    "sslForceHost",
)
_HOST_CHECK_FIELDS = ("allowedHosts", "hostsProxyHeaders")


def _fail(at: FieldPath, problem: str, advice: str) -> NoReturn:
    raise MiddlewareSpecError(at, problem, advice)


def _fields(body: Any, at: FieldPath, allowed: Sequence[str]) -> Mapping[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        _fail(at, f"expected a mapping, found {type(body).__name__}", "Fix the value")
    for key in body:
        if key not in allowed:
            _fail(
                (*at, str(key)),
                f"{key!r} is not a field of {at[-1]} in Traefik {CONFIRMED_ON}'s CRD",
                f"Use one of: {', '.join(allowed)}",
            )
    return body


def _string(body: Mapping[str, Any], key: str, at: FieldPath, *, required: bool) -> str:
    value = body.get(key)
    if value is None:
        if required:
            _fail((*at, key), f"required field {key!r} is missing", f"Add {key!r}")
        return ""
    if not isinstance(value, str):
        _fail((*at, key), f"expected a string, found {value!r}", "Quote the value")
    return value


def _bool(body: Mapping[str, Any], key: str, at: FieldPath) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        _fail((*at, key), f"expected true or false, found {value!r}", "Write true or false")
    return value


def _strings(body: Mapping[str, Any], key: str, at: FieldPath) -> list[str]:
    value = body.get(key)
    if value is None:
        _fail((*at, key), f"required field {key!r} is missing", f"List at least one {key} entry")
    if not isinstance(value, list) or not value:
        _fail((*at, key), f"expected a non-empty list, found {value!r}", "Write a YAML list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail((*at, key, i), f"expected a string, found {item!r}", "Quote the value")
    return list(value)


def _regex(pattern: str, at: FieldPath) -> GoRegexp:
    try:
        return compile_go_regexp(pattern)
    except GoRegexpError as err:
        _fail(at, str(err), "Rewrite the regex without that construct")


def _header_map(body: Mapping[str, Any], key: str, at: FieldPath) -> tuple[tuple[str, str], ...]:
    value = body.get(key)
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        _fail((*at, key), "expected a mapping of header names to values", "Fix the value")
    seen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for name, val in value.items():
        here = (*at, key, str(name))
        if not isinstance(val, str):
            _fail(here, f"expected a string value, found {val!r}", "Quote the value")
        if not name or not set(name) <= _TOKEN:
            _fail(here, f"{name!r} is not a valid header name", "Use a token (RFC 9110)")
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in val):
            _fail(here, "the value has control characters Go's transport refuses", "Remove them")
        canon = _canonical(name)
        if canon in seen:
            _fail(
                here,
                f"{name!r} and {seen[canon]!r} are the same header; Traefik applies them in "
                "random (Go map) order",
                "Keep one of them",
            )
        seen[canon] = name
        out.append((name, val))
    return tuple(out)


def _is_set(value: Any) -> bool:
    """Whether Go sees a headers field as set (a pointer like stsSeconds: 0 is set)."""
    return value is not None and value is not False and value not in ("", [], {})


def _parse_headers(body: Any, at: FieldPath) -> Headers:
    allowed = (
        "customRequestHeaders",
        "customResponseHeaders",
        *_CORS_FIELDS,
        *_RESPONSE_ONLY_FIELDS,
        *_HOST_CHECK_FIELDS,
    )
    fields = _fields(body, at, allowed)
    for key in _HOST_CHECK_FIELDS:
        if fields.get(key):
            _fail(
                (*at, key),
                f"headers.{key} makes Traefik answer 500 to hosts outside allowedHosts",
                "Verify such routes separately, or remove it",
            )
    request = _header_map(fields, "customRequestHeaders", at)
    for name, value in request:
        canon = _canonical(name)
        if canon == "X-Forwarded-For" or canon in _HOP_BY_HOP:
            _fail(
                (*at, "customRequestHeaders", name),
                f"{canon} is rewritten by Traefik's proxy after the middlewares",
                "The harness does not model it; remove it",
            )
        if canon == "Host" and value and not set(value) <= _TOKEN | set(":[]"):
            _fail(
                (*at, "customRequestHeaders", name),
                f"Host {value!r} would be refused by Go's transport",
                "Use a host name",
            )
    response = _header_map(fields, "customResponseHeaders", at)
    for name, value in response:
        if not value and _canonical(name) in SERVER_WRITTEN:
            _fail(
                (*at, "customResponseHeaders", name),
                f"removing {_canonical(name)} has no effect: Go's server writes it again",
                "Remove the entry",
            )
    cors = any(_is_set(fields.get(k)) for k in _CORS_FIELDS)
    effective = request or response or any(_is_set(fields.get(k)) for k in allowed)
    if not effective:
        _fail(at, "headers sets nothing; Traefik refuses it as not valid", "Set a header")
    return Headers(request, response, cors)


def parse_middleware_spec(spec: Mapping[str, Any]) -> Middleware:
    """The Middleware a ``spec`` declares; :class:`MiddlewareSpecError` names the field of what
    the model refuses or Traefik would not build."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        count = len(spec) if isinstance(spec, Mapping) else 0
        _fail(
            (),
            f"a Middleware needs exactly one type, found {count}: Traefik refuses multi-type "
            "middlewares",
            "Split it into one Middleware per type",
        )
    ((kind, body),) = spec.items()
    at: FieldPath = (kind,)
    if kind == "stripPrefix":
        f = _fields(body, at, ("prefixes", "forceSlash"))
        written = tuple(_strings(f, "prefixes", at))
        prefixes = tuple(p.strip() for p in written)
        return StripPrefix(
            prefixes, bool(_bool(f, "forceSlash", at)), written if written != prefixes else None
        )
    if kind == "stripPrefixRegex":
        f = _fields(body, at, ("regex",))
        patterns = _strings(f, "regex", at)
        return StripPrefixRegex(
            tuple(_regex(p.strip(), (*at, "regex", i)) for i, p in enumerate(patterns))
        )
    if kind == "addPrefix":
        f = _fields(body, at, ("prefix",))
        prefix = _string(f, "prefix", at, required=True)
        if not prefix:
            _fail((*at, "prefix"), "prefix cannot be empty (Traefik refuses it)", "Set a prefix")
        return AddPrefix(prefix)
    if kind == "replacePath":
        f = _fields(body, at, ("path",))
        return ReplacePath(_string(f, "path", at, required=False))
    if kind == "replacePathRegex":
        f = _fields(body, at, ("regex", "replacement"))
        regex = _regex(_string(f, "regex", at, required=True).strip(), (*at, "regex"))
        return ReplacePathRegex(regex, _string(f, "replacement", at, required=False).strip())
    if kind == "redirectScheme":
        f = _fields(body, at, ("scheme", "port", "permanent"))
        scheme = _string(f, "scheme", at, required=True)
        if not scheme:
            _fail((*at, "scheme"), "you must provide a target scheme", "Set scheme: https")
        port = _string(f, "port", at, required=False)
        if port and not port.isdigit():
            _fail((*at, "port"), f"port {port!r} is not a number", "Write the port, quoted")
        return RedirectScheme(scheme, port, bool(_bool(f, "permanent", at)))
    if kind == "redirectRegex":
        f = _fields(body, at, ("regex", "replacement", "permanent"))
        regex = _regex(_string(f, "regex", at, required=True), (*at, "regex"))
        replacement = _string(f, "replacement", at, required=False)
        return RedirectRegex(regex, replacement, bool(_bool(f, "permanent", at)))
    if kind == "headers":
        return _parse_headers(body, at)
    if kind == "chain":
        f = _fields(body, at, ("middlewares",))
        refs = f.get("middlewares")
        if not isinstance(refs, list) or not refs:
            _fail((*at, "middlewares"), "a chain needs a list of middlewares", "List them")
        out: list[ChainRef] = []
        for i, ref in enumerate(refs):
            r = _fields(ref, (*at, "middlewares", i), ("name", "namespace"))
            name = _string(r, "name", (*at, "middlewares", i), required=True)
            namespace = _string(r, "namespace", (*at, "middlewares", i), required=False)
            out.append(ChainRef(name, namespace or None))
        return Chain(tuple(out))
    if kind == "buffering":
        f = body if isinstance(body, Mapping) else {}
        if f.get("maxResponseBodyBytes"):
            _fail(
                (*at, "maxResponseBodyBytes"),
                "a response larger than the limit is answered 500 by Traefik",
                "Remove the limit or verify such routes separately",
            )
        return Inert(kind)
    if kind in INERT_TYPES:
        return Inert(kind)
    if kind in REFUSED_TYPES:
        _fail(
            at,
            f"Middleware type {kind!r} {REFUSED_TYPES[kind]}: it changes whether the route answers",
            "Verify such routes separately; the harness models " + ", ".join(MODELED_TYPES),
        )
    _fail(at, f"{kind!r} is not a Middleware type of Traefik {CONFIRMED_ON}", "Fix the type")


def flatten(
    middlewares: Sequence[Middleware],
    resolve: Callable[[ChainRef], Middleware],
    *,
    _path: tuple[ChainRef, ...] = (),
) -> tuple[Middleware, ...]:
    """The middlewares with every chain expanded in order (``resolve`` looks a reference up;
    it raises what the caller wants for a missing one). A chain that contains itself is
    refused, as Traefik refuses the router."""
    out: list[Middleware] = []
    for mw in middlewares:
        if not isinstance(mw, Chain):
            out.append(mw)
            continue
        for ref in mw.middlewares:
            if ref in _path:
                names = " -> ".join(r.name for r in (*_path, ref))
                _fail(("chain", "middlewares"), f"recursion in chain: {names}", "Break the loop")
            out.extend(flatten((resolve(ref),), resolve, _path=(*_path, ref)))
    return tuple(out)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~")


def _location(new_url: str) -> str | None:
    """Go's ``url.Parse(new_url).String()`` for ``scheme://host[:port][/path][?query][#frag]``
    and ``/path[?query][#frag]``; None outside that subset."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in new_url):
        return None  # url.Parse refuses control characters
    rest, hash_, fragment = new_url.partition("#")
    scheme = ""
    authority: str | None = None
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if (
            not scheme
            or not scheme[0].isalpha()
            or not all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
        ):
            return None
        authority, slash, path_part = rest.partition("/")
        rest = slash + path_part
        host, colon, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
        if not host or not set(host) <= _HOST_CHARS or (colon and not port.isdigit()):
            return None
    elif not rest.startswith("/") or rest.startswith("//"):
        return None
    path, q, query = rest.partition("?")
    url = _URL("", raw_query=query, force_query=bool(q) and not query)
    parsed = url.with_path(path)
    frag = _unescape(fragment)
    if parsed is None or frag is None:
        return None
    out = f"{scheme.lower()}://{authority}" if authority is not None else ""
    out += parsed.escaped_path()
    if parsed.force_query or parsed.raw_query:
        out += "?" + parsed.raw_query
    if hash_ and frag:
        raw_fragment_ok = _valid_encoded(fragment, "fragment") and _unescape(fragment) == frag
        out += "#" + (fragment if raw_fragment_ok else _escape(frag, "fragment"))
    return out


# -- applying a chain -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A request as the router hands it to its middlewares: the entry point has cleaned the
    path and set ``X-Forwarded-Proto``/``-Host``/``-Port``/``-Server`` and ``X-Real-Ip`` (pass
    those that matter: redirectScheme reads ``X-Forwarded-Proto``; a removal shows only for a
    header present)."""

    host: str
    #: The request target: escaped path and, optionally, ``?`` and the raw query.
    target: str
    scheme: Literal["http", "https"] = "http"
    #: The request headers (without Host), in order; names in any case.
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"


HeaderValues = tuple[tuple[str, tuple[str, ...]], ...]
ResponseHeaders = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Forwarded:
    """The request goes to the backend."""

    #: The request target the backend reads on the wire.
    target: str
    #: The Host header the backend sees.
    host: str
    #: Every request header a middleware added, changed or removed (canonical name -> values as
    #: the backend sees them; empty: removed).
    headers: HeaderValues = ()
    #: Response headers the middlewares set (value) or remove (None), applied over the backend's.
    response_headers: ResponseHeaders = ()

    def header(self, name: str) -> tuple[str, ...] | None:
        """The values of a header a middleware touched; None if none touched it."""
        canon = _canonical(name)
        return next((v for k, v in self.headers if k == canon), None)


@dataclass(frozen=True)
class Redirect:
    """Traefik answers with a redirect."""

    status: int
    location: str
    response_headers: ResponseHeaders = ()


@dataclass(frozen=True)
class Answered:
    """Traefik answers by itself with ``status`` (400 for a path cleaning would change, 500 for
    an invalid escape, 200 for a CORS preflight)."""

    status: int
    reason: str
    response_headers: ResponseHeaders = ()


@dataclass(frozen=True)
class Unpredictable:
    """The model cannot tell what Traefik does with this request."""

    reason: str


Outcome = Forwarded | Redirect | Answered | Unpredictable


def _canonical(name: str) -> str:
    return canonical_header_key(name.encode("latin-1", "replace")).decode("latin-1")


@dataclass
class _State:
    url: _URL
    request_uri: str
    host: str
    headers: dict[str, list[str]]
    behaviour: Behaviour = PINNED_BEHAVIOUR
    touched: set[str] = field(default_factory=set)
    response: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.headers.setdefault(name, []).append(value)
        self.touched.add(name)

    def set(self, name: str, value: str) -> None:
        self.headers[name] = [value]
        self.touched.add(name)

    def delete(self, name: str) -> None:
        self.headers.pop(name, None)
        self.touched.add(name)

    def strip(self, prefix: str, path: str, raw_path: str) -> Answered | None:
        """Sets the stripped path; a path cleaning would change is Traefik's 400 (before
        ``strip-rejects-unclean-path``: cleaned; before ``strip-cleans-path``: as it is)."""
        url = replace(self.url, path=path, raw_path=raw_path)
        if path and self.behaviour.new(STRIP_CLEANS_PATH):
            url = url.join_path()
        if path != url.path and self.behaviour.new(STRIP_REJECTS_UNCLEAN):
            return Answered(400, f"the path after stripping {prefix!r}, {path!r}, is not clean")
        self.url = url
        self.request_uri = url.request_uri()
        return None


def _ensure_leading_slash(s: str) -> str:
    return s if not s or s.startswith("/") else "/" + s


def _has_invalid_utf8(s: str) -> bool:
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in s)


def _strip_prefix(mw: StripPrefix, st: _State) -> Outcome | None:
    trimmed = st.behaviour.new(STRIP_TRIMS_PREFIXES) or mw.as_written is None
    for prefix in mw.prefixes if trimmed else mw.as_written or ():
        if not st.url.path.startswith(prefix):
            continue
        rest = st.url.path[len(prefix) :]
        raw_rest = st.url.raw_path[encoded_prefix_len(st.url.raw_path, prefix) :]
        if mw.force_slash:
            path, raw = "/" + rest.removeprefix("/"), "/" + raw_rest.removeprefix("/")
        else:
            path, raw = _ensure_leading_slash(rest), _ensure_leading_slash(raw_rest)
        answered = st.strip(prefix, path, raw if st.url.raw_path else "")
        if answered:
            return answered
        st.add("X-Forwarded-Prefix", prefix)
        break
    return None


def _strip_prefix_regex(mw: StripPrefixRegex, st: _State) -> Outcome | None:
    path = st.url.path
    if _has_invalid_utf8(path):
        return Unpredictable(f"stripPrefixRegex on a path that is not UTF-8: {path!r}")
    for rx in mw.regex:
        m = rx.search(path)
        if m is None or not m.group(0) or not path.startswith(m.group(0)):
            continue
        prefix = m.group(0)
        st.add("X-Forwarded-Prefix", prefix)
        raw = st.url.raw_path
        new_raw = _ensure_leading_slash(raw[encoded_prefix_len(raw, prefix) :]) if raw else ""
        return st.strip(prefix, _ensure_leading_slash(path[len(prefix) :]), new_raw)
    return None


def _replace_path(new_raw: str, st: _State) -> Outcome | None:
    """Both replace middlewares: ``X-Replaced-Path``, the new raw path, 500 on a bad escape."""
    current = st.url.raw_path or st.url.escaped_path()
    st.add("X-Replaced-Path", current)
    path = _unescape(new_raw)
    if path is None:
        return Answered(500, f"the replaced path {new_raw!r} has an invalid escape")
    st.url = replace(st.url, path=path, raw_path=new_raw)
    st.request_uri = st.url.request_uri()
    return None


def _replace_path_regex(mw: ReplacePathRegex, st: _State) -> Outcome | None:
    current = st.url.raw_path or st.url.escaped_path()
    if mw.regex.search(current) is None:
        return None
    answered = _replace_path(mw.regex.replace_all(current, mw.replacement), st)
    if answered:
        return answered
    path = st.url.path
    rejects = st.behaviour.new(REPLACE_REJECTS_UNCLEAN)
    if path and rejects and st.url.join_path().path != path:
        return Answered(400, f"the replaced path {path!r} is not clean")
    return None


def _rewrite_target(mw: RewriteTarget, st: _State) -> Outcome | None:
    current = st.url.raw_path or st.url.escaped_path()
    if mw.regex.search(current) is None:
        return None
    new_raw = mw.regex.replace_all(current, mw.replacement)
    path = _unescape(new_raw) if new_raw else None
    if path is None:
        return Answered(500, f"the rewritten path {new_raw!r} is empty or has an invalid escape")
    if mw.x_forwarded_prefix:
        st.set("X-Forwarded-Prefix", mw.regex.replace_all(current, mw.x_forwarded_prefix))
    st.url = replace(st.url, path=path, raw_path=new_raw)
    st.request_uri = st.url.request_uri()
    if path and st.url.join_path().path != path:
        return Answered(400, f"the rewritten path {path!r} is not clean")
    return None


def _split_host_port(host: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``, with the whole Host when it has no port."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0 and host[end + 1 :].startswith(":") and ":" not in host[end + 2 :]:
            return host[1:end], ":" + host[end + 2 :]
        return host, ""
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, ":" + port
    return host, ""


_URI_PATTERN = compile_go_regexp(r"^(https?:\/\/)?(\[[\w:.]+\]|[\w\._-]+)?(:\d+)?(.*)$")


def _redirect(
    rx: GoRegexp,
    replacement: str,
    old_url: str,
    st: _State,
    *,
    permanent: bool,
    method: str,
    status: int | None = None,
) -> Outcome | None:
    if _has_invalid_utf8(old_url):
        return Unpredictable(f"a redirect regex on a URL that is not UTF-8: {old_url!r}")
    if rx.search(old_url) is None:
        return None
    new_url = rx.replace_all(old_url, replacement)
    location = _location(new_url)
    if location is None:
        return Unpredictable(f"the redirect target {new_url!r} is outside the modeled URL forms")
    if new_url != old_url:
        if status is None:
            get = method == "GET"
            status = (301 if get else 308) if permanent else (302 if get else 307)
        return Redirect(status, location)
    # Unchanged: the request goes on with the re-parsed URL.
    _, _, after_authority = location.partition("://")
    target = "/" + after_authority.partition("/")[2] if "://" in location else location
    parsed = _parse_request_uri(target.partition("#")[0])
    if parsed is None:
        return Unpredictable(f"the re-parsed URL {new_url!r} has no path")
    st.url = parsed
    st.request_uri = parsed.request_uri()
    return None


def _redirect_scheme(mw: RedirectScheme, st: _State, request: Request) -> Outcome | None:
    if st.request_uri.startswith(("http://", "https://")):
        return Unpredictable("an absolute-form request URI")
    host, port = _split_host_port(st.host)
    scheme = request.scheme
    proto = st.headers.get("X-Forwarded-Proto", [""])[0].lower()
    if proto in ("http", "ws"):
        scheme = "http"
    elif proto in ("https", "wss"):
        scheme = "https"
    if (scheme, port) in (("http", ":80"), ("https", ":443")):
        port = ""
    old_url = f"{scheme}://{host}{port}{st.request_uri}"
    target_port = ""
    if mw.port and (mw.scheme, mw.port) not in (("http", "80"), ("https", "443")):
        target_port = ":" + mw.port
    replacement = mw.scheme + "://${2}" + target_port + "${4}"
    return _redirect(
        _URI_PATTERN,
        replacement,
        old_url,
        st,
        permanent=mw.permanent,
        method=request.method,
        status=mw.status,
    )


def _go_path_join(*elems: str) -> str:
    """Go's ``path.Join``: the non-empty elements joined with ``/`` and cleaned."""
    joined = "/".join(e for e in elems if e)
    return go_path_clean(joined) if joined else ""


def _gateway_path(path: str, full: str | None, prefix: str | None) -> str:
    """The decoded path after a Gateway filter's path modifier (none: unchanged)."""
    if full is None:
        return path
    if prefix is None:
        return full
    new = _go_path_join(full, path.removeprefix(prefix))
    # path.Join drops a trailing slash; Traefik puts the request's back.
    return new + "/" if path.endswith("/") and not new.endswith("/") else new


def _url_rewrite(mw: URLRewrite, st: _State) -> Outcome | None:
    if mw.path is not None and st.url.raw_path:
        # On 3.7.15 /prefix/one/a%2Fb reaches the backend as /one/a%2Fb, not as Go's
        # EscapedPath of the joined decoded path would give it (/one/a/b): not modeled.
        return Unpredictable(f"a URLRewrite path on the encoded path {st.url.raw_path!r}")
    new = _gateway_path(st.url.path, mw.path, mw.path_prefix)
    url = replace(st.url, path=new)
    st.url = replace(url, raw_path=url.escaped_path())
    st.request_uri = st.url.request_uri()
    if mw.hostname is not None:
        st.host = mw.hostname
    return None


def _request_redirect(mw: RequestRedirect, st: _State, request: Request) -> Outcome:
    name, port = _split_host_port(st.host)
    if name.startswith("["):
        return Unpredictable(f"a redirect from the IPv6 Host {st.host!r}")
    if mw.path is not None and st.url.raw_path:
        return Unpredictable(f"a RequestRedirect path on the encoded path {st.url.raw_path!r}")
    host = mw.hostname if mw.hostname is not None else name
    port = port.removeprefix(":") if mw.port is None else mw.port
    if port:
        host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = _gateway_path(st.url.path, mw.path, mw.path_prefix)
    url = replace(st.url, path=path)
    location = f"{mw.scheme or request.scheme}://{host}{url.request_uri() if path else ''}"
    return Redirect(mw.status, location)


def _headers(mw: Headers, st: _State, request: Request) -> Outcome | None:
    if (
        mw.cors
        and request.method == "OPTIONS"
        and st.headers.get("Origin")
        and st.headers.get("Access-Control-Request-Method")
    ):
        return Answered(200, "a CORS preflight, answered by the headers middleware")
    for name, value in mw.custom_request_headers:
        canon = _canonical(name)
        if value == "":
            if canon != "Host":
                st.delete(canon)
        elif canon == "Host":
            st.host = value
        else:
            st.set(canon, value)
    for name, value in mw.add_request_headers:
        st.add(_canonical(name), value)
    return None


#: One response header change: the name, the value (None: removed), and whether the value is
#: appended (``Header.Add``) rather than set.
_ResponseChange = tuple[str, str | None, bool]


def _response_changes(mw: Headers) -> list[_ResponseChange]:
    return [(_canonical(k), v or None, False) for k, v in mw.custom_response_headers] + [
        (_canonical(k), v, True) for k, v in mw.add_response_headers
    ]


def _with_response(outcome: Outcome, mods: Sequence[_ResponseChange]) -> Outcome:
    if isinstance(outcome, Unpredictable) or not mods:
        return outcome
    merged: dict[str, str | None] = dict(outcome.response_headers)
    for name, value, append in mods:
        before = merged.get(name)
        # The client reads several values of one header joined (httpx, as RFC 9110 allows).
        merged[name] = f"{before}, {value}" if append and before else value
    return replace(outcome, response_headers=tuple(merged.items()))


def apply_middlewares(
    middlewares: Sequence[Middleware],
    request: Request,
    behaviour: Behaviour = PINNED_BEHAVIOUR,
) -> Outcome:
    """What Traefik does with ``request`` through ``middlewares`` in order (chains already
    expanded with :func:`flatten`): the forwarded request, a redirect, its own answer, or
    :class:`Unpredictable`; on a release of ``behaviour`` (harness.traefik.versions)."""
    url = _parse_request_uri(request.target)
    if url is None:
        return Unpredictable(f"request target {request.target!r} is not an escaped path")
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(_canonical(name), []).append(value)
    # The entry point's sanitizePath left RequestURI as the URL's own.
    st = _State(url, url.request_uri(), request.host, headers, behaviour)
    # Response headers: each headers middleware rewrites the answer on its way back, the
    # innermost first, so the one earlier in the chain has the last word.
    response_layers: list[list[_ResponseChange]] = []
    outcome: Outcome | None = None
    for mw in middlewares:
        if isinstance(mw, StripPrefix):
            outcome = _strip_prefix(mw, st)
        elif isinstance(mw, StripPrefixRegex):
            outcome = _strip_prefix_regex(mw, st)
        elif isinstance(mw, AddPrefix):
            st.url = replace(
                st.url,
                path=_ensure_leading_slash(mw.prefix + st.url.path),
                raw_path=_ensure_leading_slash(mw.prefix + st.url.raw_path)
                if st.url.raw_path
                else "",
            )
            st.request_uri = st.url.request_uri()
        elif isinstance(mw, ReplacePath):
            outcome = _replace_path(mw.path, st)
        elif isinstance(mw, ReplacePathRegex):
            outcome = _replace_path_regex(mw, st)
        elif isinstance(mw, RewriteTarget):
            outcome = _rewrite_target(mw, st)
        elif isinstance(mw, RedirectScheme):
            outcome = _redirect_scheme(mw, st, request)
        elif isinstance(mw, RedirectRegex):
            old_url = f"{request.scheme}://{st.host}{st.request_uri}"
            outcome = _redirect(
                mw.regex,
                mw.replacement,
                old_url,
                st,
                permanent=mw.permanent,
                method=request.method,
                status=mw.status,
            )
        elif isinstance(mw, AppRoot):
            if st.url.path == "/":
                outcome = Redirect(302, f"{request.scheme}://{st.host}{mw.path}")
        elif isinstance(mw, URLRewrite):
            outcome = _url_rewrite(mw, st)
        elif isinstance(mw, RequestRedirect):
            outcome = _request_redirect(mw, st, request)
        elif isinstance(mw, UnresolvedBackends):
            outcome = Answered(500, mw.reason)
        elif isinstance(mw, Headers):
            outcome = _headers(mw, st, request)
            if outcome is None:
                response_layers.append(_response_changes(mw))
        elif isinstance(mw, GatewayFilterError):
            outcome = Answered(
                500, f"Traefik's Gateway provider cannot load the {mw.filter} filter"
            )
        elif isinstance(mw, Chain):
            raise TypeError("expand chains with flatten() before applying them")
        if outcome is not None:
            break
    if outcome is None:
        wire = _parse_request_uri(st.request_uri) or st.url
        wire = replace(wire, raw_query=wire.raw_query.replace(";", "&"))
        outcome = Forwarded(
            target=wire.request_uri(),
            host=st.host,
            headers=tuple(sorted((k, tuple(st.headers.get(k, ()))) for k in st.touched)),
        )
    for layer in reversed(response_layers):
        outcome = _with_response(outcome, layer)
    return outcome
