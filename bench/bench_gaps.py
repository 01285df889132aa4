"""What each way of applying a change does to traffic through the local Traefik: the README table.

Starts the local stack (the tutorial's Services, one instance each), takes the tutorial's
re-registration route (``cheeses.minikube/cheddar``, moved from cheddar to wensleydale) and runs
every apply strategy (:mod:`harness.checks.strategies`) ``--repeats`` times under open-loop traffic
at ``--rate``, each change at another phase of Traefik's configuration throttle, as
``harness/suites/test_apply_gaps.py`` does; one strategy at a time, or ``--lanes N`` of them side
by side on stacks of their own (the suite's way: compare the two to see that lanes do not change
the figures). Prints a Markdown table (failed requests and gap, median and
max; convergence median; hitless in how many runs), where a run's time goes (mean seconds per
run by stage and strategy, and how many runs applied a reference configuration of their own:
``--new-references`` makes every run apply one, the way before the previous run's last
configuration was reused) and one JSON line (``{"bench": "gaps", ...}``).

    python bench/bench_gaps.py [--repeats 5] [--rate 2000] [--strategies patch,replace]
                               [--lanes 1] [--new-references] [--json-out gaps.json]

Exit status 1 when a run was invalid (the sender lagged; runs are not made again), 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.checks.gaps import DEFAULT_LANES, DEFAULT_MAX_LAG_S, GapOptions, summarize_repeats
from harness.checks.strategies import (
    DEFAULT_BUDGETS,
    LOCAL_STRATEGIES,
    find_subject,
    lane_targets,
    measure_strategies,
    not_applicable,
)
from harness.intent.dialects import load_scenarios
from harness.plugin.settings import DEFAULT_MANIFESTS
from harness.targets.local_stack import LocalStackOptions
from harness.traefik.process import find_traefik_binary, traefik_version
from harness.traffic.addresses import LOOPBACK_ONLY_ENV


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The README table: one row per strategy."""
    lines = [
        "| strategy | failed requests median / max | gap ms median / max | convergence ms "
        "median (min-max) | hitless | failures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        dist = row["distribution"]
        runs, hitless = dist["runs"], dist["hitless_runs"]
        verdict = "yes" if hitless == runs else ("no" if hitless == 0 else f"{hitless}/{runs} runs")
        classes = ", ".join(f"{k}" for k in dist["failed_by_class_total"]) or "none"
        conv = dist["convergence_ms"]
        convergence = (
            f"{_fmt(conv['median'])} ({_fmt(conv['min'])}-{_fmt(conv['max'])})"
            if conv["median"] is not None
            else "never"
        )
        if conv["missing"]:
            answered = runs - conv["missing"]
            convergence += f"; new answered in {answered}/{runs} runs"
        lines.append(
            f"| `{row['strategy']}`: {row['title']} "
            f"| {_fmt(dist['failed']['median'])} / {_fmt(dist['failed']['max'])} "
            f"| {_fmt(dist['gap_ms']['median'])} / {_fmt(dist['gap_ms']['max'])} "
            f"| {convergence} | {verdict} | {classes} |"
        )
    return "\n".join(lines)


#: The stages of one run, in the order they happen (harness.checks.strategies.RunStages).
STAGES = (
    "prepare",
    "reference",
    "preflight",
    "phase wait",
    "sender start",
    "traffic",
    "sender stop",
    "analyze",
    "finish",
)


def stage_table(rows: list[dict[str, Any]]) -> str:
    """Where a run's time goes: mean seconds per run by stage and strategy, the references
    applied (the others reused the previous run's last configuration) and the wall time."""
    lines = [
        "| strategy | runs | references applied | "
        + " | ".join(STAGES)
        + " | per run | waiting (not traffic) |",
        "| --- " * (len(STAGES) + 5) + "|",
    ]
    totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    runs_all = references_all = 0
    for row in rows:
        timings = row["timings"]
        runs = len(timings)
        if not runs:
            continue
        sums = {k: sum(t["seconds"].get(k, 0.0) for t in timings) for k in STAGES}
        references = sum(1 for t in timings if not t["reused_reference"])
        for k in STAGES:
            totals[k] += sums[k]
        runs_all += runs
        references_all += references
        lines.append(_stage_row(row["strategy"], runs, references, sums))
    if runs_all:
        lines.append(_stage_row("**all**", runs_all, references_all, totals))
    return "\n".join(lines)


def _stage_row(name: str, runs: int, references: int, sums: dict[str, float]) -> str:
    per_run = sum(sums.values()) / runs
    waiting = per_run - sums["traffic"] / runs
    cells = " | ".join(f"{sums[k] / runs:.2f}" for k in STAGES)
    return f"| {name} | {runs} | {references} | {cells} | {per_run:.2f} | {waiting:.2f} |"


def main(argv: list[str] | None = None) -> int:
    # The harness's own benchmarks send traffic to this machine only.
    os.environ.setdefault(LOOPBACK_ONLY_ENV, "1")
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per strategy (default 5)")
    parser.add_argument("--rate", type=float, default=2000.0, help="requests/s (default 2000)")
    parser.add_argument(
        "--strategies",
        help="comma-separated strategy names (default: all that apply to the route)",
    )
    parser.add_argument("--throttle", type=float, default=2.0, help="Traefik's throttle (s)")
    parser.add_argument(
        "--lanes",
        type=int,
        default=1,
        help="stacks measuring side by side (default 1: one strategy at a time; the suite "
        f"uses {DEFAULT_LANES})",
    )
    parser.add_argument(
        "--new-references",
        action="store_true",
        help="apply a reference configuration before every run (the way before the previous "
        "run's last configuration was reused), to compare",
    )
    parser.add_argument("--json-out", type=Path, help="also write the full results here")
    ns = parser.parse_args(argv)
    subject = find_subject(load_scenarios(DEFAULT_MANIFESTS))
    assert subject is not None, "the tutorial's manifests have no route to move"
    if ns.strategies is None:
        names = [n for n in LOCAL_STRATEGIES if not_applicable(n, subject) is None]
    else:
        names = [n.strip() for n in ns.strategies.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LOCAL_STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(LOCAL_STRATEGIES)}")
    reasons = [r for n in names if (r := not_applicable(n, subject)) is not None]
    if reasons:
        parser.error("; ".join(reasons))
    if not 1 <= ns.lanes <= len(names):
        parser.error(f"--lanes must be between 1 and the number of strategies ({len(names)})")
    if not 1 <= ns.repeats <= 50:
        parser.error("--repeats must be between 1 and 50")

    options = GapOptions(max_lag_s=DEFAULT_MAX_LAG_S)
    rows: list[dict[str, Any]] = []
    invalid = 0
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-gaps-") as workdir,
        lane_targets(
            LocalStackOptions(throttle_seconds=ns.throttle, traefik_log_level="ERROR"),
            ns.lanes,
            Path(workdir),
        ) as targets,
    ):
        measured = measure_strategies(
            targets,
            subject,
            names,
            repeats=ns.repeats,
            rate=ns.rate,
            options=options,
            reuse_reference=not ns.new_references,
        )
    for name, runs in measured.items():
        if runs.error is not None:
            raise runs.error
        dist = summarize_repeats(runs.reports)
        invalid += dist["invalid_runs"]
        rows.append(
            {
                "strategy": name,
                "title": runs.described["title"],
                "budget": DEFAULT_BUDGETS.get(name),
                "distribution": dist,
                "runs": [r.to_dict(timeline=False) for r in runs.reports],
                "timings": [t.to_dict() for t in runs.timings],
            }
        )
        print(
            f"{name}: failed {dist['failed_values']}, gap ms {dist['gap_ms_values']}, "
            f"convergence ms {dist['convergence_ms_values']}, "
            f"p99 lag ms median {dist['lag_p99_ms']['median']}, "
            f"{dist['invalid_runs']} invalid, outages {dist['outages_values']}",
            flush=True,
        )
    binary = find_traefik_binary()
    print()
    print(table(rows))
    print()
    print("Where a run's time goes (mean seconds per run):")
    print()
    print(stage_table(rows))
    summary = {
        "bench": "gaps",
        "traefik": traefik_version(binary),
        "rate": ns.rate,
        "repeats": ns.repeats,
        "throttle_s": ns.throttle,
        "lanes": ns.lanes,
        "reuse_reference": not ns.new_references,
        "route": subject.route.id,
        "moved_to": subject.other.service,
        "seconds": round(time.monotonic() - started, 1),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "strategies": rows,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if ns.json_out is not None:
        ns.json_out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    compact = {
        **summary,
        "strategies": [{**r, "runs": len(r["runs"]), "timings": len(r["timings"])} for r in rows],
    }
    print(json.dumps(compact))
    if invalid:
        print(f"{invalid} runs stayed invalid (the sender lagged)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
