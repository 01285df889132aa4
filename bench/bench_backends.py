"""Throughput of one echo backend process, measured with wrk (HTTP/1.1 keep-alive).

The traffic phases need backends that are never the bottleneck: the target is at least
20,000 requests/s per backend process. This starts one backend process (one listener), checks
that it answers whoami text, runs ``wrk -t1 -c50 -d5s --latency`` against it (bounded), and
prints a human summary plus one JSON line (``{"bench": "backends", ...}``) for the bench session.

    python bench/bench_backends.py [--duration 5] [--connections 50] [--proxied-headers]
                                   [--json-mode] [--min-rps 20000]

``--proxied-headers`` adds the headers Traefik adds on its way to a backend, so the figure is
the one behind a proxy; ``--json-mode`` asks for the JSON form. Exit status 1 when the rate is
below ``--min-rps`` (0 disables the check), 2 when wrk is missing or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from harness import procs
from harness.backends.echo import start_backends
from harness.backends.whoami import parse_whoami

# What Traefik 3 sends to a backend besides Host and the client's own headers.
PROXIED_HEADERS = (
    "User-Agent: wrk",
    "Accept-Encoding: gzip",
    "X-Forwarded-For: 127.0.0.1",
    "X-Forwarded-Host: cheeses.local",
    "X-Forwarded-Port: 8000",
    "X-Forwarded-Prefix: /cheddar",
    "X-Forwarded-Proto: http",
    "X-Forwarded-Server: traefik-bench",
    "X-Real-Ip: 127.0.0.1",
)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, see proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parse_wrk(output: str) -> dict[str, float | int | None]:
    """Requests/s, latency percentiles (ms) and error counts from wrk's text output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    result: dict[str, float | int | None] = {
        "requests_per_s": float(rps.group(1)) if rps else None,
        "requests": int(total.group(1)) if total else None,
    }
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        result[f"latency_p{pct}_ms"] = (
            round(float(found.group(1)) * _UNITS[found.group(2)], 4) if found else None
        )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = sum(int(g) for g in errors.groups()) if errors else 0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--path", default="/", help="request target (default /)")
    parser.add_argument("--proxied-headers", action="store_true", help="send Traefik's headers")
    parser.add_argument("--json-mode", action="store_true", help="ask for the JSON form")
    parser.add_argument("--min-rps", type=float, default=20000.0, help="fail below (default 20000)")
    ns = parser.parse_args(argv)
    if not 1 <= ns.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed; on Debian: apt-get install -y wrk", file=sys.stderr)
        return 2
    headers = list(PROXIED_HEADERS) if ns.proxied_headers else []
    if ns.json_mode:
        headers.append("Accept: application/json")

    with start_backends({"cheddar": 1}) as pool:
        instance = pool.instances[0]
        backend_pid = pool.processes[0].pid
        url = instance.url + ns.path
        # A benchmark of a server that answers garbage is worthless: check one answer first.
        request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no env proxies
        with direct.open(request, timeout=5) as response:
            reply = parse_whoami(response.read(), response.headers.get("Content-Type"))
        if reply.hostname != instance.instance:
            print(f"unexpected answer from the backend: {reply}", file=sys.stderr)
            return 2

        argv_wrk = [wrk, f"-t{ns.threads}", f"-c{ns.connections}", f"-d{ns.duration}s"]
        argv_wrk += ["--latency", "--timeout", "5s"]
        for header in headers:
            argv_wrk += ["-H", header]
        argv_wrk.append(url)
        cpu_before = _cpu_seconds(backend_pid)
        proc = procs.spawn(argv_wrk, stdout=subprocess.PIPE)
        try:
            out, _ = proc.communicate(timeout=ns.duration + 30)
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            print("wrk did not finish in time", file=sys.stderr)
            return 2
        cpu_after = _cpu_seconds(backend_pid)
        procs.stop(proc)
    output = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        print(f"wrk failed with exit code {proc.returncode}:\n{output}", file=sys.stderr)
        return 2

    summary: dict[str, object] = {
        "bench": "backends",
        "tool": "wrk",
        "target": "echo backend (1 process, 1 listener)",
        "threads": ns.threads,
        "connections": ns.connections,
        "duration_s": ns.duration,
        "proxied_headers": ns.proxied_headers,
        "json_mode": ns.json_mode,
        **_parse_wrk(output),
    }
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 3)
    summary["backend_cpu_s"] = cpu
    rps = summary["requests_per_s"]
    print(output.rstrip())
    if not isinstance(rps, float):
        print("could not read Requests/sec from wrk's output", file=sys.stderr)
        return 2
    per_cpu = f", {rps * ns.duration / cpu:,.0f} per backend CPU-second" if cpu else ""
    print(f"\necho backend: {rps:,.0f} requests/s{per_cpu}")
    print(json.dumps(summary))
    if ns.min_rps and rps < ns.min_rps:
        print(f"below the target of {ns.min_rps:,.0f} requests/s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
