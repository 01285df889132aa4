"""The gap suite's options are checked at configure time: a bad latency budget or change window,
or external mode without the manifests that say what the proxy should do, is a usage error
before anything is started or sent."""

from __future__ import annotations

import pytest
from suite_runs import run_pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gap-latency-budget-ms", "0"], "--gap-latency-budget-ms must be a positive number"),
        (["--change-window", "soon"], "--change-window 'soon': expected SECONDS"),
        (["--change-window", "exit+"], "--change-window 'exit+': expected SECONDS"),
        (["--change-window", "0"], "with SECONDS in (0, 600]"),
        (["--change-window", "exit+601"], "with SECONDS in (0, 600]"),
        (
            ["--proxy-url", "http://127.0.0.1:9"],
            "--proxy-url needs --manifests: the manifests that say what the proxy should do",
        ),
    ],
)
def test_bad_gap_options_are_refused_up_front(args: list[str], expected: str) -> None:
    run = run_pytest(
        "harness/suites/test_apply_gaps.py", "--collect-only", "-q", *args, timeout=120
    )
    output = run.output
    assert run.returncode == 4, output  # pytest's usage error: nothing was collected or sent
    assert "ERROR: ingress-harness:" in output
    assert expected in output
    assert "Traceback" not in output
