"""What Traefik does to a request before and while it routes it: the request-target and Host as
they went on the wire, turned into what the routers match and what the backend receives.

Pure: no I/O. The oracle asks :func:`at_entry_point` for the routing view of a probe, matches its
routes with :func:`host_matches` and :func:`path_matches`, and runs the winner through
:func:`through_router`. A probe this module cannot predict comes back ``unpredictable`` with the
reason, so the harness records what Traefik did instead of judging it.

Go works on bytes; a probe is sent UTF-8 encoded, and paths here are the text those bytes decode
to as UTF-8 (a byte that is not valid UTF-8 held as a surrogate escape, Python's
``surrogateescape``), the representation :mod:`harness.traefik.middlewares` shares. For ASCII,
which is every probe the harness derives, that is plain text.

Each behaviour, where it lives in Traefik v3.7 (or Go's standard library), confirmed on Traefik
:data:`CONFIRMED_ON` (``tests/test_traefik_requests.py``, against the real binary); where older
releases differ, harness.traefik.versions ``BEHAVIOUR_CHANGES`` says so (the wildcard, below):

Before routing (entry point, in this order):

1. Go's HTTP server parses the request-target (``url.ParseRequestURI``). A bad percent-encoding
   (``%zz``, a trailing ``%`` or ``%2``): **400** from Go (a control character is not modeled).
   A missing Host header (HTTP/1.1) or one with a byte outside ``httpguts.ValidHostHeader``
   (``/``, ``<``, space, non-ASCII): **400**; surrounding blanks are trimmed. ``URL.Path`` is the
   decoded path, ``URL.RawPath`` the target's path when its encoding is not Go's default. An
   absolute-form target (``GET http://h/p``) sets the Host from the URL, whatever the Host
   header says. An empty Host matches only routes without a Host rule, and the backend then
   gets its own address as Host.
2. ``denyFragment`` (server_entrypoint_tcp.go): a raw ``#`` in the path: **400**.
3. ``normalizePath``: percent-encodings in ``RawPath`` are upper-cased (``%2f`` -> ``%2F``) and
   unreserved ones decoded (``%41`` -> ``A``, ``%2e`` -> ``.``, ``%70`` -> ``p``; RFC 3986
   6.2.2.1/2).
4. ``sanitizePath`` (``entryPoints.<ep>.http.sanitizePath``, default **true**): ``URL.JoinPath()``,
   i.e. ``path.Clean`` on the *escaped* path, one trailing slash kept: ``/p/./x`` -> ``/p/x``,
   ``/p/../x`` -> ``/x``, ``/p//x`` and ``//p/x`` -> ``/p/x``, ``/p/x/.`` -> ``/p/x``; after step 3
   ``%2e%2e`` is a dot segment too. ``..%2F`` is one segment, not a dot segment. Traefik never
   redirects to the cleaned path (no 301/308): it routes and forwards the cleaned path silently.
5. Query: ``;`` becomes ``&`` (``http.AllowQuerySemicolons``, and the proxy's rewrite), unless
   ``entryPoints.<ep>.http.encodeQuerySemicolons`` (default false) turns it into ``%3B``.

Routing (pkg/muxer/http/mux.go ``withRoutingPath``, matcher.go):

6. The *routing path* is the escaped path with every percent-encoding decoded except the
   reserved ones (``%3A %2F %3F %23 %5B %5D %40 %21 %24 %26 %27 %28 %29 %2A %2B %2C %3B %3D %25``):
   ``/p%2Fx`` is routed as ``/p%2Fx`` (matches ``PathPrefix(/p)``, not ``Path(/p/x)``), ``%5C`` as
   ``\\``, ``%00`` as a NUL byte. ``Path`` is string equality, ``PathPrefix`` a character-wise
   string prefix, both case-sensitive (``/P/x`` is not ``/p/x``). ``PathRegexp`` is Go's
   ``Regexp.MatchString`` on the same routing path: found anywhere unless anchored
   (``PathRegexp(`/b`)`` matches ``/a/bc``), case-sensitive, ``/p%3Ax`` seen as ``/p%3Ax``.
7. ``Host``: the Host without port (``net.SplitHostPort``; ``[::1]`` unbracketed), trimmed,
   lower-cased, compared case-insensitively; a trailing dot on either side is ignored once
   (``edge.test.`` matches, ``edge.test..`` does not). ``*.example.com`` replaces the first label
   of the request host by ``*`` and compares: exactly one label, of any content: ``a.example.com``
   and ``a_b.example.com`` match, also an empty label (``.example.com``) and a literal
   ``*.example.com``; ``example.com`` and ``a.b.example.com`` do not. An IP is a host like any other
   (``Host(`127.0.0.1`)`` matches ``127.0.0.1:80``, not ``localhost``); a route without host matches
   every Host. CNAME flattening (``hostResolver``) is not modeled.
8. ``entryPoints.<ep>.http.encodedCharacters.allow*`` (all default **true** since 3.6.7; when the
   block is absent nothing is denied): a denied encoding anywhere in the escaped path (query not
   checked) answers **400**, but only once a router matched (pkg/server/router/deny.go, added to
   each root router): on an unrouted path the answer stays 404.

At the router (pkg/middlewares/stripprefix, pkg/proxy/httputil):

9. stripPrefix compares the *decoded* ``URL.Path`` (not the routing path), removes the prefix
   from ``Path`` and the matching bytes of ``RawPath``, adds a leading ``/``, re-cleans with
   ``JoinPath``, and answers **400** when that changes the path: ``/api./foo`` and ``/api../foo``
   with prefix ``/api`` are 400 (``/./foo``, ``/../foo``); ``/apifoo`` becomes ``/foo``;
   ``/api%2Ffoo`` becomes ``/foo``. Sets ``X-Forwarded-Prefix``.
10. The backend receives ``URL.RequestURI()`` of the request re-parsed from its RequestURI:
    the escaped path (non-ASCII and ``\\`` percent-encoded, ``%2F`` ``%25`` ``%5C`` ``%00`` kept)
    and the query. The Host header is passed as the client sent it (``passHostHeader`` default).

Where Traefik differs from the Kubernetes Ingress spec / RFC 3986, worth a finding (the slugs
in :data:`DEVIATIONS`): ``//`` is merged (RFC 3986: an empty segment is significant, ``/p//x`` is
not ``/p/x``); an encoded slash is accepted and forwarded, so a backend that decodes it sees
another path than the one routed (``/p/..%2Fx`` is routed under ``/p``, a decoding backend
resolves it to ``/x``): Traefik's own startup warning; ``%5C`` is routed as ``\\`` but forwarded
encoded; ``;`` in the query is forwarded as ``&``; a dot adjoining a stripped prefix answers 400
(the Ingress spec's Prefix ``/api`` does not match ``/api./foo`` at all); ``Exact`` ``/exact``
matches ``/exact/.`` and ``/exact/x/..`` (the spec's Exact is the path as written); the wildcard
matches an empty or non-DNS first label.

TLS and entry points (confirmed on :data:`CONFIRMED_ON`, by hand; for the TLS work): a router
with ``tls: {}`` on ``websecure`` serves Traefik's generated default certificate (CN
``TRAEFIK DEFAULT CERT``, SAN ``<hash>.<hash>.traefik.default``) for every SNI, or none; with
``tls.secretName`` the Secret's certificate is served when the SNI names one of its hosts (the
default one otherwise). The certificate follows the SNI, the router the Host header: SNI
``tls.test`` with Host ``secret.test`` reaches the secret.test router (no 421 with the default TLS
options). A router bound to one entry point answers **404** on the others (a websecure-only router
over plain HTTP on web: 404; a web-only one over HTTPS: 404). An Ingress without
``router.entrypoints`` is served on every entry point; without ``router.tls`` it is a plain-HTTP
router, so on a websecure port without entry-point TLS it answers plain HTTP, and over HTTPS 404.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.errors import ConfigError
from harness.traefik.goregexp import cached_go_regexp
from harness.traefik.versions import (
    PINNED_BEHAVIOUR,
    STRIP_CLEANS_PATH,
    STRIP_REJECTS_UNCLEAN,
    STRIP_TRIMS_PREFIXES,
    WILDCARD_ANY_LABEL,
    Behaviour,
)

#: The Traefik version every behaviour above was confirmed on.
CONFIRMED_ON = "3.7.15"

Outcome = Literal["routable", "rejected", "unpredictable"]
ROUTABLE: Outcome = "routable"
REJECTED: Outcome = "rejected"
UNPREDICTABLE: Outcome = "unpredictable"

#: Spec or RFC deviations a probe shows, slug -> what it means.
DEVIATIONS: Mapping[str, str] = {
    "double-slash-merged": "'//' is merged into '/' before routing and on the way to the backend "
    "(RFC 3986: an empty path segment is significant)",
    "dot-segments-resolved": "dot segments (also written %2e) are resolved before routing (RFC "
    "3986 5.2.4); the backend receives the resolved path",
    "encoded-slash-forwarded": "an encoded slash (%2F) is routed and forwarded encoded: a backend "
    "that decodes it sees another path than the one routed (split view; Traefik's "
    "encodedCharacters.allowEncodedSlash, default true since 3.6.7)",
    "encoded-backslash-forwarded": "an encoded backslash (%5C) is routed as '\\' and forwarded "
    "encoded (encodedCharacters.allowEncodedBackSlash, default true)",
    "encoded-null-forwarded": "an encoded NUL (%00) is routed and forwarded "
    "(encodedCharacters.allowEncodedNullCharacter, default true)",
    "unreserved-decoded": "percent-encoded unreserved characters are decoded before routing and "
    "forwarded decoded (RFC 3986 6.2.2.2)",
    "query-semicolon-rewritten": "';' in the query is forwarded as '&'",
    "raw-byte-encoded": "a raw '\\' or non-ASCII byte in the path is forwarded percent-encoded",
    "wildcard-non-dns-label": "the wildcard host matched a first label that is not a DNS label "
    "(empty, '*' or with '_'); the Ingress spec's wildcard stands for one DNS label",
}

_HEX = "0123456789ABCDEF"
_HEX_DIGITS = frozenset(string.hexdigits)
_ALNUM = frozenset(string.ascii_letters + string.digits)

#: Kept encoded in the routing path (mux.go ``reservedCharacters``); upper case only, which is
#: all there is after normalizePath.
_RESERVED_ENCODED = frozenset(f"%{c:02X}" for c in b":/?#[]@!$&'()*+,;=%")

#: golang.org/x/net/http/httpguts ``validHostByte``.
_VALID_HOST_BYTES = frozenset(string.ascii_letters + string.digits + "!$%&'()*+,-.:;=[]_~")


#: Encodings a default entry point forwards, with the deviation each shows.
_FORWARDED_ENCODED = (
    ("%2F", "encoded-slash-forwarded"),
    ("%5C", "encoded-backslash-forwarded"),
    ("%00", "encoded-null-forwarded"),
)


# -- options ------------------------------------------------------------------------------------

_ENCODED_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "allowEncodedSlash": ("%2F",),
    "allowEncodedBackSlash": ("%5C",),
    "allowEncodedNullCharacter": ("%00",),
    "allowEncodedSemicolon": ("%3B",),
    "allowEncodedPercent": ("%25",),
    "allowEncodedQuestionMark": ("%3F",),
    "allowEncodedHash": ("%23",),
}


@dataclass(frozen=True)
class EncodedCharacters:
    """``entryPoints.<ep>.http.encodedCharacters``; Traefik's defaults (3.6.7+) allow all."""

    allowed: Mapping[str, bool] = field(
        default_factory=lambda: dict.fromkeys(_ENCODED_OPTIONS, True)
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.allowed) - set(_ENCODED_OPTIONS))
        if unknown:
            raise ConfigError(
                f"entryPoints.<ep>.http.encodedCharacters: unknown option(s) {', '.join(unknown)}; "
                f"Traefik {CONFIRMED_ON} knows {', '.join(_ENCODED_OPTIONS)}"
            )
        object.__setattr__(
            self, "allowed", {name: bool(self.allowed.get(name, True)) for name in _ENCODED_OPTIONS}
        )

    def denied(self) -> frozenset[str]:
        """The upper-case encodings a router rejects (deny.go compares both cases; normalizePath
        has upper-cased them all before)."""
        return frozenset(
            code
            for name, codes in _ENCODED_OPTIONS.items()
            if not self.allowed[name]
            for code in codes
        )

    def to_static(self) -> dict[str, bool]:
        return dict(self.allowed)


@dataclass(frozen=True)
class EntryPointOptions:
    """The entry point's ``http`` options that change what routers see (Traefik defaults)."""

    #: ``http.sanitizePath`` (default true).
    sanitize_path: bool = True
    #: ``http.encodedCharacters``; None when the block is absent (then nothing is denied).
    encoded_characters: EncodedCharacters | None = None
    #: ``http.encodeQuerySemicolons`` (default false).
    encode_query_semicolons: bool = False

    @classmethod
    def from_static(
        cls, http: Mapping[str, Any], where: str = "entryPoints.<ep>.http"
    ) -> EntryPointOptions:
        """Read the options from an entry point's ``http`` block of a static configuration."""

        def flag(key: str, default: bool) -> bool:
            value = http.get(key, default)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
            return value

        encoded = http.get("encodedCharacters")
        if encoded is not None and not isinstance(encoded, Mapping):
            raise ConfigError(f"{where}.encodedCharacters: expected a mapping, got {encoded!r}")
        if encoded is not None:
            for key, value in encoded.items():
                if not isinstance(value, bool):
                    raise ConfigError(
                        f"{where}.encodedCharacters.{key}: expected true or false, got {value!r}"
                    )
        return cls(
            sanitize_path=flag("sanitizePath", True),
            encoded_characters=None if encoded is None else EncodedCharacters(dict(encoded)),
            encode_query_semicolons=flag("encodeQuerySemicolons", False),
        )

    def to_static(self) -> dict[str, Any]:
        """The ``http`` block that configures these options on an entry point."""
        out: dict[str, Any] = {
            "sanitizePath": self.sanitize_path,
            "encodeQuerySemicolons": self.encode_query_semicolons,
        }
        if self.encoded_characters is not None:
            out["encodedCharacters"] = self.encoded_characters.to_static()
        return out


# -- Go's net/url, the parts Traefik's path handling and its middlewares use ---------------------
# (the one copy: harness.traefik.middlewares imports it)

_Mode = Literal["path", "fragment"]


def _should_escape(c: int, mode: _Mode = "path") -> bool:
    """``url.shouldEscape`` for a byte, in path or fragment mode."""
    ch = chr(c)
    if ch.isascii() and ch.isalnum():
        return False
    if ch in "-_.~":
        return False
    if ch in "$&+,/:;=?@":
        return mode == "path" and ch == "?"
    return not (mode == "fragment" and ch in "!()*")


def _escape(s: str, mode: _Mode = "path") -> str:
    """``url.escape``: every byte of ``s`` (UTF-8) that needs it percent-encoded."""
    out: list[str] = []
    for b in s.encode("utf-8", "surrogateescape"):
        if _should_escape(b, mode):
            out.append("%" + _HEX[b >> 4] + _HEX[b & 15])
        else:
            out.append(chr(b))
    return "".join(out)


def _unescape(s: str) -> str | None:
    """``url.unescape`` (path mode): None for a malformed ``%``."""
    raw = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == ord("%"):
            pair = raw[i + 1 : i + 3].decode("ascii", "replace")
            if len(pair) != 2 or any(c not in _HEX_DIGITS for c in pair):
                return None
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _valid_encoded(s: str, mode: _Mode = "path") -> bool:
    """``url.validEncoded``."""
    for b in s.encode("utf-8", "surrogateescape"):
        if chr(b) in "!$&'()*+,;=:@[]%":
            continue
        if _should_escape(b, mode):
            return False
    return True


@dataclass(frozen=True)
class _URL:
    """The fields of Go's ``url.URL`` that path handling reads and writes."""

    path: str
    raw_path: str = ""
    raw_query: str = ""
    force_query: bool = False

    def escaped_path(self) -> str:
        """``URL.EscapedPath``."""
        raw = self.raw_path
        if raw and _valid_encoded(raw) and _unescape(raw) == self.path:
            return raw
        if self.path == "*":
            return "*"
        return _escape(self.path)

    def request_uri(self) -> str:
        """``URL.RequestURI`` (no opaque form here)."""
        result = self.escaped_path() or "/"
        if self.force_query or self.raw_query:
            result += "?" + self.raw_query
        return result

    def with_path(self, p: str) -> _URL | None:
        """``URL.setPath`` on a copy: None when ``p`` has a malformed escape."""
        path = _unescape(p)
        if path is None:
            return None
        return replace(self, path=path, raw_path="" if _escape(path) == p else p)

    def join_path(self) -> _URL:
        """``URL.JoinPath()`` with no elements: ``path.Join`` of the escaped path (cleaned, one
        trailing slash kept)."""
        first = self.escaped_path()
        relative = not first.startswith("/")
        joined = go_path_clean("/" + first if relative else first)
        if relative:
            joined = joined[1:]
        if first.endswith("/") and not joined.endswith("/"):
            joined += "/"
        # The escaped path re-parses: JoinPath's setPath cannot fail on it.
        return self.with_path(joined) or self


def _parse_request_uri(target: str) -> _URL | None:
    """``url.ParseRequestURI`` for an origin-form target; None where Go rejects it."""
    path, q, query = target.partition("?")
    if not path.startswith("/"):
        return None
    return _URL("", raw_query=query, force_query=bool(q) and not query).with_path(path)


def encoded_prefix_len(raw_path: str, decoded_prefix: str) -> int:
    """strip_prefix.go ``encodedPrefixLen``: the characters of the raw path covering the decoded
    prefix (counted in bytes, as Go does)."""
    raw = raw_path.encode("utf-8", "surrogateescape")
    want = len(decoded_prefix.encode("utf-8", "surrogateescape"))
    decoded = i = 0
    while i < len(raw) and decoded < want:
        i += 3 if raw[i] == ord("%") and i + 2 < len(raw) else 1
        decoded += 1
    return len(raw[:i].decode("utf-8", "surrogateescape"))


def go_path_clean(p: str) -> str:
    """Go's ``path.Clean`` of a rooted path (the one copy the model of Traefik uses)."""
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def _normalize(url: _URL) -> _URL:
    """Traefik's ``normalizePath``: upper-case percent-encodings in RawPath, decode unreserved."""
    if not url.raw_path:
        return url
    out: list[str] = []
    raw = url.raw_path
    i = 0
    while i < len(raw):
        if raw[i] != "%":
            out.append(raw[i])
            i += 1
            continue
        code = raw[i : i + 3].upper()
        char = chr(int(code[1:], 16))
        out.append(char if char in _ALNUM or char in "-._~" else code)
        i += 3
    return replace(url, raw_path="".join(out))


def _routing_path(escaped: str) -> str:
    """mux.go ``withRoutingPath``: decode every percent-encoding except the reserved ones."""
    out = bytearray()
    i = 0
    while i < len(escaped):
        code = escaped[i : i + 3]
        if escaped[i] == "%" and code not in _RESERVED_ENCODED:
            out.append(int(code[1:], 16))
            i += 3
        else:
            out.extend(escaped[i].encode("utf-8", "surrogateescape"))
            i += 1
    return out.decode("utf-8", "surrogateescape")


# -- hosts --------------------------------------------------------------------------------------


def _split_host_port(hostport: str) -> str | None:
    """``net.SplitHostPort``'s host; None where it reports an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host


def canonical_host(host: str) -> str:
    """The host Traefik matches on (requestdecorator ``parseHost`` + ``CanonicalDomain``)."""
    if ":" in host:
        split = _split_host_port(host)
        if split is not None:
            host = split
        elif host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    return host.strip().lower()


def _domain_matches(domain: str, expr: str) -> bool:
    """``muxer.DomainMatchHostExpression``."""
    if expr.startswith("*"):
        labels = domain.split(".")
        labels[0] = "*"
        return ".".join(labels).lower() == expr.lower()
    return domain.lower() == expr.lower()


def host_matches(expr: str | None, host: str, behaviour: Behaviour = PINNED_BEHAVIOUR) -> bool:
    r"""Traefik's v3 ``Host(expr)`` matcher for a canonical host; ``None`` (no Host rule) and
    ``*`` match every request. ``HostRegexp`` (rule syntax v2 wildcards) is not modeled. Before
    ``wildcard-any-first-label`` (harness.traefik.versions), a wildcard is the provider's
    ``HostRegexp`` ``^[a-zA-Z0-9-]+\.rest$`` on the host, trailing dot included."""
    if expr is None or expr == "*":
        return True
    expr = expr.lower()
    if not host:
        return False
    if expr.startswith("*.") and not behaviour.new(WILDCARD_ANY_LABEL):
        label, dot, rest = host.partition(".")
        return (
            bool(dot and label)
            and all(c in _ALNUM or c == "-" for c in label)
            and (rest == expr[2:])
        )
    if _domain_matches(host, expr):
        return True
    if expr.endswith(".") and _domain_matches(host, expr[:-1]):
        return True
    return host.endswith(".") and _domain_matches(host[:-1], expr)


def wildcard_deviation(expr: str | None, host: str) -> str | None:
    """``wildcard-non-dns-label`` when ``Host(expr)``, a wildcard, matches the canonical ``host``
    on a first label that is not a DNS label; None otherwise."""
    if not expr or not expr.startswith("*.") or not host_matches(expr, host):
        return None
    label = host.split(".", 1)[0]
    dns_label = all(c in _ALNUM or c == "-" for c in label) and not label.startswith("-")
    if label and dns_label and not label.endswith("-"):
        return None
    return "wildcard-non-dns-label"


# -- the request at the entry point --------------------------------------------------------------


@dataclass(frozen=True)
class EdgeRequest:
    """A request as Traefik's routers see it, or why Traefik answers it by itself.

    ``path`` is ``URL.Path`` (decoded; stripPrefix compares it), ``routing_path`` what ``Path``
    and ``PathPrefix`` compare, ``host`` the canonical host ``Host`` compares, ``host_header`` the
    Host forwarded to the backend (None: empty, so Go's transport sends the backend's own
    address), ``upstream_target`` the request-target the backend receives
    when no middleware changes it. ``status`` is 400 when ``rejected``.
    """

    target: str
    host_sent: str | None
    outcome: Outcome
    reason: str
    status: int | None = None
    host: str = ""
    host_header: str | None = None
    path: str = ""
    routing_path: str = ""
    upstream_target: str = ""
    deviations: tuple[str, ...] = ()
    _url: _URL | None = field(default=None, repr=False, compare=False)

    @property
    def router_target(self) -> str:
        """The request-target the router and its middlewares get (``URL.RequestURI`` after the
        entry point: the cleaned, escaped path and the query); empty unless routable."""
        return "" if self._url is None else self._url.request_uri()

    @property
    def raw_query(self) -> str:
        """The query after the ``?``, undecoded (``URL.RawQuery``); empty unless routable."""
        return "" if self._url is None else self._url.raw_query

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "host_sent": self.host_sent,
            "outcome": self.outcome,
            "reason": self.reason,
            "status": self.status,
            "host": self.host,
            "path": self.path,
            "routing_path": self.routing_path,
            "upstream_target": self.upstream_target,
            "deviations": list(self.deviations),
            "confirmed_on": CONFIRMED_ON,
        }


def _refuse(target: str, host: str | None, reason: str) -> EdgeRequest:
    return EdgeRequest(target, host, REJECTED, reason, status=400)


def _unpredictable(target: str, host: str | None, reason: str) -> EdgeRequest:
    return EdgeRequest(target, host, UNPREDICTABLE, reason)


def _split_absolute(target: str) -> tuple[str, str] | None:
    """(authority, origin-form rest) of an ``http(s)://authority/path`` target."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    authority, slash, path = rest.partition("/")
    if not slash or not authority or not all(c in _ALNUM or c in ".-:" for c in authority):
        return None
    return authority, "/" + path


def at_entry_point(
    target: str, host: str | None, options: EntryPointOptions | None = None
) -> EdgeRequest:
    """What Traefik makes of ``GET target`` with ``Host: host`` (None: no Host header) on an entry
    point with ``options``, up to the routers."""
    opts = options or EntryPointOptions()
    if any(c in target for c in " \r\n") or (host is not None and any(c in host for c in "\r\n")):
        raise ConfigError(
            f"probe {target!r} (Host {host!r}): a space, CR or LF cannot be sent in a request line "
            "or header; percent-encode it"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return _unpredictable(target, host, "a control character in the request-target")
    if host is None:
        return _refuse(target, host, "no Host header: Go's HTTP/1.1 server answers 400")
    if not all(c in _VALID_HOST_BYTES for c in host.strip(" \t")):
        return _refuse(target, host, f"Host {host!r} is malformed for Go (httpguts): 400")
    forwarded_host = host.strip(" \t")
    wire = target
    if not wire.startswith("/"):
        absolute = _split_absolute(wire)
        if absolute is None:
            return _unpredictable(
                target, host, "only origin-form and plain http(s)://host/path targets are modeled"
            )
        forwarded_host, wire = absolute
    url = _parse_request_uri(wire)
    if url is None:
        return _refuse(target, host, "a bad percent-encoding in the request-target: Go answers 400")
    if "#" in url.raw_path:
        return _refuse(target, host, "a raw '#' in the path: Traefik's denyFragment answers 400")
    path_sent = wire.partition("?")[0]
    deviations: list[str] = []
    if any(c in _ALNUM or c in "-._~" for c in _encoded_characters(path_sent)):
        deviations.append("unreserved-decoded")
    url = _normalize(url)
    if opts.sanitize_path:
        segments = url.escaped_path().split("/")
        if "" in segments[1:-1]:
            deviations.append("double-slash-merged")
        if any(s in (".", "..") for s in segments):
            deviations.append("dot-segments-resolved")
        url = url.join_path()
    escaped = url.escaped_path()
    if ";" in url.raw_query:
        if opts.encode_query_semicolons:
            url = replace(url, raw_query=url.raw_query.replace(";", "%3B"))
        else:
            url = replace(url, raw_query=url.raw_query.replace(";", "&"))
            deviations.append("query-semicolon-rewritten")
    for code, slug in _FORWARDED_ENCODED:
        if code in escaped:
            deviations.append(slug)
    if any(c == "\\" or ord(c) > 0x7F for c in path_sent):
        deviations.append("raw-byte-encoded")
    return EdgeRequest(
        target,
        host,
        ROUTABLE,
        "routed on the cleaned, partly decoded path",
        host=canonical_host(forwarded_host),
        host_header=forwarded_host or None,
        path=url.path,
        routing_path=_routing_path(escaped),
        upstream_target=_upstream(url),
        deviations=tuple(deviations),
        _url=url,
    )


def _encoded_characters(path: str) -> list[str]:
    """The characters the path's percent-encodings stand for (valid ones only)."""
    return [
        chr(int(path[i + 1 : i + 3], 16))
        for i in range(len(path) - 2)
        if path[i] == "%" and path[i + 1] in _HEX_DIGITS and path[i + 2] in _HEX_DIGITS
    ]


def _upstream(url: _URL) -> str:
    """What the backend's request line carries: the proxy re-parses the RequestURI."""
    reparsed = _parse_request_uri(url.request_uri())
    assert reparsed is not None  # RequestURI() is always validly encoded
    return replace(reparsed, force_query=url.force_query).request_uri()


# -- matching and the router's own handling ------------------------------------------------------

PathMatch = Literal["exact", "prefix", "regex"]


def path_matches(match: PathMatch, value: str, request: EdgeRequest) -> bool:
    """``Path(value)`` (exact), ``PathPrefix(value)`` (prefix) or ``PathRegexp(value)`` (regex,
    Go RE2 syntax) against the routing path. ``PathRegexp`` is Go's ``MatchString``: found
    anywhere, not anchored (``/b`` matches ``/a/bc``), on the routing path as well (``/p%3Ax``
    is not ``^/p:x$``, ``/p%20x`` is ``^/p x$``)."""
    if match == "exact":
        return request.routing_path == value
    if match == "regex":
        return cached_go_regexp(value).search(request.routing_path) is not None
    return request.routing_path.startswith(value)


@dataclass(frozen=True)
class RouterAnswer:
    """What a request that matched a router gets: Traefik's own status (400) or what the
    backend receives."""

    status: int | None
    upstream_target: str | None
    forwarded_prefix: str | None
    host_header: str | None
    reason: str


def through_router(
    request: EdgeRequest,
    *,
    strip_prefixes: Sequence[str] = (),
    force_slash: bool = False,
    options: EntryPointOptions | None = None,
    behaviour: Behaviour = PINNED_BEHAVIOUR,
) -> RouterAnswer:
    """A routable request through the router that matched it: the entry point's
    encodedCharacters check, then stripPrefix (``strip_prefixes`` in declared order) as on a
    release of ``behaviour``."""
    if request.outcome != ROUTABLE or request._url is None:
        raise ValueError(f"through_router needs a routable request, got {request.outcome}")
    opts = options or EntryPointOptions()
    url = request._url
    if opts.encoded_characters is not None:
        escaped = url.escaped_path()
        for code in sorted(opts.encoded_characters.denied()):
            if code in escaped:
                return RouterAnswer(
                    400,
                    None,
                    None,
                    None,
                    f"{code} in the path is denied by the entry point's encodedCharacters: 400",
                )
    trims = behaviour.new(STRIP_TRIMS_PREFIXES)
    for prefix in (p.strip() if trims else p for p in strip_prefixes):
        if not url.path.startswith(prefix):
            continue
        stripped = _strip(url, prefix, force_slash, behaviour)
        if stripped is None:
            return RouterAnswer(
                400,
                None,
                prefix,
                None,
                f"stripping {prefix!r} leaves a path that cleaning changes: 400 from stripPrefix",
            )
        return RouterAnswer(
            None,
            _upstream(stripped),
            prefix,
            request.host_header,
            f"stripPrefix removed {prefix!r}",
        )
    return RouterAnswer(
        None, request.upstream_target, None, request.host_header, "forwarded unchanged"
    )


def _strip(url: _URL, prefix: str, force_slash: bool, behaviour: Behaviour) -> _URL | None:
    """stripPrefix on ``url`` as on a release of ``behaviour``; None when Traefik answers 400
    (cleaning would change the rest)."""

    def lead(rest: str) -> str:
        if force_slash:
            return "/" + rest.removeprefix("/")
        return rest if not rest or rest.startswith("/") else "/" + rest

    path = lead(url.path[len(prefix) :])
    raw_path = url.raw_path
    if raw_path:
        raw_path = lead(raw_path[encoded_prefix_len(raw_path, prefix) :])
    stripped = replace(url, path=path, raw_path=raw_path)
    if path and behaviour.new(STRIP_CLEANS_PATH):
        stripped = stripped.join_path()
    rejected = stripped.path != path and behaviour.new(STRIP_REJECTS_UNCLEAN)
    return None if rejected else stripped
