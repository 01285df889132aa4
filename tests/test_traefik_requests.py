"""harness.traefik.requests: the model of Traefik's path and Host handling, unit-tested, then
proven against the real binary: every probe of a table goes on the wire byte for byte (a raw
socket; httpx would normalise the path) and the status, the backend that answered and the
request line it received must be what the model predicts."""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backends.whoami import parse_whoami
from harness.errors import ConfigError
from harness.targets.local_stack import SYSTEM_NAMESPACE
from harness.traefik.process import (
    LOOPBACK,
    TraefikProcess,
    TraefikSettings,
    enabled_routers,
    free_port,
)
from harness.traefik.requests import (
    CONFIRMED_ON,
    REJECTED,
    ROUTABLE,
    UNPREDICTABLE,
    EdgeRequest,
    EncodedCharacters,
    EntryPointOptions,
    PathMatch,
    at_entry_point,
    canonical_host,
    host_matches,
    path_matches,
    through_router,
    wildcard_deviation,
)
from harness.traefik.versions import behaviour_of
from harness.waiting import wait_until

NAMESPACE = "default"
STRIP = "edges-strip"
BACKEND = {"name": "http"}


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "routing_path", "upstream"),
    [
        ("/p/./x", "/p/x", "/p/x"),
        ("/p/../x", "/x", "/x"),
        ("/x/../p/y", "/p/y", "/p/y"),
        ("/p//x", "/p/x", "/p/x"),
        ("//p/x", "/p/x", "/p/x"),
        ("/p/x/", "/p/x/", "/p/x/"),
        ("/p/x/.", "/p/x", "/p/x"),
        ("/p/x/..", "/p", "/p"),
        ("/p./x", "/p./x", "/p./x"),
        ("/p/%2e/x", "/p/x", "/p/x"),
        ("/p/%2E%2E/x", "/x", "/x"),
        ("/%70/x", "/p/x", "/p/x"),
        ("/p%2fx", "/p%2Fx", "/p%2Fx"),
        ("/p/..%2Fx", "/p/..%2Fx", "/p/..%2Fx"),
        ("/p%5cx", "/p\\x", "/p%5Cx"),
        ("/p/x\\y", "/p/x\\y", "/p/x%5Cy"),
        ("/p%25x", "/p%25x", "/p%25x"),
        ("/p%00x", "/p\x00x", "/p%00x"),
        ("/p?a=1;b=2", "/p", "/p?a=1&b=2"),
        ("/p/ü", "/p/ü", "/p/%C3%BC"),
        ("http://a.wild.test/p", "/p", "/p"),
    ],
)
def test_path_at_the_default_entry_point(target: str, routing_path: str, upstream: str) -> None:
    request = at_entry_point(target, "edge.test")
    assert request.outcome == ROUTABLE, request.reason
    assert (request.routing_path, request.upstream_target) == (routing_path, upstream)


@pytest.mark.parametrize(
    ("target", "host"),
    [("/p%zz", "e.test"), ("/p%2", "e.test"), ("/p#x", "e.test"), ("/p", None), ("/p", "a/b")],
)
def test_go_and_traefik_reject_before_routing(target: str, host: str | None) -> None:
    request = at_entry_point(target, host)
    assert (request.outcome, request.status) == (REJECTED, 400)


@pytest.mark.parametrize("target", ["*", "p/x", "/p\x01", "ftp://h/p", "http://u@h/p"])
def test_forms_not_modeled_are_unpredictable(target: str) -> None:
    request = at_entry_point(target, "e.test")
    assert request.outcome == UNPREDICTABLE and request.reason


def test_a_probe_that_cannot_be_sent_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot be sent"):
        at_entry_point("/a b", "e.test")
    with pytest.raises(ValueError, match="routable"):
        through_router(at_entry_point("/p%zz", "e.test"))


def test_sanitize_path_off_keeps_dot_segments_and_strip_refuses_them() -> None:
    options = EntryPointOptions(sanitize_path=False)
    request = at_entry_point("/api/../foo", "e.test", options)
    assert request.routing_path == "/api/../foo"
    answer = through_router(request, strip_prefixes=["/api"], options=options)
    assert answer.status == 400 and answer.forwarded_prefix == "/api"
    assert at_entry_point("/p/%2e%2e/x", "e.test", options).upstream_target == "/p/../x"


def test_encoded_characters_denied_only_by_a_matched_router() -> None:
    options = EntryPointOptions(encoded_characters=EncodedCharacters({"allowEncodedSlash": False}))
    request = at_entry_point("/p%2fx", "e.test", options)
    assert request.outcome == ROUTABLE  # the 400 comes from the router, after matching
    assert through_router(request, options=options).status == 400
    assert (
        through_router(at_entry_point("/p%5Cx", "e.test", options), options=options).status is None
    )
    assert at_entry_point("/p?x=%2F", "e.test", options).upstream_target == "/p?x=%2F"


def test_entry_point_options_read_and_written_as_static_configuration() -> None:
    block = {"sanitizePath": False, "encodedCharacters": {"allowEncodedHash": False}}
    options = EntryPointOptions.from_static(block)
    assert options.sanitize_path is False
    assert options.encoded_characters is not None
    assert options.encoded_characters.denied() == {"%23"}
    assert EntryPointOptions.from_static(options.to_static()) == options
    assert EntryPointOptions.from_static({}) == EntryPointOptions()
    with pytest.raises(ConfigError, match="allowEncodedSlahs"):
        EntryPointOptions.from_static({"encodedCharacters": {"allowEncodedSlahs": False}})
    with pytest.raises(ConfigError, match=r"http\.sanitizePath"):
        EntryPointOptions.from_static({"sanitizePath": "no"})


@pytest.mark.parametrize(
    ("target", "status", "upstream"),
    [
        ("/api", None, "/"),
        ("/api/foo", None, "/foo"),
        ("/apifoo", None, "/foo"),
        ("/api./foo", 400, None),
        ("/api../foo", 400, None),
        ("/api%2Ffoo", None, "/foo"),
        ("/api/a%2Fb", None, "/a%2Fb"),
        ("/api/..%2Ffoo", None, "/..%2Ffoo"),
    ],
)
def test_strip_prefix(target: str, status: int | None, upstream: str | None) -> None:
    answer = through_router(at_entry_point(target, "e.test"), strip_prefixes=["/api"])
    assert (answer.status, answer.upstream_target) == (status, upstream)


@pytest.mark.parametrize(
    ("expr", "host", "matches"),
    [
        ("edge.test", "EDGE.TEST", True),
        ("edge.test", "edge.test:8080", True),
        ("edge.test", "edge.test.", True),
        ("edge.test", "edge.test..", False),
        ("edge.test.", "edge.test", True),
        ("*.wild.test", "a.wild.test", True),
        ("*.wild.test", "a_b.wild.test", True),
        ("*.wild.test", ".wild.test", True),
        ("*.wild.test", "a.b.wild.test", False),
        ("*.wild.test", "wild.test", False),
        ("*.wild.test", "a.wild.test.:1", True),
        ("127.0.0.1", "127.0.0.1:80", True),
        ("::1", "[::1]", True),
        ("::1", "[::1]:8000", True),
        ("edge.test", "", False),
        (None, "", True),
        ("*", "", True),
    ],
)
def test_host_matcher(expr: str | None, host: str, matches: bool) -> None:
    assert host_matches(expr, canonical_host(host)) is matches


def test_deviations_name_what_differs_from_the_rfc() -> None:
    assert "double-slash-merged" in at_entry_point("/p//x", "e").deviations
    assert "dot-segments-resolved" in at_entry_point("/p/%2e%2e/x", "e").deviations
    assert "encoded-slash-forwarded" in at_entry_point("/p/..%2fx", "e").deviations
    assert "query-semicolon-rewritten" in at_entry_point("/p?a;b", "e").deviations
    assert at_entry_point("/p/x", "e").deviations == ()
    for host in (".wild.test", "*.wild.test", "a_b.wild.test", "-a.wild.test"):
        assert wildcard_deviation("*.wild.test", host) == "wildcard-non-dns-label", host
    assert wildcard_deviation("*.wild.test", "a-1.wild.test") is None
    assert wildcard_deviation("*.wild.test", "a.b.wild.test") is None  # no match at all
    assert wildcard_deviation("edge.test", "edge.test") is None
    assert at_entry_point("/p/x", "e").to_dict()["confirmed_on"] == CONFIRMED_ON


# -- on the real binary -------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeRoute:
    """One route of the applied objects, as the probes' judge reads it."""

    host: str | None
    match: PathMatch
    path: str
    service: str
    strip: tuple[str, ...] = ()


ROUTES = (
    EdgeRoute("edge.test", "prefix", "/p", "stilton"),
    EdgeRoute("edge.test", "exact", "/exact", "cheddar"),
    EdgeRoute("edge.test", "prefix", "/api", "wensleydale", ("/api",)),
    EdgeRoute("*.wild.test", "prefix", "/", "cheddar"),
    EdgeRoute(None, "prefix", "/nohost", "stilton"),
    EdgeRoute("127.0.0.1", "prefix", "/ip", "wensleydale"),
)


def _ingress(name: str, host: str, paths: Sequence[tuple[str, str, str]], **notes: str) -> Any:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "annotations": {f"traefik.ingress.kubernetes.io/{k}": v for k, v in notes.items()},
        },
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": kind,
                                "backend": {"service": {"name": service, "port": BACKEND}},
                            }
                            for path, kind, service in paths
                        ]
                    },
                }
            ]
        },
    }


def _ingress_route(name: str, routes: Sequence[tuple[str, str]], **spec: Any) -> Any:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            **spec,
            "routes": [
                {"kind": "Rule", "match": rule, "services": [{"name": svc, "port": "http"}]}
                for rule, svc in routes
            ],
        },
    }


EDGE_OBJECTS = (
    {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": STRIP, "namespace": NAMESPACE},
        "spec": {"stripPrefix": {"prefixes": ["/api"]}},
    },
    _ingress(
        "edges-paths", "edge.test", [("/p", "Prefix", "stilton"), ("/exact", "Exact", "cheddar")]
    ),
    _ingress(
        "edges-strip",
        "edge.test",
        [("/api", "Prefix", "wensleydale")],
        **{"router.middlewares": f"{NAMESPACE}-{STRIP}@kubernetescrd"},
    ),
    _ingress("edges-wild", "*.wild.test", [("/", "Prefix", "cheddar")]),
    _ingress_route(
        "edges-routes",
        [
            ("PathPrefix(`/nohost`)", "stilton"),
            ("Host(`127.0.0.1`) && PathPrefix(`/ip`)", "wensleydale"),
        ],
        entryPoints=["web"],
    ),
)
EDGE_ROUTERS = 6


@dataclass(frozen=True)
class Observed:
    status: int
    service: str | None
    target: str | None
    host: str | None


def send_raw(port: int, target: str, host: str | None, *, wrap: Any = None) -> Observed:
    """``GET target`` exactly as written (UTF-8), one request per connection."""
    head = f"GET {target} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    data = b""
    with socket.create_connection((LOOPBACK, port), timeout=5) as plain:
        sock = wrap(plain) if wrap else plain
        sock.sendall((head + "Connection: close\r\n\r\n").encode("utf-8"))
        for _ in range(10_000):  # bounded: a reply is a few kB
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    headers, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in headers.lower(), headers
    status = int(headers.split(b" ", 2)[1])
    if status != 200:
        return Observed(status, None, None, None)
    reply = parse_whoami(body)
    return Observed(status, reply.name, reply.path, reply.host)


def predict(
    request: EdgeRequest, options: EntryPointOptions | None = None, version: str | None = None
) -> Observed | None:
    """What the model of Traefik ``version`` says the probe gets on the applied routes; None
    when unpredictable."""
    behaviour = behaviour_of(version)
    if request.outcome == UNPREDICTABLE:
        return None
    if request.outcome == REJECTED:
        return Observed(400, None, None, None)
    matching = [
        r
        for r in ROUTES
        if host_matches(r.host, request.host, behaviour) and path_matches(r.match, r.path, request)
    ]
    assert len(matching) <= 1, f"probe table: {request.target} matches {matching}"
    if not matching:
        return Observed(404, None, None, None)
    (route,) = matching
    answer = through_router(
        request, strip_prefixes=route.strip, options=options, behaviour=behaviour
    )
    if answer.status is not None:
        return Observed(answer.status, None, None, None)
    return Observed(200, route.service, answer.upstream_target, answer.host_header)


@pytest.fixture(scope="module")
def edge_routes(applier: Any, traefik: Any) -> Iterator[None]:
    applier.apply_all(EDGE_OBJECTS)
    traefik.wait_for_routers(
        lambda routers: (
            sum("edges-" in r["name"] for r in enabled_routers(routers)) == EDGE_ROUTERS
        ),
        timeout=30,
        what=f"Traefik to serve the {EDGE_ROUTERS} edge-probe routers",
    )
    yield
    applier.delete_all(reversed(EDGE_OBJECTS))


DEFAULT_PROBES = [
    *(
        ("edge.test", t)
        for t in (
            "/p", "/p/x", "/px", "/P/x", "/p/./x", "/p/../x", "/x/../p/y", "/p./x", "/p//x",
            "//p/x", "/p/x/", "/p/x/.", "/p/x/..", "/p/%2e/x", "/p/%2E%2E/x", "/%70/x",
            "/p%2Fx", "/p%2fx", "/p/a%2Fb", "/p/..%2Fx", "/p%5Cx", "/p%5cx", "/p%25x", "/p%25",
            "/p%zz", "/p%2", "/p#x", "/p?x#y", "/p%23x", "/p%3Fx", "/p%00x", "/p%3bx", "/p/%41",
            "/p?a=1;b=2", "/p?", "/p/(x)", "/p/x\\y", "/p/ü", "/exact", "/exact/", "/exact/.",
            "/exact/x/..", "/EXACT", "/%65xact", "/api", "/api/", "/api/foo", "/api./foo",
            "/api../foo", "/apifoo", "/api%2Ffoo", "/api/a%2Fb", "/api/..%2Ffoo",
            "/api/%2e%2e/foo", "/api//foo", "http://a.wild.test/p",
        )
    ),
    *(
        (h, "/p/x")
        for h in ("EDGE.TEST", "edge.test:8080", "edge.test.", "edge.test..", "Edge.Test.:99")
    ),
    *(
        (h, "/x")
        for h in (
            "a.wild.test", "A.WILD.TEST", "a.b.wild.test", "wild.test", ".wild.test",
            "*.wild.test", "a_b.wild.test", "a.wild.test.",
        )
    ),
    ("127.0.0.1", "/ip"), ("127.0.0.1:80", "/ip"), ("localhost", "/ip"), ("[::1]", "/nohost"),
    ("any.test", "/nohost"), ("", "/nohost"), ("", "/p"), (None, "/nohost"),
    ("edge.test/x", "/p"), ("edge<x", "/p"), ("é.test", "/nohost"), ("a b.test", "/nohost"),
    (" edge.test ", "/p/x"),
]  # fmt: skip


@pytest.mark.stack
@pytest.mark.usefixtures("edge_routes")
@pytest.mark.parametrize(("host", "target"), DEFAULT_PROBES)
def test_default_entry_point_answers_as_modeled(
    traefik: Any, host: str | None, target: str
) -> None:
    request = at_entry_point(target, host)
    # The model of the running release (``--traefik-version``; the pinned one by default).
    expected = predict(request, version=traefik.version)
    assert expected is not None, request.reason
    assert_answer(send_raw(traefik.web_port, target, host), expected, request)


def assert_answer(observed: Observed, expected: Observed, request: EdgeRequest) -> None:
    if expected.status == 200 and expected.host is None:
        # An empty Host: Go's transport sends the backend's own address.
        assert (observed.host or "").startswith("127."), observed
        observed = Observed(observed.status, observed.service, observed.target, None)
    assert observed == expected, request.reason


#: Every option away from its default: the model must follow each one.
TUNED = EntryPointOptions(
    sanitize_path=False,
    encoded_characters=EncodedCharacters(dict.fromkeys(EncodedCharacters().allowed, False)),
    encode_query_semicolons=True,
)


@dataclass(frozen=True)
class TunedTraefik:
    web_port: int
    websecure_port: int


@pytest.fixture(scope="module")
def tuned_traefik(
    local_stack: Any, traefik: Any, edge_routes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TunedTraefik]:
    """A second Traefik on the same Kubernetes API: web with the TUNED options, and a websecure
    entry point (no TLS of its own) for the TLS probes."""
    if traefik.version != CONFIRMED_ON:
        # 3.6.0 refuses the static configuration: "field not found, node: encodedCharacters".
        pytest.skip(f"the tuned entry point is confirmed on Traefik {CONFIRMED_ON} only")
    websecure = free_port()
    settings = TraefikSettings(
        kube_endpoint=local_stack.kubeapi.url,
        binary=traefik.settings.binary,
        extra={
            "entryPoints": {
                "web": {"http": TUNED.to_static()},
                "websecure": {"address": f"{LOOPBACK}:{websecure}"},
            }
        },
    )
    with TraefikProcess(settings, tmp_path_factory.mktemp("tuned")) as tuned:
        tuned.wait_for_routers(
            lambda routers: (
                sum(
                    "edges-" in r["name"] and "web" in r.get("entryPoints", ())
                    for r in enabled_routers(routers)
                )
                == EDGE_ROUTERS
            ),
            timeout=30,
            what=f"the tuned Traefik to serve the {EDGE_ROUTERS} edge-probe routers on web",
        )
        yield TunedTraefik(tuned.web_port, websecure)


@pytest.mark.stack
@pytest.mark.parametrize(("host", "target"), DEFAULT_PROBES)
def test_tuned_entry_point_answers_as_modeled(
    tuned_traefik: TunedTraefik, host: str | None, target: str
) -> None:
    request = at_entry_point(target, host, TUNED)
    expected = predict(request, TUNED)
    assert expected is not None, request.reason
    assert_answer(send_raw(tuned_traefik.web_port, target, host), expected, request)


def test_tuned_options_change_answers() -> None:
    """The tuned run above proves something only if the options change the predictions."""
    changed = [
        probe
        for probe in DEFAULT_PROBES
        if predict(at_entry_point(probe[1], probe[0]))
        != predict(at_entry_point(probe[1], probe[0], TUNED), TUNED)
    ]
    assert len(changed) >= 20, changed


# -- TLS and entry points (what the model's docstring states for the TLS work) -------------------

TRAEFIK_DEFAULT_CN = b"TRAEFIK DEFAULT CERT"


@pytest.fixture(scope="module")
def secret_certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for secret.test (PEM cert + key side by side)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS probes")
    folder = tmp_path_factory.mktemp("cert")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-days", "2",
         "-subj", "/CN=secret.test", "-addext", "subjectAltName=DNS:secret.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def tls_routes(
    applier: Any, tuned_traefik: TunedTraefik, secret_certificate: Path
) -> Iterator[TunedTraefik]:
    def b64(name: str) -> str:
        return base64.b64encode((secret_certificate / name).read_bytes()).decode()

    objects = (
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "edges-cert", "namespace": NAMESPACE},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64("cert.pem"), "tls.key": b64("key.pem")},
        },
        _ingress_route(
            "edges-tls", [("Host(`tls.test`)", "cheddar")], entryPoints=["websecure"], tls={}
        ),
        _ingress_route(
            "edges-tls-secret",
            [("Host(`secret.test`)", "wensleydale")],
            entryPoints=["websecure"],
            tls={"secretName": "edges-cert"},
        ),
    )
    # A local target that verified TLS routes earlier in the session has made its run's
    # certificate Traefik's default (a `default` TLSStore); these tests are about Traefik's own.
    store = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TLSStore",
        "metadata": {"name": "default", "namespace": SYSTEM_NAMESPACE},
    }
    applier.delete(store)
    applier.apply_all(objects)
    yield tuned_traefik
    applier.delete_all(reversed(objects))


def _https(
    port: int, sni: str | None, host: str, target: str = "/", *, ca: Path | None = None
) -> tuple[Observed, bytes]:
    """One HTTPS request; the answer and the certificate Traefik served (DER). With ``ca`` the
    certificate is verified against it (for the SNI), otherwise not at all."""
    context = ssl.create_default_context(cafile=ca)
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    served: list[bytes] = []

    def wrap(sock: socket.socket) -> ssl.SSLSocket:
        tls = context.wrap_socket(sock, server_hostname=sni)
        served.append(tls.getpeercert(binary_form=True) or b"")
        return tls

    return send_raw(port, target, host, wrap=wrap), served[0]


def _wait_for_tls(port: int, host: str) -> None:
    """Until ``host`` is served over HTTPS and an SNI no route names gets Traefik's own default
    certificate (a default store removed by the fixture is gone only after Traefik's next
    reload)."""

    def served() -> bool:
        observed, _ = _https(port, host, host)
        _, der = _https(port, "unnamed.test", host)
        return observed.status == 200 and TRAEFIK_DEFAULT_CN in der

    wait_until(served, timeout=30, what=f"the tuned Traefik to serve https://{host}")


@pytest.mark.stack
def test_tls_route_serves_the_default_certificate_for_every_sni(tls_routes: TunedTraefik) -> None:
    port = tls_routes.websecure_port
    _wait_for_tls(port, "tls.test")
    for sni in ("tls.test", None, "other.test"):
        observed, der = _https(port, sni, "tls.test")
        assert (observed.status, observed.service) == (200, "cheddar")
        assert TRAEFIK_DEFAULT_CN in der


@pytest.mark.stack
def test_secret_certificate_follows_the_sni_and_the_router_the_host(
    tls_routes: TunedTraefik, secret_certificate: Path
) -> None:
    port = tls_routes.websecure_port
    _wait_for_tls(port, "secret.test")
    # Verified against the Secret's certificate: the handshake fails on any other one.
    observed, _ = _https(port, "secret.test", "secret.test", ca=secret_certificate / "cert.pem")
    assert (observed.status, observed.service) == (200, "wensleydale")
    observed, der = _https(port, "tls.test", "secret.test")
    assert (observed.status, observed.service) == (200, "wensleydale")
    assert TRAEFIK_DEFAULT_CN in der
    observed, _ = _https(port, "secret.test", "tls.test", ca=secret_certificate / "cert.pem")
    assert (observed.status, observed.service) == (200, "cheddar")


@pytest.mark.stack
def test_a_route_answers_404_on_the_entry_point_it_is_not_bound_to(
    tls_routes: TunedTraefik,
) -> None:
    _wait_for_tls(tls_routes.websecure_port, "tls.test")
    assert send_raw(tls_routes.web_port, "/", "tls.test").status == 404  # websecure only
    assert send_raw(tls_routes.web_port, "/nohost", "any.test").status == 200
    observed, _ = _https(tls_routes.websecure_port, "any.test", "any.test", "/nohost")
    assert observed.status == 404  # edges-routes is bound to web only
