"""Echo backends: whoami-format answers over raw HTTP/1.x, the process pool, faults and the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

from harness import procs
from harness.backends.echo import (
    BackendInstance,
    BackendPool,
    BackendProcess,
    ListenerSpec,
    _listener_specs,
    cli,
    start_backends,
)
from harness.backends.whoami import parse_whoami
from harness.errors import BackendStartError, ConfigError
from harness.waiting import wait_until

TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------
# A raw HTTP/1.x client: the tests must control every byte that is sent.


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class _Collector:
    parser: httptools.HttpResponseParser | None = None
    responses: list[Response] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.responses.append(
            Response(self.parser.get_status_code(), self.headers, bytes(self.body))
        )


class Conn:
    """One client connection; reads responses with a deadline."""

    def __init__(self, instance: BackendInstance) -> None:
        self.sock = socket.create_connection((instance.host, instance.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._collector = _Collector()
        self._parser = httptools.HttpResponseParser(self._collector)
        self._collector.parser = self._parser
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int) -> list[Response]:
        """The next ``count`` responses (fewer only if the server closed the connection)."""
        got = self._collector.responses
        deadline = time.monotonic() + TIMEOUT
        while len(got) < count and not self.eof:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                break
            self._parser.feed_data(data)
        taken, got[:] = got[:count], got[count:]
        return taken

    def closed_by_server(self) -> bool:
        """True when the server closes the connection without sending anything more."""
        self.sock.settimeout(TIMEOUT)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def get(target: bytes, *extra: bytes, host: bytes = b"cheese.local") -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: " + host, *extra]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def one(instance: BackendInstance, request: bytes) -> Response:
    conn = Conn(instance)
    try:
        conn.send(request)
        (response,) = conn.read(1)
        return response
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[BackendPool]:
    with start_backends({"cheddar": 2, "wensleydale": 1}) as started:
        yield started


@pytest.fixture
def cheddar(pool: BackendPool) -> BackendInstance:
    return pool.instance("cheddar-0")


# ---------------------------------------------------------------------------------------------
# Answers


def test_pool_layout(pool: BackendPool) -> None:
    grouped = pool.by_service()
    assert {s: [i.instance for i in v] for s, v in grouped.items()} == {
        "cheddar": ["cheddar-0", "cheddar-1"],
        "wensleydale": ["wensleydale-0"],
    }
    assert len(pool.processes) == 2  # one per service by default
    assert len({i.port for i in pool.instances}) == 3
    assert all(i.port > 0 and i.host == "127.0.0.1" for i in pool)
    assert pool.instance("cheddar-1").url == f"http://127.0.0.1:{pool.instance('cheddar-1').port}"


@pytest.mark.parametrize(
    "target",
    [
        b"/",
        b"/cheddar",
        b"/cheddar/",
        b"/a%2Fb",
        b"//double//slashes",
        b"/cheddar/../x",
        b"/./dot",
        b"/%41%7e?q=1&r=%20&&x",
        b"/path?",
        b"/last",
    ],
)
def test_target_is_echoed_exactly(pool: BackendPool, target: bytes) -> None:
    for name in ("cheddar-1", "wensleydale-0"):
        instance = pool.instance(name)
        conn = Conn(instance)
        local_host, local_port = conn.sock.getsockname()[:2]
        local = f"{local_host}:{local_port}"
        conn.send(get(target, b"X-Forwarded-Prefix: /cheddar"))
        (response,) = conn.read(1)
        conn.close()
        assert response.status == 200
        assert response.content_type == "text/plain; charset=utf-8"
        assert int(response.headers["content-length"]) == len(response.body)
        reply = parse_whoami(response.body, response.content_type)
        assert reply.path == target.decode()
        assert (reply.name, reply.hostname) == (instance.service, instance.instance)
        assert reply.ips == ("127.0.0.1",)
        assert reply.remote_addr == local
        assert reply.method == "GET"
        assert reply.host == "cheese.local"
        assert reply.header("X-Forwarded-Prefix") == "/cheddar"


def test_headers_are_echoed_like_go(cheddar: BackendInstance) -> None:
    response = one(
        cheddar,
        get(
            b"/h",
            b"x-forwarded-for: 10.0.0.1",
            b"User-Agent: probe/1.0",
            b"X-Multi: one",
            b"accept-encoding: gzip",
            b"x-multi: two",
        ),
    )
    text = response.body.split(b"\r\n")
    assert text[1:3] == [b"Host: cheese.local", b"User-Agent: probe/1.0"]
    assert text[3:7] == [
        b"Accept-Encoding: gzip",
        b"X-Forwarded-For: 10.0.0.1",
        b"X-Multi: one",
        b"X-Multi: two",
    ]
    reply = parse_whoami(response.body)
    assert reply.header_values("x-multi") == ("one", "two")
    assert reply.header("user-agent") == "probe/1.0"
    # No User-Agent sent: Go's Request.Write prints its default one, so do we.
    default = parse_whoami(one(cheddar, get(b"/")).body)
    assert default.header("User-Agent") == "Go-http-client/1.1"


def test_keep_alive_many_requests_on_one_connection(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    remotes = set()
    for n in range(300):
        conn.send(get(b"/k/%d" % n))
        (response,) = conn.read(1)
        assert response.status == 200
        reply = parse_whoami(response.body)
        assert reply.path == f"/k/{n}"
        remotes.add(reply.remote_addr)
    assert len(remotes) == 1  # all on the same connection
    assert "connection" not in response.headers
    conn.close()


def test_pipelined_requests_are_answered_in_order(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    conn.send(b"".join(get(b"/p/%d" % n) for n in range(100)))
    responses = conn.read(100)
    assert [parse_whoami(r.body).path for r in responses] == [f"/p/{n}" for n in range(100)]
    # A request split over many small writes is reassembled.
    request = get(b"/split/" + b"x" * 300, b"X-Long: " + b"v" * 500)
    for start in range(0, len(request), 7):
        conn.send(request[start : start + 7])
    (response,) = conn.read(1)
    reply = parse_whoami(response.body)
    assert reply.path == "/split/" + "x" * 300
    assert reply.header("X-Long") == "v" * 500
    conn.close()


def test_http10(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    conn.send(b"GET /old HTTP/1.0\r\n\r\n")
    (response,) = conn.read(1)
    assert response.status == 200
    reply = parse_whoami(response.body)
    assert (reply.path, reply.host) == ("/old", None)
    assert conn.closed_by_server()
    conn.close()
    # HTTP/1.0 with keep-alive asked for: the answer says keep-alive and the connection stays.
    conn = Conn(cheddar)
    for n in range(3):
        conn.send(b"GET /ka/%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % n)
        (response,) = conn.read(1)
        assert response.headers["connection"] == "keep-alive"
        assert parse_whoami(response.body).path == f"/ka/{n}"
    conn.close()


def test_connection_close_ends_after_the_answer(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    conn.send(get(b"/first", b"Connection: close") + get(b"/never"))
    responses = conn.read(2)
    assert len(responses) == 1
    assert responses[0].headers["connection"] == "close"
    assert parse_whoami(responses[0].body).path == "/first"
    assert conn.eof or conn.closed_by_server()
    conn.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        b"GET /sp ace HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ],
)
def test_bad_request_gets_400_and_close(cheddar: BackendInstance, request_bytes: bytes) -> None:
    conn = Conn(cheddar)
    conn.send(request_bytes)
    (response,) = conn.read(1)
    assert response.status == 400
    assert response.headers["connection"] == "close"
    assert conn.eof or conn.closed_by_server()
    conn.close()


def test_good_request_before_a_bad_one_is_answered(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    conn.send(get(b"/ok") + b"NOT HTTP\r\n\r\n")
    responses = conn.read(2)
    assert [r.status for r in responses] == [200, 400]
    conn.close()


def test_json_at_api_and_on_accept(cheddar: BackendInstance) -> None:
    api = one(cheddar, get(b"/api?x=1", b"X-Forwarded-Prefix: /c"))
    assert api.content_type == "application/json"
    assert api.headers["access-control-allow-origin"] == "*"
    reply = parse_whoami(api.body, api.content_type)
    assert (reply.name, reply.hostname, reply.path, reply.host) == (
        "cheddar",
        "cheddar-0",
        "/api?x=1",
        "cheese.local",
    )
    assert reply.header("x-forwarded-prefix") == "/c"
    # Our extension: any path, when JSON is accepted.
    accepted = one(cheddar, get(b"/any/%2F", b"Accept: text/html, application/json;q=0.9"))
    assert accepted.content_type == "application/json"
    assert parse_whoami(accepted.body).path == "/any/%2F"
    # /api/ is not /api in whoami's mux: text.
    assert one(cheddar, get(b"/api/")).content_type == "text/plain; charset=utf-8"


def test_health_and_head(cheddar: BackendInstance) -> None:
    health = one(cheddar, get(b"/health"))
    assert (health.status, health.body, health.headers["content-length"]) == (200, b"", "0")
    conn = Conn(cheddar)
    conn.send(b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := conn.sock.recv(65536):
        data += chunk
    conn.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 0" not in head  # the length of the body a GET would get
    assert rest == b""


def test_request_bodies_are_read_and_dropped(cheddar: BackendInstance) -> None:
    conn = Conn(cheddar)
    conn.send(
        b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello=world"
        b"PUT /chunk HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n" + get(b"/after")
    )
    post, put, after = (parse_whoami(r.body) for r in conn.read(3))
    assert (post.method, post.path, post.header("Content-Length")) == ("POST", "/form", "11")
    assert (put.method, put.header("Transfer-Encoding")) == ("PUT", "chunked")
    assert after.path == "/after"
    # Expect: 100-continue gets the interim answer before the body is sent.
    conn.send(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    conn.sock.settimeout(TIMEOUT)
    interim = conn.sock.recv(25)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"abc")
    (response,) = conn.read(1)
    assert parse_whoami(response.body).path == "/big"
    conn.close()


# ---------------------------------------------------------------------------------------------
# Processes


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _refused(instance: BackendInstance) -> bool:
    try:
        socket.create_connection((instance.host, instance.port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_leaves_no_process_and_no_listener() -> None:
    pool = start_backends({"gouda": 2, "brie": 1}, processes="single")
    assert len(pool.processes) == 1
    assert {i.instance for i in pool} == {"gouda-0", "gouda-1", "brie-0"}
    pids = [p.pid for p in pool.processes]
    assert one(pool.instance("brie-0"), get(b"/")).status == 200
    pool.stop()
    pool.stop()  # idempotent
    assert all(_gone(pid) for pid in pids)
    assert all(_refused(i) for i in pool)


def test_per_instance_layout() -> None:
    with start_backends({"gouda": 2}, processes="per-instance") as pool:
        assert len(pool.processes) == 2
        assert [p.instances[0].instance for p in pool.processes] == ["gouda-0", "gouda-1"]
        pids = [p.pid for p in pool.processes]
    assert all(_gone(pid) for pid in pids)


def test_child_that_cannot_bind_gives_start_error_with_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BackendStartError) as info:
            BackendProcess.start([ListenerSpec("cheddar", "cheddar-0", "127.0.0.1", port)])
    message = str(info.value)
    assert "exited with code 1" in message
    assert f"cannot listen on 127.0.0.1:{port}" in message


def test_child_that_never_reports_is_stopped_with_start_error() -> None:
    proc = procs.spawn(
        [sys.executable, "-c", "import time; print('warming up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    process = BackendProcess(proc, what="a silent child")
    started = time.monotonic()
    with pytest.raises(
        BackendStartError, match=r"did not report its listeners within 0\.5 s"
    ) as info:
        process.wait_ready(0.5)
    assert time.monotonic() - started < 4.0  # 0.5 s wait plus the SIGTERM stop
    assert "warming up" in str(info.value)
    assert _gone(proc.pid)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"services": {"cheddar": 1}, "host": "10.1.2.3"}, "not a loopback address"),
        ({"services": {"cheddar": 1}, "host": "example.com"}, "not a loopback address"),
        ({"services": {"Cheddar": 1}}, "not a DNS label"),
        ({"services": {"cheddar": 0}}, "positive integer"),
        ({"services": {}}, "at least one service"),
        ({"services": {"cheddar": 1}, "processes": "many"}, "`processes` must be one of"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        start_backends(**kwargs)  # type: ignore[arg-type]


def test_refuse_connections_then_listen_again() -> None:
    with start_backends({"gouda": 2}) as pool:
        down, other = pool.instance("gouda-0"), pool.instance("gouda-1")
        conn = Conn(down)
        conn.send(get(b"/before"))
        assert conn.read(1)[0].status == 200
        started = time.monotonic()
        pool.refuse_connections("gouda-0", 0.6)
        assert _refused(down)
        assert conn.closed_by_server()  # open connections are dropped, as in a crash
        conn.close()
        assert one(other, get(b"/")).status == 200  # the other listener is untouched
        wait_until(lambda: not _refused(down), timeout=TIMEOUT, what="gouda-0 to listen again")
        # Re-opened on the scheduled time, not before (0.1 s slack for timer granularity).
        assert time.monotonic() - started >= 0.5
        assert parse_whoami(one(down, get(b"/after")).body).hostname == "gouda-0"
        # Keeping open connections is possible too.
        kept = Conn(down)
        pool.refuse_connections("gouda-0", 0.3, drop_connections=False)
        assert _refused(down)
        kept.send(get(b"/still"))
        assert parse_whoami(kept.read(1)[0].body).path == "/still"
        kept.close()
        with pytest.raises(ConfigError, match="no backend instance named 'brie-0'"):
            pool.refuse_connections("brie-0", 1.0)
        with pytest.raises(ConfigError, match="seconds"):
            pool.refuse_connections("gouda-1", 0)


# ---------------------------------------------------------------------------------------------
# Command line


def test_cli_runs_until_sigint(tmp_path: Path) -> None:
    log = tmp_path / "backends.log"
    argv = ["-m", "harness", "backends", "cheddar", "wensleydale", "--instances", "2", "--json"]
    proc = procs.spawn([sys.executable, *argv], log_path=log)
    try:

        def listed() -> list[str] | None:
            lines = log.read_text().splitlines()
            rows = [line for line in lines if line.startswith(("cheddar ", "wensleydale "))]
            json_lines = [line for line in lines if line.startswith("{")]
            if proc.poll() is not None:
                raise AssertionError(f"the CLI exited early:\n{log.read_text()}")
            return rows if len(rows) == 4 and json_lines else None

        rows = wait_until(listed, timeout=10.0, what="the CLI to list its listeners")
        assert [row.split()[:2] for row in rows] == [
            ["cheddar", "cheddar-0"],
            ["cheddar", "cheddar-1"],
            ["wensleydale", "wensleydale-0"],
            ["wensleydale", "wensleydale-1"],
        ]
        url = rows[3].split()[2]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        instance = BackendInstance("wensleydale", "wensleydale-1", host, int(port))
        assert parse_whoami(one(instance, get(b"/x")).body).hostname == "wensleydale-1"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        procs.stop(proc)
    output = log.read_text()
    assert "Traceback" not in output
    assert _refused(instance)


def test_consecutive_ports() -> None:
    specs = _listener_specs({"a": 2, "b": 1}, "localhost", 41000)
    assert [(s.instance, s.host, s.port) for s in specs] == [
        ("a-0", "127.0.0.1", 41000),
        ("a-1", "127.0.0.1", 41001),
        ("b-0", "127.0.0.1", 41002),
    ]
    assert {s.port for s in _listener_specs({"a": 2}, "::1")} == {0}


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["cheddar", "--host", "192.0.2.1"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert cli(["cheddar", "--port", "65535", "--instances", "2"]) == 2
    assert "no room for 2 consecutive ports" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli(["cheddar", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
