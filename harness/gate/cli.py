"""``ingress-harness gate``: run the suites twice on the local target and compare the runs.

upgrade: ``--from-traefik A --to-traefik B`` (same suites, manifests and seed on both versions);
change: ``--manifests-before OLD... --manifests NEW...`` (one version, ``--traefik-version``).
Arguments after ``--`` go to both pytest runs (``-- --probe-rounds 10 --gap-repeats 5``).

Writes ``reports/<gate id>/before/``, ``after/`` (each a run: results.json, index.html,
junit.xml, pytest.log) and ``gate.json`` and ``gate.html``. Exit status: 0 no unexpected
difference, 1 unexpected differences, 2 a usage error, 3 a run could not be made or compared.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import procs
from harness.cli.verify import pytest_args
from harness.errors import ConfigError
from harness.gate.compare import Announcement, Comparison, Mode, compare
from harness.gate.report import gate_document, write_gate
from harness.results.document import ResultsDocument, load
from harness.traefik.versions import local_target_refusal

EXIT_PASSED, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3

#: The suites by name (``--suites routing,strip``).
SUITES = {
    "routing": "test_routing.py",
    "strip": "test_strip.py",
    "priority": "test_priority.py",
    "registration": "test_registration.py",
    "weights": "test_weights.py",
    "gaps": "test_apply_gaps.py",
}
#: pytest options the gate sets itself for each run; given after ``--`` they are a usage error.
_OWN_OPTIONS = (
    "--traefik-version",
    "--traefik-binary",
    "--manifests",
    "--report-dir",
    "--proxy-url",
    "--baseline",
    "--junitxml",
    "--change-command",
)
#: How long a run may take before the gate gives up on it.
RUN_TIMEOUT_S = 3600.0
#: How long pytest gets to tear its stack down after an interrupt.
INTERRUPT_GRACE_S = 30.0


class UsageError(ConfigError):
    """A bad option of the gate (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingress-harness gate",
        description="Run the suites twice and compare the runs per probe and per figure.",
    )
    parser.add_argument("--from-traefik", metavar="A", help="upgrade mode: the version we run")
    parser.add_argument("--to-traefik", metavar="B", help="upgrade mode: the next version")
    parser.add_argument("--manifests-before", nargs="+", metavar="OLD", help="change mode")
    parser.add_argument("--manifests", nargs="+", metavar="NEW", help="the (new) manifests")
    parser.add_argument("--traefik-version", metavar="X.Y.Z", help="change mode's Traefik")
    parser.add_argument(
        "--intended",
        action="append",
        default=[],
        metavar="[KIND:]ROUTE",
        help="change mode: a change the new manifests are meant to make (KIND: added, removed, "
        "moved, re-weighted, re-prioritised, rule, strip; ROUTE: a route id or host/path); "
        "repeatable; without it every change of the new manifests counts as intended",
    )
    parser.add_argument(
        "--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}"
    )
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where to write")
    parser.add_argument("--gate-id", help="the gate's folder name (default: gate-<UTC time>)")
    return parser


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The gate's options and the pytest arguments; raises UsageError naming the bad option."""
    args = list(argv)
    passthrough: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, passthrough = args[:cut], args[cut + 1 :]
    parser = _parser()
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:  # argparse has printed its message (or the help: status 0)
        if exc.code == 0:
            raise
        raise UsageError("see the message above") from exc
    upgrade = ns.from_traefik is not None or ns.to_traefik is not None
    change = ns.manifests_before is not None
    if upgrade and change:
        raise UsageError("--from-traefik/--to-traefik and --manifests-before: choose one mode")
    if upgrade and (ns.from_traefik is None or ns.to_traefik is None):
        raise UsageError("upgrade mode needs both --from-traefik A and --to-traefik B")
    if not upgrade and not change:
        raise UsageError(
            "choose a mode: --from-traefik A --to-traefik B (upgrade), or "
            "--manifests-before OLD... --manifests NEW... (change)"
        )
    if change and ns.manifests is None:
        raise UsageError("change mode needs --manifests NEW... next to --manifests-before")
    if upgrade and ns.traefik_version is not None:
        raise UsageError("--traefik-version is for change mode; upgrade mode runs A and B")
    if upgrade and ns.intended:
        raise UsageError("--intended is for change mode (an upgrade announces no change)")
    for option in ("from_traefik", "to_traefik", "traefik_version"):
        value = getattr(ns, option)
        if value is not None and not _looks_like_version(value):
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} must look like 3.7.15, got {value!r}")
        refusal = None if value is None else local_target_refusal(value)
        if refusal is not None:
            raise UsageError(f"--{option.replace('_', '-')} {value}: {refusal}")
    for group in (ns.manifests_before or [], ns.manifests or []):
        for path in group:
            if not Path(path).exists():
                raise UsageError(f"--manifests/--manifests-before: {path} does not exist")
    for text in ns.intended:
        try:
            Announcement.parse(text)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    names = [s.strip() for s in ns.suites.split(",") if s.strip()]
    unknown = [s for s in names if s not in SUITES]
    if unknown or not names:
        raise UsageError(
            f"--suites: unknown {', '.join(unknown) or '(none)'}; use {', '.join(SUITES)}"
        )
    ns.suites = names
    for arg in passthrough:
        flag = arg.split("=", 1)[0]
        if flag in _OWN_OPTIONS:
            raise UsageError(f"{flag} after --: the gate sets it for each run; use its own options")
    if ns.gate_id is not None and (
        not ns.gate_id or "/" in ns.gate_id or ns.gate_id in {".", ".."}
    ):
        raise UsageError(f"--gate-id must be a folder name, got {ns.gate_id!r}")
    return ns, passthrough


def _looks_like_version(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 3 and all(p.isdigit() for p in parts)


def _run_pytest(argv: list[str], log: Path) -> int:
    """Run one pytest child to completion; on Ctrl-C give it time to tear its stack down."""
    proc = procs.spawn(argv, log_path=log, env=procs.python_child_env())
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=INTERRUPT_GRACE_S)
        procs.stop_group(proc)
        raise
    finally:
        if proc.poll() is None:
            procs.stop_group(proc)


def run_suites(
    out_dir: Path, suites: Sequence[str], options: Sequence[str], passthrough: Sequence[str]
) -> ResultsDocument:
    """One run of the suites into ``out_dir``; raises ConfigError when it left no results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The packaged suites, configured as `ingress-harness verify` runs them (same node ids).
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *pytest_args(
            ["--baseline", "none", *options, *passthrough],
            out_dir,
            [SUITES[s] for s in suites],
        ),
    ]
    log = out_dir / "pytest.log"
    status = _run_pytest(argv, log)
    results = out_dir / "results.json"
    if not results.is_file():
        raise ConfigError(
            f"the run in {out_dir} wrote no results.json (pytest exit status {status}); "
            f"last lines of {log}:\n{procs.tail(log)}"
        )
    return load(results)


def _run_info(doc: ResultsDocument, out_dir: Path, manifests: Sequence[str]) -> dict[str, Any]:
    traefik = doc["target"].get("traefik") or {}
    return {
        "run_id": doc["run_id"],
        "traefik_version": traefik.get("version"),
        "manifests": list(manifests),
        "results": str(out_dir / "results.json"),
        "report": str(out_dir / "index.html"),
        "gate": doc["gate"]["verdict"],
    }


def exit_status(comparison: Comparison) -> int:
    return {"passed": EXIT_PASSED, "failed": EXIT_UNEXPECTED}.get(
        comparison.verdict, EXIT_ENVIRONMENT
    )


def main(argv: list[str]) -> int:
    try:
        ns, passthrough = parse(argv)
    except SystemExit:  # --help
        return EXIT_PASSED
    except UsageError as exc:
        print(f"ingress-harness gate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    mode: Mode = "change" if ns.manifests_before is not None else "upgrade"
    gate_id = ns.gate_id or "gate-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (ns.reports / gate_id).resolve()
    manifests = [str(Path(m).resolve()) for m in ns.manifests or []]
    if mode == "upgrade":
        common = [f"--manifests={m}" for m in manifests]
        sides = {
            "before": ([f"--traefik-version={ns.from_traefik}", *common], manifests),
            "after": ([f"--traefik-version={ns.to_traefik}", *common], manifests),
        }
    else:
        version = [f"--traefik-version={ns.traefik_version}"] if ns.traefik_version else []
        old = [str(Path(m).resolve()) for m in ns.manifests_before]
        sides = {
            "before": ([*version, *(f"--manifests={m}" for m in old)], old),
            "after": ([*version, *(f"--manifests={m}" for m in manifests)], manifests),
        }
    docs: dict[str, ResultsDocument] = {}
    runs: dict[str, dict[str, Any]] = {}
    try:
        for which, (options, files) in sides.items():
            print(f"gate {gate_id}: {which} run ({' '.join(options) or 'defaults'})", flush=True)
            docs[which] = run_suites(out / which, ns.suites, options, passthrough)
            runs[which] = _run_info(docs[which], out / which, files)
            print(f"gate {gate_id}: {which} run {docs[which]['gate']['verdict']}", flush=True)
    except ConfigError as exc:
        print(f"ingress-harness gate: error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("ingress-harness gate: interrupted", file=sys.stderr)
        return 130
    comparison = compare(docs["before"], docs["after"], mode=mode, announced=ns.intended)
    document = gate_document(comparison, runs, gate_id)
    json_path, html_path = write_gate(document, out)
    counts = comparison.counts()
    print(
        f"gate {gate_id}: {comparison.verdict.upper()} "
        + ", ".join(f"{n} {c}" for c, n in counts.items())
    )
    for d in comparison.differences:
        if d.classification in ("unexpected", "not-compared"):
            print(f"  {d.classification}: {d.kind} {d.item}: {d.before} -> {d.after} ({d.why})")
    print(f"gate report: {html_path} ({json_path.name} beside it)")
    return exit_status(comparison)
