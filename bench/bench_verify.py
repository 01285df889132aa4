"""Where the time of the default verify goes: the suites on the local target, as ``nox -s verify``
runs them (``python -m harness verify``: harness/suites with its verify.ini), timed from
outside, next to the targets of issue 13
(verify within 150 s on this 2-core machine; a gate, two verifies, within 330 s).

Prints a Markdown table and one JSON line (``{"bench": "verify", ...}``):

- the wall time of each pytest run and the CPU time it and its children took (user + system:
  Traefik, backends, sender processes), the load average before and after (the machine is
  shared: a wall time under load says little, the CPU time more);
- per suite, the time of its tests (setup, call and teardown, from JUnit XML), and what came
  before the first test (collection, the local stack's start) and after the last (the report);
- for the gap suite: how many strategies and runs, the traffic windows they add up to, and the
  traffic by strategy (the strategies run side by side on ``--gap-lanes`` stacks).

    python bench/bench_verify.py [--runs 1] [--gate] [-- PYTEST ARGS...]

``--runs 2`` runs verify twice in a row, as a gate does (each run compares with the one before).
``--gate`` then also runs the gate itself, ``python -m harness gate --from-traefik 3.7.15
--to-traefik 3.7.15`` (the pinned version against itself: both runs, the comparison and the
report), and prints its wall and CPU time next to its 330 s target.
Exit status 0; 2 when pytest could not run the suites at all (no results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.checks.gaps import DEFAULT_LANES
from harness.traefik.process import find_traefik_binary, traefik_version

ROOT = Path(__file__).resolve().parent.parent
#: issue 13: the default verify after installs, and a gate over two versions.
VERIFY_TARGET_S = 150.0
GATE_TARGET_S = 330.0


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def suite_times(junit: Path) -> dict[str, float]:
    """Seconds per suite file (its tests' setup, call and teardown), in run order."""
    out: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit).getroot().iter("testcase"):
        suite = (case.get("classname") or "?").rsplit(".", 1)[-1]
        out[suite] += float(case.get("time") or 0.0)
    return dict(out)


def gap_figures(results: dict[str, Any]) -> dict[str, Any]:
    """Strategies, runs and the traffic windows of the gap suite's checks in results.json."""
    windows: dict[str, float] = {}
    runs = 0
    lags: list[float] = []
    invalid: list[dict[str, Any]] = []
    for check in results.get("checks", []):
        evidence = check.get("evidence") or {}
        for r in (evidence.get("repeats") or []) if check.get("kind") == "gaps" else []:
            sender = r.get("sender") or {}
            if sender.get("lag_p99_ms") is not None:
                lags.append(float(sender["lag_p99_ms"]))
            if not sender.get("valid", True):
                invalid.append(
                    {"strategy": evidence.get("strategy"), "lag_p99_ms": sender.get("lag_p99_ms")}
                )
    for check in results.get("checks", []):
        evidence = check.get("evidence") or {}
        if check.get("kind") != "gaps" or not evidence.get("repeats"):
            continue
        repeats = evidence["repeats"]
        runs += len(repeats)
        windows[str(evidence.get("strategy"))] = sum(float(r.get("span_s") or 0) for r in repeats)
    return {
        "strategies": len(windows),
        "runs": runs,
        "traffic_s": round(sum(windows.values()), 1),
        "traffic_s_by_strategy": {k: round(v, 1) for k, v in windows.items()},
        "invalid_runs": len(invalid),
        # Where the lag limit stands against the runs: the worst p99 lags, and whose they were.
        "lag_p99_ms_worst": [round(lag, 2) for lag in sorted(lags, reverse=True)[:5]],
        "invalid": invalid,
    }


def run_verify(out: Path, extra: list[str]) -> dict[str, Any]:
    """One verify: pytest over the suites, timed; its figures."""
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"  # verify writes it beside the report
    command = [sys.executable, "-m", "harness", "verify", f"--report-dir={out}", "-q", *extra]
    load_before = os.getloadavg()[0]
    cpu0, t0 = _cpu_children(), time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    cpu = _cpu_children() - cpu0
    results_path = out / "results.json"
    if not results_path.exists() or not junit.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(2)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    suites = suite_times(junit)
    tests_s = sum(suites.values())
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "exit_status": proc.returncode,
        "counts": results.get("counts"),
        "suites_s": {k: round(v, 1) for k, v in suites.items()},
        "outside_tests_s": round(wall - tests_s, 1),
        "gaps": gap_figures(results),
        # What did not pass, so a slow or failed run can be told from a fast one that failed.
        "not_passed": [
            f"{c.get('outcome')}: {c.get('nodeid')}: {c.get('summary')}"
            for c in results.get("checks", [])
            if c.get("outcome") in ("failed", "error", "invalid")
        ],
    }


def run_gate(out: Path) -> dict[str, Any]:
    """One upgrade gate of the pinned Traefik (the installed one) to itself, timed from
    outside."""
    pinned = traefik_version(find_traefik_binary())
    command = [
        sys.executable,
        "-m",
        "harness",
        "gate",
        "--from-traefik",
        pinned,
        "--to-traefik",
        pinned,
        "--reports",
        str(out),
    ]
    load_before = os.getloadavg()[0]
    cpu0, t0 = _cpu_children(), time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode >= 2:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    return {
        "command": " ".join(command[1:]),
        "wall_s": round(wall, 1),
        "cpu_s": round(_cpu_children() - cpu0, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "exit_status": proc.returncode,
    }


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| run | wall s (target) | CPU s | load before / after | per suite s | outside tests s "
        "| gap runs (invalid) | gap traffic s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(runs, 1):
        suites = ", ".join(f"{k.removeprefix('test_')} {v:.0f}" for k, v in run["suites_s"].items())
        gaps = run["gaps"]
        lines.append(
            f"| {i} | {run['wall_s']:.0f} ({VERIFY_TARGET_S:.0f}) | {run['cpu_s']:.0f} "
            f"| {run['load_before']:.1f} / {run['load_after']:.1f} | {suites} "
            f"| {run['outside_tests_s']:.0f} | {gaps['runs']} ({gaps['invalid_runs']}) "
            f"| {gaps['traffic_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="verifies in a row (2: a gate)")
    parser.add_argument(
        "--gate", action="store_true", help="also time a gate of the pinned Traefik to itself"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        runs = [run_verify(Path(tmp) / f"run-{i}", args.pytest_args) for i in range(args.runs)]
        gate = run_gate(Path(tmp) / "gate") if args.gate else None
    total = sum(r["wall_s"] for r in runs)
    lanes = next(
        (a.split("=", 1)[1] for a in args.pytest_args if a.startswith("--gap-lanes=")),
        str(DEFAULT_LANES),
    )
    print(table(runs))
    print(
        f"verify: {runs[0]['wall_s']:.0f} s (target {VERIFY_TARGET_S:.0f} s); "
        + (
            f"{args.runs} verifies: {total:.0f} s (a gate's target {GATE_TARGET_S:.0f} s); "
            if args.runs > 1
            else ""
        )
        + f"gap suite on {lanes} stacks side by side"
    )
    if gate is not None:
        print(
            f"gate ({gate['command']}): {gate['wall_s']:.0f} s (target {GATE_TARGET_S:.0f} s), "
            f"CPU {gate['cpu_s']:.0f} s, load {gate['load_before']:.1f} / "
            f"{gate['load_after']:.1f}, exit status {gate['exit_status']}"
        )
    print(
        json.dumps(
            {
                "bench": "verify",
                "target_s": VERIFY_TARGET_S,
                "gate_target_s": GATE_TARGET_S,
                "gap_lanes": lanes,
                "runs": runs,
                "gate": gate,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
