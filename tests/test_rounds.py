"""Probing in rounds against a loopback server: every probe sent once per round, every answer
recorded; and a proxy that stops answering ends the probing at its deadline with a clear error,
instead of costing a timeout per probe and round."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from harness.checks.probes import generate_probes
from harness.errors import TargetUnreachable
from harness.intent.dialects import load_intent
from harness.plugin.settings import DEFAULT_MANIFESTS
from harness.traffic.rounds import probing_deadline, send_in_rounds

PROBES = generate_probes(
    load_intent([DEFAULT_MANIFESTS / "services.yaml", DEFAULT_MANIFESTS / "cheeses.yaml"])
)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    #: Requests answered before the server stops answering (None: answer all).
    answer_first: int | None = None
    requests = 0
    released = threading.Event()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests += 1
        limit = self.server.answer_first
        if limit is not None and self.server.requests > limit:
            # Accepts, reads, answers nothing: until the test ends (bounded for safety).
            self.server.released.wait(30)
            return
        body = (
            b"Name: cheddar\nHostname: cheddar-0\nGET " + self.path.encode() + b" HTTP/1.1\r\n\r\n"
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.released = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.released.set()
    srv.shutdown()
    srv.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_every_probe_is_sent_once_per_round(server: _Server) -> None:
    run = send_in_rounds(_url(server), PROBES, rounds=3)
    assert server.requests == 3 * len(PROBES)
    for record in run.records.values():
        assert record.sent == 3
        (observation,) = record.observations
        assert observation.status == 200 and observation.backend == "cheddar"


def test_a_proxy_that_stops_answering_ends_probing_at_its_deadline(server: _Server) -> None:
    server.answer_first = 4
    rounds, timeout = 5, 0.2
    allowed = probing_deadline(rounds, len(PROBES), timeout)
    assert allowed == pytest.approx(2 * timeout + rounds * len(PROBES) * 0.05)
    with pytest.raises(TargetUnreachable, match=f"did not finish within {allowed:g} s") as info:
        send_in_rounds(_url(server), PROBES, rounds=rounds, timeout=timeout)
    assert "Has the proxy stopped answering?" in str(info.value)
    # Each unanswered request took a full timeout until the deadline: far fewer were sent
    # than the rounds asked for.
    assert 4 < server.requests < rounds * len(PROBES) / 2
