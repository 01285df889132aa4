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
from harness.traffic.engine import RequestSpec, check_target, run_closed_loop
from harness.traffic.samples import ErrorClass
from harness.traffic.tls import TLSVerify, parse_tls_verify

HOST = "secure.test"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"Name: tls-echo\nHostname: tls-0\nGET {self.path} HTTP/1.1\n".encode()
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
        self.ca.issue_cert(HOST).configure_cert(context)
        self.snis: list[str | None] = []
        context.sni_callback = lambda _sock, name, _ctx: self.snis.append(name)  # type: ignore[assignment,misc,func-returns-value]
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
    assert samples.meta["tls"]["sni"] == HOST
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


def test_an_https_run_has_one_sni(tls_server: TLSServer) -> None:
    with pytest.raises(ConfigError, match="one SNI"):
        run_closed_loop(
            tls_server.url, [RequestSpec(host="a.test"), RequestSpec(host="b.test")], total=2
        )


def test_tls_verify_values(tls_server: TLSServer, tmp_path: Path) -> None:
    assert parse_tls_verify("TRUE", "--proxy-tls-verify") == TLSVerify()
    assert parse_tls_verify("false", "--proxy-tls-verify") == TLSVerify(verify=False)
    assert parse_tls_verify(str(tls_server.ca_file), "x").ca_file == tls_server.ca_file.resolve()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for bad in ("", "maybe", str(junk)):
        with pytest.raises(ConfigError, match="--proxy-tls-verify"):
            parse_tls_verify(bad, "--proxy-tls-verify")
