"""The middleware model against the real Traefik: for every case, a Middleware (or several) and an
IngressRoute using them are applied to the local target, a request is sent, and the real answer
(status, Location, the request line and headers the echo backend received, response headers)
must equal what harness.traefik.middlewares predicts.

All cases are applied at once on distinct hosts and Traefik is waited for once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness.backends.whoami import parse_whoami
from harness.traefik.middlewares import (
    Answered,
    ChainRef,
    Forwarded,
    Outcome,
    Redirect,
    Request,
    Unpredictable,
    apply_middlewares,
    flatten,
    parse_middleware_spec,
)
from harness.traefik.process import enabled_routers
from harness.traefik.versions import behaviour_of

pytestmark = pytest.mark.stack

NAMESPACE = "default"
BACKEND = "stilton"


@dataclass(frozen=True)
class Case:
    """Middlewares (name suffix -> spec) and the order the route lists them in."""

    name: str
    middlewares: Mapping[str, Mapping[str, Any]]
    route: tuple[str, ...]

    @property
    def host(self) -> str:
        return f"{self.name}.mw.test"

    def full(self, suffix: str) -> str:
        return f"mw-{self.name}-{suffix}"


def _chain(case: str, *suffixes: str) -> dict[str, Any]:
    return {"chain": {"middlewares": [{"name": f"mw-{case}-{s}"} for s in suffixes]}}


CASES = [
    Case("strip", {"s": {"stripPrefix": {"prefixes": ["/foo", "/foo/bar", " /sp "]}}}, ("s",)),
    Case("stripslash", {"s": {"stripPrefix": {"prefixes": ["/foo/"]}}}, ("s",)),
    Case("stripdot", {"s": {"stripPrefix": {"prefixes": ["/a"]}}}, ("s",)),
    Case(
        "stripadd",
        {"s": {"stripPrefix": {"prefixes": ["/foo"]}}, "a": {"addPrefix": {"prefix": "/v1"}}},
        ("s", "a"),
    ),
    Case(
        "forceslash",
        {
            "s": {"stripPrefix": {"prefixes": ["/foo"], "forceSlash": True}},
            "a": {"addPrefix": {"prefix": "/v1"}},
        },
        ("s", "a"),
    ),
    Case(
        "addstrip",
        {"s": {"stripPrefix": {"prefixes": ["/foo"]}}, "a": {"addPrefix": {"prefix": "/v1"}}},
        ("a", "s"),
    ),
    Case(
        "twostrips",
        {"a": {"stripPrefix": {"prefixes": ["/a"]}}, "b": {"stripPrefix": {"prefixes": ["/b"]}}},
        ("a", "b"),
    ),
    Case("regex", {"r": {"stripPrefixRegex": {"regex": ["/api/v[0-9]+", "^/x(/|$)"]}}}, ("r",)),
    Case("add", {"a": {"addPrefix": {"prefix": "/v1"}}}, ("a",)),
    Case("addnoslash", {"a": {"addPrefix": {"prefix": "api"}}}, ("a",)),
    Case("replace", {"r": {"replacePath": {"path": "/fixed"}}}, ("r",)),
    Case("replacedots", {"r": {"replacePath": {"path": "/a/../b"}}}, ("r",)),
    Case(
        "rxreplace",
        {"r": {"replacePathRegex": {"regex": "^/foo/(.*)", "replacement": "/bar/$1"}}},
        ("r",),
    ),
    Case(
        "rxnamed",
        {
            "r": {
                "replacePathRegex": {
                    "regex": r"^/(?P<first>\w+)/(\w+)$",
                    "replacement": "/${2}/${first}$1x.$$",
                }
            }
        },
        ("r",),
    ),
    Case(
        "rxunclean",
        {"r": {"replacePathRegex": {"regex": "^/foo/(.*)", "replacement": "/bar//$1"}}},
        ("r",),
    ),
    Case(
        "rxbadescape",
        {"r": {"replacePathRegex": {"regex": "^/foo$", "replacement": "/bad%zz"}}},
        ("r",),
    ),
    Case("https", {"r": {"redirectScheme": {"scheme": "https"}}}, ("r",)),
    Case(
        "httpsport",
        {"r": {"redirectScheme": {"scheme": "https", "port": "8443", "permanent": True}}},
        ("r",),
    ),
    Case("https443", {"r": {"redirectScheme": {"scheme": "https", "port": "443"}}}, ("r",)),
    Case("httpsame", {"r": {"redirectScheme": {"scheme": "http", "port": "8000"}}}, ("r",)),
    Case("httpnoport", {"r": {"redirectScheme": {"scheme": "http"}}}, ("r",)),
    Case(
        "rxredirect",
        {
            "r": {
                "redirectRegex": {
                    "regex": "^http://([^/:]+)(:[0-9]+)?/old/(.*)",
                    "replacement": "https://${1}/new/${3}",
                }
            }
        },
        ("r",),
    ),
    Case(
        "rxredirectperm",
        {
            "r": {
                "redirectRegex": {
                    "regex": "/old/(.*)$",
                    "replacement": "/moved/$1x/$1",
                    "permanent": True,
                }
            }
        },
        ("r",),
    ),
    Case(
        "rxredirectsame",
        {"r": {"redirectRegex": {"regex": "^(http://.*)$", "replacement": "$1"}}},
        ("r",),
    ),
    Case(
        "headers",
        {
            "h": {
                "headers": {
                    "customRequestHeaders": {
                        "x-custom": "set",
                        "X-Client": "",
                        "X-Forwarded-Host": "",
                        "X-Forwarded-Proto": "https",
                    },
                    "customResponseHeaders": {"X-Resp": "yes"},
                }
            }
        },
        ("h",),
    ),
    Case(
        "hosthdr",
        {"h": {"headers": {"customRequestHeaders": {"Host": "rewritten.example"}}}},
        ("h",),
    ),
    Case(
        "hostempty",
        {"h": {"headers": {"customRequestHeaders": {"Host": "", "X-A": "a"}}}},
        ("h",),
    ),
    Case(
        "hdrorder",
        {
            "one": {"headers": {"customResponseHeaders": {"X-Resp": "first", "X-Gone": ""}}},
            "two": {"headers": {"customResponseHeaders": {"X-Resp": "second", "X-Gone": "set"}}},
        },
        ("one", "two"),
    ),
    Case(
        "hdrstrip400",
        {
            "h": {"headers": {"customResponseHeaders": {"X-Resp": "on-400"}}},
            "s": {"stripPrefix": {"prefixes": ["/a"]}},
        },
        ("h", "s"),
    ),
    Case(
        "hdrredirect",
        {
            "h": {"headers": {"customResponseHeaders": {"X-Resp": "on-redirect"}}},
            "r": {"redirectScheme": {"scheme": "https"}},
        },
        ("h", "r"),
    ),
    Case(
        "chain",
        {
            "c": _chain("chain", "s", "a"),
            "s": {"stripPrefix": {"prefixes": ["/api"]}},
            "a": {"addPrefix": {"prefix": "/v2"}},
            "h": {"headers": {"customRequestHeaders": {"X-After": "chain"}}},
        },
        ("c", "h"),
    ),
    Case(
        "chainrev",
        {
            "c": _chain("chainrev", "a", "s"),
            "s": {"stripPrefix": {"prefixes": ["/api"]}},
            "a": {"addPrefix": {"prefix": "/v2"}},
        },
        ("c",),
    ),
    # Where Python's re would read the Go pattern differently: `$` before a final newline,
    # Unicode \\d, Go's skipping of an empty match right after a match; and Go's case folding.
    Case("rxdollar", {"r": {"stripPrefixRegex": {"regex": ["^/a$"]}}}, ("r",)),
    Case("rxdigit", {"r": {"stripPrefixRegex": {"regex": [r"^/\d+"]}}}, ("r",)),
    Case("rxfold", {"r": {"stripPrefixRegex": {"regex": ["(?i)^/k"]}}}, ("r",)),
    Case(
        "rxempty",
        {"r": {"replacePathRegex": {"regex": "(?:^/)?[a-z]*", "replacement": "/Y"}}},
        ("r",),
    ),
    Case(
        "cors",
        {
            "h": {
                "headers": {
                    "accessControlAllowMethods": ["GET"],
                    "accessControlAllowOriginList": ["*"],
                }
            }
        },
        ("h",),
    ),
    Case(
        "inert",
        {"c": {"compress": {}}, "r": {"retry": {"attempts": 2}}, "s": _chain("inert", "c")},
        ("s", "r"),
    ),
]

#: (case, method, target, extra request headers, Host header or None for the case's host).
PROBES: list[tuple[str, str, str, tuple[tuple[str, str], ...], str | None]] = [
    ("strip", "GET", "/foo", (), None),
    ("strip", "GET", "/foo/", (), None),
    ("strip", "GET", "/foo/bar/x?q=1", (), None),
    ("strip", "GET", "/foobar", (), None),
    ("strip", "GET", "/sp/trimmed", (), None),
    ("strip", "GET", "/other", (), None),
    ("stripslash", "GET", "/foo", (), None),
    ("stripslash", "GET", "/foo/", (), None),
    ("stripslash", "GET", "/foo/x", (), None),
    ("stripdot", "GET", "/a./x", (), None),
    ("stripdot", "GET", "/a../x", (), None),
    ("stripdot", "GET", "/a%20b", (), None),
    ("stripadd", "GET", "/foo", (), None),
    ("stripadd", "GET", "/foo/x", (), None),
    ("forceslash", "GET", "/foo", (), None),
    ("forceslash", "GET", "/foox", (), None),
    ("addstrip", "GET", "/foo/x", (), None),
    ("twostrips", "GET", "/a/b/c", (), None),
    ("twostrips", "GET", "/b/c", (), None),
    ("regex", "GET", "/api/v2/users", (), None),
    ("regex", "GET", "/api/v3", (), None),
    ("regex", "GET", "/y/api/v1", (), None),
    ("regex", "GET", "/x", (), None),
    ("regex", "GET", "/x/y", (), None),
    ("regex", "GET", "/xy", (), None),
    ("add", "GET", "/x", (), None),
    ("add", "GET", "/", (), None),
    ("add", "GET", "/x?a=1;b=2", (), None),
    ("addnoslash", "GET", "/x", (), None),
    ("replace", "GET", "/anything?x=1", (), None),
    ("replace", "GET", "/with%20space", (), None),
    ("replacedots", "GET", "/x", (), None),
    ("rxreplace", "GET", "/foo/x?q=1", (), None),
    ("rxreplace", "GET", "/foo/a%20b", (), None),
    ("rxreplace", "GET", "/nomatch", (), None),
    ("rxnamed", "GET", "/alpha/beta", (), None),
    ("rxunclean", "GET", "/foo/x", (), None),
    ("rxbadescape", "GET", "/foo", (), None),
    ("https", "GET", "/path?q=1", (), None),
    ("https", "POST", "/path", (), None),
    ("https", "GET", "/p", (), "https.mw.test:8000"),
    ("httpsport", "GET", "/p", (), None),
    ("httpsport", "POST", "/p", (), None),
    ("https443", "GET", "/p", (), None),
    ("httpsame", "GET", "/p", (), "httpsame.mw.test:8000"),
    ("httpsame", "GET", "/p", (), None),
    ("httpnoport", "GET", "/p", (), "httpnoport.mw.test:8000"),
    ("rxredirect", "GET", "/old/page?x=1", (), None),
    ("rxredirect", "GET", "/old/page", (), "rxredirect.mw.test:8000"),
    ("rxredirect", "GET", "/new/page", (), None),
    ("rxredirectperm", "GET", "/old/abc", (), None),
    ("rxredirectperm", "POST", "/old/abc", (), None),
    ("rxredirectsame", "GET", "/same?q", (), None),
    ("headers", "GET", "/h", (("X-Client", "drop-me"), ("X-Custom", "client")), None),
    ("hosthdr", "GET", "/h", (), None),
    ("hostempty", "GET", "/h", (), None),
    ("hdrorder", "GET", "/h", (), None),
    ("hdrstrip400", "GET", "/a./x", (), None),
    ("hdrstrip400", "GET", "/a/x", (), None),
    ("hdrredirect", "GET", "/r", (), None),
    ("chain", "GET", "/api/x", (), None),
    ("chainrev", "GET", "/api/x", (), None),
    ("inert", "GET", "/i/x", (), None),
    ("strip", "GET", "/foo/a%2Cb", (), None),
    ("add", "GET", "/a%2Cb", (), None),
    ("rxreplace", "GET", "/foo/a%2Cb", (), None),
    ("rxdollar", "GET", "/a%0A", (), None),
    ("rxdollar", "GET", "/a", (), None),
    ("rxdigit", "GET", "/%D9%A3x", (), None),
    ("rxdigit", "GET", "/42x", (), None),
    ("rxfold", "GET", "/%E2%84%AAx", (), None),
    ("rxempty", "GET", "/ab", (), None),
    (
        "cors",
        "OPTIONS",
        "/c",
        (("Origin", "http://o.test"), ("Access-Control-Request-Method", "GET")),
        None,
    ),
    ("cors", "OPTIONS", "/c", (), None),
]

_BY_NAME = {c.name: c for c in CASES}


def _objects() -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for case in CASES:
        for suffix, spec in case.middlewares.items():
            objs.append(
                {
                    "apiVersion": "traefik.io/v1alpha1",
                    "kind": "Middleware",
                    "metadata": {"name": case.full(suffix), "namespace": NAMESPACE},
                    "spec": dict(spec),
                }
            )
        objs.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {"name": f"mw-{case.name}", "namespace": NAMESPACE},
                "spec": {
                    "entryPoints": ["web"],
                    "routes": [
                        {
                            "match": f"Host(`{case.host}`)",
                            "kind": "Rule",
                            "middlewares": [{"name": case.full(s)} for s in case.route],
                            "services": [{"name": BACKEND, "port": 80}],
                        }
                    ],
                },
            }
        )
    return objs


def _all_served(routers: list[dict[str, Any]]) -> bool:
    served = {r["name"] for r in enabled_routers(routers) if "-mw-" in str(r["name"])}
    return all(any(f"-mw-{c.name}-" in name for name in served) for c in CASES)


@pytest.fixture(scope="module")
def middleware_routes(applier: Any, traefik: Any) -> Iterator[None]:
    objs = _objects()
    applier.apply_all(objs)
    try:
        traefik.wait_for_routers(
            _all_served, timeout=30, what=f"Traefik to serve the {len(CASES)} middleware routes"
        )
        yield
    finally:
        applier.delete_all(reversed(objs))


def predict(
    case: Case,
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    host: str,
    version: str | None = None,
) -> Outcome:
    """The model's answer on Traefik ``version``, from the same specs that were applied."""
    parsed = {case.full(s): parse_middleware_spec(spec) for s, spec in case.middlewares.items()}

    def resolve(ref: ChainRef) -> Any:
        return parsed[ref.name]

    chain = flatten([parsed[case.full(s)] for s in case.route], resolve)
    # What the entry point adds before the router (no trusted forwarded headers on the target).
    seen = (*headers, ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", host))
    request = Request(host=host, target=target, headers=seen, method=method)
    return apply_middlewares(chain, request, behaviour_of(version))


def _assert_response_headers(
    response: httpx.Response, expected: tuple[tuple[str, str | None], ...]
) -> None:
    for name, value in expected:
        assert response.headers.get(name) == value, f"response header {name}"


@pytest.mark.usefixtures("middleware_routes")
@pytest.mark.parametrize(
    ("case_name", "method", "path", "headers", "host_header"),
    PROBES,
    ids=[f"{p[0]}-{p[1]}-{p[2]}-{p[4] or ''}" for p in PROBES],
)
def test_traefik_answers_as_the_model_predicts(
    proxy_client: httpx.Client,
    traefik: Any,
    case_name: str,
    method: str,
    path: str,
    headers: tuple[tuple[str, str], ...],
    host_header: str | None,
) -> None:
    case = _BY_NAME[case_name]
    host = host_header or case.host
    # The model of the running release (``--traefik-version``; the pinned one by default).
    expected = predict(case, method, path, headers, host, traefik.version)
    assert not isinstance(expected, Unpredictable), expected
    # A raw target, sent as written (httpx would re-encode it).
    url = httpx.URL(str(proxy_client.base_url).rstrip("/") + path)
    response = proxy_client.request(
        method, url, headers={"Host": host, **dict(headers)}, follow_redirects=False
    )
    if isinstance(expected, Redirect):
        assert (response.status_code, response.headers.get("location")) == (
            expected.status,
            expected.location,
        )
        _assert_response_headers(response, expected.response_headers)
    elif isinstance(expected, Answered):
        assert response.status_code == expected.status, response.text
        with pytest.raises(ValueError, match="whoami"):  # Traefik answered, not the backend
            parse_whoami(response.content, response.headers.get("content-type"))
        _assert_response_headers(response, expected.response_headers)
    else:
        assert isinstance(expected, Forwarded)
        assert response.status_code == 200, response.text
        reply = parse_whoami(response.content, response.headers.get("content-type"))
        assert reply.name == BACKEND
        assert (reply.method, reply.path, reply.host) == (method, expected.target, expected.host)
        for name, values in expected.headers:
            assert reply.header_values(name) == values, f"backend header {name}"
        _assert_response_headers(response, expected.response_headers)
