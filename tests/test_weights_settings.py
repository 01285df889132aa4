"""Bad statistical parameters are refused before any traffic, with the option's name and, for a
plan that is too large, the number of requests it would need."""

from __future__ import annotations

import pytest
from suite_runs import run_pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--run-alpha", "2"], "--run-alpha must be a probability strictly between 0 and 1"),
        (["--run-alpha", "0.5", "--power", "0.1"], "--power must be above alpha"),
        (["--min-deviation", "0.7"], "--min-deviation must be a share strictly between 0 and 0.5"),
        (["--min-deviation", "0.001"], "needs at least 6,724,392 requests"),
        (["--weights-mode", "often"], "--weights-mode must be fixed or sequential"),
        (["--max-requests", "many"], "--max-requests must be a whole number"),
    ],
)
def test_bad_parameters_are_refused_up_front(args: list[str], expected: str) -> None:
    run = run_pytest("harness/suites/test_weights.py", "--collect-only", "-q", *args, timeout=120)
    output = run.output
    assert run.returncode == 4, output  # pytest's usage error: nothing was collected or sent
    assert "ERROR: ingress-harness:" in output
    assert expected in output
    assert "Traceback" not in output
