"""Every run that read its options leaves a results.json and a report saying what happened:
a local stack that cannot start and a proxy that does not answer give one clear paragraph (the
first setup error, recorded once as the run's ``problem``; every other check refers to it), and
a teardown that fails makes its check an error (the gate agrees with pytest's exit status).
Each runs pytest in a subprocess, as a user would."""

from __future__ import annotations

import json
import socket
import typing
from pathlib import Path
from typing import Any

from suite_runs import run_pytest

from harness.results.document import SCHEMA_PATH, ResultsDocument

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "harness" / "suites" / "manifests"


def _assert_one_paragraph(output: str, problem: str, errors: int) -> None:
    """The problem is said in full once among the errors, and every other check refers to it."""
    errors_section = output.split("= ERRORS =", 1)[1].split("ingress-harness verdicts", 1)[0]
    assert errors_section.count(problem) == 1, errors_section[:3000]
    assert errors_section.count("not run: the same setup error") == errors - 1
    assert "Traceback" not in output and "raise " not in errors_section


def _problem_run(tmp_path: Path, *args: str | Path) -> tuple[Any, dict[str, Any], Path]:
    out = tmp_path / "report"
    run = run_pytest(
        ROOT / "harness" / "suites" / "test_routing.py", "-q",
        "--report-dir", out, "--baseline", "none",
        *args, timeout=300,
    )  # fmt: skip
    return run, run.results(out), out


def test_a_stack_that_cannot_start_gives_results_with_the_reason(tmp_path: Path) -> None:
    traefik = tmp_path / "traefik"
    traefik.write_text("#!/bin/sh\nexit 1\n")
    traefik.chmod(0o755)
    run, results, out = _problem_run(tmp_path, "--traefik-binary", traefik)
    assert run.returncode == 1, run.output[-3000:]
    problem = results["problem"]
    assert problem.startswith("TraefikStartError: ") and str(traefik) in problem
    assert "\n" not in problem
    assert results["gate"]["verdict"] == "error"
    assert results["gate"]["reasons"][0] == f"checks could not run: {problem}"
    errors = results["counts"]["error"]
    assert errors == len(results["checks"]) > 1
    _assert_one_paragraph(run.output, problem, errors)
    assert f"the checks could not run: {problem}" in run.output
    assert "does not look like Traefik" in (out / "index.html").read_text("utf-8")


def test_an_unreachable_proxy_gives_results_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    run, results, out = _problem_run(
        tmp_path,
        "--proxy-url", url,
        "--manifests", MANIFESTS / "services.yaml", MANIFESTS / "cheeses.yaml",
    )  # fmt: skip
    assert run.returncode == 1, run.output[-3000:]
    problem = results["problem"]
    assert problem.startswith("TargetUnreachable: ") and url in problem
    assert results["gate"]["verdict"] == "error"
    assert results["counts"]["error"] == len(results["checks"]) > 1
    _assert_one_paragraph(run.output, problem, results["counts"]["error"])
    assert "does not answer" in (out / "index.html").read_text("utf-8")


TEARDOWN_CHECKS = """
import pytest

from harness.checks.evidence import CheckVerdict, Outcome, RegistrationEvidence, Subject

pytestmark = pytest.mark.harness_kind("registration")


@pytest.fixture
def leaky():
    yield
    raise RuntimeError("the stack did not stop")


def verdict(outcome):
    return CheckVerdict(
        outcome=outcome,
        subject=Subject(scenario="s", route=None, label="s"),
        summary=f"registration {outcome}: s",
        message=f"the check says {outcome}",
        evidence=RegistrationEvidence(type="registration", scenario="s", steps=[]),
        figures={"unexpected_answers": 0.0},
    )


def test_passes_then_teardown_fails(leaky, evidence):
    evidence.record(verdict(Outcome.PASSED))


def test_fails_then_teardown_fails(leaky, evidence):
    evidence.record(verdict(Outcome.FAILED))


def test_passes(evidence):
    evidence.record(verdict(Outcome.PASSED))
"""


def test_a_teardown_error_is_an_error_of_its_check(tmp_path: Path) -> None:
    checks = tmp_path / "test_teardown_checks.py"
    checks.write_text(TEARDOWN_CHECKS, "utf-8")
    out = tmp_path / "report"
    run = run_pytest(checks, "-q", "--report-dir", out, "--baseline", "none")
    results = run.results(out)
    recorded = {c["nodeid"].split("::")[-1]: c for c in results["checks"]}
    assert {k: c["outcome"] for k, c in recorded.items()} == {
        "test_passes_then_teardown_fails": "error",
        "test_fails_then_teardown_fails": "failed",
        "test_passes": "passed",
    }, run.output[-3000:]
    for name in ("test_passes_then_teardown_fails", "test_fails_then_teardown_fails"):
        message = recorded[name]["message"]
        assert "error in teardown" in message and "the stack did not stop" in message
        assert recorded[name]["evidence"] is not None  # the check's own record, not a new one
    assert "the check says failed" in recorded["test_fails_then_teardown_fails"]["message"]
    assert results["counts"]["error"] == 1 and results["counts"]["failed"] == 1
    assert results["gate"]["verdict"] == "failed" and run.returncode == 1


def test_the_schema_and_the_typed_document_have_the_same_top_level_fields() -> None:
    """results.json's top level: the schema and ``ResultsDocument`` agree, the optional fields
    (``problem``, ``baseline``) included."""
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    hints = typing.get_type_hints(ResultsDocument, include_extras=True)
    optional = {k for k, h in hints.items() if typing.get_origin(h) is typing.NotRequired}
    assert set(schema["properties"]) == set(hints)
    assert set(schema["required"]) == set(hints) - optional
    assert {"problem", "baseline"} <= optional
