"""The fault proxy itself: each fault does what it says, seen with plain httpx or the engine,
against a real echo backend (client → fault proxy → backend)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from faultproxy import Fault, FaultError, FaultProxy, binomial_tolerance, main

from harness.backends.echo import BackendPool, start_backends
from harness.backends.whoami import WhoamiReply, parse_whoami
from harness.traffic.engine import RequestSpec, run_closed_loop
from harness.waiting import wait_until

HOST = "cheeses.test"


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendPool]:
    with start_backends({"cheddar": 1}) as pool:
        yield pool


@pytest.fixture
def proxy(backend: BackendPool) -> Iterator[FaultProxy]:
    with FaultProxy(backend.instances[0].url) as proxy:
        yield proxy


def get(
    proxy: FaultProxy, path: str = "/x", host: str = HOST, timeout: float = 5.0
) -> httpx.Response:
    return httpx.get(f"{proxy.url}{path}", headers={"Host": host}, timeout=timeout, trust_env=False)


def reply(proxy: FaultProxy, path: str = "/x", host: str = HOST) -> WhoamiReply:
    response = get(proxy, path, host)
    assert response.status_code == 200, response.text
    return parse_whoami(response.content)


def test_without_faults_answers_pass_through(proxy: FaultProxy) -> None:
    answer = reply(proxy, "/a/b?c=1")
    assert (answer.name, answer.path, answer.host) == ("cheddar", "/a/b?c=1", HOST)


def test_refuse_closes_the_listener_for_its_window(proxy: FaultProxy) -> None:
    with httpx.Client(trust_env=False) as client:
        assert client.get(proxy.url).status_code == 200  # a keep-alive connection is open
        proxy.arm(Fault("refuse", duration=3600))
        with pytest.raises(httpx.TransportError):  # reset, or refused when reconnecting
            client.get(proxy.url)
        with pytest.raises(httpx.ConnectError):
            httpx.get(proxy.url, trust_env=False)
    (stats,) = proxy.stats()
    assert stats["applied"] == 1  # the open connection was aborted
    assert stats["began"] is not None and stats["ended"] is None
    proxy.clear()
    assert get(proxy).status_code == 200


def test_refuse_ends_when_its_window_does(proxy: FaultProxy) -> None:
    proxy.arm(Fault("refuse", duration=0.2))
    ended = wait_until(lambda: proxy.stats()[0]["ended"], timeout=10.0, what="the window to end")
    assert ended > proxy.stats()[0]["began"]
    assert get(proxy).status_code == 200


def test_hang_reads_and_never_answers(proxy: FaultProxy) -> None:
    proxy.set_faults([Fault("hang", path_prefix="/hang")])
    with pytest.raises(httpx.ReadTimeout):
        get(proxy, "/hang", timeout=0.5)
    assert reply(proxy, "/other").name == "cheddar"
    assert [(s["matched"], s["applied"]) for s in proxy.stats()] == [(1, 1)]


def test_hang_with_a_window_answers_once_the_window_has_ended(proxy: FaultProxy) -> None:
    armed_at = time.monotonic()
    proxy.arm(Fault("hang", duration=0.5, path_prefix="/hang"))
    response = get(proxy, "/hang/x", timeout=10.0)
    answered = time.monotonic()
    assert parse_whoami(response.content).name == "cheddar"
    # Held until the window's end (one monotonic clock for the machine), then served.
    assert answered >= armed_at + 0.5
    assert [(s["matched"], s["applied"]) for s in proxy.stats()] == [(1, 1)]


def test_slow_answers_after_a_later_request(proxy: FaultProxy) -> None:
    proxy.set_faults([Fault("slow", path_prefix="/slow", delay_s=1.0)])
    order: list[str] = []

    def fetch(path: str) -> None:
        assert get(proxy, path).status_code == 200
        order.append(path)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(fetch, "/slow")
        wait_until(lambda: proxy.stats()[0]["matched"], timeout=5.0, what="the slow request")
        pool.submit(fetch, "/fast").result(timeout=10)
        slow.result(timeout=10)
    assert order == ["/fast", "/slow"]


def test_status_share_is_drawn_per_matching_request(proxy: FaultProxy) -> None:
    share, n = 0.1, 4000
    proxy.set_faults([Fault("status", host=HOST, status=503, share=share, seed=1)])
    samples = run_closed_loop(
        proxy.url, [RequestSpec(path="/", host=HOST)], total=n, concurrency=16
    )
    (stats,) = proxy.stats()
    counts = samples.status_counts()
    assert stats["matched"] == n
    assert counts.get(503, 0) == stats["applied"]
    assert counts.get(200, 0) == n - stats["applied"]
    assert abs(stats["applied"] / n - share) <= binomial_tolerance(share, n)
    # Other hosts are not hit.
    assert get(proxy, host="other.test").status_code == 200


def test_relabel_replaces_or_removes_the_name(proxy: FaultProxy) -> None:
    with proxy.faults(Fault("relabel", name="gouda")):
        assert reply(proxy).name == "gouda"
    with proxy.faults(Fault("relabel", name=None)):
        assert reply(proxy).name is None
    with proxy.faults(Fault("relabel", name="gouda", from_name="wensleydale")):
        assert reply(proxy).name == "cheddar"


def test_rewrite_path_changes_the_reported_path_only(proxy: FaultProxy) -> None:
    with proxy.faults(Fault("rewrite-path", old="/a", new="/v2")):
        answer = reply(proxy, "/a/b")
        assert (answer.path, answer.name) == ("/v2/b", "cheddar")
        assert reply(proxy, "/other").path == "/other"


def test_headers_dropped_and_added_in_the_report(proxy: FaultProxy) -> None:
    with proxy.faults(Fault("add-header", header="X-Forwarded-Prefix", value="/cheddar")):
        assert reply(proxy).header("X-Forwarded-Prefix") == "/cheddar"
    with proxy.faults(Fault("drop-header", header="User-Agent")):
        answer = reply(proxy)
        assert answer.header("User-Agent") is None
        assert answer.header("Accept") is not None


def test_misroute_sends_the_request_elsewhere(proxy: FaultProxy) -> None:
    with proxy.faults(
        Fault("misroute", path_prefix="/w", to_host="stilton.test", old="/w", new="/s")
    ):
        answer = reply(proxy, "/w/x")
        assert (answer.host, answer.path) == ("stilton.test", "/s/x")
        assert reply(proxy, "/x").host == HOST


def test_windows_start_on_the_monotonic_clock(proxy: FaultProxy) -> None:
    proxy.set_faults([Fault("status", start=time.monotonic() + 3600, duration=1.0)])
    assert get(proxy).status_code == 200
    proxy.set_faults([Fault("status", start=time.monotonic() - 10, duration=1.0)])
    assert get(proxy).status_code == 200  # the window is over
    assert [s["matched"] for s in proxy.stats()] == [0]


def test_armed_over_http_by_a_command(
    proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    fault = {"kind": "status", "status": 502, "duration": 3600}
    assert main(["arm", proxy.control_url, json.dumps(fault)]) == 0
    assert get(proxy).status_code == 502
    assert main(["arm", proxy.control_url, json.dumps({"kind": "explode"})]) == 2
    assert "fault kind 'explode'" in capsys.readouterr().err
    clock = httpx.get(f"{proxy.control_url}/clock", trust_env=False).json()["monotonic"]
    (stats,) = httpx.get(f"{proxy.control_url}/faults", trust_env=False).json()
    assert stats["fault"]["start"] <= clock < stats["fault"]["start"] + 3600
    assert httpx.delete(f"{proxy.control_url}/faults", trust_env=False).status_code == 200
    assert get(proxy).status_code == 200


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        ({"kind": "refuse"}, "duration"),
        ({"kind": "refuse", "duration": 1, "host": "a"}, "host"),
        ({"kind": "status", "share": 1.5}, "share"),
        ({"kind": "slow"}, "delay_s"),
        ({"kind": "rewrite-path", "old": "x"}, "old"),
        ({"kind": "add-header"}, "header"),
        ({"kind": "status", "colour": "red"}, "colour"),
    ],
)
def test_bad_faults_are_refused_naming_the_field(fault: dict[str, object], field: str) -> None:
    with pytest.raises(FaultError, match=field):
        Fault.from_dict(fault)


def test_only_loopback_upstreams() -> None:
    with pytest.raises(FaultError, match="loopback"):
        FaultProxy("http://192.0.2.1:80")


def test_refuse_records_when_the_earliest_dropped_request_arrived(proxy: FaultProxy) -> None:
    proxy.set_faults([Fault("slow", path_prefix="/slow", delay_s=30.0)])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(get, proxy, "/slow")
        wait_until(lambda: proxy.stats()[0]["matched"], timeout=5.0, what="the slow request")
        proxy.arm(Fault("refuse", duration=3600))
        with pytest.raises(httpx.TransportError):
            waiting.result(timeout=10)
    refuse = proxy.stats()[1]
    assert refuse["dropped_from"] is not None
    assert refuse["dropped_from"] < refuse["began"]
