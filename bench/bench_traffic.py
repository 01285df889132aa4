"""The traffic engine against ``wrk`` on the same route through the local Traefik, same run.

The engine must reach at least 0.8 of wrk's rate (on 2 cores the client competes with Traefik
for CPU, so the engine's CPU per request is what decides) and keep at most 64 bytes per
recorded request. This starts the local stack (Traefik, local Kubernetes API, one ``cheddar``
backend), routes ``bench.test/cheddar`` to it with an Ingress, then for each round runs
``wrk -t1 -c64 -d5s`` and the engine (same connections, URL, Host header, and as many requests
as wrk made) back to back, alternating which goes first. Then it measures memory per recorded
request (column bytes, and the traced peak of a whole run) and the open-loop sender (achieved
rate and p99 sender lag at 2,000/s, and the highest rate that holds with p99 lag <= 5 ms).

    python bench/bench_traffic.py [--duration 5] [--connections 64] [--rounds 2]
                                  [--url http://127.0.0.1:PORT --host H --path P]
                                  [--https] [--skip-open-loop] [--min-ratio 0.8]

``--url`` measures against a proxy that is already running instead of the local stack.
``--https`` routes bench.test as a TLS router and measures both over HTTPS on websecure (the
engine with SNI bench.test, checking the generated certificate; wrk does not check it).
Prints a human summary and one JSON line (``{"bench": "traffic", ...}``). Exit status 1 when
the median ratio is below ``--min-ratio`` or memory is above 64 bytes per request, 2 when wrk
is missing or something fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness import procs
from harness.backends.whoami import parse_whoami
from harness.traffic.addresses import LOOPBACK_ONLY_ENV
from harness.traffic.engine import RequestSpec, run_closed_loop, run_open_loop
from harness.traffic.tls import TLSVerify

HOST = "bench.test"
PATH = "/cheddar/bench"
BYTES_PER_REQUEST_BUDGET = 64
LAG_BUDGET_S = 0.005


@dataclass
class Route:
    url: str
    host: str
    path: str
    traefik_pid: int | None
    tls: TLSVerify | None = None


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ingress(https: bool) -> dict[str, Any]:
    tls = {"traefik.ingress.kubernetes.io/router.tls": "true"} if https else {}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "bench", "namespace": "default", "annotations": tls},
        "spec": {
            "rules": [
                {
                    "host": HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/cheddar",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "cheddar", "port": {"name": "http"}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }


@contextmanager
def local_route(https: bool = False) -> Iterator[Route]:
    """The local stack with bench.test/cheddar routed to one cheddar backend (over HTTPS on
    websecure, with the stack's generated certificate, when ``https``)."""
    from harness.targets.local_stack import LocalStack, LocalStackOptions

    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as workdir:
        stack = LocalStack(
            LocalStackOptions(services={"cheddar": 1}, traefik_log_level="ERROR"), Path(workdir)
        )
        with stack:
            assert stack.applier is not None and stack.traefik is not None
            assert stack.certificates is not None
            if https:
                stack.publish_certificate([HOST])
            stack.applier.apply(_ingress(https))
            stack.traefik.wait_for_routers(
                lambda routers: any(HOST in str(r.get("rule", "")) for r in routers),
                timeout=30,
                what=f"Traefik to route {HOST}",
            )
            if https:
                url = stack.traefik.entry_url("websecure", https=True)
                yield Route(url, HOST, PATH, stack.traefik.pid, stack.certificates.verify)
            else:
                yield Route(stack.proxy_url, HOST, PATH, stack.traefik.pid)


@contextmanager
def given_route(url: str, host: str, path: str) -> Iterator[Route]:
    """A proxy that is already running (its CPU is not measured)."""
    yield Route(url, host, path, None)


def check_route(route: Route) -> str:
    """One request through the route must be answered by a whoami backend; its name."""
    verify = route.tls.context() if route.tls else True
    with httpx.Client(timeout=5, trust_env=False, verify=verify) as client:
        response = client.get(
            route.url + route.path,
            headers={"Host": route.host},
            extensions={"sni_hostname": route.host} if route.tls else {},
        )
    reply = parse_whoami(response.content, response.headers.get("content-type"))
    if response.status_code != 200:
        raise RuntimeError(f"{route.host}{route.path} answered {response.status_code}")
    return reply.name or reply.hostname


def run_wrk(route: Route, duration: int, connections: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    assert wrk is not None
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    argv += ["-H", f"Host: {route.host}", route.url + route.path]
    traefik_before = _cpu_seconds(route.traefik_pid)
    cpu_before = _children_cpu()
    proc = procs.spawn(argv, stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    finally:
        procs.stop(proc)
    text = out.decode("utf-8", "replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if proc.returncode != 0 or rps is None or total is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    requests = int(total.group(1))
    result = {
        "requests_per_s": float(rps.group(1)),
        "requests": requests,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "client_cpu_us_per_request": (_children_cpu() - cpu_before) / requests * 1e6,
    }
    traefik_after = _cpu_seconds(route.traefik_pid)
    if traefik_before is not None and traefik_after is not None:
        result["traefik_cpu_us_per_request"] = (traefik_after - traefik_before) / requests * 1e6
    return result


def run_engine(route: Route, total: int, connections: int) -> dict[str, Any]:
    spec = RequestSpec(path=route.path, host=route.host)
    traefik_before = _cpu_seconds(route.traefik_pid)
    cpu_before = _own_cpu()
    samples = run_closed_loop(
        route.url,
        [spec],
        total=total,
        concurrency=connections,
        deadline=total / 1000 + 30,
        tls=route.tls,
    )
    cpu = _own_cpu() - cpu_before
    summary = samples.to_dict()
    result = {
        "requests_per_s": samples.rate(),
        "requests": len(samples),
        "responses": summary["responses"],
        "errors": {k: v for k, v in summary["errors"].items() if k != "none" and v},
        "by_backend": summary["by_backend"],
        "client_cpu_us_per_request": cpu / len(samples) * 1e6,
        "bytes_per_request": samples.nbytes / len(samples),
        "latency_p50_ms": (summary["latency_s"]["p50"] or 0) * 1e3,
        "latency_p99_ms": (summary["latency_s"]["p99"] or 0) * 1e3,
    }
    traefik_after = _cpu_seconds(route.traefik_pid)
    if traefik_before is not None and traefik_after is not None:
        result["traefik_cpu_us_per_request"] = (traefik_after - traefik_before) / total * 1e6
    return result


def measure_memory(route: Route, total: int, connections: int) -> dict[str, float]:
    """Peak memory the engine allocates for a whole run (numpy columns included), per request."""
    spec = RequestSpec(path=route.path, host=route.host)
    tracemalloc.start()
    try:
        samples = run_closed_loop(
            route.url,
            [spec],
            total=total,
            concurrency=connections,
            deadline=total / 500 + 30,
            tls=route.tls,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "requests": total,
        "column_bytes_per_request": samples.nbytes / total,
        "peak_traced_bytes_per_request": peak / total,
    }


def measure_open_loop(
    route: Route, rates: list[float], seconds: float, *, keepalive: bool = True
) -> list[dict[str, Any]]:
    """Open-loop runs at rising rates until one does not hold (p99 sender lag above 5 ms, a
    request without a response, or less than 98% of the rate achieved)."""
    spec = RequestSpec(path=route.path, host=route.host)
    out = []
    for rate in rates:
        samples = run_open_loop(
            route.url,
            [spec],
            rate=rate,
            duration=seconds,
            timeout=2.0,
            keepalive=keepalive,
            tls=route.tls,
        )
        lag = samples.lag[~np.isnan(samples.sent)]
        late = (samples.sent - samples.scheduled)[~np.isnan(samples.sent)]
        row = {
            "rate": rate,
            "keepalive": keepalive,
            "achieved_per_s": samples.rate(),
            "responses": int(samples.ok.sum()),
            "requests": len(samples),
            "lag_p99_ms": float(np.quantile(lag, 0.99)) * 1e3 if lag.size else None,
            "sent_late_p99_ms": float(np.quantile(late, 0.99)) * 1e3 if late.size else None,
            "connections": samples.meta["connections_opened"],
        }
        row["holds"] = bool(
            row["responses"] == len(samples)
            and row["achieved_per_s"] >= 0.98 * rate
            and row["lag_p99_ms"] is not None
            and row["lag_p99_ms"] <= LAG_BUDGET_S * 1e3
        )
        out.append(row)
        mode = "keep-alive" if keepalive else "new connection per request"
        print(
            f"  open loop, {mode}, {rate:>7,.0f}/s: achieved {row['achieved_per_s']:,.0f}/s, "
            f"p99 sender lag {row['lag_p99_ms']:.2f} ms, p99 sent late "
            f"{row['sent_late_p99_ms']:.2f} ms, {row['connections']} connections"
            + ("" if row["holds"] else "  (does not hold)"),
            flush=True,
        )
        if not row["holds"] and rate > 2000:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    # The harness's own benchmarks send traffic to this machine only.
    os.environ.setdefault(LOOPBACK_ONLY_ENV, "1")
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="connections (default 64)")
    parser.add_argument("--rounds", type=int, default=2, help="wrk/engine pairs (default 2)")
    parser.add_argument("--url", help="an already running proxy (loopback) instead of the stack")
    parser.add_argument("--host", default=HOST, help=f"Host header with --url (default {HOST})")
    parser.add_argument("--path", default=PATH, help=f"path with --url (default {PATH})")
    parser.add_argument("--https", action="store_true", help="over HTTPS on websecure")
    parser.add_argument("--skip-open-loop", action="store_true", help="skip the open-loop part")
    parser.add_argument("--min-ratio", type=float, default=0.8, help="fail below (default 0.8)")
    ns = parser.parse_args(argv)
    if not 1 <= ns.duration <= 60:
        parser.error("--duration must be between 1 and 60 seconds")
    if not 1 <= ns.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")
    if shutil.which("wrk") is None:
        print("wrk is not installed; on Debian: apt-get install -y wrk", file=sys.stderr)
        return 2

    with given_route(ns.url, ns.host, ns.path) if ns.url else local_route(ns.https) as route:
        backend = check_route(route)
        print(f"route: Host {route.host} {route.url}{route.path} -> {backend}", flush=True)
        run_engine(route, 2000, ns.connections)  # warm up Traefik's connections to the backend
        rounds = []
        wrk_requests = 0
        for i in range(ns.rounds):
            # Alternate the order so that neither side always gets the warmer (or busier) slot.
            # The engine sends as many requests as wrk made in its last run: the same duration.
            wrk_first = i % 2 == 0
            if wrk_first:
                wrk = run_wrk(route, ns.duration, ns.connections)
                wrk_requests = wrk["requests"]
            engine = run_engine(route, max(1000, wrk_requests), ns.connections)
            if not wrk_first:
                wrk = run_wrk(route, ns.duration, ns.connections)
            ratio = engine["requests_per_s"] / wrk["requests_per_s"]
            order = "wrk, engine" if wrk_first else "engine, wrk"
            rounds.append({"order": order, "wrk": wrk, "engine": engine, "ratio": ratio})
            print(
                f"round {i + 1} ({rounds[-1]['order']}): wrk {wrk['requests_per_s']:,.0f}/s, "
                f"engine {engine['requests_per_s']:,.0f}/s, ratio {ratio:.2f}; client CPU per "
                f"request: wrk {wrk['client_cpu_us_per_request']:.1f} us, engine "
                f"{engine['client_cpu_us_per_request']:.1f} us",
                flush=True,
            )
        memory = measure_memory(route, 100_000, ns.connections)
        print(
            f"memory: {memory['column_bytes_per_request']:.1f} bytes/request in columns, "
            f"{memory['peak_traced_bytes_per_request']:.1f} bytes/request traced peak "
            f"({memory['requests']:,} requests)",
            flush=True,
        )
        open_loop: list[dict[str, Any]] = []
        if not ns.skip_open_loop:
            open_loop = measure_open_loop(
                route, [2000.0, 4000.0, 8000.0, 12000.0, 16000.0, 20000.0], 3.0
            )
            open_loop += measure_open_loop(route, [2000.0], 3.0, keepalive=False)

    ratio = statistics.median(r["ratio"] for r in rounds)
    held = [r["rate"] for r in open_loop if r["holds"] and r["keepalive"]]
    summary = {
        "bench": "traffic",
        "target": "local stack" if not ns.url else ns.url,
        "https": bool(route.tls),
        "connections": ns.connections,
        "duration_s": ns.duration,
        "wrk_requests_per_s": statistics.median(r["wrk"]["requests_per_s"] for r in rounds),
        "engine_requests_per_s": statistics.median(r["engine"]["requests_per_s"] for r in rounds),
        "ratio": ratio,
        "bytes_per_request": memory["column_bytes_per_request"],
        "peak_bytes_per_request": memory["peak_traced_bytes_per_request"],
        "open_loop_max_rate_held": max(held) if held else None,
        "rounds": rounds,
        "open_loop": open_loop,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(
        f"\nwrk {summary['wrk_requests_per_s']:,.0f}/s, engine "
        f"{summary['engine_requests_per_s']:,.0f}/s, ratio {ratio:.2f} (median of "
        f"{len(rounds)}), {memory['column_bytes_per_request']:.0f} bytes per recorded request"
    )
    print(json.dumps(summary))
    failed = False
    if ratio < ns.min_ratio:
        print(f"ratio {ratio:.2f} is below {ns.min_ratio}", file=sys.stderr)
        failed = True
    if memory["peak_traced_bytes_per_request"] > BYTES_PER_REQUEST_BUDGET:
        print(f"memory above {BYTES_PER_REQUEST_BUDGET} bytes per request", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
