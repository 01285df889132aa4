"""Credentials never reach results.json, JUnit XML or the HTML report, by key or by value:
the userinfo of --proxy-url, the secrets written into --change-command, and the credentials in
the environment the command inherits (printed by the command itself). Planted values, a real
run in a subprocess; the three files are searched for every one of them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from suite_runs import run_pytest

from harness.results.document import redact, redact_text, secrets_in_text

MANIFESTS = Path(__file__).resolve().parent.parent / "harness" / "suites" / "manifests"

#: Every value planted below: none may appear in any file the run writes.
PLANTED = {
    "user": "usr-Pl4nted",
    "url_password": "pw-Url-S3cret",
    "command_token": "tok-Cmd-Abc123",
    "command_password": "pw-Flag-Xyz789",
    "bearer": "bearer-Hdr-Qwe456",
    "env_token": "tok-Env-Rty321",
}

CHECKS = """
import os

import pytest

from harness.checks.evidence import CheckVerdict, Outcome, RegistrationEvidence, Subject
from harness.checks.strategies import CommandChange, StepClock

pytestmark = pytest.mark.harness_kind("registration")


def test_the_change_command_fails(harness_settings, evidence):
    command = harness_settings.gaps.change_command
    change = CommandChange(command, [], proxy_url="http://127.0.0.1:1")
    try:
        change.change(StepClock())
    except Exception as exc:  # the harness's own message: the command and its last output
        message = str(exc)
    evidence.record(CheckVerdict(
        outcome=Outcome.ERROR,
        subject=Subject(scenario="s", route=None, label="command"),
        summary=f"registration error: {change.title}",
        message=message,
        evidence=RegistrationEvidence(type="registration", scenario="s", steps=[]),
        figures={},
    ))


def test_the_proxy_does_not_answer(target, evidence):
    pass
"""


def test_planted_credentials_reach_none_of_the_files(tmp_path: Path) -> None:
    checks = tmp_path / "test_checks.py"
    checks.write_text(CHECKS, "utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = PLANTED
    command = (
        f"DEPLOY_TOKEN={p['command_token']} echo deploying --password={p['command_password']} "
        f"-H 'Authorization: Bearer {p['bearer']}'; echo \"using $CI_JOB_TOKEN\"; exit 3"
    )
    out = tmp_path / "report"
    run = run_pytest(
        checks, "--report-dir", out, "--baseline", "none",
        f"--junitxml={out / 'junit.xml'}",
        "--proxy-url", f"http://{p['user']}:{p['url_password']}@127.0.0.1:{port}",
        "--manifests", MANIFESTS / "services.yaml", MANIFESTS / "cheeses.yaml",
        "--change-command", command,
        env={"CI_JOB_TOKEN": p["env_token"]},
    )  # fmt: skip
    results = run.results(out)
    by_name = {c["nodeid"].split("::")[-1]: c for c in results["checks"]}
    # The runs did what they say: the command failed and printed, the proxy was unreachable.
    command_check = by_name["test_the_change_command_fails"]
    assert "exited with status 3" in command_check["message"], run.output[-3000:]
    assert "using <redacted>" in command_check["message"]
    assert "http://<redacted>@127.0.0.1" in results["problem"]
    files = {
        name: (out / name).read_text("utf-8")
        for name in ("results.json", "junit.xml", "index.html")
    }
    for name, text in files.items():
        for what, value in PLANTED.items():
            assert value not in text, f"{what} ({value}) is in {name}"
    assert "DEPLOY_TOKEN=&lt;redacted&gt;" in files["junit.xml"] or (
        "DEPLOY_TOKEN=<redacted>" in files["junit.xml"]
    )
    assert "DEPLOY_TOKEN=<redacted>" in files["results.json"]
    # The terminal (a CI log) names the target without its userinfo.
    assert "target external http://<redacted>@127.0.0.1" in run.output
    assert p["url_password"] not in run.output


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("http://user:pass@host/x", "http://<redacted>@host/x"),
        ("TOKEN=abc123 ./deploy.sh", "TOKEN=<redacted> ./deploy.sh"),
        ("do --password=x --passwd 'a b'", "do --password=<redacted> --passwd <redacted>"),
        ("curl -H 'Authorization: Bearer eyJhbG.x'", "curl -H 'Authorization: Bearer <redacted>'"),
        ("GET /?api_key=k3y&x=1", "GET /?api_key=<redacted>&x=1"),
        ("not secret: --run-alpha 0.01 host=cheeses", "not secret: --run-alpha 0.01 host=cheeses"),
    ],
)  # fmt: skip
def test_credentials_are_recognised_by_their_form(text: str, redacted: str) -> None:
    assert redact_text(text) == redacted
    assert redact_text(redacted) == redacted  # idempotent


def test_values_written_as_credentials_are_found_for_redaction_by_value() -> None:
    found = secrets_in_text("A_TOKEN=one1 run --password two2 -H 'Authorization: Bearer three3x3'")
    assert {"one1", "two2", "three3x3"} <= set(found)
    assert set(secrets_in_text("http://me:pw@h")) == {"me:pw", "pw"}
    assert redact({"Api-Key": "v", "notes": ["x TOKEN=v"]}) == {
        "Api-Key": "<redacted>",
        "notes": ["x TOKEN=<redacted>"],
    }
