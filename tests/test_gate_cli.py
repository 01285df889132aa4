"""``ingress-harness gate``: its options, and the gate end to end against real Traefik.

The end-to-end gates run a reduced suite selection (routing, strip, priority; 3 probe rounds)
against the real Traefik on the local target, one run per side, on the scenario of
tests/manifests/gate: the pinned version to itself, and the change (/wensleydale moved to
cheddar, announced, and an unannounced priority on /cheddar).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import procs
from harness.gate.cli import EXIT_PASSED, EXIT_UNEXPECTED, EXIT_USAGE, main

GATE = Path(__file__).parent / "manifests" / "gate"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "choose a mode"),
        (["--from-traefik", "3.6.0"], "needs both --from-traefik A and --to-traefik B"),
        (["--from-traefik", "3.6", "--to-traefik", "3.7.15"], "--from-traefik must look like"),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--manifests-before", "x"],
            "choose one mode",
        ),
        (["--manifests-before", str(GATE / "before.yaml")], "needs --manifests NEW"),
        (["--manifests-before", "nope.yaml", "--manifests", "x.yaml"], "nope.yaml does not exist"),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--suites", "routing,dns"],
            "--suites: unknown dns",
        ),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--", "--traefik-version=3.0.4"],
            "--traefik-version after --",
        ),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--intended", "moved:x"],
            "--intended is for change mode",
        ),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--traefik-version", "3.7.15"],
            "--traefik-version is for change mode",
        ),
        (
            ["--from-traefik", "3.0.4", "--to-traefik", "3.7.15"],
            "--from-traefik 3.0.4: Traefik 3.0.4 reads Endpoints",
        ),
        (
            ["--manifests-before", "x", "--manifests", "y", "--traefik-version", "3.0.4"],
            "--traefik-version 3.0.4: Traefik 3.0.4 reads Endpoints",
        ),
        (
            ["--from-traefik", "3.6.0", "--to-traefik", "3.7.15", "--gate-id", "a/b"],
            "--gate-id must be a folder name",
        ),
    ],
)
def test_bad_options_are_named_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--from-traefik" in capsys.readouterr().out


def _gate(tmp_path: Path, *options: str) -> tuple[int, dict[str, Any], str]:
    """Run ``ingress-harness gate`` with a reduced suite selection; its status, gate.json and
    output."""
    argv = [
        sys.executable,
        "-m",
        "harness",
        "gate",
        *options,
        "--suites",
        "routing,strip,priority",
        "--reports",
        str(tmp_path),
        "--gate-id",
        "g",
        "--",
        "--probe-rounds",
        "3",
    ]
    done = subprocess.run(
        argv,
        check=False,
        env=procs.python_child_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    gate = json.loads((tmp_path / "g" / "gate.json").read_text())
    for which in ("before", "after"):
        assert (tmp_path / "g" / which / "index.html").is_file()
        assert (tmp_path / "g" / which / "results.json").is_file()
    return done.returncode, gate, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.stack
def test_a_gate_from_the_pinned_traefik_to_itself_finds_no_difference(tmp_path: Path) -> None:
    status, gate, output = _gate(
        tmp_path,
        "--from-traefik",
        "3.7.15",
        "--to-traefik",
        "3.7.15",
        "--manifests",
        str(GATE / "before.yaml"),
    )
    assert status == EXIT_PASSED, output
    assert gate["verdict"] == "passed" and gate["counts"]["unexpected"] == 0
    assert gate["differences"] == []
    assert gate["runs"]["after"]["traefik_version"] == "3.7.15"
    assert "PASSED" in (tmp_path / "g" / "gate.html").read_text()


@pytest.mark.slow
@pytest.mark.stack
def test_a_change_gate_end_to_end(tmp_path: Path) -> None:
    status, gate, output = _gate(
        tmp_path,
        "--manifests-before",
        str(GATE / "before.yaml"),
        "--manifests",
        str(GATE / "moved-and-priority.yaml"),
        "--intended",
        "moved:cheeses.minikube/wensleydale",
    )
    assert status == EXIT_UNEXPECTED, output
    by_class: dict[str, set[str]] = {}
    for d in gate["differences"]:
        by_class.setdefault(d["classification"], set()).add(f"{d['kind']} {d['item']}")
    # The moved route's probes, its edge probes among them; nothing else is expected.
    edge = ("./x", "/./x", "/%2e/x", "%2Fx", "%5Cx", "//x")
    assert by_class["expected"] == {
        "probe cheeses.minikube/wensleydale",
        "probe cheeses.minikube/wensleydale/",
        "probe cheeses.minikube/wensleydale/x",
        "probe cheeses.minikube/wensleydaleX",
        *(f"probe cheeses.minikube/wensleydale{tail}" for tail in edge),
    }
    assert {
        "route cheddar:cheeses.minikube/cheddar",
        "probe cheeses.minikube/cheddar/aged/x",
    } <= by_class["unexpected"]
    assert "noise" not in by_class and "not-compared" not in by_class
    assert "FAILED" in (tmp_path / "g" / "gate.html").read_text()
