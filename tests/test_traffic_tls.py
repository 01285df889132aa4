"""The bulk engine over HTTPS: to a local TLS server, with SNI = the requests' Host and the
certificate checked (a CA file, or not at all)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from harness.errors import ConfigError, TargetUnreachable
from harness.traffic.engine import RequestSpec, check_target, run_closed_loop, run_open_loop
from harness.traffic.samples import ErrorClass, Samples
from harness.traffic.tls import TLSVerify, parse_tls_verify

HOST = "secure.test"
OTHER_HOST = "other-secure.test"
#: The SNI each server-side TLS connection was opened with, by the socket.
_SNI_OF: dict[int, str | None] = {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        # Hostname: the connection's SNI, and the Host it carried, so a test can pair them.
        sni = _SNI_OF.get(id(self.connection))
        host = self.headers.get("Host")
        body = f"Name: tls-echo\nHostname: {sni}|{host}\nGET {self.path} HTTP/1.1\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class TLSServer:
    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem.bytes())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST, OTHER_HOST).configure_cert(context)
        self.snis: list[str | None] = []

        def on_sni(sock: ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
            self.snis.append(name)
            _SNI_OF[id(sock)] = name

        context.sni_callback = on_sni  # type: ignore[assignment]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    server = TLSServer(tmp_path_factory.mktemp("tls"))
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(timeout=5)


def test_https_with_the_servers_ca_answers_every_request(tls_server: TLSServer) -> None:
    samples = run_closed_loop(
        tls_server.url,
        [RequestSpec(path="/x", host=HOST)],
        total=200,
        concurrency=4,
        tls=TLSVerify(ca_file=tls_server.ca_file),
    )
    assert (samples.error == ErrorClass.NONE).all()
    assert set(samples.backend_names[i] for i in samples.backend) == {"tls-echo"}
    assert samples.meta["tls"]["sni"] == [HOST]
    assert HOST in tls_server.snis and set(tls_server.snis) == {HOST}


def test_a_certificate_not_for_the_sni_gets_no_answer(tls_server: TLSServer) -> None:
    checked = TLSVerify(ca_file=tls_server.ca_file)
    samples = run_closed_loop(
        tls_server.url, [RequestSpec(host="other.test")], total=5, concurrency=1, tls=checked
    )
    assert (samples.status == 0).all()
    assert (samples.error != ErrorClass.NONE).all()
    with pytest.raises(TargetUnreachable):
        check_target(tls_server.url, RequestSpec(host="other.test"), tls=checked)
    # Verification off (a self-signed staging proxy): answered.
    assert check_target(tls_server.url, RequestSpec(host="other.test"), tls=TLSVerify(False)) == 200


def test_system_cas_do_not_trust_a_private_ca(tls_server: TLSServer) -> None:
    with pytest.raises(TargetUnreachable):
        check_target(tls_server.url, RequestSpec(host=HOST))


def _sni_and_host_of_each_answer(samples: Samples) -> list[tuple[str, str]]:
    pairs = [samples.instance_names[i].split("|") for i in samples.instance]
    return [(sni, host) for sni, host in pairs]


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_an_https_run_to_two_hosts_sends_each_on_a_connection_for_its_host(
    tls_server: TLSServer, mode: str
) -> None:
    """A gap run over HTTPS sends to every host of the manifests at once: each request goes on
    a connection whose SNI (the name its certificate was checked for) is its Host. Two
    connections at most in the open loop: a free one for the other host makes room."""
    specs = [RequestSpec(path="/a", host=HOST), RequestSpec(path="/b", host=OTHER_HOST)]
    tls = TLSVerify(ca_file=tls_server.ca_file)
    if mode == "closed":
        samples = run_closed_loop(tls_server.url, specs, total=200, concurrency=3, tls=tls)
    else:
        samples = run_open_loop(
            tls_server.url, specs, rate=200, total=200, max_connections=2, timeout=5, tls=tls
        )
    assert (samples.error == ErrorClass.NONE).all(), samples.error
    assert samples.meta["tls"]["sni"] == [HOST, OTHER_HOST]
    pairs = _sni_and_host_of_each_answer(samples)
    assert len(pairs) == 200 and all(sni == host for sni, host in pairs), set(pairs)
    assert {host for _, host in pairs} == {HOST, OTHER_HOST}


def test_tls_verify_values(tls_server: TLSServer, tmp_path: Path) -> None:
    assert parse_tls_verify("TRUE", "--proxy-tls-verify") == TLSVerify()
    assert parse_tls_verify("false", "--proxy-tls-verify") == TLSVerify(verify=False)
    assert parse_tls_verify(str(tls_server.ca_file), "x").ca_file == tls_server.ca_file.resolve()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for bad in ("", "maybe", str(junk)):
        with pytest.raises(ConfigError, match="--proxy-tls-verify"):
            parse_tls_verify(bad, "--proxy-tls-verify")
