"""The response format of ``traefik/whoami``: parse it, and render it for our own echo backends.

Every verdict about routing, strip and weights is read from a backend's answer, so the same
parser must work against real whoami pods on a cluster and against the harness's loopback echo
backends. Keeping both the parser and the renderer here keeps the format in one place.

The text form (``GET /anything``), as whoami's ``whoamiHandler`` writes it::

    Name: cheddar                       only when WHOAMI_NAME / --name is set
    Hostname: cheddar-7d9f-abcde
    IP: 127.0.0.1                       one line per interface address
    IP: 10.42.0.17
    RemoteAddr: 10.42.0.9:43512
    GET /cheddar/x?y=1 HTTP/1.1\\r\\n     Go's Request.Write from here on, lines end with CRLF
    Host: cheese.example\\r\\n
    User-Agent: curl/8.5.0\\r\\n          "Go-http-client/1.1" when the client sent none
    Accept: */*\\r\\n                     the other headers, canonical keys, sorted by key
    X-Forwarded-Prefix: /cheddar\\r\\n
    \\r\\n

The JSON form (path ``/api``): ``{"hostname", "ip", "headers", "url", "host", "method", "name",
"remoteAddr"}``, empty fields omitted (Go's ``omitempty``), headers as ``{key: [values]}``
without Host.

Two differences of real whoami worth knowing when reading its answers: Go's ServeMux answers
``301`` (to the cleaned path) for paths containing ``//``, ``/./`` or ``/../`` instead of echoing
them, and the request line carries ``URL.RequestURI()``, which re-escapes a few characters that
are not validly percent-encoded. Our backends echo the request target byte for byte.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "WhoamiReply",
    "canonical_header_key",
    "parse_whoami",
    "render_whoami_json",
    "render_whoami_text",
    "whoami_fields",
    "whoami_text_head",
]

# What Go's Request.Write puts in User-Agent when the request had none.
GO_DEFAULT_USER_AGENT = b"Go-http-client/1.1"

# RFC 9110 token characters: Go canonicalizes a header key only if it consists of these.
_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

# Header names repeat endlessly in bulk traffic; remember their canonical form. Bounded, so a
# client sending random names cannot grow it without limit.
_CANON_CACHE: dict[bytes, bytes] = {}
_CANON_CACHE_MAX = 4096

_BODY_METHODS = (b"POST", b"PUT", b"PATCH")

_REQUEST_LINE = re.compile(r"^(\S+) (\S.*) HTTP/(\d)\.(\d)$")


@dataclass(frozen=True)
class WhoamiReply:
    """What one whoami answer says about the backend and the request it received.

    ``path`` is the request target as the backend received it (path and query, raw, not
    decoded). ``headers`` maps canonical header names (``X-Forwarded-Prefix``) to their values in
    order; it does not contain Host, which is ``host``.
    """

    name: str | None
    hostname: str
    ips: tuple[str, ...]
    remote_addr: str | None
    method: str
    path: str
    host: str | None
    headers: Mapping[str, tuple[str, ...]]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), as Go's ``Header.Get``; None if absent."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> tuple[str, ...]:
        """All values of header ``name`` (any case), in the order received."""
        wanted = name.lower()
        if wanted == "host":
            return (self.host,) if self.host is not None else ()
        for key, values in self.headers.items():
            if key.lower() == wanted:
                return values
        return ()

    @property
    def path_only(self) -> str:
        """The request target without its query string."""
        return self.path.partition("?")[0]

    @property
    def query(self) -> str | None:
        """The raw query string (without ``?``), None when the target had no ``?``."""
        _, sep, query = self.path.partition("?")
        return query if sep else None


# ---------------------------------------------------------------------------------------------
# Rendering (used by harness.backends.echo)


def canonical_header_key(name: bytes) -> bytes:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-forwarded-for`` -> ``X-Forwarded-For``.

    Names with bytes outside the token set are returned unchanged, as Go does.
    """
    cached = _CANON_CACHE.get(name)
    if cached is not None:
        return cached
    if all(c in _TOKEN_BYTES for c in name):
        canon = b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))
    else:
        canon = name
    if len(_CANON_CACHE) < _CANON_CACHE_MAX:
        _CANON_CACHE[name] = canon
    return canon


def _ascii(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def whoami_text_head(
    name: str | None, hostname: str, ips: Iterable[str], remote_addr: str
) -> bytes:
    """The lines before the request: Name (if set), Hostname, IP..., RemoteAddr.

    Our backends build this once per connection; it is the same for every request on it.
    """
    parts = []
    if name:
        parts.append(b"Name: " + _ascii(name) + b"\n")
    parts.append(b"Hostname: " + _ascii(hostname) + b"\n")
    parts.extend(b"IP: " + _ascii(ip) + b"\n" for ip in ips)
    parts.append(b"RemoteAddr: " + _ascii(remote_addr) + b"\n")
    return b"".join(parts)


# How render_whoami_text treats a header: printed in sorted order (0), or at its own place.
_PLAIN, _HOST, _USER_AGENT, _CONTENT_LENGTH, _TRANSFER_ENCODING, _TRAILER = range(6)
_SPECIAL = {
    b"Host": _HOST,
    b"User-Agent": _USER_AGENT,
    b"Content-Length": _CONTENT_LENGTH,
    b"Transfer-Encoding": _TRANSFER_ENCODING,
    b"Trailer": _TRAILER,
}
# Raw name -> (kind, canonical key, b"Canonical-Key: "), bounded like _CANON_CACHE.
_RENDER_CACHE: dict[bytes, tuple[int, bytes, bytes]] = {}
_by_key = operator.itemgetter(0)


def _render_info(raw_name: bytes) -> tuple[int, bytes, bytes]:
    key = canonical_header_key(raw_name)
    info = (_SPECIAL.get(key, _PLAIN), key, key + b": ")
    if len(_RENDER_CACHE) < _CANON_CACHE_MAX:
        _RENDER_CACHE[raw_name] = info
    return info


def render_whoami_text(
    head: bytes, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """The whoami text body for one request, as Go's ``Request.Write`` would print it.

    ``head`` comes from :func:`whoami_text_head`; ``target`` is the raw request target;
    ``headers`` are the raw (name, value) pairs in the order received. The request body is not
    echoed (whoami echoes it; the harness never needs it), but Content-Length or
    Transfer-Encoding are printed where Go prints them. This is the backends' hot path: header
    names are classified once and cached, and the body is one ``bytes.join``.
    """
    cache = _RENDER_CACHE
    host = b""
    user_agent: bytes | None = None
    content_length: bytes | None = None
    chunked = False
    rest: list[tuple[bytes, bytes, bytes]] = []
    for raw_name, raw_value in headers:
        kind, key, prefix = cache.get(raw_name) or _render_info(raw_name)
        if kind == _PLAIN:
            rest.append((key, prefix, raw_value))
        elif kind == _HOST:
            host = host or raw_value.strip(b" \t")  # Go keeps the first Host
        elif kind == _USER_AGENT:
            if user_agent is None:
                user_agent = raw_value.strip(b" \t")
        elif kind == _CONTENT_LENGTH:
            content_length = raw_value.strip(b" \t")
        elif kind == _TRANSFER_ENCODING:
            chunked = chunked or b"chunked" in raw_value.lower()
    if user_agent is None:
        user_agent = GO_DEFAULT_USER_AGENT
    parts = [head, method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    if user_agent:
        parts += (b"User-Agent: ", user_agent, b"\r\n")
    # Go's transferWriter: chunked wins; a positive length is always sent; a zero length only
    # for methods that usually carry a body.
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif content_length is not None and content_length not in (b"0", b""):
        parts += (b"Content-Length: ", content_length, b"\r\n")
    elif method in _BODY_METHODS:
        parts.append(b"Content-Length: 0\r\n")
    if len(rest) > 1:
        # Stable sort on the key alone: the values of one key keep the order received, as in Go.
        rest.sort(key=_by_key)
    for _, prefix, value in rest:
        parts += (prefix, value.strip(b" \t"), b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _text(value: bytes) -> str:
    # Go's encoding/json turns invalid UTF-8 into U+FFFD; do the same.
    return value.decode("utf-8", "replace")


def render_whoami_json(
    *,
    name: str | None,
    hostname: str,
    ips: Sequence[str],
    remote_addr: str,
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
) -> bytes:
    """The whoami ``/api`` JSON body for one request (compact, HTML-escaped, newline-terminated,
    key order and ``omitempty`` as in Go's encoder)."""
    host = ""
    by_key: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        key = canonical_header_key(raw_name)
        value = _text(raw_value.strip(b" \t"))
        if key == b"Host":
            host = host or value
            continue
        by_key.setdefault(_text(key), []).append(value)
    data: dict[str, object] = {"hostname": hostname}
    if ips:
        data["ip"] = list(ips)
    if by_key:
        data["headers"] = {key: by_key[key] for key in sorted(by_key)}
    data["url"] = _text(target)
    if host:
        data["host"] = host
    data["method"] = _text(method)
    if name:
        data["name"] = name
    if remote_addr:
        data["remoteAddr"] = remote_addr
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # Go escapes these even inside strings; they cannot occur outside strings in JSON.
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return text.encode("utf-8") + b"\n"


# ---------------------------------------------------------------------------------------------
# Parsing


def _not_whoami(reason: str, body: bytes) -> ValueError:
    excerpt = body[:120]
    more = "..." if len(body) > 120 else ""
    return ValueError(
        f"not whoami output: {reason}; body ({len(body)} bytes) starts {excerpt!r}{more}"
    )


def parse_whoami(body: bytes, content_type: str | None = None) -> WhoamiReply:
    """Parse a whoami answer, text or JSON (chosen by ``content_type``, else by a leading ``{``).

    Raises ValueError, saying what was expected and showing the start of the body, for anything
    that is not whoami output (a proxy's 404 page, an HTML error, a truncated body).
    """
    is_json = content_type is not None and "json" in content_type.lower()
    if not is_json and content_type is None:
        is_json = body.lstrip()[:1] == b"{"
    return _parse_json(body) if is_json else _parse_text(body)


def _parse_text(body: bytes) -> WhoamiReply:
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the element after the final newline is not an (empty) line
    n = len(lines)
    i = 0

    def line(k: int) -> str:
        return _text(lines[k]).rstrip("\r")

    name: str | None = None
    if i < n and lines[i].startswith(b"Name: "):
        name = line(i)[6:]
        i += 1
    if i >= n or not lines[i].startswith(b"Hostname: "):
        raise _not_whoami("expected a 'Hostname:' line first (after an optional 'Name:')", body)
    hostname = line(i)[10:]
    i += 1
    ips: list[str] = []
    while i < n and lines[i].startswith(b"IP: "):
        ips.append(line(i)[4:])
        i += 1
    remote_addr: str | None = None
    if i < n and lines[i].startswith(b"RemoteAddr: "):
        remote_addr = line(i)[12:]
        i += 1
    if i >= n:
        raise _not_whoami("the request line is missing after the 'Hostname:'/'IP:' lines", body)
    match = _REQUEST_LINE.match(line(i))
    if match is None:
        raise _not_whoami(
            f"expected a request line 'METHOD TARGET HTTP/1.1', got {line(i)!r}", body
        )
    method, path = match.group(1), match.group(2)
    i += 1
    host: str | None = None
    headers: dict[str, list[str]] = {}
    while True:
        if i >= n:
            raise _not_whoami(
                "the request headers are not ended by an empty line (truncated?)", body
            )
        text = line(i)
        i += 1
        if not text:
            break
        key, sep, value = text.partition(":")
        if not sep or not key:
            raise _not_whoami(f"expected a header line 'Key: value', got {text!r}", body)
        value = value.strip(" \t")
        if key.lower() == "host":
            host = host if host is not None else value
        else:
            headers.setdefault(key, []).append(value)
    return WhoamiReply(
        name=name or None,
        hostname=hostname,
        ips=tuple(ips),
        remote_addr=remote_addr or None,
        method=method,
        path=path,
        host=host or None,
        headers=MappingProxyType({k: tuple(v) for k, v in headers.items()}),
    )


def _str_field(data: Mapping[str, object], key: str, body: bytes, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _not_whoami(f"the JSON object has no {key!r}", body)
        return None
    if not isinstance(value, str):
        raise _not_whoami(f"JSON field {key!r} is {type(value).__name__}, not a string", body)
    return value or None


def _parse_json(body: bytes) -> WhoamiReply:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _not_whoami(f"invalid JSON ({exc})", body) from None
    if not isinstance(data, dict):
        raise _not_whoami(f"the JSON is a {type(data).__name__}, not an object", body)
    hostname = _str_field(data, "hostname", body, required=True)
    method = _str_field(data, "method", body, required=True)
    url = _str_field(data, "url", body, required=True)
    assert hostname is not None and method is not None and url is not None  # required above
    raw_ips = data.get("ip") or []
    if not isinstance(raw_ips, list) or not all(isinstance(ip, str) for ip in raw_ips):
        raise _not_whoami("JSON field 'ip' is not a list of strings", body)
    raw_headers = data.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise _not_whoami("JSON field 'headers' is not an object", body)
    headers: dict[str, tuple[str, ...]] = {}
    for key, values in raw_headers.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _not_whoami(f"JSON header {key!r} is not a list of strings", body)
        headers[key] = tuple(values)
    return WhoamiReply(
        name=_str_field(data, "name", body, required=False),
        hostname=hostname,
        ips=tuple(raw_ips),
        remote_addr=_str_field(data, "remoteAddr", body, required=False),
        method=method,
        path=url,
        host=_str_field(data, "host", body, required=False),
        headers=MappingProxyType(headers),
    )


# ---------------------------------------------------------------------------------------------
# Fast path for bulk traffic

_JSON_NAME = b'"name":"'
_JSON_HOSTNAME = b'"hostname":"'
_JSON_URL = b'"url":"'
_JSON_REPLICA = b'"X-Forwarded-Server":["'
_NOT_WHOAMI = (b"", b"", b"", b"")


def _json_string_after(body: bytes, marker: bytes) -> bytes | None:
    start = body.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = body.find(b'"', start)
    if end < 0:
        return None
    value = body[start:end]
    if b"\\" in value:  # escapes: rare; let the full parser decode them
        return None
    return value


def whoami_fields(body: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(Name, Hostname, request target, X-Forwarded-Server) of a whoami answer, b"" where
    absent, without parsing it all: the traffic engine's hot path (a handful of ``find`` calls).

    Text and JSON (``/api``) forms. A body that is not recognisably whoami output (no
    ``Hostname``) gives four empty values; :func:`parse_whoami` says why. For JSON the keys are
    searched (Go writes ``"name"`` after the headers), still without decoding; a value with
    escapes counts as absent.
    """
    if body[:1] == b"{":
        hostname = _json_string_after(body, _JSON_HOSTNAME)
        if not hostname:
            return _NOT_WHOAMI
        # Header keys are canonical ("Name") and values are escaped, so the lower-case key
        # followed by a quote can only be the top-level field.
        return (
            _json_string_after(body, _JSON_NAME) or b"",
            hostname,
            _json_string_after(body, _JSON_URL) or b"",
            _json_string_after(body, _JSON_REPLICA) or b"",
        )
    name = b""
    pos = 0
    if body.startswith(b"Name: "):
        end = body.find(b"\n", 6)
        if end < 0:
            return _NOT_WHOAMI
        name = body[6:end].rstrip(b"\r")
        pos = end + 1
    if not body.startswith(b"Hostname: ", pos):
        return _NOT_WHOAMI
    end = body.find(b"\n", pos + 10)
    if end < 0:
        return _NOT_WHOAMI
    hostname = body[pos + 10 : end].rstrip(b"\r")
    if not hostname:
        return _NOT_WHOAMI
    path = replica = b""
    http = body.find(b" HTTP/1.", end)
    if http > 0:
        line = body.rfind(b"\n", end, http) + 1
        space = body.find(b" ", line, http)
        if space > 0:
            path = body[space + 1 : http]
        head_end = body.find(b"\r\n\r\n", http)
        x = body.find(b"\nX-Forwarded-Server: ", http, head_end if head_end > 0 else len(body))
        if x > 0:
            stop = body.find(b"\r", x + 21)
            replica = body[x + 21 : stop if stop > 0 else len(body)]
    return name, hostname, path, replica
